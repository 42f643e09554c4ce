"""The mujoco.batch backend against a plain reference loop over one MjData per env."""

import mujoco
import numpy as np
import pytest

from sim2real.sim.assets import asset_path
from sim2real.sim.backends import MujocoBatchBackend, make_backend
from sim2real.sim.robot import RobotModel

PENDULUM = """
<mujoco>
  <option timestep="0.01"/>
  <worldbody>
    <body name="pole">
      <joint name="hinge" axis="0 1 0" damping="0.1"/>
      <geom type="capsule" fromto="0 0 0 0 0 -0.5" size="0.02" mass="1"/>
    </body>
  </worldbody>
  <actuator><position name="hinge" joint="hinge" kp="5" kv="0.5" forcerange="-2 2"/></actuator>
  <keyframe><key name="home" qpos="0.3" ctrl="0"/></keyframe>
</mujoco>
"""


@pytest.fixture(scope="module")
def go2():
    return mujoco.MjModel.from_xml_path(str(asset_path("go2")))


def reference_rollout(model, qpos0, ctrls, nstep):
    """One MjData per env, mj_step in a Python loop: the ground truth."""
    out = []
    for qpos, ctrl_seq in zip(qpos0, ctrls, strict=True):
        data = mujoco.MjData(model)
        mujoco.mj_resetDataKeyframe(model, data, 0)
        data.qpos[:] = qpos
        mujoco.mj_forward(model, data)
        for ctrl in ctrl_seq:
            data.ctrl[:] = ctrl
            mujoco.mj_step(model, data, nstep)
        out.append(data.qpos.copy())
    return np.array(out)


@pytest.mark.parametrize("xml", ["pendulum", "go2"])
def test_batch_matches_reference_loop(xml, go2):
    model = mujoco.MjModel.from_xml_string(PENDULUM) if xml == "pendulum" else go2
    n, steps, nstep = 4, 10, 4
    rng = np.random.default_rng(0)
    backend = MujocoBatchBackend(model, n, nthread=2)
    backend.reset(np.arange(n), keyframe=0)
    qpos0 = backend.qpos.copy()
    qpos0[:, -1] += rng.uniform(-0.1, 0.1, n)
    backend.qpos[:] = qpos0
    backend.forward(np.arange(n))
    ctrls = model.key_ctrl[0] + rng.uniform(-0.3, 0.3, (n, steps, model.nu))
    for k in range(steps):
        backend.ctrl[:] = ctrls[:, k]
        assert len(backend.step(nstep)) == 0
    np.testing.assert_array_equal(backend.qpos, reference_rollout(model, qpos0, ctrls, nstep))


def test_per_env_model_field_changes_only_that_env(go2):
    backend = MujocoBatchBackend(go2, 3, nthread=1)
    backend.reset(np.arange(3), keyframe=0)
    backend.forward(np.arange(3))
    mass = backend.model_field("body_mass")
    assert mass.shape == (3, go2.nbody)
    mass[1, go2.body("base").id] += 5.0
    backend.set_const(np.array([1]))
    for _ in range(20):
        backend.step(4)
    assert backend.qpos[0, 2] == backend.qpos[2, 2]
    assert backend.qpos[1, 2] < backend.qpos[0, 2]  # the heavier robot sags more


def test_reset_of_a_subset_leaves_others(go2):
    backend = MujocoBatchBackend(go2, 4, nthread=2)
    backend.reset(np.arange(4), keyframe=0)
    backend.forward(np.arange(4))
    for _ in range(10):
        backend.step(4)
    before = backend.qpos.copy()
    backend.reset(np.array([1, 3]), keyframe=0)
    np.testing.assert_array_equal(backend.qpos[[0, 2]], before[[0, 2]])
    np.testing.assert_array_equal(backend.qpos[[1, 3]], np.tile(go2.key_qpos[0], (2, 1)))


def test_instability_is_reported_per_env(go2, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MuJoCo logs warnings to MUJOCO_LOG.TXT in the cwd
    backend = MujocoBatchBackend(go2, 4, nthread=2)
    backend.reset(np.arange(4), keyframe=0)
    backend.forward(np.arange(4))
    backend.qvel[2, 6] = 1e12
    assert list(backend.step(4)) == [2]
    backend.reset(np.array([2]), keyframe=0)
    backend.forward(np.array([2]))
    assert len(backend.step(4)) == 0


def test_unknown_backend_is_named(go2):
    with pytest.raises(ValueError, match="unknown backend 'tpu'"):
        make_backend("tpu", go2, 1)


def test_robot_model_reads_the_asset(go2):
    robot = RobotModel.from_mujoco(go2)
    assert robot.num_joints == 12 and robot.floating_base
    assert robot.joint_names[:3] == ("FL_hip_joint", "FL_thigh_joint", "FL_calf_joint")
    np.testing.assert_array_equal(robot.kp, 20.0)
    np.testing.assert_array_equal(robot.kd, 0.5)
    np.testing.assert_array_equal(robot.effort_limits[:3], [23.7, 23.7, 45.43])


def test_robot_model_rejects_models_without_home():
    model = mujoco.MjModel.from_xml_string(PENDULUM.replace('name="home"', 'name="x"'))
    with pytest.raises(ValueError, match="no keyframe named 'home'"):
        RobotModel.from_mujoco(model)
