"""The safety-filter chain: small stages, each with one method, composed by ``SafetyChain``.

Two kinds of stages run every tick (``deploy/README.md`` explains the order):

- **checks** turn the raw robot state into a ``Measurement`` or raise ``Fault``, which
  the controller answers with DAMPING: ``InputValidation``, ``Watchdog``,
  ``TiltDetection``;
- **target bounds** each allow the joint targets an interval per joint,
  ``bounds(m, reference) -> (low, high)``. ``SafetyChain.filter`` clips the desired
  targets into the intervals lowest priority first, so a later (higher-priority) stage
  wins where two intervals do not meet: ``RateLimit`` < ``VelocityAwareLimit`` <
  ``TorqueBound`` < ``PositionLimit``. Clipping into intervals one after another gives
  exactly this: the result lies in the highest-priority interval, and in the
  intersection of the k highest-priority intervals whenever that intersection is not
  empty.

All arrays are (J,) in policy joint order unless noted.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass

import numpy as np

from sim2real.deploy.limits import RobotLimits
from sim2real.deploy.robot_state import (
    Fault,
    ImuReading,
    Measurement,
    RobotState,
    as_vector,
    to_policy_order,
)
from sim2real.sim.observations import projected_gravity


@dataclass(frozen=True)
class SafetyConfig:
    """Parameters of the safety chain and the soft start; the defaults are the deploy defaults."""

    position_margin_rad: float = 0.05
    """Targets stay this far inside the joint position limits."""
    position_tolerance_rad: float = 0.1
    """A measured position further than this outside its limits is not plausible: fault."""
    velocity_tolerance: float = 1.5
    """A measured |velocity| above this × the joint's velocity limit is not plausible: fault."""
    max_joint_state_age_s: float = 0.05
    """Joint states older than this (or this far in the future) are stale: fault."""
    use_imu: bool = True
    """The robot has an IMU that must be fresh and valid (False for a fixed-base arm)."""
    max_imu_age_s: float = 0.05
    """IMU samples older than this (or this far in the future) are stale: fault."""
    max_imu_ang_vel_rad_s: float = 30.0
    """A measured |angular velocity| component above this is not plausible: fault."""
    quat_norm_tolerance: float = 0.1
    """An IMU quaternion whose norm is further than this from 1 is not plausible: fault."""
    max_tilt_rad: float | None = 1.0
    """Base tilt from upright beyond this is a fall: fault. Below the sim's ``bad_orientation``
    termination (1.2 rad), beyond which the policy never acted. ``None``: no tilt check."""
    velocity_horizon_s: float = 0.02
    """The velocity-aware limit keeps targets ``|q̇| × this`` inside the limit approached."""
    rate_limit_rad_s: float | None = None
    """Largest target change per second; the per-tick bound is this × the control period.
    ``None``: each joint's velocity limit."""
    standup_s: float = 2.0
    """Soft start: seconds of the ramp from the measured pose to the default pose."""
    fade_s: float = 1.0
    """Soft start: seconds over which the policy's targets are then faded in."""
    damping_kd_scale: float = 1.0
    """DAMPING's derivative gains are this × the nominal ``kd``."""

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is None or isinstance(value, bool):
                continue
            if not (isinstance(value, numbers.Real) and math.isfinite(value) and value >= 0):
                raise ValueError(f"SafetyConfig.{field.name} must be a number >= 0, got {value!r}")


class InputValidation:
    """Check: the robot state is complete, finite and physically plausible.

    Joints are matched by name (missing ones are named); positions must lie within the
    limits ± ``position_tolerance_rad``, |velocities| within ``velocity_tolerance`` × the
    velocity limits; measured efforts, where given, must be finite; stamps must be finite;
    with ``use_imu`` the IMU sample must be there, finite, its quaternion of norm
    1 ± ``quat_norm_tolerance`` (it is then normalized) and its angular velocity within
    ``max_imu_ang_vel_rad_s``; a task command must be finite.
    """

    def __init__(self, limits: RobotLimits, config: SafetyConfig):
        self.names = limits.joint_names
        self.low = limits.lower - config.position_tolerance_rad
        self.high = limits.upper + config.position_tolerance_rad
        self.max_vel = limits.velocity_limits * config.velocity_tolerance
        self.min_vel = -self.max_vel
        self.config = config

    def validate(self, state: RobotState) -> Measurement:
        """The measurement in policy order; raises ``Fault`` naming what is wrong."""
        q, qd = to_policy_order(state.joints, self.names)
        in_range = (q >= self.low) & (q <= self.high) & (qd >= self.min_vel) & (qd <= self.max_vel)
        if not in_range.all():  # in range implies finite; else find what is wrong, and name it
            _require_finite(q, "joint positions", self.names)
            _require_finite(qd, "joint velocities", self.names)
            self._require_in_range(q, self.low, self.high, "position")
            self._require_in_range(qd, self.min_vel, self.max_vel, "velocity")
        effort = state.joints.effort
        if effort is not None and np.size(effort):
            effort = np.asarray(effort, dtype=np.float64)
            names = tuple(state.joints.names)
            _require_finite(effort, "joint efforts", names if len(names) == effort.size else None)
        fields = {"joint_pos": q, "joint_vel": qd}
        fields["joint_stamp"] = _stamp(state.joints.stamp, "joint state")
        if self.config.use_imu:
            fields.update(self._imu_fields(state.imu))
        if state.command is not None:
            fields["command"] = as_vector(state.command, None, "command")
            _require_finite(fields["command"], "command")
        return Measurement(**fields)

    def _require_in_range(self, values, low, high, what) -> None:
        ok = (values >= low) & (values <= high)
        if not ok.all():
            bad = {
                self.names[j]: f"{values[j]:.4g} not in [{low[j]:.4g}, {high[j]:.4g}]"
                for j in np.flatnonzero(~ok)
            }
            raise Fault(f"joint {what} out of physical range: {bad}")

    def _imu_fields(self, imu: ImuReading | None) -> dict:
        if imu is None:
            raise Fault("no IMU reading")
        quat = as_vector(imu.quat, 4, "IMU quaternion")
        ang_vel = as_vector(imu.ang_vel, 3, "IMU angular velocity")
        _require_finite(quat, "IMU quaternion")
        _require_finite(ang_vel, "IMU angular velocity")
        norm = math.sqrt(quat @ quat)
        if abs(norm - 1.0) > self.config.quat_norm_tolerance:
            raise Fault(f"IMU quaternion has norm {norm:.4g}, not 1")
        limit = self.config.max_imu_ang_vel_rad_s
        if (np.abs(ang_vel) > limit).any():
            raise Fault(f"IMU angular velocity {ang_vel} beyond ±{limit} rad/s")
        lin_acc = None
        if imu.lin_acc is not None:
            lin_acc = as_vector(imu.lin_acc, 3, "IMU linear acceleration")
            _require_finite(lin_acc, "IMU linear acceleration")
        return {
            "imu_quat": quat / norm,
            "imu_ang_vel": ang_vel,
            "imu_lin_acc": lin_acc,
            "imu_stamp": _stamp(imu.stamp, "IMU"),
        }


class Watchdog:
    """Check: the joint state (and the IMU sample, with ``use_imu``) is fresh.

    A reading is fresh when ``|now − stamp| ≤`` its maximum age: older is stale, and a
    stamp that far in the future means the clocks disagree.
    """

    def __init__(self, config: SafetyConfig):
        self.config = config

    def check(self, now: float, m: Measurement) -> None:
        """Raise ``Fault`` if a reading is stale."""
        _require_fresh(now, m.joint_stamp, self.config.max_joint_state_age_s, "joint state")
        if m.imu_stamp is not None:
            _require_fresh(now, m.imu_stamp, self.config.max_imu_age_s, "IMU")


class TiltDetection:
    """Check: the base is tilted at most ``max_tilt_rad`` from upright (a fall otherwise).

    The tilt is the angle between the base's z axis and the world's, from the projected
    gravity observation term (``sim2real.sim.observations``, the same code as training).
    """

    def __init__(self, max_tilt_rad: float):
        self.max_tilt_rad = max_tilt_rad

    def check(self, now: float, m: Measurement) -> None:
        """Raise ``Fault`` if the base is tilted too far."""
        gravity = projected_gravity({"imu_quat": m.imu_quat[None]})[0]
        tilt = math.acos(min(max(-float(gravity[2]), -1.0), 1.0))
        if tilt > self.max_tilt_rad:
            raise Fault(f"base tilted {tilt:.3f} rad > {self.max_tilt_rad} rad: fall")


class RateLimit:
    """Target bound: targets move at most ``rate × control period`` per tick.

    ``reference`` is the previous tick's sent targets (the controller passes the measured
    positions when the previous command was not a position command, e.g. the first tick).
    """

    def __init__(self, limits: RobotLimits, config: SafetyConfig):
        rate = config.rate_limit_rad_s
        rate = limits.velocity_limits if rate is None else np.full(limits.num_joints, rate)
        self.max_step = rate * limits.control_period

    def bounds(self, m: Measurement, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The interval ``reference ± max_step``."""
        return reference - self.max_step, reference + self.max_step


class PositionLimit:
    """Target bound, highest priority: the position limits shrunk by ``position_margin_rad``."""

    def __init__(self, limits: RobotLimits, config: SafetyConfig):
        self.low = limits.lower + config.position_margin_rad
        self.high = limits.upper - config.position_margin_rad
        narrow = self.low > self.high
        if np.any(narrow):
            names = [limits.joint_names[j] for j in np.flatnonzero(narrow)]
            raise ValueError(f"position margin wider than half the range of joints {names}")

    def bounds(self, m: Measurement, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The limits with margin (the same every tick)."""
        return self.low, self.high


class VelocityAwareLimit:
    """Target bound: aim short of the approached limit by the travel in ``velocity_horizon_s``.

    With the margin interval [low, high] of ``PositionLimit``, a joint moving up at q̇ > 0
    may be sent at most ``max(high − q̇·h, low)``, one moving down at least
    ``min(low − q̇·h, high)``; the side it moves away from keeps the margin limit. The
    bound never passes the opposite margin limit, so it is never empty.
    """

    def __init__(self, position_limit: PositionLimit, horizon_s: float):
        self.low, self.high = position_limit.low, position_limit.high
        self.horizon = horizon_s

    def bounds(self, m: Measurement, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The margin interval, shrunk on the side the joint approaches."""
        travel = m.joint_vel * self.horizon
        high = np.maximum(self.high - np.maximum(travel, 0.0), self.low)
        low = np.minimum(self.low - np.minimum(travel, 0.0), self.high)
        return low, high


class TorqueBound:
    """Target bound: the PD torque ``Kp (q* − q) − Kd q̇`` stays within the effort limit τ.

    Solving ``|Kp (q* − q) − Kd q̇| ≤ τ`` for q* gives the interval
    ``q + (Kd q̇ ± τ) / Kp``, evaluated at the measured q, q̇ of this tick.
    """

    def __init__(self, limits: RobotLimits):
        self.kp, self.kd, self.effort = limits.kp, limits.kd, limits.effort_limits

    def bounds(self, m: Measurement, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The targets whose PD torque is within the effort limits."""
        centre = m.joint_pos + self.kd * m.joint_vel / self.kp
        half_width = self.effort / self.kp
        return centre - half_width, centre + half_width


class SafetyChain:
    """The stages in order: checks first, then the target bounds, lowest priority first."""

    def __init__(self, limits: RobotLimits, config: SafetyConfig):
        self.validation = InputValidation(limits, config)
        self.checks: tuple[Watchdog | TiltDetection, ...] = (Watchdog(config),)
        if config.use_imu and config.max_tilt_rad is not None:
            self.checks += (TiltDetection(config.max_tilt_rad),)
        self.position_limit = PositionLimit(limits, config)
        self.target_bounds = (
            RateLimit(limits, config),
            VelocityAwareLimit(self.position_limit, config.velocity_horizon_s),
            TorqueBound(limits),
            self.position_limit,
        )

    def measure(self, now: float, state: RobotState) -> Measurement:
        """Validate the robot state and run the checks; raises ``Fault``."""
        measurement = self.validation.validate(state)
        for check in self.checks:
            check.check(now, measurement)
        return measurement

    def filter(self, m: Measurement, desired: np.ndarray, reference: np.ndarray) -> np.ndarray:
        """Clip finite desired targets into each stage's interval, lowest priority first."""
        target = desired
        for stage in self.target_bounds:
            low, high = stage.bounds(m, reference)
            target = np.minimum(np.maximum(target, low), high)  # np.clip, without its overhead
        if not np.isfinite(target).all():  # unreachable for validated inputs; never sent
            raise Fault(f"safety chain produced non-finite targets {target}")
        return target

    def clip_to_position_limits(self, positions: np.ndarray) -> np.ndarray:
        """``positions`` inside the limits with margin."""
        return np.minimum(np.maximum(positions, self.position_limit.low), self.position_limit.high)


def _require_finite(values: np.ndarray, what: str, names: tuple[str, ...] | None = None) -> None:
    finite = np.isfinite(values)
    if not finite.all():
        bad = ~finite
        where = np.flatnonzero(bad).tolist()
        raise Fault(f"{what} not finite at {where if names is None else [names[j] for j in where]}")


def _stamp(stamp: float, what: str) -> float:
    try:
        stamp = float(stamp)
    except (TypeError, ValueError):
        raise Fault(f"{what} stamp {stamp!r} is not a number") from None
    if not np.isfinite(stamp):
        raise Fault(f"{what} stamp is {stamp}")
    return stamp


def _require_fresh(now: float, stamp: float, max_age: float, what: str) -> None:
    age = now - stamp
    if age > max_age:
        raise Fault(f"{what} is stale: {age:.4g} s old > {max_age} s")
    if age < -max_age:
        raise Fault(f"{what} stamp is {-age:.4g} s in the future (clocks disagree)")
