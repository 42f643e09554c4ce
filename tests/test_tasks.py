"""Every registered task against the VecEnv contract; determinism; bad input."""

import numpy as np
import pytest

from sim2real.sim.tasks import TASKS, make_env

N = 16


def random_actions(rng, env, scale=1.0):
    return rng.uniform(-scale, scale, (env.num_envs, env.num_actions)).astype(np.float32)


@pytest.fixture(scope="module", params=sorted(TASKS))
def env(request):
    return make_env(request.param, N, seed=0, nthread=2)


def test_reset_and_step_shapes(env):
    obs = env.reset(seed=1)
    assert set(obs) == {"policy", "critic"}
    for group, size in env.obs_sizes.items():
        assert obs[group].shape == (N, size) and obs[group].dtype == np.float32
    result = env.step(random_actions(np.random.default_rng(0), env))
    assert result.rewards.shape == (N,) and result.rewards.dtype == np.float32
    assert result.terminated.shape == (N,) and result.terminated.dtype == bool
    assert result.time_outs.shape == (N,) and result.time_outs.dtype == bool
    for group, size in env.obs_sizes.items():
        assert result.obs[group].shape == (N, size)


def test_no_nan_under_random_actions(env):
    env.reset(seed=2)
    rng = np.random.default_rng(2)
    for _ in range(100):
        result = env.step(random_actions(rng, env, scale=3.0))
        for o in result.obs.values():
            assert np.isfinite(o).all()
        assert np.isfinite(result.rewards).all()


@pytest.mark.parametrize("task", sorted(TASKS))
def test_time_out_truncates_and_resets(task):
    # randomization off: its pushes may topple a robot that stands still, and this test
    # needs every env to reach its time limit
    env = make_env(task, N, seed=0, nthread=2, randomization="off")
    env.reset(seed=3)
    zeros = np.zeros((N, env.num_actions), dtype=np.float32)
    for _ in range(env.max_episode_length - 1):
        result = env.step(zeros)
    survivors = ~result.terminated
    result = env.step(zeros)
    # every env that did not fall ends by its time limit on this very step
    ended = result.time_outs | result.terminated
    assert ended.all()
    assert not (result.time_outs & result.terminated).any()
    episode = result.infos["episode"]
    assert len(episode["length"]) == N
    assert set(episode) >= {"return", "length", *(t.name for t in env.task.rewards)}
    assert (env.episode_length == 0).all()
    assert "final_obs" in result.infos
    assert survivors.any()


@pytest.mark.parametrize("task", sorted(TASKS))
def test_same_seed_bit_identical_at_any_thread_count(task):
    runs = []
    for nthread in (1, 2):
        env = make_env(task, N, seed=7, nthread=nthread)
        rng = np.random.default_rng(7)
        obs, rewards, dones = [], [], []
        for _ in range(60):
            result = env.step(random_actions(rng, env, scale=3.0))
            obs.append(result.obs["critic"])
            rewards.append(result.rewards)
            dones.append(result.terminated | result.time_outs)
        runs.append((np.array(obs), np.array(rewards), np.array(dones)))
    for a, b in zip(*runs, strict=True):
        np.testing.assert_array_equal(a, b)


def test_different_seeds_differ():
    a = make_env("go2-flat", 4, seed=0, nthread=1).reset()["critic"]
    b = make_env("go2-flat", 4, seed=1, nthread=1).reset()["critic"]
    assert not np.array_equal(a, b)


def test_unknown_task_is_named():
    with pytest.raises(ValueError, match="unknown task 'go3-flat'.*go2-flat"):
        make_env("go3-flat", 1)


@pytest.mark.parametrize(
    ("actions", "error", "match"),
    [
        (np.zeros((N, 3), np.float32), ValueError, r"shape \(16, 12\)"),
        (np.zeros((N, 12), np.int64), TypeError, "floating point, got dtype int64"),
        (np.full((N, 12), np.nan, np.float32), ValueError, "NaN or Inf .*env 0"),
        ([[0.0] * 12] * N, TypeError, "numpy array"),
    ],
)
def test_bad_actions_are_named(actions, error, match):
    env = make_env("go2-flat", N, nthread=1)
    with pytest.raises(error, match=match):
        env.step(actions)


def test_unstable_env_is_reset_alone_and_counted(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MuJoCo logs warnings to MUJOCO_LOG.TXT in the cwd
    env = make_env("go2-flat", 4, seed=0, nthread=2)
    reference = make_env("go2-flat", 4, seed=0, nthread=2)
    zeros = np.zeros((4, 12), np.float32)
    env.backend.qvel[1, 6] = 1e12  # blow up env 1
    result = env.step(zeros)
    expected = reference.step(zeros)
    assert result.infos["instabilities"] == 1
    assert result.terminated[1] and not result.terminated[[0, 2, 3]].any()
    for group in result.obs:
        assert np.isfinite(result.obs[group]).all()
        assert np.isfinite(result.infos["final_obs"][group]).all()
        np.testing.assert_array_equal(result.obs[group][[0, 2, 3]], expected.obs[group][[0, 2, 3]])
    assert result.rewards[1] == 0.0
    assert np.isfinite(env.backend.qpos).all()
    assert env.step(zeros).infos["instabilities"] == 0


def test_last_action_observation_is_the_action_just_applied():
    """What the robot's next observation reports is the command it was just sent."""
    env = make_env("arm-reach", 2, seed=0, nthread=1, randomization="off")
    action_rate = env._episode_sums["action_rate_l2"]
    penalties = []
    for value in (0.1, 0.2, 0.2):
        before = action_rate.copy()
        result = env.step(np.full((2, 7), value, np.float32))
        np.testing.assert_allclose(result.obs["policy"][:, -7:], value, rtol=1e-6)
        penalties.append(action_rate - before)
    per_step = -0.01 * 7 * 0.1**2 * env.step_dt  # weight × Σ (Δa)² × dt for Δa = 0.1
    np.testing.assert_allclose(penalties, [[per_step] * 2, [per_step] * 2, [0.0] * 2], atol=1e-12)
