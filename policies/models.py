"""Actor-critic networks: MLPs, optional recurrent memory, a Gaussian policy.

Shapes: B envs (or samples), T time steps, D observation features, A actions.
Feed-forward models take (..., D). Recurrent models take sequences (T, B, D) with
``starts`` (T, B) bool — True where a new episode begins at that step, so the memory is
zeroed before it — and a hidden state (K, B, H) holding the state before step 0
(K = layers for a GRU, 2 × layers for an LSTM: hidden and cell states stacked). The
rollout calls them with T = 1 step by step; the PPO update replays whole rollouts,
so the hidden state of every step is recomputed exactly as it was collected.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.distributions import Normal

from sim2real.policies.config import ModelConfig
from sim2real.policies.normalization import EmpiricalNormalization

ACTIVATIONS = {"elu": nn.ELU, "relu": nn.ReLU, "tanh": nn.Tanh}


def mlp(inputs: int, hidden: list[int], outputs: int, activation: str) -> nn.Sequential:
    """Linear layers of sizes ``inputs → hidden… → outputs`` with ``activation`` between."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; choose from {sorted(ACTIVATIONS)}")
    sizes = [inputs, *hidden, outputs]
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


class Memory(nn.Module):
    """A GRU or LSTM over (T, B, D) sequences, zeroing its state where episodes start."""

    def __init__(self, kind: str, inputs: int, hidden: int, layers: int):
        super().__init__()
        cells = {"gru": nn.GRU, "lstm": nn.LSTM}
        if kind not in cells:
            raise ValueError(f"unknown recurrent memory {kind!r}; choose gru or lstm")
        self.kind, self.hidden_size, self.layers = kind, hidden, layers
        self.rnn = cells[kind](inputs, hidden, num_layers=layers)

    def initial_state(self, batch: int) -> torch.Tensor:
        """Zeros (K, B, H)."""
        k = self.layers * (2 if self.kind == "lstm" else 1)
        return torch.zeros(k, batch, self.hidden_size)

    def forward(
        self, x: torch.Tensor, state: torch.Tensor, starts: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run (T, B, D) from ``state`` (K, B, H); return outputs (T, B, H) and the last state."""
        outputs = []
        for t in range(x.shape[0]):
            state = state * (~starts[t]).to(state.dtype)[None, :, None]
            out, packed = self.rnn(x[t : t + 1], self._unpack(state))
            state = self._pack(packed)
            outputs.append(out)
        return torch.cat(outputs), state

    def _unpack(self, state: torch.Tensor):
        if self.kind == "lstm":
            return tuple(state.chunk(2))
        return state

    def _pack(self, state) -> torch.Tensor:
        return torch.cat(state) if self.kind == "lstm" else state


class ActorCritic(nn.Module):
    """Gaussian actor and value critic, each behind its own observation normalizer.

    The policy is N(actor(obs), diag(std²)) with a learned, state-independent std (log
    parametrized). With ``config.asymmetric`` the critic takes the privileged "critic"
    observations, otherwise the actor's.

    Args:
        actor_obs: D of the actor's observations.
        critic_obs: D of the critic's observations.
        num_actions: A.
        config: sizes, activation, initial std, memory, normalization.
    """

    def __init__(self, actor_obs: int, critic_obs: int, num_actions: int, config: ModelConfig):
        super().__init__()
        self.config = config
        self.actor_obs, self.critic_obs, self.num_actions = actor_obs, critic_obs, num_actions
        norm = EmpiricalNormalization if config.normalize_obs else _identity
        self.actor_normalizer = norm(actor_obs)
        self.critic_normalizer = norm(critic_obs)
        self.is_recurrent = config.recurrent != "none"
        actor_in, critic_in = actor_obs, critic_obs
        if self.is_recurrent:
            memory = (config.recurrent, config.rnn_hidden, config.rnn_layers)
            self.actor_memory = Memory(memory[0], actor_obs, *memory[1:])
            self.critic_memory = Memory(memory[0], critic_obs, *memory[1:])
            actor_in = critic_in = config.rnn_hidden
        self.actor = mlp(actor_in, config.actor_hidden, num_actions, config.activation)
        self.critic = mlp(critic_in, config.critic_hidden, 1, config.activation)
        self.log_std = nn.Parameter(torch.full((num_actions,), math.log(config.init_noise_std)))
        # small last actor layer: the initial policy is centred on the default pose
        nn.init.orthogonal_(self.actor[-1].weight, gain=0.01)
        nn.init.zeros_(self.actor[-1].bias)

    @property
    def std(self) -> torch.Tensor:
        """(A,) the policy's standard deviation, in action units."""
        return self.log_std.exp()

    def initial_state(self, batch: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Zero (actor, critic) memory states for ``batch`` envs; None if feed-forward."""
        if not self.is_recurrent:
            return None
        return self.actor_memory.initial_state(batch), self.critic_memory.initial_state(batch)

    def action_mean(
        self,
        obs: torch.Tensor,
        state: torch.Tensor | None = None,
        starts: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Mean action (..., A) from actor observations; the new memory state."""
        x = self.actor_normalizer(obs)
        if self.is_recurrent:
            x, state = self.actor_memory(x, state, starts)
        return self.actor(x), state

    def value(
        self,
        obs: torch.Tensor,
        state: torch.Tensor | None = None,
        starts: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Value (...,) from critic observations; the new memory state."""
        x = self.critic_normalizer(obs)
        if self.is_recurrent:
            x, state = self.critic_memory(x, state, starts)
        return self.critic(x).squeeze(-1), state

    def distribution(self, mean: torch.Tensor) -> Normal:
        """The Gaussian policy around ``mean`` (..., A)."""
        return Normal(mean, self.std.expand_as(mean))

    def update_normalizers(self, actor_obs: torch.Tensor, critic_obs: torch.Tensor) -> None:
        """Merge a batch of observations into both normalizers' statistics."""
        if self.config.normalize_obs:
            self.actor_normalizer.update(actor_obs)
            self.critic_normalizer.update(critic_obs)


def observation_groups(config: ModelConfig) -> tuple[str, str]:
    """The env observation groups (actor's, critic's) that ``config`` asks for."""
    if config.actor_group not in ("policy", "critic"):
        raise ValueError(f"model.actor_group must be policy or critic, got {config.actor_group!r}")
    return config.actor_group, "critic" if config.asymmetric else config.actor_group


def observation_sizes(config: ModelConfig, obs_sizes: dict[str, int]) -> tuple[int, int]:
    """(actor, critic) input sizes, from the env's ``obs_sizes`` per group."""
    actor, critic = observation_groups(config)
    return obs_sizes[actor], obs_sizes[critic]


def _identity(size: int) -> nn.Module:
    return nn.Identity()
