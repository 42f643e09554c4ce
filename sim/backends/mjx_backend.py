"""The ``mjx`` backend: MuJoCo XLA on JAX (GPU or TPU, or JAX's CPU for tests).

Every env's data is one batched ``mjx.Data``; the model is one ``mjx.Model`` whose
randomized fields carry a leading env axis and are mapped by ``jax.vmap`` (the others
are shared). The jitted calls close over the shared model, so XLA sees it as constants
(passed as an argument it is traced, and a step ran 70× slower on JAX's CPU); they are
compiled per set of per-env fields, so the first call after a field becomes per-env
compiles again (once, at start-up in practice). On JAX's CPU the envs run one after
another (``lax.map``): a ``vmap``-batched step of 4 envs took 15× one env's time there.

Install with ``pip install 'sim2real[mjx]'`` (add JAX's CUDA plugin for a GPU).
"""

from __future__ import annotations

import copy
import functools

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from mujoco import mjx

from sim2real.sim.backends.device import DeviceBackend

# Least friction loss of every dof, N·m (N on slide joints): far below any real joint's
# (0.01–1 N·m), it only gives each dof the friction row randomization needs.
FRICTION_FLOOR = 1e-6


class MjxBackend(DeviceBackend):
    """N envs of ``model`` on JAX's default device. See ``DeviceBackend``."""

    def __init__(self, model: mujoco.MjModel, num_envs: int):
        super().__init__(model, num_envs)
        # MJX sizes its constraint rows from the model it was given: a dof gets a
        # friction-loss row only if its frictionloss is > 0 there, and a row whose loss
        # is 0 is not the same as no row (it put the arm 0.27 rad off in 80 steps).
        # Randomization gives friction to dofs the asset has none on, so every dof gets
        # a row, with at least FRICTION_FLOOR of loss.
        with_rows = copy.copy(model)
        with_rows.dof_frictionloss = np.maximum(model.dof_frictionloss, FRICTION_FLOOR)
        self._model = mjx.put_model(with_rows)
        batch = _map_batch if self.device.platform == "cpu" else jax.vmap
        self._step = jax.jit(functools.partial(_step, self._model, batch), static_argnums=2)
        self._forward = jax.jit(functools.partial(_forward, self._model, batch))
        self._fields: dict[str, jax.Array] = {}  # per-env model fields, (N, ...)
        blank = mjx.make_data(self._model)
        self._keyframes = [
            blank.replace(
                time=jnp.float32(model.key_time[key]),
                act=jnp.asarray(model.key_act[key], jnp.float32),
                mocap_pos=jnp.asarray(model.key_mpos[key].reshape(-1, 3), jnp.float32),
                mocap_quat=jnp.asarray(model.key_mquat[key].reshape(-1, 4), jnp.float32),
            )
            for key in range(model.nkey)
        ]
        self._data = jax.tree_util.tree_map(lambda x: jnp.stack([x] * num_envs), blank)

    @property
    def device(self) -> jax.Device:
        """The JAX device the envs run on."""
        return jax.devices()[0]

    def _write_fields(self, fields: dict[str, np.ndarray]) -> None:
        for name, values in fields.items():
            if name == "dof_frictionloss":
                values = np.maximum(values, FRICTION_FLOOR)
            owner = self._model.opt if name.startswith("opt.") else self._model
            if hasattr(owner, name.removeprefix("opt.")):
                self._fields[name] = jnp.asarray(values, dtype=jnp.float32)

    def _write_state(self, reset_keys, qpos, qvel, ctrl, xfrc_applied) -> None:
        if reset_keys is not None:
            for key in np.unique(reset_keys[reset_keys >= 0]):
                mask = jnp.asarray(reset_keys == key)
                self._data = _reset(self._data, self._keyframes[key], mask)
        self._data = self._data.replace(
            qpos=jnp.asarray(qpos, dtype=jnp.float32),
            qvel=jnp.asarray(qvel, dtype=jnp.float32),
            ctrl=jnp.asarray(ctrl, dtype=jnp.float32),
            xfrc_applied=jnp.asarray(xfrc_applied, dtype=jnp.float32),
        )

    def _device_step(self, nstep: int) -> None:
        self._data = self._step(self._fields, self._data, nstep)

    def _device_forward(self) -> None:
        self._data = self._forward(self._fields, self._data)

    def _read(self, names: tuple[str, ...]) -> dict[str, np.ndarray]:
        return {n: np.asarray(getattr(self._data, n), dtype=np.float64) for n in names}

    def device_tensor(self, name: str):
        """Data field ``name`` as a torch tensor sharing the JAX buffer (DLPack)."""
        import torch

        return torch.from_dlpack(getattr(self._data, name))


def _env_model(model: mjx.Model, fields: dict[str, jax.Array]) -> mjx.Model:
    """``model`` with one env's values of the per-env fields."""
    return model.tree_replace(fields) if fields else model


def _map_batch(one_env):
    """``one_env`` over the leading env axis of its arguments, one env after another."""
    return lambda *args: jax.lax.map(lambda env_args: one_env(*env_args), args)


def _step(model: mjx.Model, batch, fields: dict, data: mjx.Data, nstep: int) -> mjx.Data:
    """Every env of ``data`` (batched) advanced by ``nstep`` physics steps."""

    def one_env(env_fields, env_data):
        m = _env_model(model, env_fields)
        return jax.lax.fori_loop(0, nstep, lambda _, d: mjx.step(m, d), env_data)

    return batch(one_env)(fields, data)


def _forward(model: mjx.Model, batch, fields: dict, data: mjx.Data) -> mjx.Data:
    """The forward dynamics of every env of ``data`` (batched)."""
    return batch(lambda f, d: mjx.forward(_env_model(model, f), d))(fields, data)


@jax.jit
def _reset(data: mjx.Data, fresh: mjx.Data, mask: jax.Array) -> mjx.Data:
    """``data`` with the rows where ``mask`` (N,) is True replaced by ``fresh``."""

    def pick(batched, one):
        rows = mask.reshape((-1,) + (1,) * one.ndim)
        return jnp.where(rows, one[None], batched)

    return jax.tree_util.tree_map(pick, data, fresh)
