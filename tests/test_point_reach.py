"""point-reach: the tiny task that fast training tests rely on is solvable, and not trivially."""

import numpy as np
import pytest

from sim2real.sim import rewards as rew
from sim2real.sim.tasks import make_env

N = 32


def distance(env) -> np.ndarray:
    """(N,) m from each env's ball to its target, from the task's true state."""
    return rew.ee_distance(env.task.robot_state())


def oracle(env) -> np.ndarray:
    """The action whose PD target is the target itself: its xy offset from home / scale."""
    offset = env.task.target[:, :2] - env.robot.default_joint_pos
    return (offset / env.task.action_scale).astype(np.float32)


def test_sizes_and_timing():
    env = make_env("point-reach", N, seed=0, nthread=1)
    assert env.robot.joint_names == ("x", "y")
    assert env.num_actions == 2
    # joint_pos_rel 2 + joint_vel 2 + ee_to_target 3 + last_action 2
    assert env.obs_sizes == {"policy": 9, "critic": 9}
    assert env.step_dt == pytest.approx(0.02)
    assert env.max_episode_length == 100
    assert env.task.terminations == ()
    # targets lie in the plane of the ball, inside the joint limits
    assert np.all(np.abs(env.task.target[:, :2]) <= 0.4)
    np.testing.assert_array_equal(env.task.target[:, 2], 0.0)
    np.testing.assert_allclose(env.reset()["critic"][:, 6], 0.0, atol=1e-12)  # ee_to_target z


@pytest.mark.parametrize("randomization", [None, "off"])
def test_oracle_reaches_the_target_within_a_second(randomization):
    env = make_env("point-reach", N, seed=1, nthread=1, randomization=randomization)
    env.reset(seed=1)
    start = distance(env)
    assert start.mean() > 0.15
    returns = np.zeros(N)
    for _ in range(50):  # 1 s
        returns += env.step(oracle(env)).rewards
    assert distance(env).max() < 0.02
    # and it is worth it: most of the reach bonus, little distance penalty
    assert returns.mean() > 0.5


def test_random_actions_do_not_reach():
    env = make_env("point-reach", N, seed=2, nthread=1)
    rng = np.random.default_rng(2)
    distances = []
    for _ in range(99):  # one episode, no reset in between
        env.step(rng.uniform(-1, 1, (N, 2)).astype(np.float32))
        distances.append(distance(env))
    distances = np.array(distances[50:])
    assert distances.mean() > 0.2
    assert (distances < 0.02).mean() < 0.05


def test_randomization_on_by_default_and_off_on_request():
    on = make_env("point-reach", N, seed=3, nthread=1)
    assert on.randomization.task == "point-reach"
    assert set(on.randomization.terms) == {
        "link_mass",
        "joint_damping",
        "kp_scale",
        "kd_scale",
        "action_delay",
        "observation_noise",
    }
    assert len(np.unique(on.actuators.kp[:, 0])) == N  # every env its own draw
    ball = on.model.body("point").id
    assert len(np.unique(on.backend.model_field("body_mass")[:, ball])) == N
    result = on.step(np.zeros((N, 2), np.float32))
    assert not np.array_equal(result.obs["policy"], result.obs["critic"])  # sensor noise

    off = make_env("point-reach", N, seed=3, nthread=1, randomization="off")
    assert off.randomization is None and off.randomizer is None
    np.testing.assert_array_equal(off.actuators.kp, np.tile(off.robot.kp, (N, 1)))
    result = off.step(np.zeros((N, 2), np.float32))
    np.testing.assert_array_equal(result.obs["policy"], result.obs["critic"])
