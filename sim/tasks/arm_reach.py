"""``arm-reach``: move the arm's end effector to a random target in its workspace.

One target per episode, drawn uniformly in a box in front of the arm (in the base
frame): x ∈ [0.3, 0.6] m, y ∈ [-0.3, 0.3] m, z ∈ [0.2, 0.6] m.

``ReachTask`` holds what every reach task shares (observations, rewards, the reset and
the robot state); ``point-reach`` (``sim2real.sim.tasks.point_reach``) is the other one.
"""

from __future__ import annotations

import mujoco
import numpy as np

from sim2real.sim import observations as obs
from sim2real.sim import rewards as rew
from sim2real.sim.backends.base import SimBackend
from sim2real.sim.observations import ObsTerm
from sim2real.sim.robot import RobotModel
from sim2real.sim.tasks.base import RewardTerm, Task

POLICY_OBS = (
    ObsTerm("joint_pos_rel", obs.joint_pos_rel),
    ObsTerm("joint_vel", obs.joint_vel, scale=0.1),
    ObsTerm("ee_to_target", obs.ee_to_target, scale=2.0),
    ObsTerm("last_action", obs.last_action),
)


class ReachTask(Task):
    """Bring the robot's ``ee_site`` (sensor ``ee_pos``) to one random target per episode.

    The robot's asset must have a framepos sensor ``ee_pos``. Subclasses set the robot
    and timing, and:

    Attributes:
        target_box: ((x_low, x_high), (y_low, y_high), (z_low, z_high)), m, base frame:
            targets are drawn uniformly inside.
        reset_joint_noise: half-width of the uniform offset added to each joint of the
            home pose at reset (rad for a hinge, m for a slide joint).
    """

    target_box: tuple[tuple[float, float], ...]
    reset_joint_noise: float
    # the end-effector sensor must describe the state after the step, not before
    forward_stage = int(mujoco.mjtStage.mjSTAGE_POS)

    observations = {"policy": POLICY_OBS, "critic": POLICY_OBS}
    rewards = (
        RewardTerm("ee_distance", rew.ee_distance, -2.0),
        RewardTerm("ee_reach_exp", rew.ee_reach_exp, 1.0, {"sigma": 0.05}),
        RewardTerm("action_rate_l2", rew.action_rate_l2, -0.01),
        RewardTerm("joint_vel_l2", rew.joint_vel_l2, -0.001),
    )
    terminations = ()

    def bind(self, backend: SimBackend, robot: RobotModel, dt: float) -> None:
        """Allocate targets; look up the end-effector sensor."""
        self.backend, self.robot_model = backend, robot
        self.target = np.zeros((backend.num_envs, 3))
        adr = backend.model.sensor_adr[backend.model.sensor("ee_pos").id]
        self.ee_slice = slice(int(adr), int(adr) + 3)

    def reset(self, env_ids: np.ndarray, rng: np.random.Generator) -> None:
        """Joints near the home pose, a new target."""
        joints = self.robot_model.qpos_adr
        noise = self.reset_joint_noise
        self.backend.qpos[env_ids[:, None], joints] += rng.uniform(
            -noise, noise, (len(env_ids), len(joints))
        )
        low, high = np.array(self.target_box).T
        self.target[env_ids] = rng.uniform(low, high, (len(env_ids), 3))

    def robot_state(self) -> dict[str, np.ndarray]:
        """Joint state, end-effector position (base frame) and target."""
        b, robot = self.backend, self.robot_model
        return {
            "joint_pos": b.qpos[:, robot.qpos_adr],
            "joint_vel": b.qvel[:, robot.dof_adr],
            "default_joint_pos": robot.default_joint_pos,
            "ee_pos": b.sensordata[:, self.ee_slice],
            "target_pos": self.target,
        }


class ArmReach(ReachTask):
    """Reach a random target with the Panda-class arm's end-effector site."""

    name = "arm-reach"
    robot = "panda"
    decimation = 4
    episode_length_s = 4.0
    action_scale = 0.5
    max_action_delay = 1  # room for the action_delay randomization term (0..20 ms)

    target_box = ((0.3, 0.6), (-0.3, 0.3), (0.2, 0.6))  # x, y, z bounds, m
    reset_joint_noise = 0.2  # rad
