"""Excitation for system identification: joint targets that make every joint move, and a run.

``excitation_targets`` builds per-joint position targets around the default pose;
``run_excitation`` plays them on the HIL simulated robot (``SimRobot``) through the deploy
safety core (``SafetyController``: checks, soft start, target bounds), exactly as a policy's
targets would be, and records the ``RobotLog`` that identification reads. On a real robot
the same targets go through the same controller (``sim2real sysid excite``).

What the identification needs, and how the targets give it:

- **Every joint, richly.** Kp/Kd scales, damping, armature, friction loss and the command
  delay are told apart only by motion with velocities away from zero most of the time,
  accelerations, and a broad band. Every joint moves at once (a run of ≤ 60 s covers all
  of them), each with its own frequencies so that one joint's response is not mistaken
  for another's (the multi-sine's lines are disjoint per joint; the chirps sweep out of
  phase).
- **Multi-sine** (default): lines on a grid of spacing ``1 / duration`` (orthogonal over the
  record; finer when the band would leave a joint fewer than ``MIN_LINES_PER_JOINT``) from
  ``f_min_hz`` to ``f_max_hz``, dealt to the joints in turn (line ``i`` to joint
  ``perm[i mod J]``, ``perm`` a seeded permutation), so every joint spans the whole band.
  Line amplitudes fall as ``f ** -SPECTRAL_SLOPE``: between flat position (acceleration
  dominated by the top lines) and flat velocity (all motion slow); phases are Schroeder's
  (low crest factor: large motion for the peak allowed), plus a seeded offset per joint.
- **Chirp**: per joint, a logarithmic sweep ``f_min_hz → f_max_hz → f_min_hz`` (one period
  about ``CHIRP_PERIOD_S``), joint ``j`` shifted by ``j / J`` of a period (plus a seeded
  offset), so at any time the joints sit at different frequencies; amplitude
  ``∝ f ** -SPECTRAL_SLOPE`` as for the multi-sine. A sweep that goes up must come down:
  two joints on opposite slopes meet at one frequency for a moment, so chirps correlate
  more across joints than the multi-sine (about 0.3-0.4 against 0.01 over 60 s); the
  multi-sine is the default for that reason.
- **Short records.** Below ``MIN_LINES_PER_JOINT × J / (f_max_hz - f_min_hz)`` seconds (20 s
  for a Go2 at the default band) the multi-sine's lines are closer than ``1 / duration``
  and joints correlate over the record; use 60 s for identification.
- **Inside the limits, gently.** A joint's peak deviation from the default pose is
  ``amplitude`` × the smaller distance to either of its limits less ``LIMIT_MARGIN_RAD``
  (the safety chain's 0.05 rad margin plus room for the velocity-aware bound). It is then
  lowered where needed so that the targets' speed stays within
  ``MAX_VELOCITY_FRACTION`` × the joint's velocity limit (the rate limit never binds) and
  the targets travel less than ``TORQUE_WINDOW_FRACTION`` of the torque bound's half-width
  ``effort / Kp`` in ``TORQUE_LEAD_S`` (on a stiff arm the torque bound, evaluated
  against a measured state a control period and the delays behind, binds first). The
  signal fades in and out over ``FADE_S`` (raised cosine), so it starts and ends at the
  default pose, at rest.

``run_excitation`` decisions:

- **The deploy path, unchanged.** ``SafetyController`` with ``RobotLimits`` from the
  robot's nominal model (what deploy believes) and ``SafetyConfig(use_imu=robot has one,
  standup_s=...)``: the soft start ramps to the default pose over ``standup_s``, then fades
  the excitation in over ``SafetyConfig.fade_s`` (redundant with the signal's own fade,
  harmless); the excitation's time 0 is the end of the ramp, when the controller first
  reads the targets. One controller tick per control period, the physics in between.
- **Floating bases go on a stand.** A free-standing Go2 would walk off (or fall) under
  joint sweeps; a floating-base robot must have ``stand: true`` in its profile (the base is
  fixed in the air, legs free). The stand's IMU is upright and still and is read as
  deploy reads it (``use_imu``: the tilt check stays on).
- **One reading, one time.** At a step that is both a log sample and a control tick, the
  controller gets the very sample that is logged (noise included), as a robot driver
  publishes one message per time.
- **Commands are logged as sent**: the filtered targets and the gains, stamped with the
  time they were handed to the robot (the command latency is hidden in the robot, for
  identification to find). How often the filters changed the excitation's targets is
  logged (``logging``, INFO).
"""

from __future__ import annotations

import logging
import math
import numbers

import numpy as np

from sim2real.deploy.controller import SafetyController
from sim2real.deploy.hil.profile import RobotProfile
from sim2real.deploy.hil.sim_robot import SimRobot
from sim2real.deploy.limits import RobotLimits
from sim2real.deploy.robot_state import ImuReading, JointState, RobotState
from sim2real.deploy.safety import SafetyConfig
from sim2real.deploy.state_machine import State
from sim2real.sim.robot import RobotModel
from sim2real.sysid.robot_log import RobotLog

logger = logging.getLogger(__name__)

SIGNALS = ("multisine", "chirp")
#: Kept clear of each joint limit before ``amplitude`` applies, rad: the safety chain's
#: ``position_margin_rad`` (0.05) plus 0.05 rad for the velocity-aware bound.
LIMIT_MARGIN_RAD = 0.1
#: Raised-cosine fade in and out, s (at most a quarter of the duration).
FADE_S = 1.0
#: Line amplitude ∝ f ** -SPECTRAL_SLOPE (0: flat position spectrum, 1: flat velocity).
SPECTRAL_SLOPE = 0.5
#: Fewest multi-sine lines per joint; the grid is refined below ``1 / duration`` for it.
MIN_LINES_PER_JOINT = 3
#: Chirp: the period of one up-and-down sweep, s (the active span holds whole periods).
CHIRP_PERIOD_S = 20.0
#: Peak target speed, as a fraction of the joint's velocity limit.
MAX_VELOCITY_FRACTION = 0.5
#: The targets' travel in ``TORQUE_LEAD_S`` stays within this fraction of the torque
#: bound's half-width ``effort_limit / kp``. The bound uses the NOMINAL Kp: on a robot whose
#: true Kp is 30 % lower (panda-hidden's wrist) the tracking error, and so the torque the
#: bound computes, is larger: at 0.4 no command was clipped, at 0.8 9 % of that robot's
#: were (the log records the filtered targets, so identification is unaffected). 0.8:
#: joint damping is identified from the velocities, and at 0.4 the Panda's were too slow
#: for 10 % (95 % intervals of 9-19 % against 5-9 % at 0.8, from 60 s).
TORQUE_WINDOW_FRACTION = 0.8
#: How far, s, a new target runs ahead of the measured state it is checked against: about
#: one control period (50 Hz) plus the command and sensor delays.
TORQUE_LEAD_S = 0.03


def excitation_targets(
    robot: RobotModel,
    signal: str = "multisine",
    duration_s: float = 60.0,
    rate_hz: float = 50.0,
    amplitude: float = 0.3,
    f_min_hz: float = 0.2,
    f_max_hz: float = 2.0,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-joint excitation targets around the default pose (see the module docstring).

    Args:
        robot: the robot's nominal facts (limits, velocity and effort limits, Kp, default
            pose), e.g. ``SimRobot(profile).robot`` or ``RobotModel.from_mujoco``.
        signal: one of ``SIGNALS``: ``"multisine"`` or ``"chirp"``.
        duration_s: length of the excitation, s (fades included).
        rate_hz: sample rate of the targets, Hz (the control rate is a good choice).
        amplitude: peak deviation as a fraction, in (0, 1], of each joint's smaller
            distance to a limit after ``LIMIT_MARGIN_RAD`` (then lowered where the speed
            caps require).
        f_min_hz: lowest excitation frequency, Hz (> 0).
        f_max_hz: highest excitation frequency, Hz (> f_min_hz, below rate_hz / 2).
        seed: seeds the joints' line assignment and phase offsets; same seed, same targets.

    Returns:
        ``(t, targets)``: ``t`` (M,) s from 0 to about ``duration_s`` at ``rate_hz``;
        ``targets`` (M, J) rad in the robot's actuator order, equal to the default pose at
        both ends.

    Raises:
        ValueError: naming the argument: an unknown signal, ``duration_s``, ``rate_hz`` or
            a frequency ≤ 0, ``f_max_hz`` ≤ ``f_min_hz`` or at or above the Nyquist
            frequency, ``amplitude`` outside (0, 1], a default pose within
            ``LIMIT_MARGIN_RAD`` of a limit.
    """
    if signal not in SIGNALS:
        raise ValueError(f"signal: unknown signal {signal!r}; known: {', '.join(SIGNALS)}")
    _positive(duration_s, "duration_s")
    _positive(rate_hz, "rate_hz")
    _positive(f_min_hz, "f_min_hz")
    if not (isinstance(amplitude, numbers.Real) and 0.0 < amplitude <= 1.0):
        raise ValueError(f"amplitude must be in (0, 1], got {amplitude}")
    if not (isinstance(f_max_hz, numbers.Real) and f_min_hz < f_max_hz < math.inf):
        raise ValueError(f"f_max_hz must be > f_min_hz ({f_min_hz}), got {f_max_hz}")
    if f_max_hz >= rate_hz / 2:
        raise ValueError(f"f_max_hz must be below rate_hz / 2 ({rate_hz / 2:g}), got {f_max_hz}")
    samples = int(round(duration_s * rate_hz)) + 1
    if samples < 3:
        raise ValueError(f"duration_s {duration_s} holds fewer than 3 samples at {rate_hz} Hz")
    t = np.arange(samples) / rate_hz
    rng = np.random.default_rng(seed)
    shape = _multisine if signal == "multisine" else _chirp
    raw = shape(t, robot.num_joints, f_min_hz, f_max_hz, rng)  # (M, J), peak |raw| = 1
    deviation = raw * _fade(t)[:, None]

    q0 = robot.default_joint_pos
    lower, upper = robot.joint_limits.T
    room = np.minimum(q0 - lower, upper - q0) - LIMIT_MARGIN_RAD
    if np.any(room <= 0):
        names = [robot.joint_names[j] for j in np.flatnonzero(room <= 0)]
        raise ValueError(
            f"robot: the default pose of {names} is within {LIMIT_MARGIN_RAD} rad of a limit"
        )
    peak = amplitude * room
    # speed caps (the targets' largest change per sample, per unit peak, times the rate)
    speed = np.abs(np.diff(deviation, axis=0)).max(axis=0) * rate_hz  # (J,) per rad of peak
    max_speed = np.minimum(
        MAX_VELOCITY_FRACTION * robot.velocity_limits,
        TORQUE_WINDOW_FRACTION * robot.effort_limits / robot.kp / TORQUE_LEAD_S,
    )
    peak = np.minimum(peak, max_speed / np.maximum(speed, 1e-12))
    return t, q0 + deviation * peak


def _positive(value: float, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def _fade(t: np.ndarray) -> np.ndarray:
    """(M,) raised-cosine fade in and out over ``FADE_S`` (≤ a quarter of the span); 0 at ends."""
    span = t[-1] - t[0]
    fade = min(FADE_S, span / 4)
    rise = np.clip((t - t[0]) / fade, 0.0, 1.0)
    fall = np.clip((t[-1] - t) / fade, 0.0, 1.0)
    return 0.5 * (1 - np.cos(np.pi * np.minimum(rise, fall)))


def _normalized(raw: np.ndarray) -> np.ndarray:
    """Each column scaled to peak |value| 1."""
    return raw / np.abs(raw).max(axis=0)


def _multisine(
    t: np.ndarray, joints: int, f_min: float, f_max: float, rng: np.random.Generator
) -> np.ndarray:
    """(M, J) multi-sines with disjoint interleaved lines and Schroeder phases, peak 1."""
    span = t[-1] - t[0]
    lines = int(math.floor((f_max - f_min) * span + 1e-9)) + 1  # spacing 1 / span
    lines = max(lines, joints * MIN_LINES_PER_JOINT)
    freqs = np.linspace(f_min, f_max, lines)
    owner = rng.permutation(joints)[np.arange(lines) % joints]
    offsets = rng.uniform(0, 2 * np.pi, joints)
    out = np.empty((t.size, joints))
    for j in range(joints):
        f = freqs[owner == j]  # equally spaced: Schroeder's formula in line index applies
        a = f**-SPECTRAL_SLOPE
        power = a**2 / np.sum(a**2)
        k = np.arange(f.size)
        # phi_k = -2 pi sum_{l<k} (k - l) p_l: a sweep through the lines over one period
        phase = np.array([-2 * np.pi * np.sum((n - k[:n]) * power[:n]) for n in k])
        phase += offsets[j]
        out[:, j] = np.cos(2 * np.pi * np.outer(t, f) + phase) @ a
    return _normalized(out)


def _chirp(
    t: np.ndarray, joints: int, f_min: float, f_max: float, rng: np.random.Generator
) -> np.ndarray:
    """(M, J) log sweeps up and down, joint j shifted by j / J of a period, peak 1."""
    span = t[-1] - t[0]
    active = max(span - 2 * min(FADE_S, span / 4), span / 2)
    period = active / max(1, round(active / CHIRP_PERIOD_S))
    shift = (np.arange(joints) + rng.uniform(0, 1)) / joints
    u = np.mod((t[:, None] - t[0]) / period + shift[None, :], 1.0)  # sweep phase in [0, 1)
    tri = 1 - np.abs(2 * u - 1)  # 0 -> 1 -> 0 over a period
    freq = f_min * (f_max / f_min) ** tri  # (M, J), Hz
    dt = np.diff(t)[:, None]
    theta = np.concatenate(
        [np.zeros((1, joints)), np.cumsum(np.pi * (freq[1:] + freq[:-1]) * dt, 0)]
    )
    theta += rng.uniform(0, 2 * np.pi, joints)
    return _normalized(freq**-SPECTRAL_SLOPE * np.sin(theta))


def run_excitation(
    profile: RobotProfile,
    t: np.ndarray,
    targets: np.ndarray,
    control_period_s: float = 0.02,
    log_rate_hz: float | None = None,
    standup_s: float = 1.0,
) -> RobotLog:
    """Play excitation targets on ``SimRobot(profile)`` through the deploy safety controller.

    The controller is activated at time 0 (soft start: ``standup_s`` ramp to the default
    pose, then the targets faded in over ``SafetyConfig.fade_s``; excitation time
    ``t[0]`` is the end of the ramp) and ticks once per control period until the last
    target, with the targets (linearly interpolated at each tick) as the policy targets.

    Args:
        profile: the simulated robot; a floating base must be on a stand (``stand: true``).
        t: (M,) increasing times of the targets, s.
        targets: (M, J) joint targets, rad, actuator order (``excitation_targets``).
        control_period_s: seconds between controller ticks; a whole number of physics steps.
        log_rate_hz: joint-state log rate, Hz; None: every physics step.
        standup_s: the soft start's ramp, s (≥ 0).

    Returns:
        The log: joint samples (``SimRobot.joint_sample``: noisy, sensor latency, effort)
        from time 0, the soft start included, and every command sent (time it was handed to
        the robot, filtered targets, kp, kd).

    Raises:
        ValueError: a floating base not on a stand, or an argument of the wrong shape or
            value (named).
        RuntimeError: the controller went to DAMPING (the message gives its reason).
    """
    sim = SimRobot(profile)
    robot = sim.robot
    if robot.floating_base:
        raise ValueError(
            f"profile: robot {profile.robot!r} has a floating base: put it on a stand: "
            f"profile `stand: true`"
        )
    t = np.asarray(t, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.float64)
    if t.ndim != 1 or t.size < 2 or np.any(np.diff(t) <= 0) or not np.all(np.isfinite(t)):
        raise ValueError(f"t must be (M,) finite and increasing with M >= 2, got shape {t.shape}")
    if targets.shape != (t.size, robot.num_joints) or not np.all(np.isfinite(targets)):
        raise ValueError(
            f"targets must be finite with shape ({t.size}, {robot.num_joints}), got {targets.shape}"
        )
    _positive(control_period_s, "control_period_s")
    if log_rate_hz is not None:
        _positive(log_rate_hz, "log_rate_hz")
    if not (math.isfinite(standup_s) and standup_s >= 0):
        raise ValueError(f"standup_s must be >= 0, got {standup_s}")
    dt = sim.physics_dt
    substeps = int(round(control_period_s / dt))
    if substeps < 1 or abs(substeps * dt - control_period_s) > 1e-9:
        raise ValueError(
            f"control_period_s must be a whole number of physics steps ({dt:g} s), "
            f"got {control_period_s}"
        )
    log_every = 1 if log_rate_hz is None else max(1, int(round(1.0 / (log_rate_hz * dt))))

    limits = RobotLimits.from_robot_model(robot, control_period_s)
    controller = SafetyController(limits, SafetyConfig(use_imu=sim.has_imu, standup_s=standup_s))
    ticks = int(math.ceil((standup_s + t[-1] - t[0]) / control_period_s - 1e-9)) + 1
    tick_time = np.arange(ticks) * control_period_s
    desired = np.stack(
        [np.interp(tick_time - standup_s + t[0], t, column) for column in targets.T], axis=1
    )

    num, names = robot.num_joints, robot.joint_names
    rows = ticks * substeps // log_every + 1
    log_t, log_q = np.empty(rows), np.empty((rows, num))
    log_qd, log_effort = np.empty((rows, num)), np.empty((rows, num))
    command_t, sent = np.empty(ticks), np.empty((ticks, num))
    command_kp, command_kd = np.empty((ticks, num)), np.empty((ticks, num))
    running = np.zeros(ticks, dtype=bool)
    row = 0

    def record():
        nonlocal row
        sample = sim.joint_sample()
        log_t[row], log_q[row], log_qd[row] = sample.stamp, sample.position, sample.velocity
        log_effort[row] = sample.effort
        row += 1
        return sample

    sample = record()
    step = 0
    for k in range(ticks):
        now = sim.time
        if step % log_every:  # not a log step: read the joints anew
            sample = sim.joint_sample()
        imu = sim.imu_sample()
        state = RobotState(
            JointState(names, sample.position, sample.velocity, sample.stamp, sample.effort),
            None if imu is None else ImuReading(imu.quat, imu.ang_vel, imu.stamp, imu.lin_acc),
        )
        if k == 0:
            controller.activate(now)
        running[k] = controller.state is State.RUNNING
        command = controller.tick(now, state, desired[k])
        if controller.state is State.DAMPING:
            reason = controller.transitions[-1].reason
            raise RuntimeError(f"excitation stopped at {now:.3f} s: DAMPING: {reason}")
        sim.command(command.targets, command.kp, command.kd)
        command_t[k], sent[k] = now, command.targets
        command_kp[k], command_kd[k] = command.kp, command.kd
        for _ in range(substeps):
            sim.step()
            step += 1
            if step % log_every == 0:
                sample = record()

    changed = np.any(np.abs(sent - desired) > 1e-9, axis=1) & running
    logger.info(
        "excitation of %s: %d commands, %.1f %% of the %d RUNNING ones changed by the filters",
        profile.robot, ticks, 100 * changed.sum() / max(running.sum(), 1), running.sum(),
    )  # fmt: skip
    return RobotLog(
        joint_names=names,
        t=log_t[:row],
        q=log_q[:row],
        qd=log_qd[:row],
        effort=log_effort[:row],
        command_t=command_t,
        targets=sent,
        command_kp=command_kp,
        command_kd=command_kd,
    )
