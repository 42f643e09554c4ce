"""What the rest of the stack needs to know about a robot, read from its MJCF model.

DESIGN contract 1: joint names, limits, velocity and effort limits, default pose and PD
gains come from the one MJCF file (see ``sim2real.sim.assets`` for the conventions), never
from a second hand-written copy.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

HOME_KEYFRAME = "home"
#: The MJCF ``<custom><numeric>`` holding the joint velocity limits (MJCF has no such field).
VELOCITY_LIMITS = "velocity_limits"


@dataclass(frozen=True)
class RobotModel:
    """Facts of one robot, in actuator (= policy) order. Arrays are (J,) unless noted.

    Attributes:
        name: the MJCF model name.
        joint_names: actuated joints, in actuator order.
        qpos_adr: index of each joint in ``qpos``.
        dof_adr: index of each joint in ``qvel``.
        joint_limits: (J, 2) lower and upper position limits, rad.
        velocity_limits: maximum |joint velocity|, rad/s (m/s for a slide joint), from the
            ``<custom><numeric name="velocity_limits">`` in actuator order.
        effort_limits: maximum |torque| of each actuator, N·m.
        default_joint_pos: targets at action 0 (the ``home`` keyframe's ctrl), rad.
        kp: proportional gains, N·m/rad.
        kd: derivative gains, N·m·s/rad.
        home_key: id of the ``home`` keyframe.
        floating_base: whether the first joint is a free joint.
        timestep: physics step, s.
    """

    name: str
    joint_names: tuple[str, ...]
    qpos_adr: np.ndarray
    dof_adr: np.ndarray
    joint_limits: np.ndarray
    velocity_limits: np.ndarray
    effort_limits: np.ndarray
    default_joint_pos: np.ndarray
    kp: np.ndarray
    kd: np.ndarray
    home_key: int
    floating_base: bool
    timestep: float

    @property
    def num_joints(self) -> int:
        """Number of actuated joints J."""
        return len(self.joint_names)

    @classmethod
    def from_mujoco(cls, model: mujoco.MjModel) -> RobotModel:
        """Read the facts from a compiled model that follows the asset conventions."""
        if model.nu == 0:
            raise ValueError(f"model {_name(model)!r} has no actuators")
        joint_ids = []
        for a in range(model.nu):
            if model.actuator_trntype[a] != mujoco.mjtTrn.mjTRN_JOINT:
                raise ValueError(f"actuator {a} of {_name(model)!r} does not drive a joint")
            if model.actuator_biastype[a] != mujoco.mjtBias.mjBIAS_AFFINE:
                raise ValueError(
                    f"actuator {model.actuator(a).name!r} is not a position (PD) actuator"
                )
            joint_ids.append(int(model.actuator_trnid[a, 0]))
        joint_ids = np.asarray(joint_ids)
        try:
            home = model.key(HOME_KEYFRAME).id
        except KeyError:
            raise ValueError(
                f"model {_name(model)!r} has no keyframe named {HOME_KEYFRAME!r}"
            ) from None
        return cls(
            name=_name(model),
            joint_names=tuple(model.joint(j).name for j in joint_ids),
            qpos_adr=model.jnt_qposadr[joint_ids].copy(),
            dof_adr=model.jnt_dofadr[joint_ids].copy(),
            joint_limits=model.jnt_range[joint_ids].copy(),
            velocity_limits=_velocity_limits(model),
            effort_limits=model.actuator_forcerange[:, 1].copy(),
            default_joint_pos=model.key_ctrl[home].copy(),
            kp=model.actuator_gainprm[:, 0].copy(),
            kd=-model.actuator_biasprm[:, 2].copy(),
            home_key=home,
            floating_base=bool(model.njnt and model.jnt_type[0] == mujoco.mjtJoint.mjJNT_FREE),
            timestep=float(model.opt.timestep),
        )


def _velocity_limits(model: mujoco.MjModel) -> np.ndarray:
    """The ``velocity_limits`` custom numeric: one positive finite value per actuator."""
    try:
        values = model.numeric(VELOCITY_LIMITS).data.copy()
    except KeyError:
        raise ValueError(
            f"model {_name(model)!r} has no joint velocity limits: add "
            f'<custom><numeric name="{VELOCITY_LIMITS}" data="..."/></custom> with one value '
            f"per actuator, in actuator order (rad/s, m/s for a slide joint)"
        ) from None
    if values.shape != (model.nu,):
        raise ValueError(
            f"model {_name(model)!r}: custom numeric {VELOCITY_LIMITS!r} has {values.size} "
            f"values, expected one per actuator ({model.nu})"
        )
    if not np.all(np.isfinite(values) & (values > 0)):
        raise ValueError(
            f"model {_name(model)!r}: custom numeric {VELOCITY_LIMITS!r} must be finite and "
            f"> 0, got {values}"
        )
    return values


def _name(model: mujoco.MjModel) -> str:
    """The ``<mujoco model="...">`` name: the first entry of the names buffer."""
    return bytes(model.names[: model.names.index(b"\0")]).decode() or "<unnamed>"
