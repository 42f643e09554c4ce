"""The motor model from logged efforts: Kp and Kd scale per joint, and the command delay.

A position-controlled joint's driver applies ``τ = s_p K_p (q*(t − d) − q) − s_d K_d q̇``
(``sim2real.sim.actuation``): ``K_p``, ``K_d`` the gains sent with each command (the
MJCF's when none are logged), ``s_p``, ``s_d`` the unknown scales (motor strength), ``d``
the unknown delay from a command's time in the log to its effect on the logged effort. For
a fixed ``d`` this is linear in ``(s_p, s_d)`` per joint, so each candidate delay (whole
grid steps up to ``max_delay_s``) is a small least-squares problem, and the delay is the
one with the smallest residual over all joints. The logged delay is everything between the
command's stamp and the joint state it shows in: transport, the driver's latency, and the
sensor path's latency (which delays the logged efforts and positions alike). A driver
logs, with each joint state, the torque it applies from then on: that torque shows a new
command one physics step before the motion can, so the command-to-motion delay is
``delay_steps + 1`` grid steps (``identify`` reports it so).

Noise in the logged positions and velocities would bias the scales low (errors in the
regressors), so the regressors and the efforts all pass through the same zero-phase
low-pass filter (``cutoff_hz``, well above the excitation band) before the fit: the
relation is linear, so filtering both sides keeps it exact while the white noise shrinks.

Samples where the gains are zero (DAMPING) are left out with the filter's support around
them; so are samples where the drive saturates (``|τ|`` within 2 % of the largest logged
value, when that plateau holds at least 1 % of the samples), or, where that would leave a
joint fewer than ``MIN_ERODED_SAMPLES`` (a drive that saturates often), those samples
alone. The least squares then trims outliers (saturation the plateau rule misses,
joint-limit contacts) and refits. Standard errors come from the residual variance of the final fit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import butter, sosfiltfilt

from sim2real.sysid.robot_log import AlignedLog

SATURATION_FRACTION = 0.98
PLATEAU_MIN_FRACTION = 0.01
#: Residuals beyond this many robust standard deviations are outliers, trimmed and refitted
#: up to ``OUTLIER_PASSES`` times (``_robust_least_squares``).
OUTLIER_SIGMAS = 6.0
OUTLIER_PASSES = 5
#: The samples a joint must keep with its saturated spans cut out whole (fewer: they are
#: dropped one by one, which biases the scales a little but beats no estimate).
MIN_ERODED_SAMPLES = 50


@dataclass(frozen=True)
class MotorFit:
    """Per-joint gain scales with standard errors, and the delay.

    Attributes:
        kp_scale, kd_scale: (J,) the scales; ``*_std``: their standard errors.
        delay_steps: the delay in grid steps; ``delay_s``: in s.
        residual_rms: (J,) rms of the torque residual at that delay, N·m.
        costs: (D + 1,) total squared residual per candidate delay (the delay search).
    """

    kp_scale: np.ndarray
    kp_scale_std: np.ndarray
    kd_scale: np.ndarray
    kd_scale_std: np.ndarray
    delay_steps: int
    delay_s: float
    residual_rms: np.ndarray
    costs: np.ndarray


def fit_motor(
    log: AlignedLog,
    kp: np.ndarray,
    kd: np.ndarray,
    max_delay_s: float = 0.05,
    cutoff_hz: float = 20.0,
) -> MotorFit:
    """Fit the motor model; see the module docstring.

    Args:
        log: the log on a regular grid, with efforts.
        kp: (J,) nominal proportional gains (where the log has no commanded gains).
        kd: (J,) nominal derivative gains (likewise).
        max_delay_s: the largest delay tried, s.
        cutoff_hz: the low-pass filter's cutoff, Hz.

    Raises:
        ValueError: the log has no efforts, or too few usable samples.
    """
    if log.effort is None:
        raise ValueError("the motor fit needs logged efforts (joint_states.effort)")
    n, joints = log.q.shape
    kp_cmd = np.broadcast_to(kp, (n, joints)) if log.command_kp is None else log.command_kp
    kd_cmd = np.broadcast_to(kd, (n, joints)) if log.command_kd is None else log.command_kd
    max_delay = int(round(max_delay_s / log.dt))
    if n <= max_delay + 10:
        raise ValueError(f"the log has {n} samples: too few for delays up to {max_delay_s} s")
    usable = unsaturated(log.effort)
    lowpass = LowPass(cutoff_hz, log.dt)
    fits = [_fit_at(log, kp_cmd, kd_cmd, usable, d, lowpass) for d in range(max_delay + 1)]
    costs = np.array([fit[0] for fit in fits])
    best = int(np.argmin(costs))
    _, scales, stds, rms = fits[best]
    return MotorFit(
        kp_scale=scales[:, 0],
        kp_scale_std=stds[:, 0],
        kd_scale=scales[:, 1],
        kd_scale_std=stds[:, 1],
        delay_steps=best,
        delay_s=best * log.dt,
        residual_rms=rms,
        costs=costs,
    )


class LowPass:
    """A zero-phase Butterworth low-pass (order 4) along axis 0, and its mask rule.

    Args:
        cutoff_hz: cutoff frequency, Hz (clipped below the Nyquist frequency).
        dt: sample period, s.
    """

    def __init__(self, cutoff_hz: float, dt: float):
        nyquist = 0.5 / dt
        self.sos = butter(4, min(cutoff_hz, 0.9 * nyquist) / nyquist, output="sos")
        self.support = max(1, int(round(2.0 / (cutoff_hz * dt))))  # ~2 periods of the cutoff

    def __call__(self, values: np.ndarray) -> np.ndarray:
        """``values`` (N, ...) filtered forward and backward."""
        return sosfiltfilt(self.sos, values, axis=0)

    def valid(self, mask: np.ndarray) -> np.ndarray:
        """(N, J) ``mask`` shrunk by the filter's support.

        A filtered sample near an excluded one mixes it in.
        """
        bad = ~mask
        kernel = np.ones(2 * self.support + 1)
        spread = np.stack([np.convolve(b, kernel, mode="same") for b in bad.T.astype(float)], 1)
        return spread == 0


def unsaturated(effort: np.ndarray) -> np.ndarray:
    """(N, J) mask of samples away from a saturation plateau."""
    magnitude = np.abs(effort)
    peak = magnitude.max(axis=0)
    near = magnitude >= SATURATION_FRACTION * peak
    plateau = near.mean(axis=0) >= PLATEAU_MIN_FRACTION
    return ~(near & plateau)


def _fit_at(log, kp_cmd, kd_cmd, usable, delay: int, lowpass: LowPass):
    """Least squares at one delay: (cost, scales (J, 2), standard errors (J, 2), rms (J,))."""
    n = log.q.shape[0]
    current = slice(delay, n)
    past = slice(0, n - delay)
    p_term = lowpass(kp_cmd[past] * (log.targets[past] - log.q[current]))
    d_term = lowpass(-kd_cmd[past] * log.qd[current])
    effort = lowpass(log.effort[current])
    # DAMPING spans and saturated samples are cut out with the filter's support; a joint
    # whose drive saturates so often that this leaves too little loses its saturated
    # samples one by one instead (the neighbours their filtered clamp error spills into
    # are then the robust fit's outliers)
    driven = lowpass.valid((kp_cmd[past] > 0) & (kd_cmd[past] > 0))
    eroded = driven & lowpass.valid(usable[current])
    sparse = eroded.sum(axis=0) < MIN_ERODED_SAMPLES
    mask = np.where(sparse, driven & usable[current], eroded)
    joints = log.q.shape[1]
    scales, stds, rms = np.zeros((joints, 2)), np.zeros((joints, 2)), np.zeros(joints)
    cost = 0.0
    for j in range(joints):
        rows = mask[:, j]
        if rows.sum() < 10:
            raise ValueError(f"joint {log.joint_names[j]}: too few unsaturated, driven samples")
        a = np.stack([p_term[rows, j], d_term[rows, j]], axis=1)
        b = effort[rows, j]
        solution, a, b, residual = _robust_least_squares(a, b)
        dof = max(1, len(b) - 2)
        variance = residual @ residual / dof
        covariance = variance * np.linalg.pinv(a.T @ a)
        scales[j], stds[j] = solution, np.sqrt(np.diag(covariance))
        rms[j] = np.sqrt(np.mean(residual**2))
        cost += float(residual @ residual) / max(float(b @ b), 1e-12)
    return cost, scales, stds, rms


def _robust_least_squares(a: np.ndarray, b: np.ndarray):
    """Least squares of ``a x = b`` with outlier rejection.

    Refitted up to ``OUTLIER_PASSES`` times without the rows whose residual exceeds
    ``OUTLIER_SIGMAS`` robust standard deviations (1.4826 × the median absolute residual).
    Saturated samples the plateau rule misses (a drive that hits its limit briefly) and
    joint-limit contacts break the motor model; a handful of them would bias the scales.

    Returns:
        the solution (2,), and the rows kept of ``a``, ``b`` and the residual.
    """
    for trims_left in range(OUTLIER_PASSES, -1, -1):
        solution, *_ = np.linalg.lstsq(a, b, rcond=None)
        residual = b - a @ solution
        if trims_left == 0:
            break
        sigma = 1.4826 * np.median(np.abs(residual)) + 1e-12
        inliers = np.abs(residual) <= OUTLIER_SIGMAS * sigma
        if inliers.all() or inliers.sum() < max(10, inliers.size // 2):
            break
        a, b = a[inliers], b[inliers]
    return solution, a, b, residual
