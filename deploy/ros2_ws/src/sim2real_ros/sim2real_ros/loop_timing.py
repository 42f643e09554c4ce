"""Loop-timing statistics of the policy's ticks, for ``/diagnostics`` (pure, no ROS).

The node records, each tick, the tick's clock reading (ns) and how long the tick took
(runtime tick + publishing, wall clock); ``summary()`` reports the window since the
previous summary and starts a new one.
"""

from __future__ import annotations

import numpy as np


class LoopTiming:
    """Period and compute time of the ticks since the last ``summary()``.

    Args:
        period_s: the nominal control period, s.
    """

    def __init__(self, period_s: float):
        self.period_s = float(period_s)
        self.ticks = 0
        """Ticks recorded since construction."""
        self.overruns = 0
        """Periods longer than 1.5 × nominal since construction (a tick late or skipped)."""
        self._last_ns: int | None = None
        self._periods: list[float] = []
        self._compute: list[float] = []

    def record(self, now_ns: int, compute_s: float) -> None:
        """One tick: its clock reading (ns) and its compute time (s)."""
        if self._last_ns is not None:
            period = (now_ns - self._last_ns) * 1e-9
            self._periods.append(period)
            if period > 1.5 * self.period_s:
                self.overruns += 1
        self._last_ns = now_ns
        self._compute.append(float(compute_s))
        self.ticks += 1

    def restart(self) -> None:
        """Forget the previous tick: the next period is not measured (after a pause)."""
        self._last_ns = None

    def summary(self) -> dict[str, float | int | None]:
        """Figures of the window since the last summary (``None`` where nothing was measured).

        ``period_error_*`` are ``|period − nominal|`` in s; ``compute_*`` the tick's work.
        """
        periods = np.asarray(self._periods)
        compute = np.asarray(self._compute)
        self._periods, self._compute = [], []
        error = np.abs(periods - self.period_s)
        return {
            "ticks": self.ticks,
            "overruns": self.overruns,
            "window_ticks": int(compute.size),
            "period_mean_s": float(periods.mean()) if periods.size else None,
            "period_error_median_s": float(np.median(error)) if error.size else None,
            "period_error_max_s": float(error.max()) if error.size else None,
            "compute_mean_s": float(compute.mean()) if compute.size else None,
            "compute_max_s": float(compute.max()) if compute.size else None,
        }
