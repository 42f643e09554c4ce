"""Observation terms: math against MuJoCo, and the simulator's state against its sensors."""

import mujoco
import numpy as np
import pytest

from sim2real.sim import observations as obs
from sim2real.sim.assets import asset_path
from sim2real.sim.observations import ObservationGroup, ObsTerm


def random_quats(rng, n):
    q = rng.standard_normal((n, 4))
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def test_quat_rotate_inverse_matches_mujoco():
    rng = np.random.default_rng(0)
    quats, vecs = random_quats(rng, 50), rng.standard_normal((50, 3))
    expected = np.empty_like(vecs)
    for i, (q, v) in enumerate(zip(quats, vecs, strict=True)):
        inverse = np.empty(4)
        mujoco.mju_negQuat(inverse, q)
        mujoco.mju_rotVecQuat(expected[i], v, inverse)
    np.testing.assert_allclose(obs.quat_rotate_inverse(quats, vecs), expected, atol=1e-12)


def test_projected_gravity_upright_and_rolled():
    roll = np.pi / 2
    quat = np.array([[1.0, 0, 0, 0], [np.cos(roll / 2), np.sin(roll / 2), 0, 0]])
    gravity = obs.projected_gravity({"imu_quat": quat})
    np.testing.assert_allclose(gravity, [[0, 0, -1], [0, -1, 0]], atol=1e-12)


def test_state_terms_equal_the_imu_sensors():
    """What the task reads from the state is what the robot's IMU reports (contract 3)."""
    model = mujoco.MjModel.from_xml_path(str(asset_path("go2")))
    data = mujoco.MjData(model)
    rng = np.random.default_rng(3)
    for _ in range(10):
        mujoco.mj_resetDataKeyframe(model, data, 0)
        data.qpos[3:7] = random_quats(rng, 1)[0]
        data.qvel[:] = rng.uniform(-2, 2, model.nv)
        mujoco.mj_forward(model, data)
        np.testing.assert_allclose(data.sensor("imu_gyro").data, data.qvel[3:6], atol=1e-12)
        quat = data.sensor("imu_quat").data
        np.testing.assert_allclose(np.abs(quat @ data.qpos[3:7]), 1.0, atol=1e-12)


def test_group_scales_clips_and_concatenates():
    group = ObservationGroup(
        [
            ObsTerm("a", lambda s: s["x"], scale=(2.0, 1.0)),
            ObsTerm("b", lambda s: s["y"], clip=1.0),
        ]
    )
    state = {"x": np.array([[1.0, 3.0]]), "y": np.array([[5.0, -0.5, -7.0]])}
    out = group(state)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [[2.0, 3.0, 1.0, -0.5, -1.0]])
    assert group.sizes(state) == {"a": 2, "b": 3}


def test_group_rejects_duplicate_names():
    with pytest.raises(ValueError, match="duplicate observation term names"):
        ObservationGroup([ObsTerm("a", obs.joint_vel), ObsTerm("a", obs.joint_vel)])
