"""Excitation for system identification: the targets' shape, and a run through deploy's safety.

The targets are checked on their own (limits with margin, fades, spectra, seeds) for the
panda and the Go2; ``run_excitation`` plays short ones on the hidden profiles (panda, Go2 on
a stand) and the log is checked against what the controller and the robot must do.
"""

from __future__ import annotations

import numpy as np
import pytest

from sim2real.deploy.hil.profile import RobotProfile, SensorNoise, load_profile
from sim2real.deploy.hil.sim_robot import SimRobot
from sim2real.deploy.safety import SafetyConfig
from sim2real.sysid.excitation import (
    LIMIT_MARGIN_RAD,
    MAX_VELOCITY_FRACTION,
    SIGNALS,
    excitation_targets,
    run_excitation,
)
from sim2real.sysid.robot_log import RobotLog

PROFILES = {"panda": "panda-hidden", "go2": "go2-stand-hidden"}


@pytest.fixture(scope="module")
def robots():
    """Nominal robot facts (``SimRobot.robot``) by robot name."""
    return {name: SimRobot(load_profile(profile)).robot for name, profile in PROFILES.items()}


# ---------------------------------------------------------------------------- targets


@pytest.mark.parametrize("signal", SIGNALS)
@pytest.mark.parametrize("name", ["panda", "go2"])
@pytest.mark.parametrize("amplitude", [0.3, 1.0])
def test_targets_stay_inside_the_limits_with_margin_and_under_the_speed_cap(
    robots, name, signal, amplitude
):
    robot = robots[name]
    t, targets = excitation_targets(robot, signal, duration_s=30.0, amplitude=amplitude)
    assert t.shape == (1501,) and targets.shape == (1501, robot.num_joints)
    np.testing.assert_allclose(np.diff(t), 0.02)
    lower, upper = robot.joint_limits.T
    assert np.all(targets >= lower + LIMIT_MARGIN_RAD - 1e-12)
    assert np.all(targets <= upper - LIMIT_MARGIN_RAD + 1e-12)
    q0 = robot.default_joint_pos
    room = np.minimum(q0 - lower, upper - q0) - LIMIT_MARGIN_RAD
    peak = np.abs(targets - q0).max(axis=0)
    assert np.all(peak <= amplitude * room + 1e-12)
    assert np.all(peak > 0.04)  # every joint moves
    speed = np.abs(np.diff(targets, axis=0)).max(axis=0) / 0.02
    assert np.all(speed <= MAX_VELOCITY_FRACTION * robot.velocity_limits + 1e-9)


@pytest.mark.parametrize("signal", SIGNALS)
def test_targets_fade_in_from_and_out_to_the_default_pose(robots, signal):
    robot = robots["go2"]
    t, targets = excitation_targets(robot, signal, duration_s=20.0)
    q0 = robot.default_joint_pos
    deviation = np.abs(targets - q0)
    np.testing.assert_allclose(targets[0], q0, atol=1e-12)
    np.testing.assert_allclose(targets[-1], q0, atol=1e-12)
    peak = deviation.max(axis=0)
    near_ends = (t < 0.1) | (t > t[-1] - 0.1)  # a raised cosine: small, and at rest, there
    assert np.all(deviation[near_ends] < 0.05 * peak)
    middle = (t > 2.0) & (t < t[-1] - 2.0)
    assert np.all(deviation[middle].max(axis=0) > 0.5 * peak)


def test_multisine_spectra_are_band_limited_and_distinct_per_joint(robots):
    for robot in robots.values():
        t, targets = excitation_targets(robot, "multisine", duration_s=60.0)
        deviation = targets - robot.default_joint_pos
        power = np.abs(np.fft.rfft(deviation, axis=0)) ** 2
        freq = np.fft.rfftfreq(t.size, t[1] - t[0])
        dominant = freq[power.argmax(axis=0)]
        assert np.all((dominant > 0.2 - 0.01) & (dominant < 2.0 + 0.01))
        in_band = (freq >= 0.2 - 0.05) & (freq <= 2.0 + 0.05)
        assert np.all(power[in_band].sum(axis=0) > 0.99 * power.sum(axis=0))
        # disjoint lines: the joints' power spectra barely overlap, the signals do not correlate
        unit = power / np.linalg.norm(power, axis=0)
        overlap = unit.T @ unit
        np.fill_diagonal(overlap, 0.0)
        assert overlap.max() < 0.05
        correlation = np.corrcoef(deviation.T)
        np.fill_diagonal(correlation, 0.0)
        assert np.abs(correlation).max() < 0.1


def test_multisine_band_follows_the_arguments(robots):
    t, targets = excitation_targets(robots["panda"], duration_s=40.0, f_min_hz=0.5, f_max_hz=3.0)
    power = np.abs(np.fft.rfft(targets - targets[0], axis=0)) ** 2
    freq = np.fft.rfftfreq(t.size, t[1] - t[0])
    in_band = (freq >= 0.45) & (freq <= 3.05)
    assert np.all(power[in_band].sum(axis=0) > 0.99 * power.sum(axis=0))
    assert np.all(power[freq > 2.5].sum(axis=0) > 0.01 * power.sum(axis=0))  # reaches 3 Hz


def test_chirps_are_band_limited_and_the_joints_sweep_out_of_phase(robots):
    robot = robots["go2"]
    t, targets = excitation_targets(robot, "chirp", duration_s=60.0)
    deviation = targets - robot.default_joint_pos
    power = np.abs(np.fft.rfft(deviation, axis=0)) ** 2
    freq = np.fft.rfftfreq(t.size, t[1] - t[0])
    in_band = (freq >= 0.15) & (freq <= 2.05)
    assert np.all(power[in_band].sum(axis=0) > 0.9 * power.sum(axis=0))
    correlation = np.corrcoef(deviation.T)
    np.fill_diagonal(correlation, 0.0)
    assert np.abs(correlation).max() < 0.5
    # at any time the joints sit at many different frequencies (short-time spectra)
    window = 200
    for start in range(100, t.size - window - 100, 400):
        segment = deviation[start : start + window] * np.hanning(window)[:, None]
        spectrum = np.abs(np.fft.rfft(segment, n=2048, axis=0))
        dominant = np.fft.rfftfreq(2048, t[1] - t[0])[spectrum.argmax(axis=0)]
        assert np.unique(np.round(dominant, 1)).size >= robot.num_joints // 2


@pytest.mark.parametrize("signal", SIGNALS)
def test_targets_are_reproducible_from_the_seed(robots, signal):
    robot = robots["go2"]
    t, first = excitation_targets(robot, signal, duration_s=20.0, seed=3)
    _, again = excitation_targets(robot, signal, duration_s=20.0, seed=3)
    _, other = excitation_targets(robot, signal, duration_s=20.0, seed=4)
    np.testing.assert_array_equal(first, again)
    assert np.abs(first - other).max() > 0.05


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"signal": "square"}, r"signal: unknown signal 'square'; known: multisine, chirp"),
        ({"duration_s": 0.0}, r"duration_s must be a finite number > 0, got 0.0"),
        ({"duration_s": -5.0}, r"duration_s must be"),
        ({"rate_hz": 0.0}, r"rate_hz must be a finite number > 0"),
        ({"rate_hz": float("nan")}, r"rate_hz must be"),
        ({"amplitude": 0.0}, r"amplitude must be in \(0, 1\], got 0.0"),
        ({"amplitude": 1.5}, r"amplitude must be in \(0, 1\]"),
        ({"amplitude": -0.1}, r"amplitude must be"),
        ({"f_min_hz": 0.0}, r"f_min_hz must be"),
        ({"f_max_hz": 0.1}, r"f_max_hz must be > f_min_hz"),
        ({"f_max_hz": 30.0}, r"f_max_hz must be below rate_hz / 2 \(25\)"),
        ({"duration_s": 0.02}, r"duration_s 0.02 holds fewer than 3 samples"),
    ],
)
def test_target_errors_name_the_argument(robots, kwargs, match):
    with pytest.raises(ValueError, match=match):
        excitation_targets(robots["panda"], **kwargs)


# ---------------------------------------------------------------------------- the run


def check_run(log: RobotLog, robot, t, targets, duration_s, standup_s=1.0):
    """What every excitation log must satisfy; returns the RUNNING span's mask of states."""
    ticks = int(round((standup_s + duration_s) / 0.02)) + 1
    num = robot.num_joints
    assert log.joint_names == robot.joint_names
    assert log.t.shape == (ticks * 10 + 1,) and log.q.shape == log.qd.shape == (log.t.size, num)
    assert log.effort is not None and log.effort.shape == log.q.shape
    np.testing.assert_allclose(np.diff(log.t), 0.002, atol=1e-9)  # every physics step
    assert log.t[0] == 0.0 and log.command_t[0] == 0.0  # the soft start is in the log
    assert log.command_t.shape == (ticks,) and log.targets.shape == (ticks, num)
    np.testing.assert_allclose(np.diff(log.command_t), 0.02, atol=1e-9)
    np.testing.assert_array_equal(log.command_kp, np.broadcast_to(robot.kp, (ticks, num)))
    np.testing.assert_array_equal(log.command_kd, np.broadcast_to(robot.kd, (ticks, num)))
    # commands never leave the limits (with the safety chain's margin)
    margin = SafetyConfig().position_margin_rad
    lower, upper = robot.joint_limits.T
    assert np.all((log.targets >= lower + margin) & (log.targets <= upper - margin))
    # the soft start holds the default pose (the robot starts there, read with noise)
    start = log.command_t < standup_s
    assert np.abs(log.targets[start] - robot.default_joint_pos).max() < 3e-3
    running = log.command_t >= standup_s + SafetyConfig().fade_s
    desired = np.stack(
        [np.interp(log.command_t[running] - standup_s, t, column) for column in targets.T], 1
    )
    changed = np.any(np.abs(log.targets[running] - desired) > 1e-9, axis=1)
    # the torque bound assumes the nominal Kp; panda-hidden's wrist is 30 % weaker, so its
    # larger tracking errors get some commands clipped (TORQUE_WINDOW_FRACTION explains)
    assert changed.mean() < 0.35
    # the joints follow the commands (behind them: PD lag and the 10 ms command delay)
    sent = np.stack([np.interp(log.t, log.command_t, c) for c in log.targets.T], axis=1)
    error = log.q - sent
    motion = sent - robot.default_joint_pos
    assert np.all(np.sqrt((error**2).mean(0)) < np.sqrt((motion**2).mean(0)))
    assert np.abs(error).max() < 0.25
    for j in range(robot.num_joints):
        assert np.corrcoef(log.q[:, j], sent[:, j])[0, 1] > 0.6, robot.joint_names[j]
    # and move: velocities away from zero most of the time while the excitation runs
    exciting = (log.t > standup_s + 2.0) & (log.t < standup_s + duration_s - 1.5)
    assert np.all(np.mean(np.abs(log.qd[exciting]) > 0.02, axis=0) > 0.8)


def test_panda_excitation_runs_through_the_safety_controller(robots):
    robot = robots["panda"]
    t, targets = excitation_targets(robot, duration_s=10.0)
    log = run_excitation(load_profile("panda-hidden"), t, targets)
    check_run(log, robot, t, targets, 10.0)


def test_go2_on_a_stand_excitation_runs_through_the_safety_controller(robots):
    robot = robots["go2"]
    t, targets = excitation_targets(robot, "chirp", duration_s=6.0)
    log = run_excitation(load_profile("go2-stand-hidden"), t, targets)
    check_run(log, robot, t, targets, 6.0)


def test_log_rate_and_control_period(robots):
    robot = robots["panda"]
    t, targets = excitation_targets(robot, duration_s=3.0)
    log = run_excitation(
        load_profile("panda-hidden"), t, targets, control_period_s=0.01, log_rate_hz=100.0,
        standup_s=0.5,
    )  # fmt: skip
    np.testing.assert_allclose(np.diff(log.t), 0.01, atol=1e-9)
    np.testing.assert_allclose(np.diff(log.command_t), 0.01, atol=1e-9)
    assert log.command_t[-1] == pytest.approx(3.5) and log.t[-1] == pytest.approx(3.51)


def test_a_free_standing_floating_base_must_go_on_a_stand(robots):
    t, targets = excitation_targets(robots["go2"], duration_s=2.0)
    with pytest.raises(ValueError, match=r"put it on a stand: profile `stand: true`"):
        run_excitation(load_profile("go2-hidden"), t, targets)


def test_damping_stops_the_run_with_the_reason(robots):
    t, targets = excitation_targets(robots["panda"], duration_s=2.0)
    broken = RobotProfile("panda", noise=SensorNoise(joint_vel_std=10.0))  # implausible readings
    with pytest.raises(RuntimeError, match=r"DAMPING: joint velocity out of physical range"):
        run_excitation(broken, t, targets)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"targets": np.zeros((5, 7))}, r"targets must be finite with shape \(101, 7\)"),
        ({"t": np.zeros(101)}, r"t must be \(M,\) finite and increasing"),
        ({"control_period_s": 0.015}, r"control_period_s must be a whole number of physics"),
        ({"control_period_s": 0.0}, r"control_period_s must be a finite number > 0"),
        ({"log_rate_hz": -1.0}, r"log_rate_hz must be a finite number > 0"),
        ({"standup_s": -1.0}, r"standup_s must be >= 0"),
    ],
)
def test_run_errors_name_the_argument(robots, kwargs, match):
    t, targets = excitation_targets(robots["panda"], duration_s=2.0)
    arguments = {"t": t, "targets": targets, **kwargs}
    with pytest.raises(ValueError, match=match):
        run_excitation(load_profile("panda-hidden"), **arguments)
