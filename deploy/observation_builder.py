"""The policy observation on the robot, computed by the training code's own terms.

DESIGN contract 3: ``ObservationBuilder`` fills a robot-state mapping (the vocabulary of
``sim2real.sim.observations``) from a ``RobotState`` and calls the task's own ``ObsTerm``
functions through the same ``ObservationGroup`` the simulator uses, so the robot computes
what training saw. Before that, it checks the task's terms against the contract's
observation layout term by term (name, size, scale, clip) and refuses a mismatch with a
``ContractMismatch`` naming the field (``observation_terms[2].scale``).

What fills each entry of the robot state (batch of one, policy joint order):

=====================  ==============================================================
``joint_pos``/``_vel``  the ``JointState``, matched by name (``to_policy_order``)
``default_joint_pos``   the contract's
``last_action``         the raw action the policy output last (``record_action``); zero
                        at the start of an episode, as the simulator's reset leaves it
``previous_action``     the one before it
``imu_quat``            the IMU orientation (w, x, y, z), normalized
``imu_ang_vel``         the IMU angular velocity
``command``             go2 tasks: (vx, vy, yaw rate) from ``set_command``
``target_pos``          reach tasks: the target (x, y, z) from ``set_command``
``ee_pos``              reach tasks: forward kinematics of the joint positions
=====================  ==============================================================

A term that reads anything else (a privileged simulator quantity such as
``base_lin_vel``) is refused at construction.

**End-effector position**: MuJoCo's ``mj_kinematics`` on the robot's own MJCF asset (the
packaged file the policy was trained with, DESIGN contract 1), not Pinocchio. It is the
code that computed the simulator's ``ee_pos`` sensor, so the deploy value is the training
value bit for bit (Pinocchio agrees to ~1e-15, tests/test_assets.py); it needs only an
``MjData``, no simulation (no dynamics, no contacts, no stepping), costs ~2 µs for the
Panda, and MuJoCo is already imported by the task definitions the terms come from. The
site ``ee_site`` is read in the asset's world frame, which is the base frame of the
fixed-base robots (their root body sits at the origin; checked).

**Commands** are clipped into the task's training ranges (go2: ``command_ranges``; reach:
``target_box``): the policy never saw anything outside them. Before any command, go2
stands still (zero velocity) and a reach task holds the end effector where the default
pose puts it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import mujoco
import numpy as np
from numpy.typing import ArrayLike

from sim2real.deploy.contract_check import ContractMismatch
from sim2real.deploy.robot_state import Fault, RobotState, to_policy_order
from sim2real.export.contract import ObservationTerm, PolicyContract
from sim2real.sim.assets import asset_path
from sim2real.sim.observations import ObservationGroup, ObsTerm
from sim2real.sim.robot import RobotModel
from sim2real.sim.tasks import task_class
from sim2real.sim.tasks.arm_reach import ReachTask
from sim2real.sim.tasks.base import Task
from sim2real.sim.tasks.go2_flat import Go2Flat

#: The end-effector site of the reach robots' assets.
EE_SITE = "ee_site"
#: Robot-state entries read from the IMU.
IMU_KEYS = ("imu_quat", "imu_ang_vel")


@dataclass(frozen=True)
class CommandSpec:
    """A task's command: which robot-state entry it fills and its training range.

    Attributes:
        key: the robot-state entry (``command`` or ``target_pos``).
        labels: one name per value, with its unit (for messages).
        low: (C,) the smallest value training drew.
        high: (C,) the largest.
        standing_speed: go2: a planar command (vx, vy) whose norm is below this, m/s,
            was zeroed in training ("stand still"), and is zeroed here too; 0: none.
    """

    key: str
    labels: tuple[str, ...]
    low: np.ndarray
    high: np.ndarray
    standing_speed: float = 0.0

    @property
    def size(self) -> int:
        """C, the number of values."""
        return len(self.labels)


def command_spec(task: type[Task]) -> CommandSpec | None:
    """The command of a registered task, or None for a task without one."""
    if issubclass(task, Go2Flat):
        labels, ranges = ("vx m/s", "vy m/s", "yaw_rate rad/s"), task.command_ranges
        low, high = np.array(ranges, dtype=np.float64).T
        return CommandSpec("command", labels, low, high, task.standing_speed)
    if issubclass(task, ReachTask):
        labels, box = ("x m", "y m", "z m"), task.target_box
        return CommandSpec("target_pos", labels, *np.array(box, dtype=np.float64).T)
    return None


class EndEffector:
    """Forward kinematics of the asset's ``ee_site`` with MuJoCo (see the module docstring).

    Args:
        robot: the asset name (the contract's ``robot``).
        joint_names: the policy's joints, in policy order; they must be the asset's
            actuated joints in actuator order.
    """

    def __init__(self, robot: str, joint_names: Sequence[str]):
        self.model = mujoco.MjModel.from_xml_path(str(asset_path(robot)))
        self.data = mujoco.MjData(self.model)
        asset = RobotModel.from_mujoco(self.model)
        if list(asset.joint_names) != list(joint_names):
            raise ContractMismatch(
                "joint_names",
                f"the {robot!r} asset's joints are {list(asset.joint_names)}, the policy's "
                f"{list(joint_names)}: a policy of another version of the robot",
            )
        root = self.model.body(1)
        if np.any(root.pos != 0) or np.any(root.quat != (1, 0, 0, 0)):
            raise ValueError(f"{robot!r}: the root body is not at the origin: no base frame")
        self.qpos_adr = asset.qpos_adr
        self.site = self.model.site(EE_SITE).id

    def __call__(self, joint_pos: np.ndarray) -> np.ndarray:
        """(3,) position of the site for joint positions (J,) in policy order."""
        self.data.qpos[self.qpos_adr] = joint_pos
        mujoco.mj_kinematics(self.model, self.data)
        return self.data.site_xpos[self.site]


class ObservationBuilder:
    """One policy observation per tick from a ``RobotState``, the command and the last action.

    Args:
        contract: the policy's contract: task, joints (policy order), default pose and
            observation layout.

    Raises:
        ContractMismatch: the task's observation terms disagree with the contract's
            (field ``observation_group`` or ``observation_terms[i].name|size|scale|clip``),
            or a term reads what no robot measures.

    Attributes:
        joint_names: the policy's joints, policy order.
        command: the task's ``CommandSpec``, or None.
        needs_imu: whether a term reads the IMU.
        end_effector: the ``EndEffector`` kinematics, if a term reads ``ee_pos``.
    """

    def __init__(self, contract: PolicyContract):
        self.joint_names = tuple(contract.joint_names)
        task = task_class(contract.task)
        group = contract.observation_group
        if group not in task.observations:
            raise ContractMismatch(
                "observation_group",
                f"task {contract.task!r} has no observation group {group!r} "
                f"(it has {sorted(task.observations)})",
            )
        terms = tuple(task.observations[group])
        self.command = command_spec(task)
        num = len(self.joint_names)
        zeros = np.zeros((1, num))
        self.state: dict[str, np.ndarray] = {
            "joint_pos": np.array([contract.default_joint_pos], dtype=np.float64),
            "joint_vel": zeros.copy(),
            "default_joint_pos": np.array(contract.default_joint_pos, dtype=np.float64),
            "last_action": zeros.copy(),
            "previous_action": zeros.copy(),
            "imu_quat": np.array([[1.0, 0.0, 0.0, 0.0]]),
            "imu_ang_vel": np.zeros((1, 3)),
            "ee_pos": np.zeros((1, 3)),
        }
        if self.command is not None:
            self.state[self.command.key] = np.zeros((1, self.command.size))
        read = _check_terms(terms, contract.observation_terms, self.state)
        self.needs_imu = any(key in read for key in IMU_KEYS)
        self.end_effector = None
        if "ee_pos" in read:
            self.end_effector = EndEffector(contract.robot, self.joint_names)
            self.state["ee_pos"][0] = self.end_effector(self.state["joint_pos"][0])
        self._needs_command = self.command is not None and self.command.key in read
        self.group = ObservationGroup(terms)
        if self.command is not None:
            self.set_command(self._default_command())
        self.clipped_commands = 0

    @property
    def size(self) -> int:
        """D, the observation's width."""
        return sum(self.group.sizes(self.state).values())

    def set_command(self, values: ArrayLike) -> np.ndarray:
        """Set the task command; returns it as used, as training drew its commands.

        Clipped into the training range; go2: a planar speed under the task's
        ``standing_speed`` becomes zero (the yaw rate stays), as in training.

        Raises:
            ValueError: the task takes no command, or ``values`` is not C finite numbers.
        """
        spec = self.command
        if spec is None:
            raise ValueError("this policy's task takes no command")
        try:
            values = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise ValueError(f"command is not numeric: {error}") from None
        if values.shape != (spec.size,):
            raise ValueError(f"command must be {spec.size} values {spec.labels}, got {values}")
        if not np.isfinite(values).all():
            raise ValueError(f"command is not finite: {values}")
        clipped = np.minimum(np.maximum(values, spec.low), spec.high)
        if (clipped != values).any():
            self.clipped_commands += 1
        if np.hypot(clipped[0], clipped[1]) < spec.standing_speed:
            clipped[:2] = 0.0
        self.state[spec.key][0] = clipped
        return clipped

    @property
    def current_command(self) -> np.ndarray | None:
        """(C,) the command in use, or None for a task without one."""
        return None if self.command is None else self.state[self.command.key][0].copy()

    def start_episode(self) -> None:
        """A new episode: no previous action (the simulator's reset leaves zeros)."""
        self.state["last_action"][:] = 0.0
        self.state["previous_action"][:] = 0.0

    def record_action(self, action: np.ndarray) -> None:
        """The raw action (J,) the policy just output: ``last_action`` of the next step."""
        self.state["previous_action"][0] = self.state["last_action"][0]
        self.state["last_action"][0] = action

    def observe(self, robot_state: RobotState) -> np.ndarray:
        """The observation (D,) float32 for this robot state.

        Raises:
            Fault: a policy joint is missing from the joint state (named), or the IMU
                reading the terms need is missing or malformed.
        """
        state = self.state
        q, qd = to_policy_order(robot_state.joints, self.joint_names)
        state["joint_pos"][0] = q
        state["joint_vel"][0] = qd
        if self.needs_imu:
            imu = robot_state.imu
            if imu is None:
                raise Fault("no IMU reading")
            quat = np.asarray(imu.quat, dtype=np.float64)
            state["imu_quat"][0] = quat / np.sqrt(quat @ quat)
            state["imu_ang_vel"][0] = imu.ang_vel
        if self.end_effector is not None:
            state["ee_pos"][0] = self.end_effector(q)
        return self.group(state)[0]

    def _default_command(self) -> np.ndarray:
        """Go2: stand still; reach: the end effector where the default pose puts it."""
        if self.command.key == "target_pos" and self.end_effector is not None:
            return self.end_effector(self.state["default_joint_pos"]).copy()
        return np.zeros(self.command.size)


class _ReadRecorder(dict):
    """A robot-state mapping that notes which entries the terms read."""

    def __init__(self, data: Mapping[str, np.ndarray]):
        super().__init__(data)
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> np.ndarray:
        self.read.add(key)
        return super().__getitem__(key)


def _check_terms(
    terms: Sequence[ObsTerm], layout: Sequence[ObservationTerm], state: dict[str, np.ndarray]
) -> set[str]:
    """Compare the task's terms with the contract's layout; return the entries they read."""
    names = [t.name for t in terms]
    if len(terms) != len(layout):
        raise ContractMismatch(
            "observation_terms",
            f"the policy observes {len(layout)} terms {[t.name for t in layout]}, the task's "
            f"code computes {len(terms)}: {names}",
        )
    recorder = _ReadRecorder(state)
    for i, (term, expected) in enumerate(zip(terms, layout, strict=True)):
        field = f"observation_terms[{i}]"
        if term.name != expected.name:
            raise ContractMismatch(
                f"{field}.name", f"the policy has {expected.name!r} here, the task {names}"
            )
        try:
            size = term.func(recorder).shape[1]
        except KeyError as missing:
            raise ContractMismatch(
                f"{field}.name",
                f"term {term.name!r} reads {missing}, which the deploy runtime does not "
                "measure (a privileged simulator quantity?)",
            ) from None
        _require_equal(field, "size", size, expected.size)
        scale = np.broadcast_to(np.asarray(term.scale, dtype=np.float64), (size,))
        wanted = np.broadcast_to(np.asarray(expected.scale, dtype=np.float64), (size,))
        _require_equal(field, "scale", scale.tolist(), wanted.tolist())
        _require_equal(field, "clip", float(term.clip), float(expected.clip))
    return recorder.read


def _require_equal(field: str, key: str, actual, expected) -> None:
    if actual != expected:
        raise ContractMismatch(
            f"{field}.{key}",
            f"the policy was trained with {key} {expected}, the task's term now has {actual}: "
            "export the policy again, or deploy it with the sim2real it was trained with",
        )
