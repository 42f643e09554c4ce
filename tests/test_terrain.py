"""Heightfield terrain (patch shapes, layout, MuJoCo heights), its curriculum, and go2-rough."""

import mujoco
import numpy as np
import pytest

from sim2real.randomization.curriculum import Curriculum
from sim2real.randomization.terrain import (
    Terrain,
    TerrainConfig,
    TerrainCurriculum,
    border_distance,
    patch_heights,
)
from sim2real.sim.tasks import make_env
from sim2real.sim.tasks.go2_rough import Go2Rough

CONFIG = TerrainConfig()
N_PATCH = CONFIG.patch_samples  # 80 intervals of 0.1 m
RAY = np.arange(N_PATCH // 2 + 1)  # sample indices from the border to the centre, on a midline
LEVELS = range(CONFIG.num_levels)


def midline(heights):
    """Heights from the patch border (index 0) to its centre along the middle row."""
    return heights[N_PATCH // 2, RAY]


@pytest.fixture(scope="module")
def terrain():
    return Terrain(CONFIG, seed=0)


@pytest.fixture(scope="module")
def rough_env():
    return make_env("go2-rough", 10, seed=0, nthread=1, randomization="off")


def test_default_size_is_moderate(terrain):
    assert terrain.heights.shape == (5 * 80 + 1, 10 * 80 + 1)
    assert terrain.heights.size < 330_000
    assert terrain.size == (80.0, 40.0)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("kind", ["slope_up", "slope_down"])
def test_slopes_are_monotone_pyramids_of_the_level_slope(kind, level):
    heights = patch_heights(CONFIG, kind, level, np.random.default_rng(0))
    sign = 1.0 if kind == "slope_up" else -1.0
    profile = sign * midline(heights)
    assert np.all(np.diff(profile) >= 0.0)  # rising (sinking) towards the centre
    rise = np.tan(level / 9 * 0.4) * CONFIG.resolution
    face = np.diff(profile)[:30]  # 3 m of face from the border to the 2 m platform
    np.testing.assert_allclose(face, rise, atol=1e-12)
    assert profile[0] == 0.0
    platform = border_distance(N_PATCH) >= 30
    assert np.ptp(heights[platform]) == 0.0 and platform.sum() == 21 * 21


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("kind", ["stairs_up", "stairs_down"])
def test_stairs_have_steps_of_the_level_height_and_width(kind, level):
    heights = patch_heights(CONFIG, kind, level, np.random.default_rng(0))
    step = 0.02 + level / 9 * 0.13
    sign = 1.0 if kind == "stairs_up" else -1.0
    profile = sign * midline(heights)
    jumps = np.flatnonzero(np.diff(profile))
    np.testing.assert_allclose(np.diff(profile)[jumps], step, rtol=1e-12)
    assert np.all(np.diff(jumps) == 3)  # 0.3 m treads
    assert len(jumps) == 10  # 3 m to the platform: ten steps up (down) to it
    np.testing.assert_allclose(profile[-1], 10 * step)
    assert level < 9 or np.isclose(step, 0.15)


@pytest.mark.parametrize("level", LEVELS)
def test_rough_noise_stays_within_the_level_amplitude(level):
    heights = patch_heights(CONFIG, "rough", level, np.random.default_rng(level))
    amplitude = 0.01 + level / 9 * 0.05
    outside = border_distance(N_PATCH) < 30
    assert np.abs(heights).max() <= amplitude
    assert np.abs(heights[outside]).max() > 0.95 * amplitude  # the range is used
    assert np.abs(heights[outside].mean()) < 0.05 * amplitude
    assert np.all(heights[~outside] == 0.0)  # the flat spawn platform


def test_same_seed_same_terrain_other_seed_other_rough(terrain):
    np.testing.assert_array_equal(Terrain(CONFIG, seed=0).heights, terrain.heights)
    other = Terrain(CONFIG, seed=1).heights
    rough = np.s_[: N_PATCH + 1, :]  # the rough row of patches
    assert not np.array_equal(other[rough], terrain.heights[rough])
    np.testing.assert_array_equal(other[N_PATCH + 1 :], terrain.heights[N_PATCH + 1 :])


def test_patches_sit_at_their_level_and_type(terrain):
    n = N_PATCH
    for t, kind in enumerate(CONFIG.types):
        for level in (0, 4, 9):
            patch = terrain.heights[t * n : (t + 1) * n + 1, level * n : (level + 1) * n + 1]
            if kind != "rough":
                np.testing.assert_array_equal(
                    patch, patch_heights(CONFIG, kind, level, np.random.default_rng(0))
                )
            spawn = terrain.spawn(level, t)
            np.testing.assert_allclose(spawn[:2], [(level + 0.5) * 8.0, (t + 0.5) * 8.0])
            assert spawn[2] == patch[n // 2, n // 2]
    top_of_stairs = terrain.spawn(9, CONFIG.types.index("stairs_up"))
    np.testing.assert_allclose(top_of_stairs[2], 1.5)
    assert terrain.spawn(np.array([1, 2]), np.array([3, 4])).shape == (2, 3)


def test_bad_configs_are_named():
    with pytest.raises(ValueError, match="unknown terrain types"):
        TerrainConfig(types=("lava",))
    with pytest.raises(ValueError, match="step_width 0.25 m"):
        TerrainConfig(step_width=0.25)


def test_mujoco_heightfield_matches_the_heights_at_random_samples(terrain):
    model = Go2Rough().build_model()
    floor = model.geom("floor")
    assert floor.type[0] == mujoco.mjtGeom.mjGEOM_HFIELD
    assert (floor.contype[0], floor.conaffinity[0]) == (1, 0)
    data = mujoco.MjData(model)
    data.qpos[:2] = -10.0  # the robot off the terrain, out of the rays' way
    mujoco.mj_forward(model, data)
    rng = np.random.default_rng(0)
    rows = rng.integers(0, terrain.heights.shape[0], 300)
    cols = rng.integers(0, terrain.heights.shape[1], 300)
    rows[:5], cols[:5] = np.argmax(terrain.heights) // 801, np.argmax(terrain.heights) % 801
    rows[5:10], cols[5:10] = np.argmin(terrain.heights) // 801, np.argmin(terrain.heights) % 801
    geom = np.array([-1], dtype=np.int32)
    for i, j in zip(rows, cols, strict=True):
        start = np.array([j * 0.1, i * 0.1, 5.0])
        dist = mujoco.mj_ray(model, data, start, np.array([0.0, 0.0, -1.0]), None, 1, -1, geom)
        assert geom[0] == floor.id
        assert abs(5.0 - dist - terrain.heights[i, j]) < 1e-5


def test_robots_spawn_on_their_patch_and_stand_at_the_ground_height(rough_env):
    env, task = rough_env, rough_env.task
    env.reset(seed=0)
    levels, types = task.curriculum.levels, task.curriculum.types
    assert levels.min() >= 0 and levels.max() <= task.max_init_level
    assert "curriculum/terrain_level_stairs_up" in task.curriculum.metrics()
    origin = task.terrain.spawn(levels, types)
    base = env.backend.qpos[:, :3]
    assert np.abs(base[:, :2] - origin[:, :2]).max() <= task.spawn_jitter
    np.testing.assert_allclose(base[:, 2], origin[:, 2] + 0.34)
    np.testing.assert_allclose(task.terrain.sample_height(base[:, 0], base[:, 1]), origin[:, 2])
    zeros = np.zeros((env.num_envs, 12), np.float32)
    for _ in range(50):
        result = env.step(zeros)
    assert not (result.terminated | result.time_outs).any()
    # dropped from 1 cm, every robot stands with its four feet on its patch's ground
    assert (env.backend.sensordata[:, task.foot_touch] > 1.0).all()
    data = mujoco.MjData(env.model)
    for i in range(env.num_envs):
        data.qpos[:] = env.backend.qpos[i]
        mujoco.mj_kinematics(env.model, data)
        soles = data.geom_xpos[task.foot_geoms, 2] - env.model.geom_size[task.foot_geoms, 0]
        # soft contacts let a standing Go2 sink 2-4 mm, as on the flat floor
        np.testing.assert_allclose(soles, origin[i, 2] - 0.0025, atol=0.0025)


def test_after_step_records_the_base_and_the_commanded_distance(rough_env):
    env, task = rough_env, rough_env.task
    env.reset(seed=1)
    zeros = np.zeros((env.num_envs, 12), np.float32)
    env.step(zeros)
    np.testing.assert_array_equal(task.last_base_xy, env.backend.qpos[:, :2])
    speed = np.linalg.norm(task.command[:, :2], axis=1)
    np.testing.assert_allclose(task.commanded_distance, speed * env.step_dt)


def test_reset_moves_levels_by_the_distance_walked(rough_env):
    env, task = rough_env, rough_env.task
    env.reset(seed=2)
    cur = task.curriculum
    cur.levels[:] = 3
    walked = np.zeros(env.num_envs)
    walked[:3] = 4.5  # past the patch's edge: promoted
    walked[3:6] = 1.0  # under half the commanded 4 m: demoted
    walked[6:] = 3.0  # in between: stays
    task.last_base_xy[:] = task.spawn_xy + walked[:, None] * np.array([0.6, 0.8])
    task.commanded_distance[:] = 4.0
    env.reset()
    np.testing.assert_array_equal(cur.levels, [4, 4, 4, 2, 2, 2, 3, 3, 3, 3])
    # and each env now stands on its new patch
    origin = task.terrain.spawn(cur.levels, cur.types)
    assert np.abs(env.backend.qpos[:, :2] - origin[:, :2]).max() <= task.spawn_jitter
    # a reset right after a reset (nothing walked, nothing commanded) moves no one
    env.reset()
    np.testing.assert_array_equal(cur.levels, [4, 4, 4, 2, 2, 2, 3, 3, 3, 3])


def test_leaving_the_terrain_is_a_time_out(rough_env):
    env, task = rough_env, rough_env.task
    env.reset(seed=3)
    env.backend.qpos[0, 0] = 0.3  # 0.3 m from the x = 0 edge, inside the 0.5 m margin
    result = env.step(np.zeros((env.num_envs, 12), np.float32))
    assert result.time_outs[0] and not result.terminated[0]
    assert "terrain_out_of_bounds" in [t.name for t in task.terminations]


def curriculum(num_envs=6, **kwargs):
    cur = TerrainCurriculum(num_envs, 10, 5, promote_distance=4.0, **kwargs)
    cur.update(np.arange(num_envs), np.zeros(num_envs), np.zeros(num_envs), rng())
    return cur


def rng(seed=0):
    return np.random.default_rng(seed)


def test_curriculum_initial_levels_and_types():
    cur = curriculum(1000, max_init_level=3)
    assert set(cur.levels.tolist()) == {0, 1, 2, 3}
    np.testing.assert_array_equal(np.bincount(cur.types), [200] * 5)


def test_curriculum_promotes_demotes_and_clips_at_zero():
    cur = curriculum()
    cur.levels[:] = [5, 5, 5, 5, 0, 5]
    ids = np.arange(6)
    distance = np.array([4.1, 3.9, 1.9, 2.1, 0.0, np.nan])
    commanded = np.array([20.0, 4.0, 4.0, 4.0, 4.0, 4.0])
    cur.update(ids, distance, commanded, rng())
    # promoted even if short of the commanded distance; 1.9 < 0.5*4 demoted; NaN stays
    np.testing.assert_array_equal(cur.levels, [6, 5, 4, 5, 0, 5])
    metrics = cur.metrics()
    assert metrics["curriculum/terrain_promoted"] == pytest.approx(1 / 6)
    assert metrics["curriculum/terrain_demoted"] == pytest.approx(2 / 6)  # incl. the clipped
    assert metrics["curriculum/terrain_level_mean"] == pytest.approx(25 / 6)
    assert metrics["curriculum/terrain_level_min"] == 0.0
    assert metrics["curriculum/terrain_level_max"] == 6.0
    assert all(isinstance(v, float) for v in metrics.values())


def test_curriculum_only_updates_the_given_envs():
    cur = curriculum()
    cur.levels[:] = 5
    cur.update(np.array([4]), np.array([10.0]), np.array([0.0]), rng())
    np.testing.assert_array_equal(cur.levels, [5, 5, 5, 5, 6, 5])


def test_curriculum_sends_robots_past_the_top_to_random_levels():
    cur = curriculum(2000)
    cur.levels[:] = 9
    cur.levels[0] = 8
    ids = np.arange(2000)
    cur.update(ids, np.full(2000, 5.0), np.zeros(2000), rng(1))
    assert cur.levels[0] == 9
    assert cur.levels.min() >= 0 and cur.levels.max() <= 9
    assert len(np.unique(cur.levels[1:])) == 10  # all levels, drawn uniformly
    assert np.abs(np.bincount(cur.levels[1:]) - 200).max() < 60


def test_curriculum_is_deterministic_by_rng():
    a, b = curriculum(100), curriculum(100)
    for cur in (a, b):
        cur.levels[:] = 9
        cur.update(np.arange(100), np.full(100, 9.0), np.zeros(100), rng(5))
    np.testing.assert_array_equal(a.levels, b.levels)


def test_curriculum_state_dict_round_trips_through_a_weights_only_checkpoint(tmp_path):
    torch = pytest.importorskip("torch")
    cur = curriculum(50)
    cur.update(np.arange(50), np.linspace(0, 8, 50), np.full(50, 8.0), rng(2))
    path = tmp_path / "ckpt.pt"
    torch.save({"terrain_curriculum": cur.state_dict()}, path)
    state = torch.load(path, weights_only=True)["terrain_curriculum"]
    other = TerrainCurriculum(50, 10, 5, promote_distance=4.0)
    other.load_state_dict(state)
    np.testing.assert_array_equal(other.levels, cur.levels)
    np.testing.assert_array_equal(other.types, cur.types)
    assert other.metrics() == cur.metrics()
    assert isinstance(other, Curriculum)
    with pytest.raises(ValueError, match="for 50 envs, this one has 20"):
        TerrainCurriculum(20, 10, 5, promote_distance=4.0).load_state_dict(state)
    with pytest.raises(ValueError, match="num_levels=10, this one 8"):
        TerrainCurriculum(50, 8, 5, promote_distance=4.0).load_state_dict(state)
