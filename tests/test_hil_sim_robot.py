"""The HIL sim robot: hidden profile parameters, latencies, noise, disturbances, profile files.

Like mujoco's ``rollout_test.py``: the fast path is checked against a plain MuJoCo loop
(``data.ctrl = q*; mj_step``) on the packaged models, bitwise where the physics is the same.
"""

from __future__ import annotations

import dataclasses
import math

import mujoco
import numpy as np
import pytest

from sim2real.deploy.hil.profile import (
    STAND_HEIGHT_M,
    JointParams,
    RobotProfile,
    SensorNoise,
    available_profiles,
    load_profile,
    profile_path,
)
from sim2real.deploy.hil.sim_robot import SimRobot
from sim2real.sim.assets import asset_path

GO2_JOINTS = tuple(
    f"{leg}_{part}_joint" for leg in ("FL", "FR", "RL", "RR") for part in ("hip", "thigh", "calf")
)


def nominal_model(robot: str) -> mujoco.MjModel:
    return mujoco.MjModel.from_xml_path(str(asset_path(robot)))


def pd_torque(kp, kd, limit, target, q, qd):
    return np.clip(kp * (target - q) - kd * qd, -limit, limit)


# ------------------------------------------------------------------- exactness, gains


@pytest.mark.parametrize("robot", ["go2", "panda", "point"])
def test_nominal_profile_reproduces_a_plain_mujoco_loop(robot):
    sim = SimRobot(RobotProfile.nominal(robot))
    model = nominal_model(robot)
    assert sim.physics_dt == model.opt.timestep
    data = mujoco.MjData(model)
    mujoco.mj_resetDataKeyframe(model, data, model.key("home").id)
    rng = np.random.default_rng(0)
    for _ in range(50):  # a new target every 4 physics steps, as a 50 Hz policy at 200 Hz
        target = model.key_ctrl[0] + rng.uniform(-0.3, 0.3, model.nu)
        sim.command(target)
        sim.step(4)
        data.ctrl[:] = target
        for _ in range(4):
            mujoco.mj_step(model, data)
    np.testing.assert_array_equal(sim.data.qpos, data.qpos)
    np.testing.assert_array_equal(sim.data.qvel, data.qvel)
    assert sim.time == data.time


def test_applied_torque_is_the_scaled_pd_law_and_command_gains_are_nominal_units():
    scales = np.linspace(0.6, 1.4, 12)
    joints = {
        name: JointParams(kp_scale=s, kd_scale=2 - s)
        for name, s in zip(GO2_JOINTS, scales, strict=True)
    }
    sim = SimRobot(RobotProfile("go2", joints=joints))
    q, qd = sim.robot.qpos_adr, sim.robot.dof_adr
    limit = sim.robot.effort_limits
    target = sim.robot.default_joint_pos + 0.05
    sim.command(target)
    sim.step(3)
    data = sim.data
    expected = pd_torque(
        20 * scales, 0.5 * (2 - scales), limit, target, data.qpos[q], data.qvel[qd]
    )
    np.testing.assert_allclose(data.actuator_force, expected, atol=1e-9)
    np.testing.assert_allclose(sim.joint_sample().effort, expected, atol=1e-9)  # no noise
    # per-command gains in nominal units: kp=0 with kd is pure damping, whatever the target
    sim.command(target + 1.0, kp=0.0, kd=np.full(12, 2.0))
    sim.step(5)
    damping = np.clip(-2.0 * (2 - scales) * data.qvel[qd], -limit, limit)
    np.testing.assert_allclose(data.actuator_force, damping, atol=1e-9)
    assert np.abs(data.qvel[qd]).max() > 1e-3  # the check is not vacuous
    # a command without gains is back to the nominal gains (not sticky)
    sim.command(target)
    sim.step(1)
    np.testing.assert_allclose(sim.model.actuator_gainprm[:, 0], 20 * scales)
    np.testing.assert_allclose(-sim.model.actuator_biasprm[:, 2], 0.5 * (2 - scales))


def test_panda_steady_state_error_under_gravity_scales_with_one_over_kp_scale():
    errors = {}
    for scale in (1.0, 0.5):
        joints = {"default": JointParams(kp_scale=scale)}
        sim = SimRobot(RobotProfile("panda", joints=joints))
        sim.step(1000)  # 2 s holding home at 500 Hz
        errors[scale] = sim.robot.default_joint_pos - sim.ground_truth()["joint_pos"]
    big = np.abs(errors[1.0]) > 1e-3  # the joints gravity loads (2 and 4 at home)
    assert big.sum() >= 2
    np.testing.assert_allclose(errors[0.5][big] / errors[1.0][big], 2.0, rtol=0.05)


@pytest.mark.parametrize("scale", [0.5, 1.5])
def test_effort_limits_clip_at_the_scaled_limit(scale):
    sim = SimRobot(RobotProfile("go2", joints={"default": JointParams(effort_scale=scale)}))
    nominal = sim.robot.effort_limits
    np.testing.assert_allclose(sim.true_params["effort_limit"], scale * nominal)
    sim.command(sim.robot.default_joint_pos + np.where(np.arange(12) % 2, 4.0, -4.0), kd=0.0)
    sim.step(1)
    force = np.abs(sim.data.actuator_force)
    np.testing.assert_allclose(force, scale * nominal)  # saturated, at the profile's limit
    # above nominal too: the joints' own actuatorfrcrange was scaled as well
    np.testing.assert_allclose(np.abs(sim.data.qfrc_actuator[sim.robot.dof_adr]), scale * nominal)


def test_refused_commands_keep_the_previous_one():
    sim = SimRobot(RobotProfile("point", physics_rate_hz=100))
    sim.command([0.1, -0.1])
    sim.step(1)
    for bad, match in (
        ([0.1, 0.2, 0.3], r"shape \(2,\)"),
        ([np.nan, 0.0], "finite"),
        ([0.0, np.inf], "finite"),
    ):
        with pytest.raises(ValueError, match=match):
            sim.command(bad)
    with pytest.raises(ValueError, match="kp must be finite and >= 0"):
        sim.command([0.0, 0.0], kp=-1.0)
    with pytest.raises(ValueError, match="kd must be a scalar or have shape"):
        sim.command([0.0, 0.0], kd=[1.0, 2.0, 3.0])
    sim.step(2)
    np.testing.assert_array_equal(sim.data.ctrl, [0.1, -0.1])


# ----------------------------------------------------------------------------- latency


def test_latencies_are_rounded_to_whole_physics_steps():
    for latency, steps in ((0.0, 0), (0.002, 1), (0.0029, 1), (0.003, 2), (0.005, 3), (0.01, 5)):
        profile = RobotProfile("point", command_latency_s=latency, sensor_latency_s=latency)
        assert profile.command_latency_steps == steps
        assert profile.sensor_latency_steps == steps
    sim = SimRobot(RobotProfile("point", physics_rate_hz=500, command_latency_s=0.01))
    assert (sim.command_latency_steps, sim.sensor_latency_steps) == (5, 0)


@pytest.mark.parametrize("latency_steps", [0, 1, 3])
def test_command_latency_delays_a_target_step_by_exactly_that_many_physics_steps(latency_steps):
    profile = RobotProfile("go2", command_latency_s=latency_steps / 500)
    sim = SimRobot(profile)
    assert sim.command_latency_steps == latency_steps
    home = sim.robot.default_joint_pos
    target = home + 0.2
    sim.step(7)
    sim.command(target)
    for k in range(latency_steps + 3):
        applied = target if k >= latency_steps else home
        np.testing.assert_array_equal(sim.data.ctrl, applied if k else home)
        sim.step(1)
    # the dynamics: a plain loop (same model) switching the target latency_steps later
    reference = mujoco.MjData(sim.model)
    mujoco.mj_resetDataKeyframe(sim.model, reference, 0)
    for k in range(7 + latency_steps + 3):
        reference.ctrl[:] = target if k >= 7 + latency_steps else home
        mujoco.mj_step(sim.model, reference)
    np.testing.assert_array_equal(sim.data.qpos, reference.qpos)


def test_sensor_latency_publishes_the_state_of_that_many_steps_ago():
    latency = 3
    sim = SimRobot(RobotProfile("go2", sensor_latency_s=latency / 500))
    sim.command(sim.robot.default_joint_pos + 0.3)
    truth, quats = [], []
    for k in range(12):
        truth.append(sim.ground_truth())
        sample, imu = sim.joint_sample(), sim.imu_sample()
        old = truth[max(k - latency, 0)]
        assert sample.stamp == imu.stamp == sim.time  # the latency is hidden
        np.testing.assert_array_equal(sample.position, old["joint_pos"])
        np.testing.assert_array_equal(sample.velocity, old["joint_vel"])
        np.testing.assert_allclose(imu.quat, old["base_quat"], atol=1e-12)
        np.testing.assert_allclose(imu.ang_vel, old["base_ang_vel"], atol=1e-12)
        quats.append(imu.quat)
        sim.step(1)
    assert np.abs(truth[-1]["joint_pos"] - truth[0]["joint_pos"]).max() > 1e-3


# ------------------------------------------------------------------------------- noise


def test_zero_noise_is_exact_truth():
    sim = SimRobot(RobotProfile("go2"))
    sim.command(sim.robot.default_joint_pos + 0.1)
    sim.step(20)
    sample, imu, truth = sim.joint_sample(), sim.imu_sample(), sim.ground_truth()
    np.testing.assert_array_equal(sample.position, truth["joint_pos"])
    np.testing.assert_array_equal(sample.velocity, truth["joint_vel"])
    np.testing.assert_array_equal(sample.effort, sim.data.actuator_force)
    np.testing.assert_allclose(imu.quat, truth["base_quat"], atol=1e-12)
    np.testing.assert_allclose(imu.ang_vel, truth["base_ang_vel"], atol=1e-12)
    np.testing.assert_array_equal(imu.lin_acc, sim.data.sensor("imu_acc").data)


def test_noise_statistics_match_the_profile():
    noise = SensorNoise(
        joint_pos_std=0.001,
        joint_vel_std=0.02,
        effort_std=0.1,
        gyro_std=0.01,
        gyro_bias=(0.01, -0.02, 0.005),
        accel_std=0.05,
        orientation_std=0.003,
    )
    sim = SimRobot(RobotProfile("go2", noise=noise, seed=3))
    sim.step(5)
    truth = sim.ground_truth()
    effort, acc = sim.data.actuator_force.copy(), sim.data.sensor("imu_acc").data.copy()
    n = 4000
    joints = [sim.joint_sample() for _ in range(n)]
    imus = [sim.imu_sample() for _ in range(n)]
    errors = {
        "joint_pos_std": np.array([s.position for s in joints]) - truth["joint_pos"],
        "joint_vel_std": np.array([s.velocity for s in joints]) - truth["joint_vel"],
        "effort_std": np.array([s.effort for s in joints]) - effort,
        "gyro_std": np.array([s.ang_vel for s in imus]) - truth["base_ang_vel"] - noise.gyro_bias,
        "accel_std": np.array([s.lin_acc for s in imus]) - acc,
    }
    # orientation: the rotation vector of q_true^-1 ⊗ q_noisy, in the IMU frame
    inverse = np.empty(4)
    mujoco.mju_negQuat(inverse, truth["base_quat"])
    rotvecs = np.empty((n, 3))
    for i, imu in enumerate(imus):
        delta = np.empty(4)
        mujoco.mju_mulQuat(delta, inverse, imu.quat)
        mujoco.mju_quat2Vel(rotvecs[i], delta, 1.0)
        assert math.isclose(np.linalg.norm(imu.quat), 1.0, abs_tol=1e-12)
    errors["orientation_std"] = rotvecs
    for name, error in errors.items():
        std = getattr(noise, name)
        # std within 6 % (n*J samples: ~1-2 % relative error), mean within 5 std errors
        np.testing.assert_allclose(error.std(axis=0), std, rtol=0.06, err_msg=name)
        assert np.all(np.abs(error.mean(axis=0)) < 5 * std / math.sqrt(n)), name
    # the gyro bias is there, constant
    gyro = np.array([s.ang_vel for s in imus]) - truth["base_ang_vel"]
    np.testing.assert_allclose(gyro.mean(axis=0), noise.gyro_bias, atol=5 * 0.01 / math.sqrt(n))


def test_reset_replays_the_same_run_noise_included():
    def run(sim):
        sim.command(sim.robot.default_joint_pos + 0.2, kp=5.0, kd=1.0)
        sim.step(30)
        sim.push([0.3, 0.0, 0.0])
        sim.step(10)
        return sim.joint_sample(), sim.imu_sample()

    sim = SimRobot(load_profile("go2-hidden"))
    first = run(sim)
    sim.reset()
    assert sim.time == 0.0
    np.testing.assert_array_equal(sim.data.ctrl, sim.robot.default_joint_pos)
    np.testing.assert_allclose(sim.model.actuator_gainprm[:, 0], sim.true_params["kp"])
    second = run(sim)
    for a, b in zip(first, second, strict=True):
        for f in dataclasses.fields(a):
            np.testing.assert_array_equal(getattr(a, f.name), getattr(b, f.name))


# ------------------------------------------------------------------- profile in the model


def test_profile_values_land_in_the_model_and_resolve_gives_them_in_actuator_order():
    profile = load_profile("go2-hidden")
    sim = SimRobot(profile)
    model, nominal, dofs = sim.model, nominal_model("go2"), sim.robot.dof_adr
    truth = profile.resolve()
    assert list(truth) == [
        "kp",
        "kd",
        "kp_scale",
        "kd_scale",
        "damping",
        "armature",
        "frictionloss",
        "effort_limit",
    ]
    assert all(v.shape == (12,) for v in truth.values())
    for field in ("damping", "armature", "frictionloss"):
        np.testing.assert_array_equal(getattr(model, f"dof_{field}")[dofs], truth[field])
        expected = [getattr(profile.joints[name], field) for name in sim.joint_names]
        np.testing.assert_array_equal(truth[field], expected)
    kp_scale = [profile.joints[name].kp_scale for name in sim.joint_names]
    np.testing.assert_allclose(truth["kp"], 20 * np.array(kp_scale))
    np.testing.assert_allclose(model.actuator_gainprm[:, 0], truth["kp"])
    np.testing.assert_allclose(-model.actuator_biasprm[:, 2], truth["kd"])
    assert model.opt.timestep == 0.002
    feet = [model.geom(f"{leg}_foot").id for leg in ("FL", "FR", "RL", "RR")]
    np.testing.assert_array_equal(model.geom_friction[feet, 0], 0.7)
    assert model.geom_friction[model.geom("floor").id, 0] == 0.7
    # masses and inertia, and mj_setConst: the derived subtree mass follows
    base = model.body("base").id
    np.testing.assert_allclose(model.body_mass[base], nominal.body_mass[base] + 0.8)
    calf = model.body("FL_calf").id
    np.testing.assert_allclose(model.body_mass[calf], 1.1 * nominal.body_mass[calf])
    np.testing.assert_allclose(model.body_inertia[calf], 1.1 * nominal.body_inertia[calf])
    total = nominal.body_subtreemass[base]
    np.testing.assert_allclose(
        model.body_subtreemass[base],
        0.8 + nominal.body_mass[base] + 1.1 * (total - nominal.body_mass[base]),
    )
    assert sim.robot.kp[0] == 20.0  # the NOMINAL facts, as the deploy side believes them


def test_a_default_entry_covers_the_joints_not_named():
    profile = RobotProfile(
        "go2",
        joints={
            "default": JointParams(frictionloss=0.2, kp_scale=0.9),
            "FL_calf_joint": JointParams(damping=0.3),
        },
    )
    truth = profile.resolve()
    calf = GO2_JOINTS.index("FL_calf_joint")
    others = np.arange(12) != calf
    np.testing.assert_array_equal(truth["frictionloss"][others], 0.2)
    np.testing.assert_array_equal(truth["kp_scale"][others], 0.9)
    # a named joint's entry replaces "default" as a whole: nominal where it says nothing
    assert (truth["damping"][calf], truth["frictionloss"][calf], truth["kp_scale"][calf]) == (
        0.3,
        0.1,
        1.0,
    )


# --------------------------------------------------------------------- disturbances, truth


def test_push_changes_the_base_velocity():
    sim = SimRobot(RobotProfile("go2"))
    sim.step(10)
    before = sim.data.qvel[:3].copy()
    sim.push([0.5, -0.2, 0.0])
    np.testing.assert_allclose(sim.data.qvel[:3], before + [0.5, -0.2, 0.0])
    truth = sim.ground_truth()
    rot = sim.data.xmat[sim.model.body("base").id].reshape(3, 3)
    np.testing.assert_allclose(rot @ truth["base_lin_vel"], sim.data.qvel[:3], atol=1e-12)
    sim.step(5)
    assert sim.ground_truth()["base_pos"][0] > 0.001


def test_apply_force_lasts_its_duration():
    sim = SimRobot(RobotProfile("go2"))
    twin = SimRobot(RobotProfile("go2"))
    base = sim.model.body("base").id
    sim.apply_force([40.0, 0.0, 0.0], duration_s=0.02)  # 10 physics steps
    for k in range(10):
        assert sim.force_steps_left == 10 - k
        np.testing.assert_array_equal(sim.data.xfrc_applied[base], [40, 0, 0, 0, 0, 0])
        sim.step(1)
    assert sim.force_steps_left == 0
    assert not sim.data.xfrc_applied.any()
    twin.step(10)
    assert sim.data.qvel[0] - twin.data.qvel[0] > 0.05  # about F dt / m = 0.8 / 8.2
    sim.apply_force([40.0, 0.0, 0.0], duration_s=1.0)
    sim.reset()  # a reset removes it
    assert not sim.data.xfrc_applied.any() and sim.force_steps_left == 0


def test_fixed_base_refuses_disturbances_and_arms_report_the_end_effector():
    sim = SimRobot(RobotProfile("panda"))
    with pytest.raises(ValueError, match="push: robot 'panda' has a fixed base"):
        sim.push([0.1, 0.0, 0.0])
    with pytest.raises(ValueError, match="apply_force: robot 'panda' has a fixed base"):
        sim.apply_force([1.0, 0.0, 0.0], 0.1)
    assert not sim.has_imu and sim.imu_sample() is None
    truth = sim.ground_truth()
    assert set(truth) == {"joint_pos", "joint_vel", "ee_pos"}
    np.testing.assert_allclose(truth["ee_pos"], sim.data.site("ee_site").xpos)
    go2 = SimRobot(RobotProfile("go2")).ground_truth()
    assert set(go2) == {
        "joint_pos",
        "joint_vel",
        "base_pos",
        "base_quat",
        "base_lin_vel",
        "base_ang_vel",
        "tilt",
    }
    assert go2["tilt"] < 1e-9


# ------------------------------------------------------------------------------ stand


def test_on_a_stand_the_base_is_fixed_in_the_air_and_the_legs_swing():
    sim = SimRobot(RobotProfile("go2", stand=True))
    model = sim.model
    assert mujoco.mjtJoint.mjJNT_FREE not in model.jnt_type
    assert (model.nq, model.nv) == (12, 12)
    assert sim.robot.joint_names == GO2_JOINTS and not sim.robot.floating_base
    np.testing.assert_array_equal(sim.robot.default_joint_pos, nominal_model("go2").key_ctrl[0])
    np.testing.assert_array_equal(sim.ground_truth()["joint_pos"], sim.robot.default_joint_pos)
    assert sim.has_imu
    start = sim.ground_truth()
    np.testing.assert_allclose(start["base_pos"], [0.0, 0.0, 0.34 + STAND_HEIGHT_M])
    lowest = []
    for k in range(100):  # 0.5 s of 2 Hz sweeps of every joint at 200 Hz
        sim.command(sim.robot.default_joint_pos + 0.4 * math.sin(2 * math.pi * 2 * k * 0.005))
        sim.step(1)
        assert sim.data.ncon == 0  # the feet never reach the floor
        lowest.append(sim.data.xpos[model.body("FL_foot").id, 2])
    truth = sim.ground_truth()
    np.testing.assert_array_equal(truth["base_pos"], start["base_pos"])  # gravity: no fall
    np.testing.assert_array_equal(truth["base_quat"], [1.0, 0.0, 0.0, 0.0])
    assert truth["tilt"] == 0.0 and not truth["base_lin_vel"].any()
    assert np.ptp(lowest) > 0.02 and min(lowest) > 0.1
    moved = np.abs(truth["joint_pos"] - sim.robot.default_joint_pos)
    assert np.all(np.abs(truth["joint_vel"]) + moved > 0.05)  # every joint swings
    imu = sim.imu_sample()  # upright and still
    np.testing.assert_allclose(imu.quat, [1.0, 0.0, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(imu.ang_vel, 0.0, atol=1e-12)
    np.testing.assert_allclose(imu.lin_acc, [0.0, 0.0, 9.81], atol=1e-9)
    with pytest.raises(ValueError, match="push: robot 'go2' has a fixed base \\(on a stand\\)"):
        sim.push([0.1, 0.0, 0.0])
    with pytest.raises(ValueError, match="apply_force: robot 'go2' has a fixed base"):
        sim.apply_force([1.0, 0.0, 0.0], 0.1)


def test_the_stand_profile_hides_the_same_values_as_go2_hidden():
    stand, free = load_profile("go2-stand-hidden"), load_profile("go2-hidden")
    assert stand.stand and not free.stand
    assert dataclasses.replace(stand, stand=False) == free
    truth = SimRobot(stand).true_params
    for field, value in free.resolve().items():
        np.testing.assert_array_equal(truth[field], value)
    with pytest.raises(ValueError, match="stand: robot 'panda' has a fixed base"):
        RobotProfile("panda", stand=True)


# ---------------------------------------------------------------------------- profiles


def test_yaml_round_trip(tmp_path):
    profile = RobotProfile(
        "go2",
        physics_rate_hz=400,
        command_latency_s=0.01,
        sensor_latency_s=0.0025,
        base_mass_add_kg=-0.5,
        link_mass_scale=1.05,
        ground_friction=0.6,
        joints={
            "default": JointParams(kp_scale=0.9, frictionloss=0.2),
            "FL_calf_joint": JointParams(damping=0.3, effort_scale=0.8),
        },
        noise=SensorNoise(joint_pos_std=0.001, gyro_bias=(0.01, 0, 0), orientation_std=0.01),
        seed=7,
        stand=True,
    )
    profile.to_yaml(tmp_path / "p.yaml")
    assert RobotProfile.from_yaml(tmp_path / "p.yaml") == profile
    assert RobotProfile.from_dict(profile.to_dict()) == profile


def test_the_docstring_example_loads():
    import yaml

    import sim2real.deploy.hil.profile as module

    text = module.__doc__.split("YAML layout")[1].split("::")[1].split("\n\n")[1]
    profile = RobotProfile.from_dict(yaml.safe_load(text))
    assert profile.command_latency_steps == 5 and profile.joints["FL_calf_joint"].damping == 0.3


@pytest.mark.parametrize("name", available_profiles())
def test_every_shipped_profile_loads_and_runs(name):
    assert set(available_profiles()) >= {"go2", "go2-hidden", "panda", "panda-hidden", "point"}
    profile = RobotProfile.from_yaml(profile_path(name))
    sim = SimRobot(profile)
    sim.command(sim.robot.default_joint_pos)
    sim.step(50)
    assert np.all(np.isfinite(sim.data.qpos))
    assert np.all(np.isfinite(sim.joint_sample().position))
    if name.endswith("-hidden"):  # clearly off nominal, for sysid validation
        truth, nominal = profile.resolve(), RobotProfile.nominal(profile.robot).resolve()
        for field in ("kp_scale", "damping", "armature"):
            ratio = truth[field] / nominal[field]
            assert np.all(np.abs(ratio - 1) >= 0.19), field
        assert np.all(truth["frictionloss"] > 0) and sim.command_latency_steps == 5
    if name == "point":
        assert profile == RobotProfile.nominal("point")


def test_profile_path_lists_the_shipped_names():
    with pytest.raises(
        ValueError, match=r"unknown robot profile 'go3'; shipped profiles: go2, go2-hidden"
    ):
        profile_path("go3")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("robot: go2\nlatncy: {}", r"bad\.yaml: unknown top-level key 'latncy'; allowed: robot"),
        ("robot: go3", r"bad\.yaml: robot: unknown robot 'go3'; known: go2, panda, point"),
        ("physics_rate_hz: 500", r"bad\.yaml: robot: missing"),
        (
            "robot: go2\njoints: {FL_knee: {damping: 1}}",
            r"unknown joint 'FL_knee' for robot 'go2'; its joints: FL_hip_joint, ",
        ),
        (
            "robot: go2\njoints: {default: {dampng: 1}}",
            r"joints\.default: unknown key 'dampng' \(joints\.default\.dampng\)",
        ),
        (
            "robot: go2\njoints: {FL_hip_joint: {damping: -1}}",
            r"bad\.yaml: joints\.FL_hip_joint\.damping must be >= 0, got -1",
        ),
        (
            "robot: go2\njoints: {default: {kp_scale: .nan}}",
            r"joints\.default\.kp_scale must be finite",
        ),
        (
            "robot: go2\njoints: {default: {armature: fast}}",
            r"joints\.default\.armature must be a number, got 'fast'",
        ),
        ("robot: go2\nphysics_rate_hz: 0", r"physics_rate_hz must be > 0, got 0"),
        ("robot: go2\nphysics_rate_hz: -500", r"physics_rate_hz must be > 0"),
        ("robot: go2\nlatency: {command_s: -0.01}", r"bad\.yaml: latency\.command_s must be >= 0"),
        ("robot: go2\nlatency: {sensor_s: .inf}", r"latency\.sensor_s must be finite"),
        ("robot: go2\nlatency: {cmd_s: 0.01}", r"latency: unknown key 'cmd_s'"),
        ("robot: go2\nmasses: {link_scale: 0}", r"masses\.link_scale must be > 0"),
        ("robot: go2\nmasses: {base_add_kg: -10}", r"masses\.base_add_kg: the base mass"),
        (
            "robot: panda\nmasses: {base_add_kg: 1}",
            r"masses\.base_add_kg: robot 'panda' has a fixed base",
        ),
        ("robot: panda\nground_friction: 0.8", r"ground_friction: robot 'panda' has no contacts"),
        ("robot: go2\nground_friction: -0.8", r"ground_friction must be >= 0"),
        ("robot: go2\nnoise: {gyro_std: -0.1}", r"noise\.gyro_std must be >= 0"),
        ("robot: go2\nnoise: {gyro_bias: [0, 0]}", r"noise\.gyro_bias must be 3 numbers"),
        ("robot: go2\nnoise: {gyro: 0.1}", r"noise: unknown key 'gyro'"),
        ("robot: go2\nseed: -1", r"seed must be >= 0"),
        ("robot: panda\nstand: true", r"bad\.yaml: stand: robot 'panda' has a fixed base"),
        ("robot: go2\nstand: maybe", r"stand must be true or false, got 'maybe'"),
        ("- robot: go2", r"bad\.yaml: profile must be a mapping"),
    ],
)
def test_profile_errors_name_the_key_and_the_file(tmp_path, text, match):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        RobotProfile.from_yaml(path)


def test_direct_construction_is_validated_too():
    with pytest.raises(ValueError, match="command_latency_s must be >= 0"):
        RobotProfile("go2", command_latency_s=-0.001)
    with pytest.raises(ValueError, match="frictionloss must be finite"):
        JointParams(frictionloss=float("nan"))
    with pytest.raises(ValueError, match="unknown robot 'atlas'"):
        RobotProfile.nominal("atlas")
    assert RobotProfile.nominal("go2").physics_rate_hz == 200.0
