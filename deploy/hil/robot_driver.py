"""``RobotDriver``: what a robot's driver does, around a ``SimRobot``; no ROS here.

``sim_robot_node`` (in ``sim2real_ros``) owns the threads, the clock and the messages; this
class owns every decision, so that it is tested without DDS:

- **Sensor schedule.** After each physics step, joint states and the IMU are published at
  their rates, and the ground truth at its rate (whole physics steps between messages).
- **Faults.** Outgoing sensor messages pass through the ``FaultInjector``; pushes are
  applied when due; a ``command_delay`` fault holds commands back. Fault time is sim time
  since the first command arrived (``t0``).
- **Commands.** A joint command (targets and, when the policy sends them, its gains) goes
  to the robot when it is due: at once, or after a ``command_delay`` fault's delay.
- **Statistics.** Messages published per topic from the first command on, commands
  received, the state-to-command
  latency (from the publication of the joint state a command was computed from, to the
  command's arrival, both on the wall clock: ``LatencyTracker``), and what the node adds
  (lockstep time-outs, real-time overruns).

Times: sim time is kept as integer nanoseconds (``time_ns``), so that control-period
boundaries are exact and the policy's timer, which runs on ``/clock`` in lockstep, fires
exactly at them.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sim2real.deploy.hil.faults import FaultInjector, SensorMessage
from sim2real.deploy.hil.sim_robot import SimRobot

NS_PER_S = 1_000_000_000


@dataclass(frozen=True)
class SensorRates:
    """Publication rates, Hz; each is rounded to whole physics steps between messages."""

    joint_states_hz: float = 500.0
    imu_hz: float = 500.0
    ground_truth_hz: float = 50.0

    def __post_init__(self):
        for name in ("joint_states_hz", "imu_hz", "ground_truth_hz"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"SensorRates.{name} must be > 0 Hz, got {value!r}")

    def steps(self, physics_dt: float) -> dict[str, int]:
        """Physics steps between two messages of each topic (at least 1)."""
        return {
            "joint_states": steps_between(self.joint_states_hz, physics_dt),
            "imu": steps_between(self.imu_hz, physics_dt),
            "ground_truth": steps_between(self.ground_truth_hz, physics_dt),
        }


def steps_between(rate_hz: float, physics_dt: float) -> int:
    """Whole physics steps (at least 1) between two events at ``rate_hz``."""
    return max(1, round(1.0 / (rate_hz * physics_dt)))


class LatencyTracker:
    """State-to-command latency: pairs each command with the joint state it was computed from.

    The policy publishes, each tick, the stamp of the joint state it used and the tick's
    time (its ``~/input_stamp``: ``time_ref`` and ``header.stamp``) next to the command.
    The two topics arrive each in order, but not in order with each other (one may be
    several ticks behind): the k-th command pairs with the k-th input stamp. With
    ``wall_stamps`` (real time: header stamps are the wall clock) a lost message does not
    shift the pairs for good: a command that arrived before the tick is an earlier tick's
    (that input was lost), and an input whose next tick came before the command lost its
    command; both count as ``unmatched``. The latency is then also split at the tick:
    ``state_age_s`` (from the state's publication to the tick: the wait for the tick, and
    the state's transport) and ``tick_to_command_s`` (the tick's work and the command's
    transport).
    """

    def __init__(self, wall_stamps: bool = False, history: int = 4096, pending: int = 64):
        self._published: collections.OrderedDict[int, int] = collections.OrderedDict()
        self._history = history
        self._wall_stamps = wall_stamps
        self._commands: collections.deque[int] = collections.deque(maxlen=pending)
        self._inputs: collections.deque[tuple[int, int]] = collections.deque(maxlen=pending)
        self.latencies_s: list[float] = []
        self.state_age_s: list[float] = []
        self.tick_to_command_s: list[float] = []
        self.unmatched = 0

    def published(self, stamp_ns: int, wall_ns: int) -> None:
        """A joint state with header stamp ``stamp_ns`` left at ``wall_ns``."""
        self._published[stamp_ns] = wall_ns
        if len(self._published) > self._history:
            self._published.popitem(last=False)

    def command(self, wall_ns: int) -> None:
        """A command arrived at ``wall_ns``."""
        self._commands.append(wall_ns)
        self._pair()

    def input_stamp(self, stamp_ns: int, tick_ns: int = 0) -> None:
        """A command was computed at ``tick_ns`` from the state ``stamp_ns``."""
        self._inputs.append((stamp_ns, tick_ns))
        self._pair()

    def _pair(self) -> None:
        commands, inputs = self._commands, self._inputs
        while commands and inputs:
            arrived, (stamp_ns, tick_ns) = commands[0], inputs[0]
            if self._wall_stamps and arrived < tick_ns:
                commands.popleft()
                self.unmatched += 1
                continue
            if self._wall_stamps and len(inputs) > 1 and arrived >= inputs[1][1]:
                inputs.popleft()
                self.unmatched += 1
                continue
            commands.popleft()
            inputs.popleft()
            sent = self._published.get(stamp_ns)
            if sent is None:
                self.unmatched += 1
                continue
            self.latencies_s.append((arrived - sent) / NS_PER_S)
            if self._wall_stamps:
                self.state_age_s.append((tick_ns - sent) / NS_PER_S)
                self.tick_to_command_s.append((arrived - tick_ns) / NS_PER_S)


@dataclass(frozen=True)
class JointCommand:
    """A command in the robot's actuator order: targets, rad; optional per-command gains."""

    targets: np.ndarray
    kp: np.ndarray | None = None
    kd: np.ndarray | None = None


class RobotDriver:
    """Steps a ``SimRobot`` and publishes what its driver would; see the module docstring.

    Args:
        robot: the simulated robot.
        injector: the robot-side faults.
        rates: sensor publication rates.
        publish: called as ``publish(kind, payload, stamp_ns)`` with kind ``joint_states``
            or ``imu`` (payload: a ``SensorMessage``) or ``ground_truth`` (payload: the
            robot's ``ground_truth()`` dict).
        stamp_clock: the header stamps' clock, ns: sim time (``None``; lockstep) or the
            wall clock (real time). A frozen-sensor fault repeats an old stamp.
    """

    def __init__(
        self,
        robot: SimRobot,
        injector: FaultInjector,
        rates: SensorRates,
        publish: Callable[[str, object, int], None],
        stamp_clock: Callable[[], int] | None = None,
    ):
        self.robot = robot
        self.injector = injector
        self.publish = publish
        self.stamp_clock = stamp_clock or (lambda: self.time_ns)
        self.step_ns = round(robot.physics_dt * NS_PER_S)
        self.every = rates.steps(robot.physics_dt)
        self.steps = 0
        self.t0_ns: int | None = None
        self.t0_stamp_ns: int | None = None
        self.counts: collections.Counter[str] = collections.Counter()
        self.commands_received = 0
        self.commands_refused = 0
        self.pushes = 0
        self._pending: collections.deque[tuple[int, JointCommand]] = collections.deque()

    @property
    def time_ns(self) -> int:
        """Sim time, ns."""
        return self.steps * self.step_ns

    def fault_time(self) -> float:
        """Seconds since the first command (negative infinity before it)."""
        if self.t0_ns is None:
            return -np.inf
        return (self.time_ns - self.t0_ns) / NS_PER_S

    def command(self, command: JointCommand) -> None:
        """A joint command arrives now; it is applied when due (``command_delay`` faults)."""
        if self.t0_ns is None:
            self.t0_ns, self.t0_stamp_ns = self.time_ns, self.stamp_clock()
        self.commands_received += 1
        delay_ns = round(self.injector.command_delay(self.fault_time()) * NS_PER_S)
        self._pending.append((self.time_ns + delay_ns, command))
        self._apply_due()

    def _apply_due(self) -> None:
        while self._pending and self._pending[0][0] <= self.time_ns:
            _, command = self._pending.popleft()
            try:
                self.robot.command(command.targets, command.kp, command.kd)
            except ValueError:
                self.commands_refused += 1  # a driver refuses it; the previous one stays

    def step(self, n: int = 1) -> None:
        """``n`` physics steps, publishing what is due after each."""
        for _ in range(n):
            self._apply_due()
            for push in self.injector.due_pushes(self.fault_time()):
                self._push(push)
            self.robot.step()
            self.steps += 1
            self._publish_due()

    def _push(self, fault) -> None:
        if fault.velocity is not None:
            self.robot.push(fault.velocity)
        else:
            self.robot.apply_force(fault.force, fault.duration, body=fault.body)
        self.pushes += 1

    def _publish_due(self) -> None:
        stamp_ns = self.stamp_clock()
        if self.steps % self.every["joint_states"] == 0:
            self._sensor(self._joint_message(stamp_ns))
        if self.robot.has_imu and self.steps % self.every["imu"] == 0:
            self._sensor(self._imu_message(stamp_ns))
        if self.steps % self.every["ground_truth"] == 0:
            self.publish("ground_truth", self.robot.ground_truth(), stamp_ns)
            self._count("ground_truth")

    def _sensor(self, message: SensorMessage) -> None:
        out = self.injector.sensor(message, self.fault_time())
        if out is not None:
            self.publish(out.topic, out, out.stamp_ns)
            self._count(out.topic)

    def _count(self, topic: str) -> None:
        if self.t0_ns is not None:
            self.counts[topic] += 1

    def _joint_message(self, stamp_ns: int) -> SensorMessage:
        sample = self.robot.joint_sample()
        fields = {
            "position": sample.position,
            "velocity": sample.velocity,
            "effort": sample.effort,
        }
        return SensorMessage("joint_states", stamp_ns, fields, self.robot.joint_names)

    def _imu_message(self, stamp_ns: int) -> SensorMessage:
        sample = self.robot.imu_sample()
        fields = {
            "orientation": sample.quat,
            "angular_velocity": sample.ang_vel,
            "linear_acceleration": sample.lin_acc,
        }
        return SensorMessage("imu", stamp_ns, fields)
