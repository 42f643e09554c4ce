"""Observation terms, written once for the simulator and the robot (DESIGN contract 3).

Each term is a numpy function of a *robot state*: a mapping from the names below to
arrays with a leading batch dimension N. The sim task fills the mapping from MuJoCo,
the deploy runtime from ROS messages; both call the same terms, so the policy sees on
the robot what it saw in training.

Robot-state vocabulary (units SI, frames as stated):

=====================  ========  ===============================================
name                   shape     meaning
=====================  ========  ===============================================
``joint_pos``          (N, J)    joint positions, rad, policy joint order
``joint_vel``          (N, J)    joint velocities, rad/s
``default_joint_pos``  (J,)      the contract's default joint positions, rad
``last_action``        (N, J)    the policy's most recent raw action (being applied)
``imu_ang_vel``        (N, 3)    IMU angular velocity in the IMU (base) frame, rad/s
``imu_quat``           (N, 4)    IMU orientation, base→world, (w, x, y, z)
``command``            (N, C)    the task command (go2: vx, vy m/s, yaw rate rad/s)
``ee_pos``             (N, 3)    end-effector position in the arm's base frame, m
``target_pos``         (N, 3)    reach target in the arm's base frame, m
=====================  ========  ===============================================

The simulator also provides ``previous_action`` (N, J), the action before
``last_action`` (for action-rate rewards).

Privileged, simulator-only names (critic observations): ``base_lin_vel`` (N, 3) m/s in
the base frame, ``foot_forces`` (N, F) N, ``foot_friction`` (N, F), ``base_mass`` (N, 1) kg.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

RobotState = Mapping[str, np.ndarray]


def quat_rotate_inverse(quat: np.ndarray, vec: np.ndarray) -> np.ndarray:
    """Rotate world vectors into the body frame: R(quat)ᵀ vec; quat (N, 4) wxyz, vec (N, 3)."""
    w, xyz = quat[:, :1], quat[:, 1:]
    t = 2.0 * np.cross(xyz, vec)
    return vec - w * t + np.cross(xyz, t)


def base_ang_vel(state: RobotState) -> np.ndarray:
    """IMU angular velocity, (N, 3) rad/s."""
    return state["imu_ang_vel"]


def projected_gravity(state: RobotState) -> np.ndarray:
    """Unit gravity direction in the base frame from the IMU orientation, (N, 3)."""
    quat = state["imu_quat"]
    down = np.broadcast_to(np.array([0.0, 0.0, -1.0]), (quat.shape[0], 3))
    return quat_rotate_inverse(quat, down)


def joint_pos_rel(state: RobotState) -> np.ndarray:
    """Joint positions relative to the default pose, (N, J) rad."""
    return state["joint_pos"] - state["default_joint_pos"]


def joint_vel(state: RobotState) -> np.ndarray:
    """Joint velocities, (N, J) rad/s."""
    return state["joint_vel"]


def last_action(state: RobotState) -> np.ndarray:
    """The policy's previous action, (N, J)."""
    return state["last_action"]


def velocity_command(state: RobotState) -> np.ndarray:
    """Commanded base velocity (vx, vy, yaw rate), (N, 3)."""
    return state["command"]


def ee_to_target(state: RobotState) -> np.ndarray:
    """Vector from the end effector to the reach target, (N, 3) m."""
    return state["target_pos"] - state["ee_pos"]


def base_lin_vel(state: RobotState) -> np.ndarray:
    """Privileged: base linear velocity in the base frame, (N, 3) m/s."""
    return state["base_lin_vel"]


def foot_forces(state: RobotState) -> np.ndarray:
    """Privileged: normal contact force on each foot, (N, F) N."""
    return state["foot_forces"]


def foot_friction(state: RobotState) -> np.ndarray:
    """Privileged: sliding friction coefficient of each foot's contacts, (N, F)."""
    return state["foot_friction"]


def base_mass(state: RobotState) -> np.ndarray:
    """Privileged: base mass, (N, 1) kg."""
    return state["base_mass"]


@dataclass(frozen=True)
class ObsTerm:
    """One observation term: ``clip(func(state) * scale, -clip, clip)``.

    Attributes:
        name: the term's name in the policy contract.
        func: the kernel, a function of the robot state returning (N, size).
        scale: multiplies the raw value (a float or a (size,) array).
        clip: symmetric bound applied after scaling.
    """

    name: str
    func: Callable[[RobotState], np.ndarray]
    scale: float | tuple[float, ...] = 1.0
    clip: float = 100.0


class ObservationGroup:
    """An ordered list of terms concatenated into one (N, D) float32 array."""

    def __init__(self, terms: Sequence[ObsTerm]):
        names = [t.name for t in terms]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate observation term names: {names}")
        self.terms = tuple(terms)
        self._scales = [np.asarray(t.scale, dtype=np.float64) for t in self.terms]

    def sizes(self, state: RobotState) -> dict[str, int]:
        """Size of each term for this state's shapes."""
        return {t.name: t.func(state).shape[1] for t in self.terms}

    def __call__(self, state: RobotState) -> np.ndarray:
        """Compute the group: (N, D) float32."""
        parts = [
            np.clip(t.func(state) * s, -t.clip, t.clip)
            for t, s in zip(self.terms, self._scales, strict=True)
        ]
        return np.concatenate(parts, axis=1).astype(np.float32)
