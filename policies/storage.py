"""The rollout storage: every transition of one PPO rollout goes through this object.

Arrays are (T, N, ...) over T control steps and N envs. The rollout fills one step at a
time with ``add``; ``compute_returns`` runs GAE; ``minibatches`` serves the PPO update —
random samples of single transitions for feed-forward models, whole env sequences
(T, B, ...) with their initial memory state for recurrent ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from sim2real.policies.gae import compute_gae


@dataclass
class Minibatch:
    """One minibatch: (M, ...) samples, or (T, B, ...) sequences for recurrent models."""

    actor_obs: torch.Tensor
    critic_obs: torch.Tensor
    actions: torch.Tensor
    log_probs: torch.Tensor
    means: torch.Tensor
    stds: torch.Tensor
    values: torch.Tensor
    returns: torch.Tensor
    advantages: torch.Tensor
    starts: torch.Tensor | None = None
    actor_state: torch.Tensor | None = None
    critic_state: torch.Tensor | None = None


class RolloutStorage:
    """One rollout of ``num_steps`` × ``num_envs`` transitions.

    Args:
        num_steps: T.
        num_envs: N.
        actor_obs: D of the actor's observations.
        critic_obs: D of the critic's observations.
        num_actions: A.
        initial_state: for recurrent models, (actor, critic) memory states (K, N, H) whose
            shapes are stored; None for feed-forward models.
    """

    def __init__(
        self,
        num_steps: int,
        num_envs: int,
        actor_obs: int,
        critic_obs: int,
        num_actions: int,
        initial_state: tuple[torch.Tensor, torch.Tensor] | None = None,
    ):
        T, N, A = num_steps, num_envs, num_actions
        self.num_steps, self.num_envs = T, N
        self.actor_obs = torch.zeros(T, N, actor_obs)
        self.critic_obs = torch.zeros(T, N, critic_obs)
        self.actions = torch.zeros(T, N, A)
        self.log_probs = torch.zeros(T, N)
        self.means = torch.zeros(T, N, A)
        self.stds = torch.zeros(T, N, A)
        self.values = torch.zeros(T, N)
        self.rewards = torch.zeros(T, N)
        self.dones = torch.zeros(T, N, dtype=torch.bool)
        self.starts = torch.zeros(T, N, dtype=torch.bool)
        self.returns = torch.zeros(T, N)
        self.advantages = torch.zeros(T, N)
        self.initial_state = None
        if initial_state is not None:
            self.initial_state = tuple(torch.zeros_like(s) for s in initial_state)
        self.step = 0

    def add(
        self,
        actor_obs: torch.Tensor,
        critic_obs: torch.Tensor,
        actions: torch.Tensor,
        log_probs: torch.Tensor,
        means: torch.Tensor,
        stds: torch.Tensor,
        values: torch.Tensor,
        rewards: torch.Tensor,
        dones: torch.Tensor,
        starts: torch.Tensor,
    ) -> None:
        """Store one step of N transitions (rows as in the attribute shapes, no T axis)."""
        if self.step >= self.num_steps:
            raise RuntimeError(f"rollout storage is full ({self.num_steps} steps); call clear()")
        t = self.step
        self.actor_obs[t] = actor_obs
        self.critic_obs[t] = critic_obs
        self.actions[t] = actions
        self.log_probs[t] = log_probs
        self.means[t] = means
        self.stds[t] = stds
        self.values[t] = values
        self.rewards[t] = rewards
        self.dones[t] = dones
        self.starts[t] = starts
        self.step += 1

    def set_initial_state(self, state: tuple[torch.Tensor, torch.Tensor] | None) -> None:
        """Record the recurrent (actor, critic) states the rollout starts from."""
        if state is not None:
            for stored, value in zip(self.initial_state, state, strict=True):
                stored.copy_(value)

    def clear(self) -> None:
        """Start a new rollout."""
        self.step = 0

    def compute_returns(self, last_values: torch.Tensor, gamma: float, lam: float) -> None:
        """GAE advantages and value targets from the filled rollout (see ``compute_gae``)."""
        if self.step != self.num_steps:
            raise RuntimeError(f"rollout holds {self.step} of {self.num_steps} steps")
        self.advantages, self.returns = compute_gae(
            self.rewards, self.values, self.dones, last_values, gamma, lam
        )

    def minibatches(
        self, num_minibatches: int, num_epochs: int, generator: torch.Generator
    ) -> Iterator[Minibatch]:
        """``num_epochs`` shuffled passes of ``num_minibatches`` equal minibatches each.

        When the samples (or envs) do not split evenly, each pass leaves out the
        remainder of its shuffled order (a different part each pass).
        """
        recurrent = self.initial_state is not None
        total = self.num_envs if recurrent else self.num_steps * self.num_envs
        if num_minibatches > total:
            what = "envs" if recurrent else "transitions"
            raise ValueError(f"{num_minibatches} minibatches but only {total} {what}")
        size = total // num_minibatches
        packed = None if recurrent else self._packed()
        for _ in range(num_epochs):
            order = torch.randperm(total, generator=generator)
            for i in range(num_minibatches):
                ids = order[i * size : (i + 1) * size]
                yield self._sequences(ids) if recurrent else self._samples(packed, ids)

    def _packed(self) -> torch.Tensor:
        """Every sample field side by side, (T × N, F): one gather serves a minibatch."""
        total = self.num_steps * self.num_envs
        return torch.cat([getattr(self, name).reshape(total, -1) for name in _FIELDS], dim=1)

    def _samples(self, packed: torch.Tensor, ids: torch.Tensor) -> Minibatch:
        """Transitions ``ids`` of the flattened (T × N) rollout: views into one gather."""
        rows = packed.index_select(0, ids)
        shapes = [getattr(self, name).shape[2:] for name in _FIELDS]
        columns = rows.split([s.numel() for s in shapes], dim=1)
        return Minibatch(
            **{
                name: column.view(len(ids), *shape)
                for name, column, shape in zip(_FIELDS, columns, shapes, strict=True)
            }
        )

    def _sequences(self, env_ids: torch.Tensor) -> Minibatch:
        """Whole rollouts (T, B, ...) of envs ``env_ids`` with their initial states."""
        fields = {name: getattr(self, name)[:, env_ids] for name in _FIELDS}
        actor_state, critic_state = (s[:, env_ids] for s in self.initial_state)
        return Minibatch(
            **fields,
            starts=self.starts[:, env_ids],
            actor_state=actor_state,
            critic_state=critic_state,
        )


_FIELDS = (
    "actor_obs",
    "critic_obs",
    "actions",
    "log_probs",
    "means",
    "stds",
    "values",
    "returns",
    "advantages",
)
