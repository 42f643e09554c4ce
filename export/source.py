"""The deployable policy of a checkpoint: what export takes from ``train`` or ``distill``.

A PPO checkpoint (``sim2real train``) gives its actor: an ``mlp`` policy, or a
``recurrent`` one with ``model.recurrent=gru|lstm``. A distillation checkpoint
(``sim2real distill``, ``kind: "student"``) gives its history-encoder ``student``.
Refused with a clear error: a checkpoint of another ``checkpoint_version`` (by
``load_checkpoint``), of an unregistered task or of another task than the one asked
for, and a privileged teacher (``model.actor_group=critic``: its actor reads simulator
state no robot measures — distill it and export the student).

``PolicySource.step`` is the torch reference of the exported graph: one step through
the very training code (``ActorCritic.action_mean`` with ``Memory``'s episode-start
reset, ``StudentPolicy.forward``), with the signature of ``OnnxPolicy.__call__``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sim2real.export.contract import RecurrentState
from sim2real.policies.checkpoint import (
    actor_critic_from_state,
    latest_checkpoint,
    load_checkpoint,
)
from sim2real.policies.config import TrainConfig
from sim2real.policies.distillation import STUDENT_KIND, student_from_state
from sim2real.policies.student import STUDENT_GROUP

#: The observation group a deployable policy reads.
DEPLOYABLE_GROUP = STUDENT_GROUP


@dataclass
class PolicySource:
    """The torch policy to export and the facts about it that the contract needs.

    Attributes:
        kind: mlp, recurrent or student.
        task: the registered task it was trained on.
        config: the run's training config.
        network: the ``ActorCritic`` or ``StudentPolicy``, in eval mode.
        obs_size: D, the policy observation's width.
        num_actions: A.
        history_length: H for a student, 1 otherwise.
        recurrent: the memory of a recurrent policy, else None.
        checkpoint: provenance: ``file``, ``sha256``, ``iteration``, ``kind``.
    """

    kind: str
    task: str
    config: TrainConfig
    network: nn.Module
    obs_size: int
    num_actions: int
    history_length: int
    recurrent: RecurrentState | None
    checkpoint: dict[str, Any]

    @property
    def normalizer(self) -> nn.Module:
        """The network's observation normalizer (``nn.Identity`` when it has none)."""
        if self.kind == "student":
            return self.network.normalizer
        return self.network.actor_normalizer

    @torch.inference_mode()
    def step(
        self,
        obs: np.ndarray,
        state: np.ndarray | None = None,
        starts: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Mean actions (B, A) and next state, as ``OnnxPolicy.__call__`` computes them."""
        x = torch.from_numpy(np.asarray(obs, np.float32))
        if self.kind == "student":
            return self.network(x).numpy(), None
        if self.kind == "mlp":
            return self.network.action_mean(x)[0].numpy(), None
        batch = x.shape[0]
        memory = self.network.actor_memory
        h = memory.initial_state(batch) if state is None else torch.from_numpy(state)
        s = torch.zeros(batch, dtype=torch.bool) if starts is None else torch.from_numpy(starts)
        mean, h = self.network.action_mean(x[None], h, s[None])
        return mean[0].numpy(), h.numpy()


def load_source(path: str | Path, task: str | None = None) -> PolicySource:
    """The deployable policy of the checkpoint at ``path`` (a file, or a run folder's latest).

    Args:
        path: checkpoint file or run folder.
        task: when given, the task the checkpoint must have been trained on.
    """
    path = Path(path)
    file = latest_checkpoint(path) if path.is_dir() else path
    state = load_checkpoint(file)
    provenance = {
        "file": file.name,
        "sha256": hashlib.sha256(file.read_bytes()).hexdigest(),
        "iteration": state.get("iteration"),
    }
    return source_from_state(state, str(file), task, provenance)


def source_from_state(
    state: dict[str, Any],
    label: str = "checkpoint",
    task: str | None = None,
    provenance: dict[str, Any] | None = None,
) -> PolicySource:
    """``load_source`` on a checkpoint dict already in memory; ``label`` names it in errors."""
    from sim2real.sim.tasks import task_class

    trained_on = state.get("task")
    if task is not None and trained_on != task:
        raise ValueError(
            f"{label}: field 'task' is {trained_on!r}, not {task!r}: a checkpoint of another task"
        )
    task_class(trained_on)  # a clear error for an unregistered task
    kind = state.get("kind", "actor_critic")
    checkpoint = {"file": None, "sha256": None, "iteration": state.get("iteration")}
    checkpoint.update(provenance or {}, kind=kind)
    if kind == STUDENT_KIND:
        config, student = student_from_state(state, label)
        return PolicySource(
            "student", trained_on, config, student, student.obs_size, student.num_actions,
            student.history_length, None, checkpoint,
        )  # fmt: skip
    config, model = actor_critic_from_state(state, label)
    if config.model.actor_group != DEPLOYABLE_GROUP:
        raise ValueError(
            f"{label}: field 'config.model.actor_group' is {config.model.actor_group!r}: a "
            "privileged teacher reads simulator state no robot measures; distill it "
            "(sim2real distill) and export the student"
        )
    recurrent = None
    if model.is_recurrent:
        m = config.model
        recurrent = RecurrentState(m.recurrent, m.rnn_layers, m.rnn_hidden)
    return PolicySource(
        "recurrent" if recurrent else "mlp", trained_on, config, model, model.actor_obs,
        model.num_actions, 1, recurrent, checkpoint,
    )  # fmt: skip
