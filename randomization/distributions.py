"""The three distributions and three operations a randomization term draws with.

A term's value for one env and one entry is ``operation(nominal, draw)`` where ``draw``
comes from ``distribution(range)``:

============  ==================  ================================================
distribution  ``range``           draw
============  ==================  ================================================
uniform       ``[low, high]``     U(low, high)
log_uniform   ``[low, high]``     exp(U(log low, log high)), 0 < low <= high
gaussian      ``[mean, std]``     N(mean, std²), std >= 0
============  ==================  ================================================

============  =================  ==============================================
operation     value              typical use
============  =================  ==============================================
scale         nominal × draw     gains, damping, link masses (range around 1)
add           nominal + draw     added payload (kg), CoM offset (m), biases
set           draw               a physical value: friction, an identified damping
============  =================  ==============================================

``nominal`` is the unmodified model's value (``backend.model``, which per-env
expansion never changes), so draws never compound over resets.
"""

from __future__ import annotations

import numpy as np

DISTRIBUTIONS = ("uniform", "log_uniform", "gaussian")
OPERATIONS = ("scale", "add", "set")


def sample(
    distribution: str,
    low: np.ndarray,
    high: np.ndarray,
    size: tuple[int, ...],
    rng: np.random.Generator,
) -> np.ndarray:
    """Draw ``size`` values; ``low``/``high`` broadcast against ``size``.

    Args:
        distribution: one of ``DISTRIBUTIONS``.
        low: lower bounds (gaussian: means).
        high: upper bounds (gaussian: standard deviations).
        size: output shape, e.g. (num_envs, num_entries).
        rng: the generator every draw comes from.

    Returns:
        float64 array of shape ``size``.
    """
    if distribution == "uniform":
        return rng.uniform(low, high, size)
    if distribution == "log_uniform":
        return np.exp(rng.uniform(np.log(low), np.log(high), size))
    if distribution == "gaussian":
        return rng.normal(low, high, size)
    raise ValueError(f"distribution {distribution!r} is not one of {', '.join(DISTRIBUTIONS)}")


def sample_int(low: np.ndarray, high: np.ndarray, size: tuple[int, ...], rng) -> np.ndarray:
    """Uniform integers in ``[low, high]`` inclusive (e.g. delays in control steps)."""
    return rng.integers(np.asarray(low, np.int64), np.asarray(high, np.int64) + 1, size)


def apply_operation(operation: str, nominal: np.ndarray, draw: np.ndarray) -> np.ndarray:
    """``nominal × draw``, ``nominal + draw`` or ``draw``; broadcasts."""
    if operation == "scale":
        return nominal * draw
    if operation == "add":
        return nominal + draw
    if operation == "set":
        return np.broadcast_to(draw, np.broadcast_shapes(np.shape(nominal), np.shape(draw)))
    raise ValueError(f"operation {operation!r} is not one of {', '.join(OPERATIONS)}")
