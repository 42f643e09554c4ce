"""The student of teacher-student distillation: a policy over a history of deployable obs.

RMA-style adaptation (Kumar et al., 2021): a teacher trained with privileged
observations (true velocity, friction, mass...) is distilled into a student that sees
only the last H "policy" observations — what the deployed robot computes, sensor noise
included. Its history encoder infers from how the robot responded to recent actions
what the teacher read from the privileged observations, so it adapts online to dynamics
it cannot observe directly.

Shapes: B envs (or samples), H history length (control steps), D policy-observation
features, L latent size, A actions. A history is ordered oldest → newest: row H - 1 is
the current observation. Observations are in the env's "policy" units (each term
already scaled, see ``sim2real.sim.observations``); actions in the task's action units
(the PD target is ``default_joint_pos + action_scale * action``).

``StudentPolicy.forward`` is a pure function of its (B, H, D) input — no state kept in
Python between calls — so export can trace it; ``ObservationHistory`` (the rollout and
the deployment runtime) holds the history outside the network.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from sim2real.policies.models import mlp
from sim2real.policies.normalization import EmpiricalNormalization

#: The observation group the student reads: what the deployed robot can compute.
STUDENT_GROUP = "policy"


class ObservationHistory:
    """The last H observations of N envs, a (N, H, D) shift buffer, oldest first.

    ``push`` drops the oldest row and appends the newest. An env that starts a new
    episode has its whole history filled with its first observation, so the student
    never mixes two episodes (and never sees zeros that no robot would report): a robot
    that was standing still would have reported the same observation all along.

    Args:
        num_envs: N.
        length: H, control steps.
        size: D, features per observation.
    """

    def __init__(self, num_envs: int, length: int, size: int):
        if length < 1:
            raise ValueError(f"history length must be at least 1, got {length}")
        self.num_envs, self.length, self.size = num_envs, length, size
        self.buffer = torch.zeros(num_envs, length, size)

    def reset(self, obs: torch.Tensor) -> torch.Tensor:
        """Fill every env's history with its observation ``obs`` (N, D); return (N, H, D)."""
        self.buffer[:] = obs[:, None, :]
        return self.buffer

    def push(self, obs: torch.Tensor, starts: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Append ``obs`` (N, D); rows where ``starts`` (N,) bool is True are refilled.

        Returns:
            the history (N, H, D), newest row last. It is the buffer itself: copy it to
            keep it past the next ``push``.
        """
        starts = torch.as_tensor(starts, dtype=torch.bool)
        self.buffer[:, :-1] = self.buffer[:, 1:].clone()
        self.buffer[:, -1] = obs
        if starts.any():
            self.buffer[starts] = obs[starts][:, None, :]
        return self.buffer


class StudentPolicy(nn.Module):
    """Mean action from a history of policy observations: normalizer, encoder, actor.

    ``forward``: history (B, H, D) → normalized per feature (running statistics, as
    buffers) → the encoder, an MLP over the flattened (H × D) history → latent (B, L) →
    the actor, an MLP over [normalized current obs (B, D), latent (B, L)] → mean action
    (B, A). The current observation also enters the actor directly, as in RMA, so the
    encoder only has to carry what a single observation does not show (the dynamics).

    Args:
        obs_size: D.
        num_actions: A.
        history_length: H, control steps.
        latent_size: L.
        encoder_hidden: hidden layer sizes of the encoder MLP.
        actor_hidden: hidden layer sizes of the actor MLP.
        activation: elu, relu or tanh, between hidden layers.
    """

    def __init__(
        self,
        obs_size: int,
        num_actions: int,
        history_length: int,
        latent_size: int,
        encoder_hidden: list[int],
        actor_hidden: list[int],
        activation: str = "elu",
    ):
        super().__init__()
        self.obs_size, self.num_actions = obs_size, num_actions
        self.history_length, self.latent_size = history_length, latent_size
        self.normalizer = EmpiricalNormalization(obs_size)
        self.encoder = mlp(history_length * obs_size, list(encoder_hidden), latent_size, activation)
        self.actor = mlp(obs_size + latent_size, list(actor_hidden), num_actions, activation)

    def forward(self, history: torch.Tensor) -> torch.Tensor:
        """Mean action (B, A) from the history (B, H, D), oldest first, current obs last."""
        x = self.normalizer(history)
        latent = self.encoder(x.flatten(1))
        return self.actor(torch.cat([x[:, -1], latent], dim=-1))

    def update_normalizer(self, obs: torch.Tensor) -> None:
        """Merge observations (..., D) into the normalizer's running statistics."""
        self.normalizer.update(obs.reshape(-1, self.obs_size))


class StudentController:
    """A ``StudentPolicy`` acting step by step on env observations (rollouts, evaluation).

    Keeps the ``ObservationHistory`` of the envs between steps; see
    ``sim2real.policies.evaluation.Controller``.

    Args:
        student: the student network.
    """

    def __init__(self, student: StudentPolicy):
        self.student = student
        self.num_actions = student.num_actions
        self.obs_sizes = {STUDENT_GROUP: student.obs_size}
        self.history = ObservationHistory(0, student.history_length, student.obs_size)

    def reset(self, num_envs: int) -> None:
        """Forget every env's history (the next step starts episodes)."""
        self.history = ObservationHistory(
            num_envs, self.student.history_length, self.student.obs_size
        )

    def act(self, obs: dict[str, np.ndarray], starts: torch.Tensor) -> torch.Tensor:
        """Mean action (N, A) after pushing ``obs["policy"]`` (N, D) into the history."""
        window = self.history.push(torch.from_numpy(obs[STUDENT_GROUP]), starts)
        return self.student(window)
