"""Generalized advantage estimation (Schulman et al., 2016) as a pure function."""

from __future__ import annotations

import torch


def compute_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    dones: torch.Tensor,
    last_values: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and returns of a rollout of T steps over N envs.

    Args:
        rewards: (T, N) reward of each step. Time-outs must already carry their bootstrap
            (``+ gamma * V(final obs)``), so a done here always means "no future".
        values: (T, N) value estimate of the state each step started from.
        dones: (T, N) bool, True where the episode ended at that step.
        last_values: (N,) value of the state after the last step.
        gamma: discount per step.
        lam: GAE lambda (0: one-step TD, 1: Monte-Carlo minus baseline).

    Returns:
        advantages (T, N) and returns = advantages + values (T, N), the value targets.
    """
    if rewards.dim() != 2 or rewards.shape != values.shape or rewards.shape != dones.shape:
        raise ValueError(
            f"rewards {tuple(rewards.shape)}, values {tuple(values.shape)} and dones "
            f"{tuple(dones.shape)} must all be (T, N)"
        )
    if last_values.shape != rewards.shape[1:]:
        raise ValueError(
            f"last_values {tuple(last_values.shape)} must be (N,) = {tuple(rewards.shape[1:])}"
        )
    not_done = 1.0 - dones.to(rewards.dtype)
    advantages = torch.zeros_like(rewards)
    next_advantage = torch.zeros_like(last_values)
    next_value = last_values
    for t in reversed(range(rewards.shape[0])):
        # TD error: how much better the step went than the critic expected
        delta = rewards[t] + gamma * next_value * not_done[t] - values[t]
        # exponentially weighted sum of future TD errors, cut at episode ends
        next_advantage = delta + gamma * lam * not_done[t] * next_advantage
        advantages[t] = next_advantage
        next_value = values[t]
    return advantages, advantages + values
