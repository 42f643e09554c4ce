"""Summaries of timing samples for HIL reports and benchmarks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def summarize(values_s: Sequence[float] | np.ndarray) -> dict[str, float | int | None]:
    """Count, mean, p50, p99 and max of durations given in s, reported in ms.

    ``None`` for every figure of an empty sample.
    """
    values = np.asarray(values_s, dtype=np.float64) * 1e3
    if values.size == 0:
        return {"count": 0, "mean_ms": None, "p50_ms": None, "p99_ms": None, "max_ms": None}
    return {
        "count": int(values.size),
        "mean_ms": float(values.mean()),
        "p50_ms": float(np.percentile(values, 50)),
        "p99_ms": float(np.percentile(values, 99)),
        "max_ms": float(values.max()),
    }
