"""The controller's states, their transitions with reasons, and the soft-start timing.

::

    INACTIVE ──activate──► STANDUP ──soft start complete──► RUNNING
        │                    │  ▲                              │
        │ e-stop             │  │ reset                        │ fault or e-stop
        │                    │  │                              │
        └──────────────► DAMPING ◄─────── fault or e-stop ─────┘

DAMPING is the latch: faults and e-stops lead there from STANDUP and RUNNING (an e-stop
from INACTIVE too) and only an explicit ``reset`` leaves it, to STANDUP, whose soft start
begins again from the pose the robot is in. Every transition is recorded as
``(time, from, to, reason)`` in ``transitions`` and logged (``logging``, this module's
logger: WARNING into DAMPING, INFO otherwise). Requests a state does not accept
(``activate`` while RUNNING, ``reset`` outside DAMPING) change nothing and return False.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

logger = logging.getLogger(__name__)


class State(enum.Enum):
    """What the controller is doing."""

    INACTIVE = "inactive"
    """Not commanding: zero gains (PASSIVE)."""
    STANDUP = "standup"
    """Soft start: ramp to the default pose, then fade the policy in (POSITION)."""
    RUNNING = "running"
    """The policy's targets, filtered by the safety chain (POSITION)."""
    DAMPING = "damping"
    """Latched after a fault or an e-stop: damping only, until ``reset`` (DAMPING)."""


class Transition(NamedTuple):
    """One state change."""

    time: float
    source: State
    target: State
    reason: str


class StateMachine:
    """The states and the rules to move between them; see the module docstring.

    Attributes:
        state: the current state.
        transitions: every transition so far, oldest first.
    """

    def __init__(self):
        self.state = State.INACTIVE
        self.transitions: list[Transition] = []

    def activate(self, now: float, reason: str = "activated") -> bool:
        """INACTIVE → STANDUP."""
        return self._go(now, State.STANDUP, reason, allowed_from=(State.INACTIVE,))

    def standup_complete(self, now: float) -> bool:
        """STANDUP → RUNNING, once the soft start has ended."""
        return self._go(now, State.RUNNING, "soft start complete", allowed_from=(State.STANDUP,))

    def fault(self, now: float, reason: str) -> bool:
        """STANDUP or RUNNING → DAMPING; INACTIVE (commanding nothing) and DAMPING stay."""
        if self.state not in (State.STANDUP, State.RUNNING):
            return False  # not a request: nothing to log, every tick
        return self._go(now, State.DAMPING, reason, allowed_from=(State.STANDUP, State.RUNNING))

    def estop(self, now: float, reason: str = "e-stop") -> bool:
        """Any state but DAMPING → DAMPING, latched until ``reset``."""
        allowed = (State.INACTIVE, State.STANDUP, State.RUNNING)
        return self._go(now, State.DAMPING, reason, allowed_from=allowed)

    def reset(self, now: float, reason: str = "reset") -> bool:
        """DAMPING → STANDUP: the only way out of the latch."""
        return self._go(now, State.STANDUP, reason, allowed_from=(State.DAMPING,))

    def _go(self, now: float, target: State, reason: str, allowed_from: tuple[State, ...]) -> bool:
        source = self.state
        if source not in allowed_from:
            logger.info("%.3f s: %s ignored in %s", now, reason, source.name)
            return False
        self.state = target
        self.transitions.append(Transition(float(now), source, target, reason))
        level = logging.WARNING if target is State.DAMPING else logging.INFO
        logger.log(level, "%.3f s: %s -> %s: %s", now, source.name, target.name, reason)
        return True


@dataclass(frozen=True)
class SoftStart:
    """The timing of STANDUP: a ramp, then the policy faded in.

    For ``t = now − start_time``: the pose ramps linearly from ``start_pose`` to
    ``default_pose`` over ``ramp_s``; then the targets are
    ``(1 − w) · default_pose + w · policy`` with the weight ``w`` rising linearly from 0 to
    1 over ``fade_s``. The soft start is complete at ``t ≥ ramp_s + fade_s``.
    """

    start_time: float
    start_pose: np.ndarray
    default_pose: np.ndarray
    ramp_s: float
    fade_s: float

    def pose(self, now: float) -> np.ndarray:
        """The ramp's pose at ``now``: ``start_pose`` before it, ``default_pose`` after it."""
        progress = _fraction(now - self.start_time, self.ramp_s)
        return self.start_pose + progress * (self.default_pose - self.start_pose)

    def policy_weight(self, now: float) -> float:
        """The policy's weight ``w`` at ``now``: 0 during the ramp, 1 once complete."""
        return _fraction(now - self.start_time - self.ramp_s, self.fade_s)

    def targets(self, now: float, policy: np.ndarray | None) -> np.ndarray:
        """The soft start's targets at ``now``; ``policy`` is read only once ``w > 0``."""
        weight = self.policy_weight(now)
        pose = self.pose(now)
        return pose if weight == 0 else (1 - weight) * pose + weight * policy

    def complete(self, now: float) -> bool:
        """Whether the soft start has ended."""
        return now - self.start_time >= self.ramp_s + self.fade_s


def _fraction(elapsed: float, duration: float) -> float:
    """``elapsed / duration`` clipped to [0, 1]; a zero duration is complete at once."""
    if duration <= 0:
        return 1.0 if elapsed >= 0 else 0.0
    return min(max(float(elapsed / duration), 0.0), 1.0)
