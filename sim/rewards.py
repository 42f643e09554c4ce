"""Reward and termination kernels, named for what they compute (Isaac Lab style).

Each kernel maps the robot state of ``sim2real.sim.observations`` (plus the task's
extra entries named in each docstring) to (N,) values; tasks weight them in their
term lists. Squared errors end in ``_l2``, Gaussian-shaped tracking in ``_exp``.
"""

from __future__ import annotations

import numpy as np

from sim2real.sim.observations import RobotState, projected_gravity


def track_lin_vel_xy_exp(state: RobotState, sigma: float = 0.25) -> np.ndarray:
    """exp(-|v_cmd,xy - v_xy|² / sigma), base frame; sigma in (m/s)²."""
    error = np.sum(np.square(state["command"][:, :2] - state["base_lin_vel"][:, :2]), axis=1)
    return np.exp(-error / sigma)


def track_ang_vel_z_exp(state: RobotState, sigma: float = 0.25) -> np.ndarray:
    """exp(-(ω_cmd,z - ω_z)² / sigma); sigma in (rad/s)²."""
    error = np.square(state["command"][:, 2] - state["imu_ang_vel"][:, 2])
    return np.exp(-error / sigma)


def lin_vel_z_l2(state: RobotState) -> np.ndarray:
    """Vertical base velocity squared, (m/s)²."""
    return np.square(state["base_lin_vel"][:, 2])


def ang_vel_xy_l2(state: RobotState) -> np.ndarray:
    """Roll and pitch rates squared, (rad/s)²."""
    return np.sum(np.square(state["imu_ang_vel"][:, :2]), axis=1)


def flat_orientation_l2(state: RobotState) -> np.ndarray:
    """Horizontal components of the projected gravity squared: 0 when level."""
    return np.sum(np.square(projected_gravity(state)[:, :2]), axis=1)


def joint_torques_l2(state: RobotState) -> np.ndarray:
    """Sum of squared joint torques (``joint_torque``, N·m)."""
    return np.sum(np.square(state["joint_torque"]), axis=1)


def joint_acc_l2(state: RobotState) -> np.ndarray:
    """Sum of squared joint accelerations (``joint_acc``, rad/s²)."""
    return np.sum(np.square(state["joint_acc"]), axis=1)


def joint_vel_l2(state: RobotState) -> np.ndarray:
    """Sum of squared joint velocities, (rad/s)²."""
    return np.sum(np.square(state["joint_vel"]), axis=1)


def action_rate_l2(state: RobotState) -> np.ndarray:
    """Sum of squared changes from ``previous_action`` to ``last_action``."""
    return np.sum(np.square(state["last_action"] - state["previous_action"]), axis=1)


def joint_pos_limits(state: RobotState) -> np.ndarray:
    """How far joints are outside their soft limits (``soft_joint_limits`` (J, 2)), rad."""
    q, limits = state["joint_pos"], state["soft_joint_limits"]
    below = np.clip(limits[:, 0] - q, 0.0, None)
    above = np.clip(q - limits[:, 1], 0.0, None)
    return np.sum(below + above, axis=1)


def feet_air_time(state: RobotState, threshold: float = 0.5) -> np.ndarray:
    """Reward steps longer than ``threshold`` s, paid at touchdown, while commanded to move.

    Reads ``feet_air_time_at_touchdown`` (N, F) s: each foot's swing time on the step
    it lands, else 0.
    """
    landed = state["feet_air_time_at_touchdown"]
    reward = np.sum((landed - threshold) * (landed > 0.0), axis=1)
    moving = np.linalg.norm(state["command"][:, :2], axis=1) > 0.1
    return reward * moving


def undesired_contacts(state: RobotState, threshold: float = 1.0) -> np.ndarray:
    """Number of bodies in ``undesired_contact_forces`` (N, B) pushed harder than threshold N."""
    return np.sum(state["undesired_contact_forces"] > threshold, axis=1).astype(np.float64)


def ee_distance(state: RobotState) -> np.ndarray:
    """Distance from the end effector to the target, m."""
    return np.linalg.norm(state["target_pos"] - state["ee_pos"], axis=1)


def ee_reach_exp(state: RobotState, sigma: float = 0.05) -> np.ndarray:
    """exp(-d² / sigma²) of the end-effector distance d; sigma in m."""
    return np.exp(-np.square(ee_distance(state) / sigma))


def base_contact(state: RobotState, threshold: float = 1.0) -> np.ndarray:
    """Termination: the trunk touches the ground (``base_contact_force`` (N,) N)."""
    return state["base_contact_force"] > threshold


def bad_orientation(state: RobotState, max_tilt: float = 1.2) -> np.ndarray:
    """Termination: the base is tilted more than ``max_tilt`` rad from upright."""
    return projected_gravity(state)[:, 2] > -np.cos(max_tilt)
