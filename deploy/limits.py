"""The robot's limits and gains in policy joint order: what the safety filters enforce.

``RobotLimits`` is built from plain arrays so that any source can produce one: the MJCF
asset (``RobotLimits.from_robot_model``, DESIGN contract 1) in tests and tools, the policy
contract (``RobotLimits.from_contract``, DESIGN contract 4) on the robot.

Joint velocity limits come from the asset too: MJCF has no joint velocity limit, so each
asset states them as ``<custom><numeric name="velocity_limits">`` (``RobotModel``), and
export copies them into the contract's ``velocity_limits``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from sim2real.deploy.contract_check import ContractMismatch

if TYPE_CHECKING:  # only their attributes are read: the robot side needs no MuJoCo
    from sim2real.export.contract import PolicyContract
    from sim2real.sim.robot import RobotModel


@dataclass(frozen=True)
class RobotLimits:
    """Limits and PD gains of the policy's joints, in policy order; arrays are read-only.

    Attributes:
        joint_names: the J joints, in policy order.
        position_limits: (J, 2) lower and upper position limits, rad.
        velocity_limits: (J,) maximum |joint velocity|, rad/s.
        effort_limits: (J,) maximum |torque| of each actuator, N·m.
        kp: (J,) proportional gains of the PD loop, N·m/rad.
        kd: (J,) derivative gains of the PD loop, N·m·s/rad.
        default_joint_pos: (J,) the default pose, rad.
        control_period: seconds between two policy ticks.
    """

    joint_names: tuple[str, ...]
    position_limits: np.ndarray
    velocity_limits: np.ndarray
    effort_limits: np.ndarray
    kp: np.ndarray
    kd: np.ndarray
    default_joint_pos: np.ndarray
    control_period: float

    def __post_init__(self):
        names = tuple(self.joint_names)
        num = len(names)
        if num == 0 or len(set(names)) != num:
            raise ValueError(f"joint_names must be unique and non-empty, got {names}")
        object.__setattr__(self, "joint_names", names)
        for field, shape in (
            ("position_limits", (num, 2)),
            ("velocity_limits", (num,)),
            ("effort_limits", (num,)),
            ("kp", (num,)),
            ("kd", (num,)),
            ("default_joint_pos", (num,)),
        ):
            value = np.array(getattr(self, field), dtype=np.float64)
            if value.shape != shape:
                raise ValueError(f"{field} has shape {value.shape}, expected {shape}")
            if not np.all(np.isfinite(value)):
                raise ValueError(f"{field} is not finite: {value}")
            value.flags.writeable = False
            object.__setattr__(self, field, value)
        lower, upper = self.position_limits.T
        self._require(lower < upper, "position_limits", "lower < upper")
        self._require(self.velocity_limits > 0, "velocity_limits", "> 0")
        self._require(self.effort_limits > 0, "effort_limits", "> 0")
        self._require(self.kp > 0, "kp", "> 0")
        self._require(self.kd >= 0, "kd", ">= 0")
        if not (np.isfinite(self.control_period) and self.control_period > 0):
            raise ValueError(f"control_period must be > 0 s, got {self.control_period}")
        object.__setattr__(self, "control_period", float(self.control_period))

    def _require(self, ok: np.ndarray, field: str, rule: str) -> None:
        """Raise naming the joints of ``field`` that break ``rule``."""
        if not np.all(ok):
            bad = [self.joint_names[j] for j in np.flatnonzero(~ok)]
            raise ValueError(f"{field} must be {rule}; not so for {bad}")

    @property
    def num_joints(self) -> int:
        """J, the number of joints."""
        return len(self.joint_names)

    @property
    def lower(self) -> np.ndarray:
        """(J,) lower position limits, rad."""
        return self.position_limits[:, 0]

    @property
    def upper(self) -> np.ndarray:
        """(J,) upper position limits, rad."""
        return self.position_limits[:, 1]

    @classmethod
    def from_robot_model(
        cls,
        model: RobotModel,
        control_period: float,
        velocity_limits: ArrayLike | None = None,
    ) -> RobotLimits:
        """Read the limits of an asset's robot model.

        Args:
            model: the robot, read from its MJCF file (``RobotModel.from_mujoco``).
            control_period: seconds between two policy ticks (the task's ``decimation``
                physics steps; not a property of the robot).
            velocity_limits: (J,) rad/s in the model's actuator (= policy) order, or one
                value for every joint, instead of the asset's; ``None``: the asset's
                (``model.velocity_limits``).
        """
        if velocity_limits is None:
            velocity_limits = model.velocity_limits
        return cls(
            joint_names=model.joint_names,
            position_limits=model.joint_limits,
            velocity_limits=np.broadcast_to(velocity_limits, (model.num_joints,)),
            effort_limits=model.effort_limits,
            kp=model.kp,
            kd=model.kd,
            default_joint_pos=model.default_joint_pos,
            control_period=control_period,
        )

    @classmethod
    def from_contract(cls, contract: PolicyContract) -> RobotLimits:
        """The limits an exported policy states (``sim2real.export``'s policy contract).

        Raises:
            ContractMismatch: the contract states no ``velocity_limits`` (a file exported
                before the field existed): export it again.
        """
        if contract.velocity_limits is None:
            raise ContractMismatch(
                "velocity_limits",
                "the policy file states no joint velocity limits (exported before the field "
                "existed); the safety filters need them: export the policy again",
            )
        return cls(
            joint_names=tuple(contract.joint_names),
            position_limits=contract.joint_pos_limits,
            velocity_limits=contract.velocity_limits,
            effort_limits=contract.effort_limits,
            kp=contract.kp,
            kd=contract.kd,
            default_joint_pos=contract.default_joint_pos,
            control_period=contract.control_period_s,
        )
