"""Teacher-student distillation: a privileged teacher taught to a deployable student.

The teacher is a PPO checkpoint trained with ``model.actor_group=critic``: its actor
reads the privileged "critic" observations (true velocities, contact forces, friction,
mass...). The student (``sim2real.policies.student.StudentPolicy``) reads only a
history of the "policy" observations the robot can compute, and is what gets exported.

One iteration of ``Distiller``:

1. rollout of ``ppo.num_steps`` control steps on every env, domain randomization on.
   The student acts with its mean action (DAgger: it visits the states its own mistakes
   lead to); during the first ``distill.teacher_actions_until`` iterations the teacher
   acts instead. Every step is labelled with the teacher's mean action.
2. the student's observation normalizer merges the rollout's policy observations;
3. ``distill.num_epochs`` passes of ``ppo.num_minibatches`` minibatches minimize the
   mean squared error between the student's and the teacher's mean actions (Adam,
   ``distill.learning_rate``, gradient norm clipped to ``ppo.max_grad_norm``).

The env is held where the teacher's curricula ended (command ranges, ADR ranges,
terrain levels), and they do not move during distillation. The run's other fields
(``num_envs``, ``max_iterations``, ``seed``, ``save_interval``, ``log_dir``...) mean
what they mean for PPO; the student's actor MLP has ``model.actor_hidden`` and
``model.activation``. Distillation runs in one process.

Logs (``metrics.jsonl``, TensorBoard): ``loss/distill`` (mean minibatch MSE),
``distill/action_mse`` (student vs teacher mean actions over the rollout as collected,
before the update: the error on the states the student visits), ``episode/*`` and
``reward/*`` of the episodes that ended, ``perf/*``. Checkpoints ``model_<iteration>.pt``
(atomic) hold ``kind: "student"``; ``load_student`` reads one back and
``Distiller.resume`` continues a run.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from torch import nn

from sim2real.policies.checkpoint import actor_critic_from_state, load_checkpoint
from sim2real.policies.config import TrainConfig, from_dict, to_dict
from sim2real.policies.curricula import Curricula
from sim2real.policies.distributed import Distributed
from sim2real.policies.evaluation import ActorCriticController
from sim2real.policies.models import ActorCritic
from sim2real.policies.runner import RunLoop, build_env, record_episodes
from sim2real.policies.student import STUDENT_GROUP, StudentController, StudentPolicy

#: The ``kind`` entry of a student checkpoint.
STUDENT_KIND = "student"


def build_student(config: TrainConfig, obs_size: int, num_actions: int) -> StudentPolicy:
    """The student of ``config`` (``distill.*`` and the actor's ``model.*`` fields)."""
    return StudentPolicy(
        obs_size,
        num_actions,
        history_length=config.distill.history_length,
        latent_size=config.distill.latent_size,
        encoder_hidden=config.distill.encoder_hidden,
        actor_hidden=config.model.actor_hidden,
        activation=config.model.activation,
    )


def load_teacher(path: str | Path, task: str) -> tuple[TrainConfig, ActorCritic, dict[str, Any]]:
    """The teacher checkpoint at ``path`` (file or run folder), checked to teach ``task``.

    Returns:
        (config, model, state): the teacher's ``TrainConfig``, its ``ActorCritic`` in eval
        mode and the checkpoint dict.

    Raises:
        ValueError: a student checkpoint, a teacher of another task, or one whose actor
            sees no privileged observations (``model.actor_group`` is not ``critic``).
    """
    state = load_checkpoint(path)
    if state.get("kind") == STUDENT_KIND:
        raise ValueError(f"{path} is a student checkpoint; a teacher is a PPO checkpoint")
    if state.get("task") != task:
        raise ValueError(
            f"teacher {path} was trained on task {state.get('task')!r}; it cannot teach {task!r}"
        )
    config, model = actor_critic_from_state(state, path)
    if config.model.actor_group != "critic":
        raise ValueError(
            f"teacher {path} was trained with model.actor_group={config.model.actor_group}: "
            "its actor sees no privileged observations, so there is nothing to distill; "
            "train the teacher with --set model.actor_group=critic"
        )
    return config, model, state


def load_student(path: str | Path) -> tuple[TrainConfig, StudentPolicy, dict[str, Any]]:
    """The student of a distillation checkpoint (file or run folder), in eval mode.

    Returns:
        (config, student, state): the run's ``TrainConfig``, the ``StudentPolicy`` with
        its weights and normalizer statistics, and the checkpoint dict.
    """
    state = load_checkpoint(path)
    config, student = student_from_state(state, path)
    return config, student, state


def student_from_state(
    state: dict[str, Any], path: str | Path = "checkpoint"
) -> tuple[TrainConfig, StudentPolicy]:
    """(config, ``StudentPolicy`` in eval mode) of a student checkpoint dict read from ``path``."""
    kind = state.get("kind", "actor_critic")
    if kind != STUDENT_KIND:
        raise ValueError(f"{path} is a {kind} checkpoint, not a student (sim2real distill)")
    config = from_dict(state["config"])
    student = build_student(config, state["obs_sizes"][STUDENT_GROUP], state["num_actions"])
    if student.history_length != state["history_length"]:
        raise ValueError(
            f"{path}: history_length {state['history_length']} disagrees with its config "
            f"(distill.history_length={student.history_length})"
        )
    student.load_state_dict(state["student"])
    return config, student.eval()


class DistillationStorage:
    """One rollout of policy observations, episode starts and teacher labels.

    Histories are not stored H times over: the storage keeps the rollout's (T, N, D)
    observations after the H - 1 rows of history that precede them, a (H - 1 + T, N, D)
    sequence, and cuts each step's (H, D) window out of it when a minibatch asks, filled
    at episode starts exactly as ``ObservationHistory`` fills them.

    Args:
        num_steps: T, control steps per rollout.
        num_envs: N.
        obs_size: D, policy-observation features.
        num_actions: A.
        history_length: H.
    """

    def __init__(
        self, num_steps: int, num_envs: int, obs_size: int, num_actions: int, history_length: int
    ):
        self.num_steps, self.num_envs, self.history_length = num_steps, num_envs, history_length
        self.sequence = torch.zeros(history_length - 1 + num_steps, num_envs, obs_size)
        self.starts = torch.zeros(num_steps, num_envs, dtype=torch.bool)
        self.labels = torch.zeros(num_steps, num_envs, num_actions)
        self.step = 0

    @property
    def observations(self) -> torch.Tensor:
        """(T, N, D) the rollout's policy observations."""
        return self.sequence[self.history_length - 1 :]

    def begin(self, history: torch.Tensor) -> None:
        """Start a rollout after ``history`` (N, H, D), the envs' current histories."""
        self.sequence[: self.history_length - 1] = history[:, 1:].transpose(0, 1)
        self.step = 0

    def add(self, obs: torch.Tensor, starts: torch.Tensor, labels: torch.Tensor) -> None:
        """Record one step: policy obs (N, D), starts (N,) bool, teacher actions (N, A)."""
        if self.step >= self.num_steps:
            raise RuntimeError("distillation storage is full; begin() a new rollout")
        self.sequence[self.history_length - 1 + self.step] = obs
        self.starts[self.step] = starts
        self.labels[self.step] = labels
        self.step += 1

    def windows(self, ids: torch.Tensor, first: torch.Tensor | None = None) -> torch.Tensor:
        """The (B, H, D) histories of the samples ``ids`` (B,) = step × N + env.

        ``first``: ``episode_first_rows()``, when the caller already has it.
        """
        first = self.episode_first_rows() if first is None else first
        steps, envs = ids // self.num_envs, ids % self.num_envs
        rows = steps[:, None] + torch.arange(self.history_length)  # (B, H) sequence rows
        last = rows[:, -1]
        rows = torch.maximum(rows, first[last, envs][:, None])
        return self.sequence[rows, envs[:, None]]

    def minibatches(self, num_minibatches: int, num_epochs: int, generator: torch.Generator):
        """Yield (histories (B, H, D), teacher actions (B, A)), every sample once per epoch."""
        total = self.num_steps * self.num_envs
        size = total // num_minibatches
        labels = self.labels.reshape(total, -1)
        first = self.episode_first_rows()
        for _ in range(num_epochs):
            order = torch.randperm(total, generator=generator)
            for i in range(num_minibatches):
                ids = order[i * size : (i + 1) * size]
                yield self.windows(ids, first), labels[ids]

    def episode_first_rows(self) -> torch.Tensor:
        """(H - 1 + T, N): the sequence row where each row's episode begins (or 0)."""
        rows = torch.arange(self.sequence.shape[0])[:, None].expand(-1, self.num_envs)
        marks = torch.zeros_like(rows)
        h = self.history_length - 1
        marks[h:] = torch.where(self.starts, rows[h:], 0)
        return torch.cummax(marks, dim=0).values


class Distiller(RunLoop):
    """Distill ``config.distill.teacher`` into a ``StudentPolicy``; see the module docstring.

    Built like ``Trainer`` (and resumed through ``RunLoop.resume``): ``config`` names the
    teacher checkpoint in ``distill.teacher``; ``run_dir`` defaults to
    ``log_dir/run_name``; ``dist`` must be a single process (the default); ``console``
    takes the progress bar and messages.
    """

    def __init__(
        self,
        config: TrainConfig,
        run_dir: str | Path | None = None,
        dist: Distributed | None = None,
        console: Console | None = None,
    ):
        seed = self._start(config, run_dir, dist, console)
        if self.dist.world_size > 1:
            raise ValueError("distillation runs in a single process; launch it without torchrun")
        if not config.distill.teacher:
            raise ValueError("distill.teacher is empty: name the teacher checkpoint (--teacher)")
        if config.randomization == "off":
            raise ValueError(
                "distillation needs domain randomization: the student learns to adapt to it"
            )
        teacher_config, teacher, teacher_state = load_teacher(config.distill.teacher, config.task)
        self.teacher_config = teacher_config
        self.env = build_env(config, seed)
        self.teacher = ActorCriticController(teacher)
        for group, size in self.teacher.obs_sizes.items():
            if self.env.obs_sizes[group] != size or self.env.num_actions != teacher.num_actions:
                raise ValueError(
                    f"teacher {config.distill.teacher} expects {size} {group!r} observations "
                    f"and {teacher.num_actions} actions; the env gives "
                    f"{self.env.obs_sizes[group]} and {self.env.num_actions}"
                )
        self.curricula = Curricula.for_env(self.env, teacher_config.curriculum)
        self.curricula.load_state_dict(teacher_state["curricula"])
        num_actions = teacher.num_actions
        self.student = build_student(config, self.env.obs_sizes[STUDENT_GROUP], num_actions)
        self.controller = StudentController(self.student)
        self.optimizer = torch.optim.Adam(self.student.parameters(), config.distill.learning_rate)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.storage = DistillationStorage(
            config.ppo.num_steps,
            config.num_envs,
            self.student.obs_size,
            num_actions,
            self.student.history_length,
        )
        self.iteration = 0
        self._reset_env(seed)

    def train_iteration(self) -> dict[str, float]:
        """One rollout and one supervised update; return the iteration's scalars."""
        start = time.perf_counter()
        stats = self.collect()
        collected = time.perf_counter()
        self.student.update_normalizer(self.storage.observations)
        stats.update(self.update())
        done = time.perf_counter()
        self.iteration += 1
        steps = self.config.ppo.num_steps * self.config.num_envs
        stats.update(self._timing(steps, start, collected, done))
        return stats

    @torch.inference_mode()
    def collect(self) -> dict[str, float]:
        """Fill the storage with one labelled rollout; return action error and episode stats."""
        storage = self.storage
        storage.begin(self.controller.history.buffer)
        teacher_drives = self.iteration < self.config.distill.teacher_actions_until
        finished: dict[str, list[np.ndarray]] = {}
        squared_error = 0.0
        for _ in range(storage.num_steps):
            obs, starts = self._obs, self._starts
            student_actions = self.controller.act(obs, starts)
            teacher_actions = self.teacher.act(obs, starts)
            storage.add(torch.from_numpy(obs[STUDENT_GROUP]), starts, teacher_actions)
            squared_error += (student_actions - teacher_actions).pow(2).mean().item()
            actions = teacher_actions if teacher_drives else student_actions
            result = self.env.step(actions.numpy())
            self._obs = result.obs
            self._starts = torch.from_numpy(result.terminated | result.time_outs)
            record_episodes(finished, result.infos.get("episode"))
        stats = self._episode_means(finished)
        stats["distill/action_mse"] = squared_error / storage.num_steps
        stats["distill/teacher_acts"] = float(teacher_drives)
        return stats

    def update(self) -> dict[str, float]:
        """Minimize the student-teacher action MSE over the rollout; return the mean loss."""
        config = self.config
        total, count = 0.0, 0
        batches = self.storage.minibatches(
            config.ppo.num_minibatches, config.distill.num_epochs, self.generator
        )
        for histories, labels in batches:
            loss = nn.functional.mse_loss(self.student(histories), labels)
            self.optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(self.student.parameters(), config.ppo.max_grad_norm)
            self.optimizer.step()
            total += loss.item()
            count += 1
        return {"loss/distill": total / max(count, 1)}

    def _reset_env(self, seed: int) -> None:
        self._obs = self.env.reset(seed)
        self.controller.reset(self.config.num_envs)
        self.teacher.reset(self.config.num_envs)
        self._starts = torch.ones(self.config.num_envs, dtype=torch.bool)

    # ------------------------------------------------------------- checkpoints

    def state_dict(self) -> dict[str, Any]:
        """The student and everything a resumed run needs, as tensors and plain values."""
        return {
            "kind": STUDENT_KIND,
            "iteration": self.iteration,
            "config": to_dict(self.config),
            "task": self.config.task,
            "teacher": self.config.distill.teacher,
            "student": self.student.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "obs_sizes": dict(self.env.obs_sizes),
            "history_length": self.student.history_length,
            "num_actions": self.student.num_actions,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``state_dict()`` (the env restarts from fresh episodes)."""
        if state.get("kind") != STUDENT_KIND:
            raise ValueError("not a distillation checkpoint (kind is not 'student')")
        if state["task"] != self.config.task:
            raise ValueError(f"checkpoint is for task {state['task']!r}, not {self.config.task!r}")
        self.student.load_state_dict(state["student"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.iteration = int(state["iteration"])
        torch.set_rng_state(state["torch_rng"])
        self._reset_env(self.config.seed + self.iteration)
