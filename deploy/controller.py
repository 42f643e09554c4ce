"""The safety controller: the one object the runtime calls every tick.

``SafetyController.tick(now, robot_state, policy_targets)`` runs the safety chain
(``deploy/safety.py``) and the state machine (``deploy/state_machine.py``) and returns the
``Command`` to send. It never raises for a bad input: every ``Fault`` becomes DAMPING with
the fault as the logged reason. ``deploy/README.md`` has the chain order and the meaning
of each mode.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from sim2real.deploy.limits import RobotLimits
from sim2real.deploy.robot_state import Fault, Measurement, RobotState, as_vector
from sim2real.deploy.safety import SafetyChain, SafetyConfig
from sim2real.deploy.state_machine import SoftStart, State, StateMachine, Transition


class Mode(enum.Enum):
    """How the driver must apply a command: torque ``kp (targets − q) − kd q̇``."""

    PASSIVE = "passive"
    """INACTIVE: ``kp = kd = 0``, no torque."""
    POSITION = "position"
    """STANDUP, RUNNING: the nominal gains towards the filtered targets."""
    DAMPING = "damping"
    """DAMPING: ``kp = 0`` and ``kd = damping_kd_scale × kd``: torque ``−kd q̇``."""


@dataclass(frozen=True)
class Command:
    """What to send to the joints this tick; arrays (J,) in policy order, read-only.

    In PASSIVE and DAMPING modes ``targets`` is the last valid measured pose (inside the
    limits with margin), so a driver that can only send position targets with its
    nominal gains still gets damping, ``−Kd q̇``, from them; the gains are what counts.

    Attributes:
        stamp: the controller time of the tick, s.
        state: the controller's state after this tick.
        mode: how to apply the command.
        targets: joint position targets, rad.
        kp: proportional gains to use, N·m/rad.
        kd: derivative gains to use, N·m·s/rad.
    """

    stamp: float
    state: State
    mode: Mode
    targets: np.ndarray
    kp: np.ndarray
    kd: np.ndarray


class SafetyController:
    """Safety chain + state machine + soft start, one ``tick`` per control period.

    Args:
        limits: the robot's limits and gains, in policy order.
        config: the chain's parameters; ``None``: ``SafetyConfig()``.

    Attributes:
        last_fault: the fault found in the latest tick, or ``None``; also set while
            INACTIVE or DAMPING, where a fault changes no state (for diagnostics).
    """

    def __init__(self, limits: RobotLimits, config: SafetyConfig | None = None):
        self.limits = limits
        self.config = SafetyConfig() if config is None else config
        self.chain = SafetyChain(limits, self.config)
        self.machine = StateMachine()
        zeros = _read_only(np.zeros(limits.num_joints))
        self._gains = {
            Mode.PASSIVE: (zeros, zeros),
            Mode.POSITION: (limits.kp, limits.kd),
            Mode.DAMPING: (zeros, _read_only(limits.kd * self.config.damping_kd_scale)),
        }
        self._hold = self.chain.clip_to_position_limits(limits.default_joint_pos)
        self._soft_start: SoftStart | None = None
        self._last: Command | None = None
        self._last_now: float | None = None
        self.last_fault: str | None = None

    @property
    def state(self) -> State:
        """The current state."""
        return self.machine.state

    @property
    def transitions(self) -> list[Transition]:
        """Every state change so far: ``(time, from, to, reason)``."""
        return self.machine.transitions

    def activate(self, now: float) -> bool:
        """Start: INACTIVE → STANDUP. Returns whether the state changed."""
        return self._enter_standup(self.machine.activate(now))

    def reset(self, now: float) -> bool:
        """Clear the DAMPING latch: DAMPING → STANDUP. Returns whether the state changed."""
        return self._enter_standup(self.machine.reset(now))

    def estop(self, now: float, reason: str = "e-stop") -> bool:
        """Latch DAMPING until ``reset``. Returns whether the state changed."""
        return self.machine.estop(now, reason)

    def policy_weight(self, now: float) -> float:
        """The weight a ``tick`` at ``now`` gives the policy's targets; 0: it does not read them.

        1 in RUNNING; in STANDUP the soft start's fade-in weight (0 during the ramp; a
        STANDUP not ticked yet starts its soft start at ``now``); 0 in INACTIVE and
        DAMPING. A caller computes the policy's targets only when this is above 0.
        """
        state = self.machine.state
        if state is State.RUNNING:
            return 1.0
        if state is not State.STANDUP:
            return 0.0
        soft_start = self._soft_start or self._new_soft_start(now)
        return soft_start.policy_weight(now)

    def tick(
        self, now: float, robot_state: RobotState, policy_targets: ArrayLike | None = None
    ) -> Command:
        """The command for this tick.

        Args:
            now: the controller's clock, s; the stamps of ``robot_state`` use the same clock.
            robot_state: the latest readings.
            policy_targets: (J,) joint targets, rad, from the policy; read during the
                policy fade-in and in RUNNING, where ``None`` is a fault.
        """
        self.last_fault = None
        try:
            command = self._position_command(now, robot_state, policy_targets)
        except Fault as fault:
            self.last_fault = str(fault)
            self.machine.fault(now, self.last_fault)
            command = None
        if command is None:
            command = self._resting_command(now)
        self._last = command
        return command

    def _enter_standup(self, changed: bool) -> bool:
        if changed:
            self._soft_start = None  # the next tick starts it from the measured pose
        return changed

    def _position_command(
        self, now: float, robot_state: RobotState, policy_targets: ArrayLike | None
    ) -> Command | None:
        """The filtered position command in STANDUP and RUNNING, else None; raises Fault."""
        self._check_clock(now)
        measurement = self.chain.measure(now, robot_state)
        self._hold = self.chain.clip_to_position_limits(measurement.joint_pos)
        if self.machine.state is State.STANDUP:
            desired = self._standup_targets(now, policy_targets)
        elif self.machine.state is State.RUNNING:
            desired = self._policy(policy_targets)
        else:
            return None
        targets = self.chain.filter(measurement, desired, self._rate_reference(measurement))
        return self._command(now, Mode.POSITION, targets)

    def _standup_targets(self, now: float, policy_targets: ArrayLike | None) -> np.ndarray:
        if self._soft_start is None:
            self._soft_start = self._new_soft_start(now)
        soft_start = self._soft_start
        policy = self._policy(policy_targets) if soft_start.policy_weight(now) > 0 else None
        desired = soft_start.targets(now, policy)
        if soft_start.complete(now):
            self.machine.standup_complete(now)
        return desired

    def _new_soft_start(self, now: float) -> SoftStart:
        """A soft start from the last valid measured pose, beginning at ``now``."""
        return SoftStart(
            start_time=now,
            start_pose=self._hold,
            default_pose=self.limits.default_joint_pos,
            ramp_s=self.config.standup_s,
            fade_s=self.config.fade_s,
        )

    def _policy(self, policy_targets: ArrayLike | None) -> np.ndarray:
        if policy_targets is None:
            raise Fault("no policy targets")
        targets = as_vector(policy_targets, self.limits.num_joints, "policy targets")
        finite = np.isfinite(targets)
        if not finite.all():
            bad = ~finite
            names = [self.limits.joint_names[j] for j in np.flatnonzero(bad)]
            raise Fault(f"policy targets not finite at {names}")
        return targets

    def _rate_reference(self, measurement: Measurement) -> np.ndarray:
        """The previous position targets, or the measured pose after any other command."""
        last = self._last
        if last is not None and last.mode is Mode.POSITION:
            return last.targets
        return measurement.joint_pos

    def _resting_command(self, now: float) -> Command:
        """INACTIVE: PASSIVE; DAMPING: DAMPING; targets at the last valid measured pose."""
        mode = Mode.PASSIVE if self.machine.state is State.INACTIVE else Mode.DAMPING
        return self._command(now, mode, self._hold)

    def _command(self, now: float, mode: Mode, targets: np.ndarray) -> Command:
        kp, kd = self._gains[mode]
        return Command(now, self.machine.state, mode, _read_only(targets.copy()), kp, kd)

    def _check_clock(self, now: float) -> None:
        if not math.isfinite(now):
            raise Fault(f"controller clock reads {now}")
        last, self._last_now = self._last_now, now
        if last is not None and now < last:
            raise Fault(f"controller clock went back {last - now:.4g} s")


def _read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array
