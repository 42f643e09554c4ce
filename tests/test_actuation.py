"""PD actuation with effort limits, per-env gains, and the action-delay buffer."""

import mujoco
import numpy as np
import pytest

from sim2real.sim.actuation import ActionDelay, PDActuators
from sim2real.sim.assets import asset_path
from sim2real.sim.backends import MujocoBatchBackend


@pytest.fixture(scope="module")
def go2():
    return mujoco.MjModel.from_xml_path(str(asset_path("go2")))


def pd_torque(kp, kd, limit, target, q, qd):
    return np.clip(kp * (target - q) - kd * qd, -limit, limit)


def test_position_actuators_apply_clipped_pd(go2):
    data = mujoco.MjData(go2)
    rng = np.random.default_rng(1)
    joints = go2.jnt_qposadr[1:]
    dofs = go2.jnt_dofadr[1:]
    for _ in range(20):
        mujoco.mj_resetDataKeyframe(go2, data, 0)
        data.qpos[joints] += rng.uniform(-0.5, 0.5, 12)
        data.qvel[dofs] = rng.uniform(-20, 20, 12)
        data.ctrl[:] = go2.key_ctrl[0] + rng.uniform(-2, 2, 12)
        mujoco.mj_forward(go2, data)
        expected = pd_torque(
            20.0, 0.5, go2.actuator_forcerange[:, 1], data.ctrl, data.qpos[joints], data.qvel[dofs]
        )
        np.testing.assert_allclose(data.actuator_force, expected, atol=1e-9)
    assert np.any(np.abs(expected) == go2.actuator_forcerange[:, 1])  # the clip was exercised


def test_per_env_gains_and_limits(go2):
    backend = MujocoBatchBackend(go2, 3, nthread=1)
    pd = PDActuators(backend)
    pd.set_kp(np.array([1]), 40.0)
    pd.set_kd(np.array([1]), 2.0)
    pd.set_effort_limit(np.array([2]), 5.0)
    backend.reset(np.arange(3), keyframe=0)
    backend.qpos[:, 7:] += 0.2
    backend.qvel[:, 6:] = 1.0
    backend.ctrl[:] = go2.key_ctrl[0]
    backend.forward(np.arange(3))
    q, qd = backend.qpos[:, 7:], backend.qvel[:, 6:]
    for env, (kp, kd, limit) in enumerate(
        [
            (20, 0.5, go2.actuator_forcerange[:, 1]),
            (40, 2.0, go2.actuator_forcerange[:, 1]),
            (20, 0.5, 5.0),
        ]
    ):
        expected = pd_torque(kp, kd, limit, go2.key_ctrl[0], q[env], qd[env])
        np.testing.assert_allclose(backend.actuator_force[env], expected, atol=1e-9)
    np.testing.assert_array_equal(pd.kp[:, 0], [20, 40, 20])
    np.testing.assert_array_equal(pd.kd[:, 0], [0.5, 2.0, 0.5])
    np.testing.assert_array_equal(pd.effort_limit[2], 5.0)


def test_action_delay_returns_targets_of_k_steps_ago():
    delay = ActionDelay(num_envs=3, num_joints=2, max_delay=2)
    delay.set_delay(np.arange(3), np.array([0, 1, 2]))
    delay.reset(np.arange(3), np.full((3, 2), -1.0))
    outputs = [delay(np.full((3, 2), float(t))) for t in range(4)]
    applied = np.array([o[:, 0] for o in outputs])  # (time, env)
    np.testing.assert_array_equal(applied[:, 0], [0, 1, 2, 3])
    np.testing.assert_array_equal(applied[:, 1], [-1, 0, 1, 2])
    np.testing.assert_array_equal(applied[:, 2], [-1, -1, 0, 1])


def test_action_delay_rejects_out_of_range_delays():
    delay = ActionDelay(num_envs=2, num_joints=1, max_delay=1)
    with pytest.raises(ValueError, match="delay must lie in 0..1"):
        delay.set_delay(np.arange(2), np.array([0, 2]))
