"""Batched simulator backends behind one interface (``SimBackend``).

``cpu`` (``mujoco.batch``) is the embedded default. GPU backends register here by
name when they exist; tasks never import a backend directly.
"""

from __future__ import annotations

import mujoco

from sim2real.sim.backends.base import SimBackend
from sim2real.sim.backends.cpu import MujocoBatchBackend

BACKENDS = ("cpu",)


def make_backend(name: str, model: mujoco.MjModel, num_envs: int, nthread: int = 0) -> SimBackend:
    """Create backend ``name`` with ``num_envs`` copies of ``model``."""
    if name == "cpu":
        return MujocoBatchBackend(model, num_envs, nthread)
    raise ValueError(f"unknown backend {name!r}; available: {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "MujocoBatchBackend", "SimBackend", "make_backend"]
