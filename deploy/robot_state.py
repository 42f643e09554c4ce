"""The per-tick input of the deploy runtime, as the robot's drivers deliver it.

Joint states arrive by name, in whatever order the driver publishes them (as in
``sensor_msgs/JointState``); ``to_policy_order`` maps them to the policy's joint order
and names every missing joint. A ``Measurement`` is a robot state that the safety chain
has validated: arrays in policy order, finite and physically plausible.

Units: rad, rad/s, m/s², s. The IMU quaternion is base→world, (w, x, y, z), as in
``sim2real.sim.observations``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike


class Fault(Exception):  # noqa: N818 (a fault of the robot or its inputs, not a bug)
    """An input or situation the controller cannot act on safely.

    The controller answers it with DAMPING; the message is the logged reason.
    """


@dataclass(frozen=True)
class JointState:
    """Joint readings by name, with the time they were taken.

    Attributes:
        names: joint names, in the driver's order; joints the policy does not use are
            allowed and ignored.
        position: positions, rad, one per name.
        velocity: velocities, rad/s, one per name.
        stamp: measurement time, s, on the controller's clock.
        effort: measured efforts, N·m, one per name; ``None`` (or empty): not measured.
            Not used by the policy, but a non-finite effort means a broken driver: fault.
    """

    names: Sequence[str]
    position: ArrayLike
    velocity: ArrayLike
    stamp: float
    effort: ArrayLike | None = None


@dataclass(frozen=True)
class ImuReading:
    """One IMU sample.

    Attributes:
        quat: (4,) orientation base→world, (w, x, y, z).
        ang_vel: (3,) angular velocity in the IMU (base) frame, rad/s.
        stamp: measurement time, s, on the controller's clock.
        lin_acc: (3,) linear acceleration in the IMU frame, m/s², if the IMU gives one.
    """

    quat: ArrayLike
    ang_vel: ArrayLike
    stamp: float
    lin_acc: ArrayLike | None = None


@dataclass(frozen=True)
class RobotState:
    """Everything the controller reads in one tick.

    Attributes:
        joints: the latest joint state.
        imu: the latest IMU sample; ``None`` for a robot without one (a fixed-base arm).
        command: the task command (go2: vx, vy m/s, yaw rate rad/s), if the task has one.
    """

    joints: JointState
    imu: ImuReading | None = None
    command: ArrayLike | None = None


@dataclass(frozen=True)
class Measurement:
    """A validated robot state: arrays in policy order, finite, in physical range.

    Attributes:
        joint_pos: (J,) rad.
        joint_vel: (J,) rad/s.
        joint_stamp: s.
        imu_quat: (4,) unit quaternion (w, x, y, z), or ``None`` where no IMU is used.
        imu_ang_vel: (3,) rad/s, or ``None``.
        imu_lin_acc: (3,) m/s², or ``None``.
        imu_stamp: s, or ``None``.
        command: (C,) the task command, or ``None``.
    """

    joint_pos: np.ndarray
    joint_vel: np.ndarray
    joint_stamp: float
    imu_quat: np.ndarray | None = None
    imu_ang_vel: np.ndarray | None = None
    imu_lin_acc: np.ndarray | None = None
    imu_stamp: float | None = None
    command: np.ndarray | None = None


def as_vector(value: ArrayLike, size: int | None, what: str) -> np.ndarray:
    """``value`` as a 1-D float array of ``size`` entries (any size if ``None``), or a Fault."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise Fault(f"{what} is not numeric: {error}") from None
    if array.ndim != 1 or (size is not None and array.shape[0] != size):
        expected = "a vector" if size is None else f"({size},)"
        raise Fault(f"{what} has shape {array.shape}, expected {expected}")
    return array


def to_policy_order(
    joints: JointState, joint_names: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Positions and velocities of ``joint_names``, in that order, from a named joint state.

    Raises:
        Fault: the name list has duplicates, its arrays another length, or a policy joint
            is missing (the message names the missing joints and the names present that
            the policy does not know, which is what a renamed joint looks like).
    """
    names = tuple(joints.names)
    position = as_vector(joints.position, len(names), "joint positions")
    velocity = as_vector(joints.velocity, len(names), "joint velocities")
    order = _policy_order(names, tuple(joint_names))
    return position[order], velocity[order]


@functools.lru_cache(maxsize=32)
def _policy_order(names: tuple[str, ...], joint_names: tuple[str, ...]) -> np.ndarray:
    """Indices of ``joint_names`` in ``names``; cached: a driver sends the same names each tick.

    Raises:
        Fault: as ``to_policy_order`` (an exception is not cached: checked again each time).
    """
    index = {name: i for i, name in enumerate(names)}
    if len(index) != len(names):
        duplicates = sorted({name for name in names if names.count(name) > 1})
        raise Fault(f"duplicate joint names in the joint state: {duplicates}")
    missing = [name for name in joint_names if name not in index]
    if missing:
        unknown = sorted(set(names) - set(joint_names))
        raise Fault(f"missing joints {missing} (names present the policy does not use: {unknown})")
    order = np.array([index[name] for name in joint_names], dtype=np.intp)
    order.flags.writeable = False
    return order
