"""Batched simulator backends behind one interface (``SimBackend``).

``cpu`` (``mujoco.batch``) is the embedded default. ``mjx`` (MuJoCo XLA on JAX) and
``warp`` (MuJoCo Warp) run the same tasks on an accelerator; each needs its optional
extra (``pip install 'sim2real[mjx]'`` / ``'sim2real[warp]'``). Tasks never import a
backend directly.
"""

from __future__ import annotations

import mujoco

from sim2real.sim.backends.base import SimBackend
from sim2real.sim.backends.cpu import MujocoBatchBackend

BACKENDS = ("cpu", "mjx", "warp")

# The packages each accelerator backend imports, and the extra that installs them.
_EXTRAS = {"mjx": ("jax", "mujoco.mjx"), "warp": ("warp", "mujoco_warp")}


def make_backend(name: str, model: mujoco.MjModel, num_envs: int, nthread: int = 0) -> SimBackend:
    """Create backend ``name`` with ``num_envs`` copies of ``model``.

    ``nthread`` (CPU threads, 0: all cores) applies to the ``cpu`` backend only.
    """
    if name == "cpu":
        return MujocoBatchBackend(model, num_envs, nthread)
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; available: {', '.join(BACKENDS)}")
    require_extra(name)
    if name == "mjx":
        from sim2real.sim.backends.mjx_backend import MjxBackend

        return MjxBackend(model, num_envs)
    from sim2real.sim.backends.warp_backend import WarpBackend

    return WarpBackend(model, num_envs)


def extra_installed(name: str) -> bool:
    """Whether the packages of accelerator backend ``name`` are installed (not imported)."""
    import importlib.util

    try:
        return all(importlib.util.find_spec(module) is not None for module in _EXTRAS[name])
    except ModuleNotFoundError:  # a parent package is missing
        return False


def require_extra(name: str) -> None:
    """Raise ImportError naming the extra to install when backend ``name`` cannot import."""
    import importlib

    for module in _EXTRAS[name]:
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise ImportError(
                f"the {name!r} backend needs {module!r}, which is not installed: "
                f"pip install 'sim2real[{name}]' ({error})"
            ) from error


__all__ = [
    "BACKENDS",
    "MujocoBatchBackend",
    "SimBackend",
    "extra_installed",
    "make_backend",
    "require_extra",
]
