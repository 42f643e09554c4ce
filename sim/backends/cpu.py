"""The embedded default backend: CPU MuJoCo through ``mujoco.batch.Batch``.

All envs step in one C call on ``nthread`` threads; results are bit-identical at any
thread count. The batch is non-persistent (one MjData per thread), which measured
fastest on the 2-core target; the state rows (qpos, qvel, ctrl, ...) are always
current, while derived outputs such as ``sensordata`` describe the state before the
last physics substep, as with ``mj_step``.
"""

from __future__ import annotations

import mujoco
import mujoco.batch
import numpy as np

from sim2real.sim.backends.base import ReadOnlyOutputs


class MujocoBatchBackend(ReadOnlyOutputs):
    """N envs of ``model`` on ``nthread`` threads (0: all cores). See ``SimBackend``."""

    def __init__(self, model: mujoco.MjModel, num_envs: int, nthread: int = 0):
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.model = model
        self.num_envs = num_envs
        self._batch = mujoco.batch.Batch(model, num_envs, nthread)
        self.qpos = self._batch.bind("qpos")
        self.qvel = self._batch.bind("qvel")
        self.ctrl = self._batch.bind("ctrl")
        self.xfrc_applied = self._batch.bind("xfrc_applied")
        self._sensordata = self._batch.bind("sensordata")
        self._actuator_force = self._batch.bind("actuator_force")
        self._warnings = self._batch.warning[:, :, 1]  # (N, mjNWARNING) counters

    @property
    def nthread(self) -> int:
        """Threads the batch steps on."""
        return self._batch.nthread

    def reset(self, env_ids: np.ndarray, keyframe: int) -> None:
        """Reset envs to a keyframe, skipping the forward pass (call :meth:`forward`)."""
        self._batch.reset(env_ids, keyframe=keyframe, stage=mujoco.mjtStage.mjSTAGE_NONE)
        self._warnings[env_ids] = 0

    def forward(self, env_ids: np.ndarray) -> None:
        """Run ``mj_forward`` on envs whose state was written."""
        self._batch.forward(env_ids)

    def step(self, nstep: int, stage: int = mujoco.mjtStage.mjSTAGE_NONE) -> np.ndarray:
        """Advance all envs by ``nstep`` physics steps; return ids of unstable envs.

        ``stage`` (mjtStage) recomputes derived outputs up to it at the new state, e.g.
        ``mjSTAGE_POS`` makes position sensors current.
        """
        before = self._warnings.sum(axis=1)
        try:
            self._batch.step(nstep=nstep, stage=stage)
            raised = np.empty(0, dtype=np.int64)
        except mujoco.batch.SimulationError as error:
            raised = np.asarray(error.ids, dtype=np.int64)
        warned = self._warnings.sum(axis=1) > before
        nonfinite = ~(np.isfinite(self.qpos).all(axis=1) & np.isfinite(self.qvel).all(axis=1))
        unstable = warned | nonfinite
        unstable[raised] = True
        return np.flatnonzero(unstable)

    def model_field(self, name: str) -> np.ndarray:
        """Live per-env values (N, ...) of an MjModel field (``opt.<name>`` for options)."""
        return self._batch.expand(name)

    def expanded(self, name: str) -> np.ndarray | None:
        """Read-only per-env values of a field that was made per-env, else None.

        Unlike :meth:`model_field` this never expands a field: it tells which model
        fields randomization (or ``set_const``) made per-env.
        """
        return self._batch.expanded(name)

    def set_const(self, env_ids: np.ndarray) -> None:
        """Recompute derived model constants (``mj_setConst``) of the given envs."""
        self._batch.set_const(env_ids)
