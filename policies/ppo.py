"""Proximal policy optimization (Schulman et al., 2017): the update from one rollout.

The loss of each minibatch is commented term by term in ``PPO.loss``. In data-parallel
training every process holds its own rollout; ``Distributed`` averages the gradients,
the advantage statistics and the KL divergence over processes, so all of them take the
same step with the same learning rate.
"""

from __future__ import annotations

import torch
from torch import nn

from sim2real.policies.config import PPOConfig
from sim2real.policies.distributed import Distributed
from sim2real.policies.models import ActorCritic
from sim2real.policies.storage import Minibatch, RolloutStorage

#: Bounds of the adaptive learning rate.
MIN_LR, MAX_LR = 1e-5, 1e-2


class PPO:
    """The PPO optimizer of an ``ActorCritic``.

    Args:
        model: the actor-critic being trained.
        config: PPO hyperparameters.
        dist: the process group (a single process by default).
        seed: seeds the minibatch order.
    """

    def __init__(
        self,
        model: ActorCritic,
        config: PPOConfig,
        dist: Distributed | None = None,
        seed: int = 0,
    ):
        if config.schedule not in ("adaptive", "fixed"):
            raise ValueError(f"ppo.schedule must be adaptive or fixed, got {config.schedule!r}")
        self.model, self.config = model, config
        self.dist = dist or Distributed()
        self.learning_rate = config.learning_rate
        # foreach: one kernel per op over all parameters; the same numbers as the loop
        self.optimizer = torch.optim.Adam(model.parameters(), lr=self.learning_rate, foreach=True)
        self.generator = torch.Generator().manual_seed(seed)

    def update(self, storage: RolloutStorage) -> dict[str, float]:
        """Optimize on a rollout whose returns are computed; return mean losses and stats.

        Keys: ``loss/{surrogate,value,entropy}``, ``policy/{kl,clip_fraction}`` (means over
        minibatches), ``policy/learning_rate`` and ``policy/action_std`` (after the update).
        """
        cfg = self.config
        if cfg.normalize_advantages:
            storage.advantages = self._normalized(storage.advantages)
        sums: dict[str, float] = {}
        count = 0
        for batch in storage.minibatches(cfg.num_minibatches, cfg.num_epochs, self.generator):
            loss, stats = self.loss(batch)
            if cfg.schedule == "adaptive":
                self._adapt_learning_rate(stats["policy/kl"])
            self.optimizer.zero_grad()
            loss.backward()
            self.dist.average_gradients(self.model)
            nn.utils.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm)
            self.optimizer.step()
            for key, value in stats.items():
                sums[key] = sums.get(key, 0.0) + value
            count += 1
        stats = {key: value / count for key, value in sums.items()}
        stats["policy/learning_rate"] = self.learning_rate
        stats["policy/action_std"] = self.model.std.mean().item()
        return stats

    def loss(self, batch: Minibatch) -> tuple[torch.Tensor, dict[str, float]]:
        """The PPO loss of one minibatch and its parts (floats, for logging)."""
        cfg, model = self.config, self.model
        mean, _ = model.action_mean(batch.actor_obs, batch.actor_state, batch.starts)
        value, _ = model.value(batch.critic_obs, batch.critic_state, batch.starts)
        dist = model.distribution(mean)
        log_prob = dist.log_prob(batch.actions).sum(-1)
        # probability ratio of the taken actions, new policy over the one that collected them
        ratio = torch.exp(log_prob - batch.log_probs)
        # clipped surrogate: no incentive to move the ratio beyond 1 ± clip
        unclipped = ratio * batch.advantages
        clipped = ratio.clamp(1.0 - cfg.clip_param, 1.0 + cfg.clip_param) * batch.advantages
        surrogate_loss = -torch.min(unclipped, clipped).mean()
        # value regression to the GAE returns, optionally clipped around the old values
        value_error = (value - batch.returns).pow(2)
        if cfg.clipped_value_loss:
            moved = batch.values + (value - batch.values).clamp(-cfg.clip_param, cfg.clip_param)
            value_error = torch.max(value_error, (moved - batch.returns).pow(2))
        value_loss = value_error.mean()
        # entropy bonus keeps the policy exploring
        entropy = dist.entropy().sum(-1).mean()
        loss = surrogate_loss + cfg.value_loss_coef * value_loss - cfg.entropy_coef * entropy
        with torch.no_grad():
            kl = _gaussian_kl(batch.means, batch.stds, mean, dist.stddev).mean()
            clip_fraction = ((ratio - 1.0).abs() > cfg.clip_param).float().mean()
        stats = {
            "loss/surrogate": surrogate_loss.item(),
            "loss/value": value_loss.item(),
            "loss/entropy": entropy.item(),
            "policy/kl": self.dist.mean(kl).item(),
            "policy/clip_fraction": clip_fraction.item(),
        }
        return loss, stats

    def _adapt_learning_rate(self, kl: float) -> None:
        """Shrink the step when the policy moved too far (KL), grow it when it barely moved."""
        target = self.config.desired_kl
        if kl > 2.0 * target:
            self.learning_rate = max(MIN_LR, self.learning_rate / 1.5)
        elif 0.0 < kl < target / 2.0:
            self.learning_rate = min(MAX_LR, self.learning_rate * 1.5)
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate

    def _normalized(self, advantages: torch.Tensor) -> torch.Tensor:
        """Advantages with zero mean and unit std over the whole (all processes') rollout."""
        a = advantages.double()
        moments = torch.stack([a.new_tensor(a.numel()), a.sum(), (a * a).sum()])
        n, total, squares = self.dist.sum(moments)
        mean = total / n
        std = (squares / n - mean * mean).clamp_min(0.0).sqrt()
        return ((advantages - mean) / (std + 1e-8)).float()

    def state_dict(self) -> dict:
        """Optimizer, learning rate and minibatch generator, for checkpoints."""
        return {
            "optimizer": self.optimizer.state_dict(),
            "learning_rate": self.learning_rate,
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore what ``state_dict`` saved."""
        self.optimizer.load_state_dict(state["optimizer"])
        self.learning_rate = float(state["learning_rate"])
        self.generator.set_state(state["generator"])
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate


def _gaussian_kl(
    old_mean: torch.Tensor, old_std: torch.Tensor, mean: torch.Tensor, std: torch.Tensor
) -> torch.Tensor:
    """KL(old ‖ new) of diagonal Gaussians, summed over actions: (...,)."""
    return (
        torch.log(std / old_std) + (old_std.pow(2) + (old_mean - mean).pow(2)) / (2 * std.pow(2))
    ).sum(-1) - 0.5 * mean.shape[-1]
