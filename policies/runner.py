"""The training loop: rollouts on the env, PPO updates, curricula, logs and checkpoints.

One iteration collects ``ppo.num_steps`` control steps from every env through the
stochastic policy, bootstraps the value of time-outs into their reward, computes GAE,
runs the PPO update, then merges the rollout's observations into the normalizers (after
the update, so each rollout and its update see the same normalization).

A run folder holds ``config.yaml``, ``metrics.jsonl``, TensorBoard events and the
checkpoints ``model_<iteration>.pt``. ``Trainer.resume(run_dir)`` continues from the
latest checkpoint: networks, normalizers, optimizer, learning rate, curricula, random
streams and the iteration count (the envs themselves restart from fresh episodes).

``RunLoop`` is what every iterative run shares — the loop with its logs and periodic
checkpoints, resume, episode statistics; ``Trainer`` (PPO) and
``sim2real.policies.distillation.Distiller`` (teacher-student) fill in one iteration
and their checkpoint state.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from rich.console import Console

from sim2real.policies.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from sim2real.policies.config import TrainConfig, apply_overrides, from_dict, to_dict
from sim2real.policies.curricula import Curricula
from sim2real.policies.distributed import Distributed
from sim2real.policies.logger import TrainLogger
from sim2real.policies.models import ActorCritic, observation_groups, observation_sizes
from sim2real.policies.ppo import PPO
from sim2real.policies.storage import RolloutStorage


def build_env(config: TrainConfig, seed: int):
    """The training env of ``config`` (its task, size, backend and randomization)."""
    from sim2real.sim.tasks import make_env

    randomization = config.randomization or None
    return make_env(
        config.task,
        config.num_envs,
        seed=seed,
        nthread=config.nthread,
        backend=config.backend,
        randomization=randomization,
    )


def build_model(config: TrainConfig, env) -> ActorCritic:
    """The actor-critic for ``env``'s observation groups and actions."""
    actor_obs, critic_obs = observation_sizes(config.model, env.obs_sizes)
    return ActorCritic(actor_obs, critic_obs, env.num_actions, config.model)


class RunLoop:
    """An iterative run in a run folder: what ``Trainer`` and ``Distiller`` share.

    A subclass is built as ``cls(config, run_dir=, dist=, console=)``; it sets
    ``config``, ``dist``, ``console``, ``run_dir``, ``env`` and ``iteration``, and
    implements ``train_iteration``, ``state_dict`` and ``load_state_dict``.
    """

    config: TrainConfig
    dist: Distributed
    console: Console
    run_dir: Path
    env: Any
    iteration: int

    @classmethod
    def resume(
        cls,
        run_dir: str | Path,
        overrides: dict[str, Any] | None = None,
        dist: Distributed | None = None,
        console: Console | None = None,
    ):
        """Continue the run in ``run_dir`` from its latest checkpoint.

        ``overrides`` (dotted keys) may change fields that do not alter the networks,
        typically ``max_iterations``.
        """
        run_dir = Path(run_dir)
        state = load_checkpoint(latest_checkpoint(run_dir))
        config = apply_overrides(from_dict(state["config"]), overrides or {})
        run = cls(config, run_dir=run_dir, dist=dist, console=console)
        run.load_state_dict(state)
        return run

    def _start(
        self,
        config: TrainConfig,
        run_dir: str | Path | None,
        dist: Distributed | None,
        console: Console | None,
    ) -> int:
        """Set the run's config, processes, console and folder; seed torch; return the seed.

        The seed of this process is ``config.seed + rank``; torch uses
        ``config.torch_threads`` threads (0: its default).
        """
        self.config = config
        self.dist = dist or Distributed()
        self.console = console or Console(stderr=True)
        self.run_dir = Path(run_dir) if run_dir is not None else default_run_dir(config)
        rank_seed = config.seed + self.dist.rank
        torch.manual_seed(rank_seed)
        if config.torch_threads > 0:
            torch.set_num_threads(config.torch_threads)
        return rank_seed

    def learn(self) -> dict[str, float]:
        """Run until ``max_iterations``; return the last iteration's scalars."""
        config = self.config
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(config)))
        logger = TrainLogger(
            self.run_dir,
            config.max_iterations,
            start_iteration=self.iteration,
            enabled=self.dist.is_main,
            tensorboard=config.tensorboard,
            console=self.console,
        )
        scalars: dict[str, float] = {}
        try:
            while self.iteration < config.max_iterations:
                scalars = self.train_iteration()
                logger.log(self.iteration, scalars)
                last = self.iteration == config.max_iterations
                if last or self.iteration % config.save_interval == 0:
                    self.save()
        finally:
            logger.close()
        return scalars

    def train_iteration(self) -> dict[str, float]:
        """One iteration (it increments ``iteration``); return its scalars."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs, as tensors and plain values."""
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``state_dict()``."""
        raise NotImplementedError

    def save(self) -> Path | None:
        """Write ``model_<iteration>.pt`` into the run folder (rank 0 only)."""
        if not self.dist.is_main:
            return None
        path = self.run_dir / f"model_{self.iteration}.pt"
        return save_checkpoint(self.state_dict(), path)

    def _timing(self, steps: int, start: float, collected: float, done: float) -> dict[str, float]:
        """``perf/*`` scalars of an iteration of ``steps`` env-steps (perf_counter times, s)."""
        return {
            "perf/steps_per_s": steps / (done - start),
            "perf/collection_s": collected - start,
            "perf/learn_s": done - collected,
            "perf/total_steps": float(steps * self.iteration),
        }

    def _episode_means(self, finished: dict[str, list[np.ndarray]]) -> dict[str, float]:
        """Mean of each episode statistic over this rollout's finished episodes (all ranks)."""
        if not finished and self.dist.world_size == 1:
            return {}
        keys = ["return", "length", *(t.name for t in self.env.task.rewards)]
        sums = torch.zeros(len(keys) + 1, dtype=torch.float64)
        if finished:
            values = {k: np.concatenate(v) for k, v in finished.items()}
            sums[0] = len(values["return"])
            for i, key in enumerate(keys):
                sums[i + 1] = float(values[key].sum())
        sums = self.dist.sum(sums)
        if sums[0] == 0:
            return {}
        means = (sums[1:] / sums[0]).tolist()
        out = {"episode/return": means[0], "episode/length": means[1]}
        out.update({f"reward/{k}": m for k, m in zip(keys[2:], means[2:], strict=True)})
        return out


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block (or decorated function) on ``count`` torch threads, then restore."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def record_episodes(
    finished: dict[str, list[np.ndarray]], episode: dict[str, np.ndarray] | None
) -> None:
    """Append a step's ended episodes (``infos["episode"]``, or None) to ``finished``."""
    if episode is not None:
        for key, values in episode.items():
            if key != "env_ids":
                finished.setdefault(key, []).append(values)


class Trainer(RunLoop):
    """PPO training of one task; see the module docstring.

    Args:
        config: the run's configuration.
        run_dir: the run folder (default ``log_dir/run_name``, a timestamped name if
            ``run_name`` is empty).
        dist: the process group (default: a single process).
        console: where progress and messages go.
    """

    def __init__(
        self,
        config: TrainConfig,
        run_dir: str | Path | None = None,
        dist: Distributed | None = None,
        console: Console | None = None,
    ):
        rank_seed = self._start(config, run_dir, dist, console)
        self.env = build_env(config, rank_seed)
        self.model = build_model(config, self.env)
        if self.dist.world_size > 1:
            for normalizer in (self.model.actor_normalizer, self.model.critic_normalizer):
                normalizer.reducer = self.dist.sum
        self.dist.broadcast(self.model)
        self.ppo = PPO(self.model, config.ppo, self.dist, seed=config.seed)
        self.storage = RolloutStorage(
            config.ppo.num_steps,
            config.num_envs,
            self.model.actor_obs,
            self.model.critic_obs,
            self.env.num_actions,
            self.model.initial_state(config.num_envs),
        )
        self.curricula = Curricula.for_env(self.env, config.curriculum)
        self.iteration = 0
        self._episodes: dict[str, float] = {}
        self._reset_env(rank_seed)

    # ------------------------------------------------------------------ the loop

    def train_iteration(self) -> dict[str, float]:
        """One rollout and one PPO update; return the iteration's scalars."""
        start = time.perf_counter()
        episodes = self.collect()
        collected = time.perf_counter()
        stats = self.ppo.update(self.storage)
        self.model.update_normalizers(self.storage.actor_obs, self.storage.critic_obs)
        self.storage.clear()
        done = time.perf_counter()
        self.iteration += 1
        steps = self.config.ppo.num_steps * self.config.num_envs * self.dist.world_size
        # iterations where no episode ended repeat the last statistics (rsl_rl keeps a window)
        self._episodes = episodes or self._episodes
        scalars = {**stats, **self._episodes}
        scalars.update(self.curricula.metrics())
        scalars.update(self._timing(steps, start, collected, done))
        return scalars

    @torch.inference_mode()
    @torch_threads(1)
    def collect(self) -> dict[str, float]:
        """Fill the storage with one rollout; return the mean stats of episodes that ended.

        Torch runs on one thread here: its work per step is small, and idle OpenMP
        workers would spin for milliseconds after each op on the cores the simulator's
        threads need next. The numbers are the same on any thread count (a test compares).
        """
        gamma = self.config.ppo.gamma
        model, storage = self.model, self.storage
        storage.set_initial_state(self._state)
        finished: dict[str, list[np.ndarray]] = {}
        for _ in range(storage.num_steps):
            actor_obs, critic_obs = self._tensors(self._obs)
            mean, value, next_state = self._evaluate(actor_obs, critic_obs, self._state)
            dist = model.distribution(mean)
            actions = dist.sample()
            result = self.env.step(actions.numpy())
            rewards = torch.from_numpy(result.rewards)
            time_outs = torch.from_numpy(result.time_outs)
            if time_outs.any():
                # the episode was cut, not ended: credit the value of where it would go on
                _, final_critic = self._tensors(result.infos["final_obs"])
                final_value = self._final_value(final_critic, next_state)
                rewards = rewards + gamma * final_value * time_outs
            dones = torch.from_numpy(result.terminated | result.time_outs)
            storage.add(
                actor_obs,
                critic_obs,
                actions,
                dist.log_prob(actions).sum(-1),
                mean,
                dist.stddev,
                value,
                rewards,
                dones,
                self._starts,
            )
            self._obs, self._state, self._starts = result.obs, next_state, dones
            episode = result.infos.get("episode")
            self.curricula.update(episode)
            record_episodes(finished, episode)
        actor_obs, critic_obs = self._tensors(self._obs)
        _, last_value, _ = self._evaluate(actor_obs, critic_obs, self._state)
        storage.compute_returns(last_value, gamma, self.config.ppo.lam)
        return self._episode_means(finished)

    def _evaluate(self, actor_obs, critic_obs, state):
        """Mean action (N, A), value (N,) and next memory state of one step."""
        model = self.model
        if not model.is_recurrent:
            return model.action_mean(actor_obs)[0], model.value(critic_obs)[0], None
        starts = self._starts[None]
        mean, actor_state = model.action_mean(actor_obs[None], state[0], starts)
        value, critic_state = model.value(critic_obs[None], state[1], starts)
        return mean[0], value[0], (actor_state, critic_state)

    def _final_value(self, critic_obs: torch.Tensor, state) -> torch.Tensor:
        """(N,) values of the last observations of ended episodes."""
        if not self.model.is_recurrent:
            return self.model.value(critic_obs)[0]
        no_start = torch.zeros(1, critic_obs.shape[0], dtype=torch.bool)
        return self.model.value(critic_obs[None], state[1], no_start)[0][0]

    def _tensors(self, obs: dict[str, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """(actor, critic) observation tensors of an env observation dict."""
        actor, critic = observation_groups(self.config.model)
        return torch.from_numpy(obs[actor]), torch.from_numpy(obs[critic])

    def _reset_env(self, seed: int) -> None:
        self._obs = self.env.reset(seed)
        self._state = self.model.initial_state(self.config.num_envs)
        self._starts = torch.ones(self.config.num_envs, dtype=torch.bool)

    # ------------------------------------------------------------- checkpoints

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs, as tensors and plain values."""
        return {
            "iteration": self.iteration,
            "config": to_dict(self.config),
            "model": self.model.state_dict(),
            "ppo": self.ppo.state_dict(),
            "curricula": self.curricula.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "task": self.config.task,
            "obs_sizes": dict(self.env.obs_sizes),
            "num_actions": self.env.num_actions,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``state_dict()`` (the env restarts from fresh episodes)."""
        if state["task"] != self.config.task:
            raise ValueError(f"checkpoint is for task {state['task']!r}, not {self.config.task!r}")
        sizes = (dict(state["obs_sizes"]), state["num_actions"])
        if sizes != (dict(self.env.obs_sizes), self.env.num_actions):
            raise ValueError(
                f"checkpoint has observation sizes {sizes[0]} and {sizes[1]} actions; the env "
                f"has {dict(self.env.obs_sizes)} and {self.env.num_actions}"
            )
        self.model.load_state_dict(state["model"])
        self.ppo.load_state_dict(state["ppo"])
        self.curricula.load_state_dict(state["curricula"])
        self.iteration = int(state["iteration"])
        torch.set_rng_state(state["torch_rng"])
        if self.dist.rank > 0:  # the saved stream is rank 0's: the others draw their own noise
            torch.manual_seed(self.config.seed + self.dist.rank + self.iteration)
        self._reset_env(self.config.seed + self.dist.rank + self.iteration)


def default_run_dir(config: TrainConfig) -> Path:
    """``log_dir/run_name``, or ``log_dir/<task>-<YYYYmmdd-HHMMSS>``."""
    name = config.run_name or f"{config.task}-{datetime.now():%Y%m%d-%H%M%S}"
    return Path(config.log_dir) / name
