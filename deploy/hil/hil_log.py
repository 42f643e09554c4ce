"""A recorded HIL run (or a real robot's log with the same topics) as arrays.

Reads a rosbag2 written by ``sim2real hil --record`` (``bag.read_bag``) and gathers each
topic into numpy arrays. Times are header stamps in ns on the clock the nodes shared (sim
time in lockstep, the wall clock in real time); ``*_receipt_ns`` are the recorder's
receive times (wall clock). Topics a run did not have are empty arrays.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sim2real.deploy.hil.bag import BagMessage, read_bag

#: The topics of a HIL run, by role; ``{controller}`` and ``{policy}`` are filled in.
TOPICS = {
    "joint_states": "/joint_states",
    "imu": "/imu/data",
    "commands": "/{controller}/commands",
    "gains": "/{policy}/gains",
    "input_stamp": "/{policy}/input_stamp",
    "events": "/{policy}/events",
    "cmd_vel": "/cmd_vel",
    "target_point": "/target_point",
    "base_pose": "/sim/base_pose",
    "base_twist": "/sim/base_twist",
    "ee_position": "/sim/ee_position",
}


def stamp_ns(stamp) -> int:
    """A ``builtin_interfaces/Time`` as int ns."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


@dataclass(frozen=True)
class Event:
    """A state change of the policy's runtime: time (ns), from, to, reason."""

    stamp_ns: int
    source: str
    target: str
    reason: str


@dataclass
class HilLog:
    """The arrays of one run; see the module docstring.

    Attributes:
        joint_names: the joint order of ``joint_pos``/``joint_vel``/``joint_effort``
            (the first joint state's).
        joint_ns: (T,) stamps of the joint states with that name list.
        joint_pos, joint_vel, joint_effort: (T, J) rad, rad/s, N·m.
        command_receipt_ns: (C,) when each command reached the recorder (wall).
        command_targets: (C, J) the commands, in the controller's order.
        command_kp, command_kd: (G, J) the gains sent with the commands.
        tick_ns: (K,) the policy's tick times (``input_stamp`` header stamps).
        tick_input_ns: (K,) the stamp of the joint state each tick used.
        tick_receipt_ns: (K,) when each tick's ``input_stamp`` reached the recorder (wall).
        events: the runtime's state changes, in order.
        base_ns, base_pos, base_quat: (B,), (B, 3) m, (B, 4) wxyz: the true base pose.
        twist_ns, base_lin_vel, base_ang_vel: (B,), (B, 3) m/s, (B, 3) rad/s, base frame.
        ee_ns, ee_pos: (E,), (E, 3) m: the true end-effector position.
        counts: messages per topic.
        sensor_ns: header stamps of every ``joint_states`` and ``imu`` message (faulty
            ones included), by role.
    """

    joint_names: tuple[str, ...] = ()
    joint_ns: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    joint_pos: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    joint_vel: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    joint_effort: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    command_receipt_ns: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    command_targets: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    command_kp: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    command_kd: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    tick_ns: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    tick_input_ns: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    tick_receipt_ns: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    events: list[Event] = field(default_factory=list)
    base_ns: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    base_pos: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    base_quat: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    twist_ns: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    base_lin_vel: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    base_ang_vel: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    ee_ns: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    ee_pos: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    counts: dict[str, int] = field(default_factory=dict)
    sensor_ns: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def from_bag(
        cls,
        path: str | Path,
        controller: str = "forward_position_controller",
        policy_node: str = "policy_node",
    ) -> HilLog:
        """Read a HIL bag; topics it lacks stay empty."""
        return cls.from_messages(read_bag(path), controller, policy_node)

    @classmethod
    def from_messages(
        cls,
        messages: Iterable[BagMessage],
        controller: str = "forward_position_controller",
        policy_node: str = "policy_node",
    ) -> HilLog:
        """Gather messages (in time order) into arrays."""
        roles = {
            topic.format(controller=controller, policy=policy_node): role
            for role, topic in TOPICS.items()
        }
        rows: dict[str, list] = {role: [] for role in TOPICS}
        counts: dict[str, int] = {}
        for message in messages:
            counts[message.topic] = counts.get(message.topic, 0) + 1
            role = roles.get(message.topic)
            if role is not None:
                rows[role].append(message)
        log = cls(counts=counts)
        log.sensor_ns = {
            role: _ints(stamp_ns(m.msg.header.stamp) for m in rows[role])
            for role in ("joint_states", "imu")
        }
        log._joint_states(rows["joint_states"])
        log._commands(rows["commands"], rows["gains"])
        msgs = rows["input_stamp"]
        log.tick_ns = _ints(stamp_ns(m.msg.header.stamp) for m in msgs)
        log.tick_input_ns = _ints(stamp_ns(m.msg.time_ref) for m in msgs)
        log.tick_receipt_ns = _ints(m.timestamp_ns for m in msgs)
        log.events = [_event(m.msg) for m in rows["events"]]
        msgs = rows["base_pose"]
        log.base_ns = _ints(stamp_ns(m.msg.header.stamp) for m in msgs)
        log.base_pos = _rows([_xyz(m.msg.pose.position) for m in msgs], 3)
        log.base_quat = _rows([_wxyz(m.msg.pose.orientation) for m in msgs], 4)
        msgs = rows["base_twist"]
        log.twist_ns = _ints(stamp_ns(m.msg.header.stamp) for m in msgs)
        log.base_lin_vel = _rows([_xyz(m.msg.twist.linear) for m in msgs], 3)
        log.base_ang_vel = _rows([_xyz(m.msg.twist.angular) for m in msgs], 3)
        msgs = rows["ee_position"]
        log.ee_ns = _ints(stamp_ns(m.msg.header.stamp) for m in msgs)
        log.ee_pos = _rows([_xyz(m.msg.point) for m in msgs], 3)
        return log

    def _joint_states(self, messages: list[BagMessage]) -> None:
        """Joint states with the first message's name list (faulty renamed ones dropped)."""
        if not messages:
            return
        names = tuple(messages[0].msg.name)
        kept = [m.msg for m in messages if tuple(m.msg.name) == names]
        self.joint_names = names
        self.joint_ns = _ints(stamp_ns(m.header.stamp) for m in kept)
        self.joint_pos = np.array([m.position for m in kept], dtype=np.float64)
        self.joint_vel = np.array([m.velocity for m in kept], dtype=np.float64)
        if all(len(m.effort) == len(names) for m in kept):
            self.joint_effort = np.array([m.effort for m in kept], dtype=np.float64)

    def _commands(self, commands: list[BagMessage], gains: list[BagMessage]) -> None:
        if commands:
            size = len(commands[0].msg.data)
            same = [m for m in commands if len(m.msg.data) == size]
            self.command_receipt_ns = _ints(m.timestamp_ns for m in same)
            self.command_targets = np.array([m.msg.data for m in same], dtype=np.float64)
        if gains:
            data = np.array([m.msg.data for m in gains], dtype=np.float64)
            joints = data.shape[1] // 2
            self.command_kp, self.command_kd = data[:, :joints], data[:, joints:]


def _ints(values: Iterable[int]) -> np.ndarray:
    return np.fromiter(values, dtype=np.int64)


def _rows(values: list, width: int) -> np.ndarray:
    return np.array(values, dtype=np.float64).reshape(-1, width)


def _xyz(v) -> tuple[float, float, float]:
    return (v.x, v.y, v.z)


def _wxyz(q) -> tuple[float, float, float, float]:
    return (q.w, q.x, q.y, q.z)


def _event(msg) -> Event:
    status = msg.status[0]
    values = {kv.key: kv.value for kv in status.values}
    return Event(stamp_ns(msg.header.stamp), values["from"], values["to"], values["reason"])
