"""``point-reach``: move a point mass to a random target in the plane.

The smallest task of the project, for fast tests of training, distributed training and
the end-to-end pipeline: PPO solves it in seconds on a couple of CPU cores. Robot
``point`` (``sim/assets/point.xml``): a 1 kg ball on x and y slide joints, PD targets in
m. One target per episode, drawn uniformly in x ∈ [-0.4, 0.4] m, y ∈ [-0.4, 0.4] m at
the ball's height z = 0, so the z entry of ``ee_to_target`` is always 0.

Observations, rewards and the reset are arm-reach's (``ReachTask``): policy = critic =
joint_pos_rel (2) + joint_vel (2) + ee_to_target (3) + last_action (2) = 9 values;
2 actions; no terminations, episodes of 2 s at 50 Hz (100 steps).
"""

from __future__ import annotations

from sim2real.sim.tasks.arm_reach import ReachTask


class PointReach(ReachTask):
    """Reach a random target in the plane with a point mass on an XY stage."""

    name = "point-reach"
    robot = "point"
    decimation = 2  # 0.01 s physics steps: 50 Hz control
    episode_length_s = 2.0
    action_scale = 0.5  # m: the PD target is home + 0.5 m * action
    max_action_delay = 1  # room for the action_delay randomization term (0..20 ms)

    target_box = ((-0.4, 0.4), (-0.4, 0.4), (0.0, 0.0))  # x, y, z bounds, m
    reset_joint_noise = 0.2  # m
