"""``go2-flat``: track a commanded base velocity (vx, vy, yaw rate) on flat ground.

Commands are drawn per env at reset and every ``resample_s``: vx ∈ [-1, 1] m/s,
vy ∈ [-0.5, 0.5] m/s, yaw rate ∈ [-1, 1] rad/s; a planar command under 0.2 m/s
becomes "stand still". Weights follow the public legged_gym/Isaac Lab Go2 recipes.
"""

from __future__ import annotations

import numpy as np

from sim2real.sim import observations as obs
from sim2real.sim import rewards as rew
from sim2real.sim.backends.base import SimBackend
from sim2real.sim.observations import ObsTerm, RobotState, quat_rotate_inverse
from sim2real.sim.robot import RobotModel
from sim2real.sim.tasks.base import RewardTerm, Task, TerminationTerm

FEET = ("FL", "FR", "RL", "RR")

POLICY_OBS = (
    ObsTerm("base_ang_vel", obs.base_ang_vel, scale=0.25),
    ObsTerm("projected_gravity", obs.projected_gravity),
    ObsTerm("velocity_command", obs.velocity_command, scale=(2.0, 2.0, 0.25)),
    ObsTerm("joint_pos_rel", obs.joint_pos_rel),
    ObsTerm("joint_vel", obs.joint_vel, scale=0.05),
    ObsTerm("last_action", obs.last_action),
)

CRITIC_OBS = (
    *POLICY_OBS,
    ObsTerm("base_lin_vel", obs.base_lin_vel, scale=2.0),
    ObsTerm("foot_forces", obs.foot_forces, scale=0.01),
    ObsTerm("foot_friction", obs.foot_friction),
    ObsTerm("base_mass", obs.base_mass, scale=0.1),
)


class Go2Flat(Task):
    """Velocity tracking for the Go2-class quadruped on flat ground."""

    name = "go2-flat"
    robot = "go2"
    decimation = 4
    episode_length_s = 20.0
    action_scale = 0.25
    max_action_delay = 2
    feet = tuple(f"{f}_foot" for f in FEET)  # foot geoms (friction, restitution terms)

    command_ranges = ((-1.0, 1.0), (-0.5, 0.5), (-1.0, 1.0))  # vx m/s, vy m/s, yaw rad/s
    standing_speed = 0.2  # m/s: a planar command slower than this is zeroed (stand still)
    resample_s = 10.0
    soft_limit_factor = 0.9  # soft joint limits: this fraction of the range, centred

    observations = {"policy": POLICY_OBS, "critic": CRITIC_OBS}
    rewards = (
        RewardTerm("track_lin_vel_xy_exp", rew.track_lin_vel_xy_exp, 1.0),
        RewardTerm("track_ang_vel_z_exp", rew.track_ang_vel_z_exp, 0.5),
        RewardTerm("lin_vel_z_l2", rew.lin_vel_z_l2, -2.0),
        RewardTerm("ang_vel_xy_l2", rew.ang_vel_xy_l2, -0.05),
        RewardTerm("flat_orientation_l2", rew.flat_orientation_l2, -1.0),
        RewardTerm("joint_torques_l2", rew.joint_torques_l2, -2e-4),
        RewardTerm("joint_acc_l2", rew.joint_acc_l2, -2.5e-7),
        RewardTerm("action_rate_l2", rew.action_rate_l2, -0.01),
        RewardTerm("feet_air_time", rew.feet_air_time, 1.0, {"threshold": 0.3}),
        RewardTerm("undesired_contacts", rew.undesired_contacts, -1.0),
        RewardTerm("joint_pos_limits", rew.joint_pos_limits, -10.0),
    )
    terminations = (
        TerminationTerm("base_contact", rew.base_contact),
        TerminationTerm("bad_orientation", rew.bad_orientation),
    )

    def bind(self, backend: SimBackend, robot: RobotModel, dt: float) -> None:
        """Allocate commands and foot trackers; look up sensors and feet."""
        model, n = backend.model, backend.num_envs
        self.backend, self.robot_model, self.dt = backend, robot, dt
        self.command = np.zeros((n, 3))
        self.resample_steps = round(self.resample_s / dt)
        self.steps_since_resample = np.zeros(n, dtype=np.int64)
        self.feet_air_time = np.zeros((n, len(FEET)))
        self.last_joint_vel = np.zeros((n, robot.num_joints))

        def sensor(name: str) -> int:
            return int(model.sensor_adr[model.sensor(name).id])

        self.foot_touch = np.array([sensor(f"{f}_foot_touch") for f in FEET])
        self.thigh_touch = np.array([sensor(f"{f}_thigh_touch") for f in FEET])
        self.base_touch = sensor("base_touch")
        self.foot_geoms = np.array([model.geom(f).id for f in self.feet])
        self.base_body = model.body("base").id
        mid = robot.joint_limits.mean(axis=1)
        half = 0.5 * (robot.joint_limits[:, 1] - robot.joint_limits[:, 0]) * self.soft_limit_factor
        self.soft_joint_limits = np.stack([mid - half, mid + half], axis=1)

    def reset(self, env_ids: np.ndarray, rng: np.random.Generator) -> None:
        """Random yaw, joints near the default pose, small base velocity; new commands."""
        n = len(env_ids)
        qpos, qvel = self.backend.qpos, self.backend.qvel
        yaw = rng.uniform(-np.pi, np.pi, n)
        qpos[env_ids, 3] = np.cos(yaw / 2)
        qpos[env_ids, 4:6] = 0.0
        qpos[env_ids, 6] = np.sin(yaw / 2)
        joints = self.robot_model.qpos_adr
        qpos[env_ids[:, None], joints] += rng.uniform(-0.1, 0.1, (n, len(joints)))
        qvel[env_ids, :6] = rng.uniform(-0.3, 0.3, (n, 6))
        self._resample_commands(env_ids, rng)
        self.feet_air_time[env_ids] = 0.0
        self.last_joint_vel[env_ids] = qvel[env_ids[:, None], self.robot_model.dof_adr]

    def robot_state(self) -> dict[str, np.ndarray]:
        """Robot state from the backend (pure: no task state changes)."""
        b, robot = self.backend, self.robot_model
        quat = b.qpos[:, 3:7]
        joint_vel = b.qvel[:, robot.dof_adr]
        sensors = b.sensordata
        return {
            "joint_pos": b.qpos[:, robot.qpos_adr],
            "joint_vel": joint_vel,
            "default_joint_pos": robot.default_joint_pos,
            # free-joint angular velocity is in the base frame, as the IMU measures it
            "imu_ang_vel": b.qvel[:, 3:6],
            "imu_quat": quat,
            "command": self.command,
            "base_lin_vel": quat_rotate_inverse(quat, b.qvel[:, 0:3]),
            "base_height": b.qpos[:, 2],
            "foot_forces": sensors[:, self.foot_touch],
            "foot_friction": b.model_field("geom_friction")[:, self.foot_geoms, 0],
            "base_mass": b.model_field("body_mass")[:, self.base_body, None],
            "joint_torque": b.actuator_force,
            "joint_acc": (joint_vel - self.last_joint_vel) / self.dt,
            "soft_joint_limits": self.soft_joint_limits,
            "undesired_contact_forces": sensors[:, self.thigh_touch],
            "base_contact_force": sensors[:, self.base_touch],
        }

    def after_physics(self, state: dict[str, np.ndarray]) -> None:
        """Track each foot's swing time; add ``feet_air_time_at_touchdown``."""
        contact = state["foot_forces"] > 1.0
        self.feet_air_time += self.dt
        touchdown = contact & (self.feet_air_time > self.dt)
        state["feet_air_time_at_touchdown"] = self.feet_air_time * touchdown
        self.feet_air_time[contact] = 0.0
        self.last_joint_vel = state["joint_vel"]

    def after_step(self, state: RobotState, rng: np.random.Generator) -> None:
        """Resample the commands of envs whose command period is over."""
        self.steps_since_resample += 1
        due = np.flatnonzero(self.steps_since_resample >= self.resample_steps)
        if len(due):
            self._resample_commands(due, rng)

    def _resample_commands(self, env_ids: np.ndarray, rng: np.random.Generator) -> None:
        low, high = np.array(self.command_ranges).T
        command = rng.uniform(low, high, (len(env_ids), 3))
        command[np.linalg.norm(command[:, :2], axis=1) < self.standing_speed, :2] = 0.0
        self.command[env_ids] = command
        self.steps_since_resample[env_ids] = 0
