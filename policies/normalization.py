"""Empirical observation normalization: a running mean and variance per feature."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

Reducer = Callable[[torch.Tensor], torch.Tensor]


class EmpiricalNormalization(nn.Module):
    """Normalizes (B, D) inputs with running statistics: ``(x - mean) / (std + eps)``.

    The statistics are buffers, so they travel in ``state_dict`` (checkpoints) and are
    folded into exported models. ``update`` merges a batch into them (Chan et al.'s
    parallel formula, in float64). In data-parallel training the batch moments are summed
    over processes by ``reducer`` first, so every process keeps identical statistics.

    Args:
        size: D, features.
        eps: added to the std, so constant features do not divide by zero.
        clip: normalized values are clipped to ±clip.
    """

    def __init__(self, size: int, eps: float = 1e-2, clip: float = 5.0):
        super().__init__()
        self.eps, self.clip = eps, clip
        self.register_buffer("mean", torch.zeros(size))
        self.register_buffer("var", torch.ones(size))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self.reducer: Reducer | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalize (B, D) with the current statistics."""
        return torch.clamp((x - self.mean) / (self.var.sqrt() + self.eps), -self.clip, self.clip)

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        """Merge a batch (B, D) into the running statistics (summed over processes)."""
        x = x.reshape(-1, self.mean.shape[0]).double()
        moments = torch.cat([x.new_tensor([x.shape[0]]), x.sum(0), (x * x).sum(0)])
        if self.reducer is not None:
            moments = self.reducer(moments)
        size = self.mean.shape[0]
        n, total, squares = moments[0], moments[1 : size + 1], moments[size + 1 :]
        if n == 0:
            return
        batch_mean = total / n
        batch_var = (squares / n - batch_mean**2).clamp_min(0.0)
        count = self.count + n
        delta = batch_mean - self.mean.double()
        mean = self.mean.double() + delta * n / count
        m2 = self.var.double() * self.count + batch_var * n + delta**2 * self.count * n / count
        self.mean.copy_(mean)
        self.var.copy_(m2 / count)
        self.count.copy_(count)
