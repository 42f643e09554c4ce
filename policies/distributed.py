"""Data-parallel training on ``torch.distributed``: what the processes must agree on.

Launch with ``torchrun --nproc_per_node=K -m sim2real train TASK …``: each of the K
processes steps its own ``num_envs`` envs (seeded ``seed + rank``), and they stay one
model because

- rank 0's parameters and normalizer statistics are broadcast at start;
- gradients are averaged (all-reduce) before every optimizer step;
- normalizer batch moments, advantage statistics and the KL divergence (hence the
  adaptive learning rate) are summed or averaged over all processes;
- only rank 0 logs and writes checkpoints.

With one minibatch per epoch, K processes holding K equal shares of a rollout take
exactly the step one process takes on the whole rollout (``tests/test_distributed.py``);
with several minibatches each process draws its own minibatch from its own share.

gloo on the CPU; for CUDA devices NCCL carries CUDA tensors and gloo the CPU ones
(``cpu:gloo,cuda:nccl``), each process on GPU ``LOCAL_RANK``. A single process uses
``Distributed()``, whose reductions return their input unchanged.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as torch_dist
from torch import nn


class Distributed:
    """The process group of a run: rank, world size and the reductions PPO needs.

    Every process must call the reductions in the same order with tensors of the same
    shapes; a process that skips one leaves the others waiting.

    Args:
        rank: this process's index.
        world_size: number of processes; 1 for a plain single-process run.
        local_rank: this process's index on its machine (its GPU, with CUDA).
    """

    def __init__(self, rank: int = 0, world_size: int = 1, local_rank: int = 0):
        self.rank, self.world_size, self.local_rank = rank, world_size, local_rank

    @classmethod
    def from_environment(cls, device: str = "cpu") -> Distributed:
        """Join the group torchrun describes (``RANK``, ``WORLD_SIZE``…), or run alone.

        Args:
            device: the torch device of the networks; ``cuda…`` selects NCCL for CUDA
                tensors (and GPU ``LOCAL_RANK`` for this process), anything else gloo.
        """
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size == 1:
            return cls()
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if not torch_dist.is_initialized():
            backend = "gloo"
            if device.startswith("cuda"):
                torch.cuda.set_device(local_rank)
                # the normalizers and statistics may stay on the CPU: gloo reduces those
                backend = "cpu:gloo,cuda:nccl"
            torch_dist.init_process_group(backend=backend)
        return cls(torch_dist.get_rank(), torch_dist.get_world_size(), local_rank)

    @property
    def is_main(self) -> bool:
        """True on the process that logs and checkpoints."""
        return self.rank == 0

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Elementwise sum over processes (a new tensor, the same on every process)."""
        tensor = tensor.clone()
        if self.world_size > 1:
            torch_dist.all_reduce(tensor, op=torch_dist.ReduceOp.SUM)
        return tensor

    def mean(self, tensor: torch.Tensor) -> torch.Tensor:
        """Elementwise mean over processes (a new tensor, the same on every process)."""
        return self.sum(tensor) / self.world_size

    def broadcast(self, module: nn.Module) -> None:
        """Copy rank 0's parameters and buffers into every process's ``module``."""
        if self.world_size > 1:
            for tensor in [*module.parameters(), *module.buffers()]:
                torch_dist.broadcast(tensor.data, src=0)

    def average_gradients(self, module: nn.Module) -> None:
        """Replace every gradient by its mean over processes (one flat all-reduce).

        A parameter whose gradient some processes lack (their loss did not use it) counts
        as zero there, so every process reduces the same flat layout; one that no process
        has a gradient for keeps ``grad = None``, as in a single process.
        """
        if self.world_size == 1:
            return
        params = [p for p in module.parameters() if p.requires_grad]
        if not params:
            return
        held = [float(p.grad is not None) for p in params]
        held = torch.tensor(held, device=params[0].device)
        torch_dist.all_reduce(held, op=torch_dist.ReduceOp.SUM)  # processes holding each
        params = [p for p, count in zip(params, held.tolist(), strict=True) if count > 0]
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        if not params:
            return
        flat = torch.cat([p.grad.reshape(-1) for p in params])
        torch_dist.all_reduce(flat, op=torch_dist.ReduceOp.SUM)
        flat /= self.world_size
        offset = 0
        for p in params:
            p.grad.copy_(flat[offset : offset + p.numel()].view_as(p.grad))
            offset += p.numel()

    def barrier(self) -> None:
        """Wait until every process gets here."""
        if self.world_size > 1:
            torch_dist.barrier()

    def close(self) -> None:
        """Leave the process group."""
        if self.world_size > 1 and torch_dist.is_initialized():
            torch_dist.destroy_process_group()
