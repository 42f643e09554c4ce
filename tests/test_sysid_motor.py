"""sysid: robot logs (npz, CSV, rosbag2) and the motor fit (gain scales and the delay).

The logs come from the HIL simulated robot (``SimRobot``) with known hidden parameters,
driven by a gentle multi-sine around the home pose; the fit must recover them.
"""

from __future__ import annotations

import csv

import numpy as np
import pytest

from sim2real.deploy.hil.profile import RobotProfile, load_profile
from sim2real.deploy.hil.sim_robot import SimRobot
from sim2real.sysid.motor import fit_motor
from sim2real.sysid.robot_log import RobotLog, load_log


def simulated_log(profile: RobotProfile, duration_s: float = 8.0, seed: int = 0) -> RobotLog:
    """Commands at 50 Hz (multi-sine around home), every physics step's joint sample."""
    robot = SimRobot(profile)
    model = robot.robot
    rng = np.random.default_rng(seed)
    low, high = model.joint_limits.T
    span = np.minimum(model.default_joint_pos - low, high - model.default_joint_pos) - 0.1
    freqs = rng.uniform(0.2, 2.0, (model.num_joints, 4))
    phases = rng.uniform(0.0, 2 * np.pi, (model.num_joints, 4))
    steps = round(0.02 / robot.physics_dt)
    t, q, qd, effort, command_t, targets = [], [], [], [], [], []
    for k in range(round(duration_s / 0.02)):
        now = k * 0.02
        fade = min(1.0, now, duration_s - now)
        wave = np.sin(2 * np.pi * freqs * now + phases).mean(axis=1)
        target = model.default_joint_pos + 0.1 * fade * span * wave
        robot.command(target)
        command_t.append(robot.time)
        targets.append(target)
        for _ in range(steps):
            robot.step()
            sample = robot.joint_sample()
            t.append(sample.stamp)
            q.append(sample.position)
            qd.append(sample.velocity)
            effort.append(sample.effort)
    return RobotLog(model.joint_names, t, q, qd, effort, command_t, targets)


@pytest.fixture(scope="module")
def hidden_log():
    profile = load_profile("panda-hidden")
    return profile, simulated_log(profile)


def test_motor_fit_recovers_gain_scales_and_the_delay(hidden_log):
    profile, log = hidden_log
    robot = SimRobot(RobotProfile.nominal("panda")).robot
    fit = fit_motor(log.aligned(profile.physics_dt), robot.kp, robot.kd)
    truth = profile.resolve()
    np.testing.assert_allclose(fit.kp_scale, truth["kp_scale"], rtol=0.02)
    np.testing.assert_allclose(fit.kd_scale, truth["kd_scale"], rtol=0.02)
    total = profile.command_latency_steps + profile.sensor_latency_steps
    assert abs(fit.delay_steps + 1 - total) <= 1  # see motor.py: efforts lead by one step
    assert np.argmin(fit.costs) == fit.delay_steps
    assert np.all(fit.kp_scale_std < 0.01)


def test_motor_fit_is_exact_without_noise_or_latency():
    profile = RobotProfile.from_dict(
        {"robot": "panda", "physics_rate_hz": 500, "joints": {"default": {"kp_scale": 0.8}}}
    )
    log = simulated_log(profile, duration_s=4.0)
    robot = SimRobot(RobotProfile.nominal("panda")).robot
    fit = fit_motor(log.aligned(profile.physics_dt), robot.kp, robot.kd)
    np.testing.assert_allclose(fit.kp_scale, 0.8, rtol=1e-3)
    np.testing.assert_allclose(fit.kd_scale, 1.0, rtol=1e-3)
    assert fit.delay_steps == 0


def test_motor_fit_needs_efforts(hidden_log):
    profile, log = hidden_log
    no_effort = RobotLog(log.joint_names, log.t, log.q, log.qd, None, log.command_t, log.targets)
    with pytest.raises(ValueError, match="efforts"):
        fit_motor(no_effort.aligned(0.002), np.ones(7), np.ones(7))


def test_aligned_holds_each_command_after_its_time():
    log = RobotLog(
        ("a",), t=[0.0, 0.01, 0.02, 0.03], q=np.zeros((4, 1)), qd=np.zeros((4, 1)),
        effort=None, command_t=[0.0, 0.02], targets=[[1.0], [2.0]],
    )  # fmt: skip
    aligned = log.aligned(0.01)
    np.testing.assert_allclose(aligned.t, [0.01, 0.02, 0.03])
    np.testing.assert_allclose(aligned.targets[:, 0], [1.0, 1.0, 2.0])  # 0.02 acts after 0.02


def test_npz_and_csv_round_trip(tmp_path, hidden_log):
    _, log = hidden_log
    log.to_npz(tmp_path / "log.npz")
    again = load_log(tmp_path / "log.npz")
    np.testing.assert_array_equal(again.effort, log.effort)
    assert again.joint_names == log.joint_names

    names = log.joint_names
    with open(tmp_path / "run_states.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["t", *(f"q/{n}" for n in names), *(f"qd/{n}" for n in names)])
        for row in np.column_stack([log.t, log.q, log.qd])[:100]:
            writer.writerow(row)
    with open(tmp_path / "run_commands.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["t", *(f"target/{n}" for n in names)])
        for row in np.column_stack([log.command_t, log.targets])[:5]:
            writer.writerow(row)
    from_csv = load_log(tmp_path / "run")
    np.testing.assert_allclose(from_csv.q, log.q[:100])
    assert from_csv.effort is None


def test_bad_logs_are_named(tmp_path, hidden_log):
    _, log = hidden_log
    with pytest.raises(ValueError, match="joints \\['elbow'\\] are not in the log"):
        log.select(["panda_joint1", "elbow"])
    with pytest.raises(FileNotFoundError, match="no log at"):
        load_log(tmp_path / "missing")
    np.savez(tmp_path / "partial.npz", t=log.t)
    with pytest.raises(ValueError, match="missing arrays"):
        load_log(tmp_path / "partial.npz")
    with pytest.raises(ValueError, match="shape"):
        RobotLog(("a",), [0.0, 1.0], np.zeros((2, 2)), np.zeros((2, 1)), None, [0.0], [[0.0]])


def test_select_reorders_joints(hidden_log):
    _, log = hidden_log
    picked = log.select(["panda_joint3", "panda_joint1"])
    np.testing.assert_array_equal(picked.q[:, 0], log.q[:, 2])
    np.testing.assert_array_equal(picked.effort[:, 1], log.effort[:, 0])


def test_nonfinite_rows_are_left_out_on_loading(tmp_path, hidden_log):
    _, log = hidden_log
    q, targets = log.q.copy(), log.targets.copy()
    q[10, 2], targets[3, 0] = np.nan, np.inf  # a nonfinite fault, a corrupted command
    effort = log.effort.copy()
    effort[20] = -np.inf
    RobotLog(log.joint_names, log.t, q, log.qd, effort, log.command_t, targets).to_npz(
        tmp_path / "faulty.npz"
    )
    loaded = load_log(tmp_path / "faulty.npz")
    assert len(loaded.t) == len(log.t) - 2
    assert len(loaded.command_t) == len(log.command_t) - 1
    assert np.isfinite(loaded.q).all() and np.isfinite(loaded.effort).all()
    assert log.finite() is log  # nothing to drop


def test_window_counts_from_the_first_command(hidden_log):
    _, log = hidden_log
    span = log.window(2.0, 5.0)
    t0 = log.command_t[0]
    assert span.t[0] >= t0 + 2.0 and span.t[-1] < t0 + 5.0
    assert span.command_t[0] == pytest.approx(t0 + 2.0, abs=0.02)
    assert log.window(2.0).t[-1] == log.t[-1]
    with pytest.raises(ValueError, match="span 9..12 s after its first command is empty"):
        log.window(9.0, 12.0)
