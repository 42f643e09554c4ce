"""Gymnasium views of the project's own ``TaskEnv``: one env, or N envs batched.

``GymEnv`` is a ``gymnasium.Env`` over a ``TaskEnv`` with one env (one thread);
``GymVectorEnv`` is a ``gymnasium.vector.VectorEnv`` over a ``TaskEnv`` of N envs, stepped
in one batched call (no per-env Python loop). Shapes (N envs, A actions, D features of
the chosen observation group):

- observation: the ``"policy"`` group by default (``obs_group="critic"`` for the
  privileged one), float32, (D,) / (N, D), in ``Box(-inf, inf)``;
- action: float32, (A,) / (N, A), in ``Box(-action_bound, action_bound)``;
- reward: the TaskEnv reward (already × control period); ``terminated`` = the TaskEnv's
  ``terminated`` (a fall, an unstable simulation); ``truncated`` = its ``time_outs``.

Action bound. The TaskEnv does not clip actions, and neither do these adapters: actions
outside the box are applied as given. The box states the range a policy is expected to
use (samplers such as ``action_space.sample()`` draw from it). The default,
``DEFAULT_ACTION_BOUND = 5.0``, moves a joint target up to 1.25 rad from the default pose
on go2 (target = default + 0.25·a) and 2.5 rad on the Panda arm (default + 0.5·a): both
limits of every go2 hip and calf (2.7–4.9 action units away) and the nearer limit of four
of the seven Panda joints (1.4–4.2 units) are in reach. The remaining ranges (go2 thighs
6–14 units, Panda ±2.9 rad joints 5.8 units) are far wider than walking or reaching
needs. It is also five standard deviations of a unit-variance Gaussian policy.

End of episode. The TaskEnv resets ended envs within ``step`` (auto-reset) and returns
the last observation of the ended episode in ``infos["final_obs"]``. ``GymEnv.step``
returns that final observation, and keeps the new episode's first observation
(already drawn by the TaskEnv's generator) to return at the next ``reset()`` without a
seed; no second reset is simulated, so an episode boundary costs nothing extra and
``reset(seed=s)`` followed by any mix of ``step``/``reset()`` calls is reproducible.
``reset(seed=s)`` always resets explicitly. Stepping after an episode ended without
calling ``reset()`` continues the new episode (gymnasium leaves this undefined).
``GymVectorEnv`` keeps the TaskEnv's auto-reset as gymnasium's ``SAME_STEP`` mode.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from sim2real.sim.task_env import TaskEnv
from sim2real.sim.tasks import make_env

DEFAULT_ACTION_BOUND = 5.0


def _spaces(env: TaskEnv, obs_group: str, action_bound: float) -> tuple[spaces.Box, spaces.Box]:
    """The single-env observation and action spaces of ``env``."""
    if obs_group not in env.obs_sizes:
        raise ValueError(
            f"unknown observation group {obs_group!r}; groups: {', '.join(env.obs_sizes)}"
        )
    if not action_bound > 0:
        raise ValueError(f"action_bound must be > 0, got {action_bound}")
    obs_space = spaces.Box(-np.inf, np.inf, (env.obs_sizes[obs_group],), np.float32)
    act_space = spaces.Box(-action_bound, action_bound, (env.num_actions,), np.float32)
    return obs_space, act_space


def _as_float_array(actions: Any) -> np.ndarray:
    """Actions as a floating numpy array (float32 unless already floating)."""
    actions = np.asarray(actions)
    return actions if actions.dtype.kind == "f" else actions.astype(np.float32)


class GymEnv(gym.Env[np.ndarray, np.ndarray]):
    """One env of a registered task as a ``gymnasium.Env``; see the module docstring.

    Args:
        task: registered task name (``sim2real.sim.tasks.TASKS``), e.g. ``"go2-flat"``.
        obs_group: observation group returned as the observation (``"policy"``/``"critic"``).
        seed: seeds the TaskEnv at construction; ``reset()`` without a seed continues
            that generator, so unseeded runs are reproducible too.
        action_bound: half-width A of the action box (A,) ``[-A, A]``.
        backend: simulator backend name.
        randomization: domain randomization, as ``make_env`` takes it (None: the task's
            shipped defaults; ``"off"``; a YAML path or a ``RandomizationConfig``).

    Attributes:
        env: the underlying ``TaskEnv`` (num_envs=1, nthread=1).
        obs_group: the observation group returned.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        task: str,
        obs_group: str = "policy",
        seed: int = 0,
        action_bound: float = DEFAULT_ACTION_BOUND,
        backend: str = "cpu",
        randomization: Any = None,
    ):
        self.env = make_env(
            task, 1, seed=seed, nthread=1, backend=backend, randomization=randomization
        )
        self.obs_group = obs_group
        self.observation_space, self.action_space = _spaces(self.env, obs_group, action_bound)
        self._next_obs: np.ndarray | None = None  # first obs of the auto-reset episode

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode; return its first observation (D,) float32 and ``{}``.

        Args:
            seed: reseeds the TaskEnv (and gymnasium's ``np_random``) and resets.
            options: accepted for the gymnasium API; unused.
        """
        super().reset(seed=seed)
        if seed is None and self._next_obs is not None:
            obs = self._next_obs  # the TaskEnv auto-reset at the end of the last episode
        else:
            obs = self.env.reset(seed)[self.obs_group][0]
        self._next_obs = None
        return obs.copy(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Apply ``action`` (A,) for one control period.

        Returns:
            ``(obs (D,) float32, reward, terminated, truncated, info)``. At the step an
            episode ends, ``obs`` is its final observation and ``info["episode"]`` holds
            its statistics (``return``, ``length`` and each reward term's sum, plus
            ``r``, ``l`` and ``t`` — return, length, seconds — as gymnasium's
            ``RecordEpisodeStatistics`` and stable-baselines3 name them); the next
            episode starts at the next ``reset()``.
        """
        action = _as_float_array(action)
        if action.shape != self.action_space.shape:
            raise ValueError(
                f"action must have shape {self.action_space.shape}, got {action.shape}"
            )
        result = self.env.step(action[None])
        terminated = bool(result.terminated[0])
        truncated = bool(result.time_outs[0])
        info: dict[str, Any] = {}
        if terminated or truncated:
            obs = result.infos["final_obs"][self.obs_group][0]
            self._next_obs = result.obs[self.obs_group][0]
            stats = _with_gym_names(result.infos["episode"], self.env.step_dt)
            info["episode"] = {k: v[0].item() for k, v in stats.items() if k != "env_ids"}
        else:
            obs = result.obs[self.obs_group][0]
            self._next_obs = None
        return obs, float(result.rewards[0]), terminated, truncated, info


class GymVectorEnv(VectorEnv):
    """N envs of a registered task as a batched ``gymnasium.vector.VectorEnv``.

    One TaskEnv steps all envs in one call. Ended envs reset within the same ``step``
    (``AutoresetMode.SAME_STEP``): the returned observation rows of those envs start their
    new episode, and the infos follow gymnasium 1.x's ``SyncVectorEnv`` in that mode:

    - ``infos["final_obs"]``: object array (N,), the final observation (D,) of each env that
      ended, ``None`` elsewhere; ``infos["_final_obs"]``: (N,) bool mask of those envs;
    - ``infos["final_info"]``: ``{"episode": {key: (N,), "_key": (N,) bool},
      "_episode": (N,) bool}`` with the statistics of ``GymEnv``'s ``info["episode"]``;
      ``infos["_final_info"]``: (N,) bool mask.

    Steps where no env ended return ``{}``. Rewards are float64 (N,), as ``SyncVectorEnv``
    returns them; terminations and truncations are bool (N,).

    Args:
        task: registered task name.
        num_envs: N.
        obs_group: observation group returned (``"policy"``/``"critic"``).
        seed: seeds the TaskEnv at construction.
        nthread: simulation threads (0: all cores).
        action_bound: half-width A of each env's action box ``[-A, A]``.
        backend: simulator backend name.
        randomization: domain randomization, as ``make_env`` takes it (None: the task's
            shipped defaults; ``"off"``; a YAML path or a ``RandomizationConfig``).

    Attributes:
        env: the underlying ``TaskEnv``.
        obs_group: the observation group returned.
    """

    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(
        self,
        task: str,
        num_envs: int,
        obs_group: str = "policy",
        seed: int = 0,
        nthread: int = 0,
        action_bound: float = DEFAULT_ACTION_BOUND,
        backend: str = "cpu",
        randomization: Any = None,
    ):
        self.env = make_env(
            task,
            num_envs,
            seed=seed,
            nthread=nthread,
            backend=backend,
            randomization=randomization,
        )
        self.num_envs = num_envs
        self.obs_group = obs_group
        self.single_observation_space, self.single_action_space = _spaces(
            self.env, obs_group, action_bound
        )
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every env; return observations (N, D) float32 and ``{}``.

        Args:
            seed: reseeds the TaskEnv (and gymnasium's ``np_random``).
            options: accepted for the gymnasium API; unused.
        """
        super().reset(seed=seed)
        return self.env.reset(seed)[self.obs_group], {}

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Apply ``actions`` (N, A) for one control period; see the class docstring.

        Returns:
            ``(obs (N, D) float32, rewards (N,) float64, terminations (N,) bool,
            truncations (N,) bool, infos)``.
        """
        result = self.env.step(_as_float_array(actions))
        done = result.terminated | result.time_outs
        infos: dict[str, Any] = {}
        if done.any():
            # arrays over the envs that ended
            stats = _with_gym_names(result.infos["episode"], self.env.step_dt)
            ids = stats.get("env_ids", np.flatnonzero(done))
            final = result.infos["final_obs"][self.obs_group]
            final_obs = np.full(self.num_envs, None, dtype=object)
            for i in ids:  # only the envs that ended
                final_obs[i] = final[i]
            episode: dict[str, np.ndarray] = {}
            for key, values in stats.items():
                if key == "env_ids":
                    continue
                column = np.zeros(self.num_envs, dtype=values.dtype)
                column[ids] = values
                episode[key], episode[f"_{key}"] = column, done.copy()
            infos["final_obs"], infos["_final_obs"] = final_obs, done.copy()
            infos["final_info"] = {"episode": episode, "_episode": done.copy()}
            infos["_final_info"] = done.copy()
        return (
            result.obs[self.obs_group],
            result.rewards.astype(np.float64),
            result.terminated,
            result.time_outs,
            infos,
        )


def make_gym_env(task: str, **kwargs: Any) -> GymEnv:
    """``GymEnv(task, **kwargs)``; a picklable factory for gymnasium's vector envs."""
    return GymEnv(task, **kwargs)


def make_gym_vector_env(task: str, num_envs: int, **kwargs: Any) -> GymVectorEnv:
    """``GymVectorEnv(task, num_envs, **kwargs)``."""
    return GymVectorEnv(task, num_envs, **kwargs)


__all__ = [
    "DEFAULT_ACTION_BOUND",
    "GymEnv",
    "GymVectorEnv",
    "make_gym_env",
    "make_gym_vector_env",
]


def _with_gym_names(stats: dict[str, np.ndarray], step_dt: float) -> dict[str, np.ndarray]:
    """Episode statistics plus ``r``, ``l``, ``t`` (return, length, s), gymnasium's names."""
    t = stats["length"] * step_dt
    return {**stats, "r": stats["return"], "l": stats["length"], "t": t}
