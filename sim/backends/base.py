"""The simulator boundary: what a task needs from a batched physics engine.

A backend holds N copies of one MuJoCo model with per-env model fields, and exposes
live ``(N, ...)`` arrays of the state. Tasks and randomization talk only to this
interface, so GPU backends (MJX, MuJoCo Warp) can join without touching them.
"""

from __future__ import annotations

from typing import Protocol

import mujoco
import numpy as np


class SimBackend(Protocol):
    """N simulations of one model, stepped together.

    State arrays are live views: writing ``qpos[i]`` changes env i's state at the next
    call. ``ctrl`` holds the joint position targets of the PD actuators, (N, nu), rad.
    """

    model: mujoco.MjModel
    num_envs: int
    qpos: np.ndarray  # (N, nq)
    qvel: np.ndarray  # (N, nv)
    ctrl: np.ndarray  # (N, nu)
    xfrc_applied: np.ndarray  # (N, nbody, 6) external force (N) and torque (N·m), world frame

    @property
    def sensordata(self) -> np.ndarray:
        """(N, nsensordata) sensor readings of the last physics substep (read-only)."""
        ...

    @property
    def actuator_force(self) -> np.ndarray:
        """(N, nu) actuator torques of the last physics substep, N·m (read-only)."""
        ...

    def reset(self, env_ids: np.ndarray, keyframe: int) -> None:
        """Reset envs to a keyframe; follow with state writes and :meth:`forward`."""
        ...

    def forward(self, env_ids: np.ndarray) -> None:
        """Recompute derived quantities of envs whose state was written."""
        ...

    def step(self, nstep: int, stage: int = 0) -> np.ndarray:
        """Advance every env by ``nstep`` physics steps; return ids of unstable envs.

        ``stage`` (mjtStage) brings derived outputs (sensors) up to date to that stage
        at the new state; by default they describe the state before the last substep.

        An env is unstable when MuJoCo raised or warned (divergence, bad values) or its
        state is no longer finite. The caller must reset it before the next step.
        """
        ...

    def model_field(self, name: str) -> np.ndarray:
        """Live, writable per-env values (N, ...) of an ``MjModel`` field, e.g. "body_mass"."""
        ...

    def set_const(self, env_ids: np.ndarray) -> None:
        """Recompute derived model constants after writing masses or inertias."""
        ...


class ReadOnlyOutputs:
    """The protocol's read-only outputs, kept in ``_sensordata`` and ``_actuator_force``."""

    _sensordata: np.ndarray
    _actuator_force: np.ndarray

    @property
    def sensordata(self) -> np.ndarray:
        """(N, nsensordata) sensor readings of the last physics substep (read-only)."""
        return self._sensordata

    @property
    def actuator_force(self) -> np.ndarray:
        """(N, nu) actuator torques of the last physics substep, N·m (read-only)."""
        return self._actuator_force
