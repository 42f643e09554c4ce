"""The simulated sensor model: what the policy's sensors get wrong, per env.

The task's robot state is the truth. Before the actor's ``"policy"`` observation group
is computed, the env passes a *copy* of it through :meth:`SensorModel.corrupt`; the
critic and the rewards keep the true state. Deploy never applies any of this: the real
sensors bring their own errors.

Per env (drawn by the ``imu_gyro_bias``, ``imu_tilt`` and ``encoder_offset`` terms, fixed
for an episode by default):

- IMU misalignment ``tilt`` (a unit quaternion, IMU frame in the base frame): the IMU
  reports ``imu_quat ⊗ tilt`` and measures angular velocity in its own frame,
  ``R(tilt)ᵀ ω`` — a mounting error of the IMU board, seen in ``projected_gravity``.
- Gyro bias ``b`` (rad/s, IMU frame): ``imu_ang_vel = R(tilt)ᵀ ω + b``.
- Joint encoder offset ``δ`` (rad): ``joint_pos = q + δ`` (a calibration error of the
  encoder zero; see ``joint_offset`` in ``sim2real.randomization.terms`` for the
  actuator side of calibration).

Per-step observation noise is added to each policy term's raw value (before the term's
scale and clip) by the randomizer, see ``Randomizer.wrap_policy_terms``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from sim2real.sim.observations import quat_rotate_inverse


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product ``a ⊗ b`` of (N, 4) wxyz quaternions (b rotates first)."""
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        axis=-1,
    )


def tilt_quat(angles: np.ndarray) -> np.ndarray:
    """Quaternion of a small tilt: rotation by ``angles[:, 0]`` about x, then ``[:, 1]`` about y.

    Args:
        angles: (N, 2) rad.

    Returns:
        (N, 4) wxyz, ``q_y ⊗ q_x``.
    """
    half = 0.5 * np.asarray(angles, dtype=np.float64)
    zeros = np.zeros(len(half))
    qx = np.stack([np.cos(half[:, 0]), np.sin(half[:, 0]), zeros, zeros], axis=1)
    qy = np.stack([np.cos(half[:, 1]), zeros, np.sin(half[:, 1]), zeros], axis=1)
    return quat_mul(qy, qx)


class SensorModel:
    """Per-env sensor errors for N envs and J joints; all zero (ideal) until drawn.

    Attributes:
        gyro_bias: (N, 3) rad/s, in the IMU frame.
        tilt: (N, 4) wxyz, the IMU frame's rotation in the base frame.
        encoder_offset: (N, J) rad.
    """

    def __init__(self, num_envs: int, num_joints: int):
        self.gyro_bias = np.zeros((num_envs, 3))
        self.tilt = np.tile([1.0, 0.0, 0.0, 0.0], (num_envs, 1))
        self.encoder_offset = np.zeros((num_envs, num_joints))

    def corrupt(self, state: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """What the sensors report for ``state`` (the true robot state, left unchanged).

        Entries the robot lacks (an arm has no IMU) are left out of the model.
        """
        out = dict(state)
        if "imu_quat" in state:
            out["imu_quat"] = quat_mul(state["imu_quat"], self.tilt)
        if "imu_ang_vel" in state:
            out["imu_ang_vel"] = quat_rotate_inverse(self.tilt, state["imu_ang_vel"])
            out["imu_ang_vel"] += self.gyro_bias
        if "joint_pos" in state:
            out["joint_pos"] = state["joint_pos"] + self.encoder_offset
        return out
