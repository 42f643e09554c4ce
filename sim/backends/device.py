"""What the accelerator backends (MJX, MuJoCo Warp) share: the host side of the boundary.

Tasks, randomization and the observation terms are numpy code over ``(N, ...)`` arrays
(DESIGN contracts 2 and 3), so an accelerator backend keeps host mirrors of the state
the ``SimBackend`` protocol exposes and synchronizes them with the device once per call:

- ``qpos``, ``qvel``, ``ctrl`` and ``xfrc_applied`` live on the host and are uploaded
  before every ``step``/``forward``; after it, ``qpos``, ``qvel``, ``sensordata`` and
  ``actuator_force`` come back. The host is the state's owner, as with the CPU backend.
- Per-env model fields are kept by a host ``mujoco.batch.Batch`` used only as a model
  store: ``model_field`` expands a field there and ``set_const`` runs ``mj_setConst``
  there, with MuJoCo's own code. Fields whose values changed since the last call are
  uploaded as per-env (batched) device model fields.
- ``reset`` writes the keyframe into the host rows and marks the envs; the device clears
  the rest of their data (warm start, activations, time) at the next call.

Subclasses implement the device half (``_write_fields``, ``_write_state``,
``_device_step``, ``_device_forward``, ``_read``, ``device_tensor``).
"""

from __future__ import annotations

import abc

import mujoco
import mujoco.batch
import numpy as np

from sim2real.sim.backends.base import ReadOnlyOutputs

# Data fields the host reads back after every device call.
READ_FIELDS = ("qpos", "qvel", "sensordata", "actuator_force")


class DeviceBackend(ReadOnlyOutputs, abc.ABC):
    """N envs of ``model`` on an accelerator, behind the ``SimBackend`` protocol.

    Results are float32 on the device (both engines' native precision); the host
    mirrors are float64 like the CPU backend's.
    """

    def __init__(self, model: mujoco.MjModel, num_envs: int):
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.model = model
        self.num_envs = num_envs
        self._store = mujoco.batch.Batch(model, num_envs, 1)
        self.qpos = np.tile(model.qpos0, (num_envs, 1))
        self.qvel = np.zeros((num_envs, model.nv))
        self.ctrl = np.zeros((num_envs, model.nu))
        self.xfrc_applied = np.zeros((num_envs, model.nbody, 6))
        self._sensordata = np.zeros((num_envs, model.nsensordata))
        self._actuator_force = np.zeros((num_envs, model.nu))
        self._reset_keys = np.full(num_envs, -1, dtype=np.int32)  # -1: no reset pending
        self._expanded: list[str] = []  # per-env fields of the store, in expansion order
        self._constants_listed = False  # whether _expanded holds set_const's fields
        stage = mujoco.mjtStage
        self._stage_columns = {  # sensordata columns recomputed after a step, by stage
            int(s): _sensor_columns(model, s)
            for s in (stage.mjSTAGE_POS, stage.mjSTAGE_VEL, stage.mjSTAGE_ACC)
        }
        self._on_device: dict[str, np.ndarray] = {}  # what the device model last got

    def reset(self, env_ids: np.ndarray, keyframe: int) -> None:
        """Reset envs to a keyframe; follow with state writes and :meth:`forward`."""
        m = self.model
        self.qpos[env_ids] = m.key_qpos[keyframe]
        self.qvel[env_ids] = m.key_qvel[keyframe]
        self.ctrl[env_ids] = m.key_ctrl[keyframe]
        self.xfrc_applied[env_ids] = 0.0
        self._reset_keys[env_ids] = keyframe

    def forward(self, env_ids: np.ndarray) -> None:
        """Recompute the sensors and actuator forces of envs whose state was written."""
        self._sync()
        self._device_forward()
        out = self._read(("sensordata", "actuator_force"))
        self._sensordata[env_ids] = out["sensordata"][env_ids]
        self._actuator_force[env_ids] = out["actuator_force"][env_ids]

    def step(self, nstep: int, stage: int = mujoco.mjtStage.mjSTAGE_NONE) -> np.ndarray:
        """Advance all envs by ``nstep`` physics steps; return ids of unstable envs.

        ``stage`` (mjtStage): sensors of that stage or earlier are recomputed at the new
        state, the others describe the state before the last substep (as on the CPU).
        An env is unstable when its state is no longer finite.
        """
        self._sync()
        self._device_step(nstep)
        out = self._read(READ_FIELDS)
        if stage != mujoco.mjtStage.mjSTAGE_NONE:
            self._device_forward()
            columns = self._stage_columns[int(stage)]
            out["sensordata"][:, columns] = self._read(("sensordata",))["sensordata"][:, columns]
        self.qpos[:] = out["qpos"]
        self.qvel[:] = out["qvel"]
        self._sensordata[:] = out["sensordata"]
        self._actuator_force[:] = out["actuator_force"]
        finite = np.isfinite(self.qpos).all(axis=1) & np.isfinite(self.qvel).all(axis=1)
        return np.flatnonzero(~finite)

    def model_field(self, name: str) -> np.ndarray:
        """Live per-env values (N, ...) of an MjModel field (``opt.<name>`` for options).

        Writes reach the device at the next ``step`` or ``forward``.
        """
        values = self._store.expand(name)
        if name not in self._expanded:
            self._expanded.append(name)
        return values

    def set_const(self, env_ids: np.ndarray) -> None:
        """Recompute derived model constants (``mj_setConst``) of the given envs."""
        self._store.set_const(env_ids)
        if not self._constants_listed:  # mj_setConst expands the same fields every time
            store = self._store
            listed = [f for f in mujoco.batch.MODEL_FIELDS if store.expanded(f) is not None]
            self._expanded += [f for f in listed if f not in self._expanded]
            self._constants_listed = True

    def _sync(self) -> None:
        """Upload changed per-env model fields, pending resets and the host state."""
        changed = {}
        for name in self._expanded:
            values = self._store.expanded(name)
            last = self._on_device.get(name)
            if last is None or not np.array_equal(values, last):
                changed[name] = values.copy()
        if changed:
            self._write_fields(changed)
            self._on_device.update(changed)
        resets = self._reset_keys if (self._reset_keys >= 0).any() else None
        self._write_state(resets, self.qpos, self.qvel, self.ctrl, self.xfrc_applied)
        self._reset_keys[:] = -1

    @abc.abstractmethod
    def _write_fields(self, fields: dict[str, np.ndarray]) -> None:
        """Make each named model field per-env on the device with these (N, ...) values.

        Fields the engine does not have (it does not use them) are skipped.
        """

    @abc.abstractmethod
    def _write_state(
        self,
        reset_keys: np.ndarray | None,
        qpos: np.ndarray,
        qvel: np.ndarray,
        ctrl: np.ndarray,
        xfrc_applied: np.ndarray,
    ) -> None:
        """Reset envs with ``reset_keys[i] >= 0`` to that keyframe, then set the state."""

    @abc.abstractmethod
    def _device_step(self, nstep: int) -> None:
        """Advance every env by ``nstep`` physics steps on the device."""

    @abc.abstractmethod
    def _device_forward(self) -> None:
        """Run the forward dynamics of every env at its current state."""

    @abc.abstractmethod
    def _read(self, names: tuple[str, ...]) -> dict[str, np.ndarray]:
        """Copy data fields (N, ...) from the device to new float64 host arrays."""

    @abc.abstractmethod
    def device_tensor(self, name: str):
        """Data field ``name`` (``READ_FIELDS``) as a torch tensor sharing device memory.

        The zero-copy hand-over (DLPack) to GPU-resident code. It is the device's state
        after the last call, not the host mirror.
        """


def _sensor_columns(model: mujoco.MjModel, stage: int) -> np.ndarray:
    """Columns of ``sensordata`` whose sensors need ``stage`` (mjtStage) or an earlier one."""
    m = model
    return np.concatenate(
        [
            np.arange(m.sensor_adr[i], m.sensor_adr[i] + m.sensor_dim[i])
            for i in range(m.nsensor)
            if m.sensor_needstage[i] <= int(stage)
        ]
        or [np.empty(0, dtype=np.int64)]
    )
