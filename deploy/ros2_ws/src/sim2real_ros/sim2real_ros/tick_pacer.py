"""``TickPacer``: when the policy ticks, paced by the joint states, with a watchdog (no ROS).

The node hands the pacer the arrival time (node clock, ns) of each joint state and of each
firing of its timer; the pacer answers whether to tick now. With ``s`` the state period
(the median gap of the last ``history`` arrivals) and ``P`` the control period:

- **Slots on a fixed grid.** Slot ``k + 1`` is due ``P`` after slot ``k`` (the period
  neither drifts nor accumulates the state-period quantization); every tick serves the
  next slot. Only a tick more than a period late re-anchors the grid on itself.
- **Paced by the robot.** A joint state arriving at ``t ≥ due − tolerance`` ticks at once
  (the freshest state, the command out immediately); ``tolerance = s / 2`` within
  ``[P / 40, P / 8]``. The grid is anchored on a state, so with arrivals on the robot's
  grid the window's edge falls midway between two states: jitter under half a state
  period does not move the tick to another state. (The floor keeps some slack when
  arrivals come in bursts and the median gap is about 0.)
- **The timer is the watchdog.** When no state has ticked a slot by ``due + grace``, the
  timer ticks on the cached inputs (the latest state, if any came): in a dropout every
  ``P``, so the runtime's stale-input watchdog latches DAMPING as with timer pacing.
  ``grace = s − tolerance + P / 4`` (past the first state after the window's edge, with
  ``P / 4`` to spare for a late one), at most ``P / 2 − tolerance``.
- **Never two ticks within half a period.** A late tick is followed by the next slot's
  on time, as a timer catches up, but never sooner than ``P / 2`` after it. (A guard of
  ``P − tolerance`` would move the phase after every late state instead: the policy
  would fall behind the robot, losing a tick per period of accumulated lateness.)
  The watchdog's time is before the next slot's window (``grace + P / 2 ≤ P −
  tolerance``), so a watchdog tick never holds the states off the next slot.

The node fires the timer at ``timer_ns(now)``; before the first tick (``None``) the timer
ticks whenever it fires. Pacing by the states needs more than two states per control
period; with fewer the watchdog takes some of the slots (one tick per slot still).
"""

from __future__ import annotations

import statistics
from collections import deque


class TickPacer:
    """Decides, at each joint state and timer firing, whether the policy ticks now.

    Args:
        period_ns: the control period ``P``, ns (> 0).
        history: arrivals kept to measure the state period.
    """

    def __init__(self, period_ns: int, history: int = 16):
        if period_ns <= 0:
            raise ValueError(f"TickPacer period_ns must be > 0, got {period_ns}")
        self.period_ns = int(period_ns)
        self.tolerance_ns = 0
        """How early a state may tick its slot, ns."""
        self.grace_ns = 0
        """How long after a slot's due time the watchdog ticks without a state, ns."""
        self.due_ns: int | None = None
        """The next slot's time, ns; ``None`` before the first tick."""
        self.last_ns: int | None = None
        self.state_ticks = 0
        self.watchdog_ticks = 0
        self.reanchors = 0
        """Ticks more than a period late, which moved the grid, since construction."""
        self._arrivals: deque[int] = deque(maxlen=history + 1)
        self.restart()

    @property
    def state_period_ns(self) -> float | None:
        """The median gap between the last arrivals, ns; ``None`` before two arrivals."""
        arrivals = list(self._arrivals)
        if len(arrivals) < 2:
            return None
        return statistics.median(b - a for a, b in zip(arrivals[:-1], arrivals[1:], strict=True))

    def timer_ns(self) -> int | None:
        """When the node should fire its timer next, ns; ``None``: a period on (no tick yet).

        The watchdog's time, ``due + grace``, or half a period after the last tick if later.
        """
        if self.due_ns is None:
            return None
        return max(self.due_ns + self.grace_ns, self._earliest_ns())

    def restart(self) -> None:
        """Forget the schedule and the arrivals (on activation); the counts stay."""
        self.due_ns = self.last_ns = None
        self._arrivals.clear()
        self._update_windows()

    def on_state(self, now_ns: int) -> bool:
        """A joint state arrived at ``now_ns``: tick now?"""
        self._arrivals.append(now_ns)
        self._update_windows()
        due = self.due_ns
        if due is not None and (now_ns < due - self.tolerance_ns or now_ns < self._earliest_ns()):
            return False
        self._advance(now_ns)
        self.state_ticks += 1
        return True

    def on_timer(self, now_ns: int) -> bool:
        """The timer fired at ``now_ns``: tick now (no state has ticked this slot)?"""
        timer = self.timer_ns()
        if timer is not None and now_ns < timer:
            return False
        self._advance(now_ns)
        self.watchdog_ticks += 1
        return True

    def _earliest_ns(self) -> int:
        """The earliest next tick: half a period after the last one."""
        return self.last_ns + self.period_ns // 2

    def _update_windows(self) -> None:
        """``tolerance`` and ``grace`` from the measured state period (module docstring)."""
        period = self.period_ns
        gap = self.state_period_ns
        gap = 2 * (period // 8) if gap is None else int(gap)
        self.tolerance_ns = min(max(gap // 2, period // 40), period // 8)
        self.grace_ns = min(gap - self.tolerance_ns + period // 4, period // 2 - self.tolerance_ns)

    def _advance(self, now_ns: int) -> None:
        """A tick at ``now_ns`` serves the slot due: the next one is a period on."""
        if self.due_ns is None or now_ns > self.due_ns + self.period_ns:
            self.reanchors += self.due_ns is not None
            self.due_ns = now_ns + self.period_ns
        else:
            self.due_ns += self.period_ns
        self.last_ns = now_ns

    def summary(self) -> dict[str, float | int | None]:
        """Counts since construction and the current estimates, for ``/diagnostics``."""
        gap = self.state_period_ns
        return {
            "state_ticks": self.state_ticks,
            "watchdog_ticks": self.watchdog_ticks,
            "reanchors": self.reanchors,
            "state_period_s": None if gap is None else gap * 1e-9,
            "tolerance_s": self.tolerance_ns * 1e-9,
            "grace_s": self.grace_ns * 1e-9,
        }
