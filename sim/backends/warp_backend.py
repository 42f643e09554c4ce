"""The ``warp`` backend: MuJoCo Warp (a CUDA GPU, or Warp's CPU device for tests).

All envs are the worlds of one ``mujoco_warp`` Data. Model fields that mujoco_warp
batches (their leading dimension is the world) become per-env arrays of shape
(N, ...) when randomization writes them; the others stay shared.

Install with ``pip install 'sim2real[warp]'``.
"""

from __future__ import annotations

import mujoco
import mujoco_warp as mjw
import numpy as np
import warp as wp

from sim2real.sim.backends.device import DeviceBackend


class WarpBackend(DeviceBackend):
    """N envs of ``model`` on Warp's preferred device (CUDA if present). See ``DeviceBackend``."""

    def __init__(self, model: mujoco.MjModel, num_envs: int):
        super().__init__(model, num_envs)
        wp.config.log_level = wp.LOG_WARNING  # no line per kernel module loaded
        self.device = wp.get_preferred_device()
        with wp.ScopedDevice(self.device):
            self._model = mjw.put_model(model)
            self._data = mjw.make_data(model, nworld=num_envs)
            self._reset_keys_device = wp.zeros(num_envs, dtype=wp.int32)

    def _write_fields(self, fields: dict[str, np.ndarray]) -> None:
        for name, values in fields.items():
            owner = self._model.opt if name.startswith("opt.") else self._model
            attr = name.removeprefix("opt.")
            shared = getattr(owner, attr, None)
            if not _batched(shared):
                continue  # mujoco_warp does not have it, or never varies it per world
            values = values.astype(np.float32)
            if shared.shape[0] == self.num_envs:
                shared.assign(values)
            else:
                per_env = wp.array(values, dtype=shared.dtype, device=self.device)
                per_env._is_batched = True  # as put_model marks its batched arrays
                setattr(owner, attr, per_env)

    def _write_state(self, reset_keys, qpos, qvel, ctrl, xfrc_applied) -> None:
        d = self._data
        if reset_keys is not None:
            self._reset_keys_device.assign(reset_keys)
            mjw.reset_data_keyframe(self._model, d, self._reset_keys_device)
        d.qpos.assign(qpos.astype(np.float32))
        d.qvel.assign(qvel.astype(np.float32))
        d.ctrl.assign(ctrl.astype(np.float32))
        d.xfrc_applied.assign(xfrc_applied.astype(np.float32))

    def _device_step(self, nstep: int) -> None:
        with wp.ScopedDevice(self.device):
            for _ in range(nstep):
                mjw.step(self._model, self._data)

    def _device_forward(self) -> None:
        with wp.ScopedDevice(self.device):
            mjw.forward(self._model, self._data)

    def _read(self, names: tuple[str, ...]) -> dict[str, np.ndarray]:
        return {
            n: getattr(self._data, n).numpy().reshape(self.num_envs, -1).astype(np.float64)
            for n in names
        }

    def device_tensor(self, name: str):
        """Data field ``name`` as a torch tensor sharing the Warp array (DLPack)."""
        return wp.to_torch(getattr(self._data, name))


def _batched(array) -> bool:
    """Whether a mujoco_warp model attribute is an array with a leading world axis."""
    return isinstance(array, wp.array) and getattr(array, "_is_batched", False)
