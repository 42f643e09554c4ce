"""Checkpoints: written atomically, read with ``weights_only=True``.

A checkpoint is a dict of tensors and plain Python values (the config as a dict, the
iteration, curriculum states) — nothing that needs pickled classes to load.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

#: Bumped when the checkpoint layout changes incompatibly.
CHECKPOINT_VERSION = 1


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Write ``state`` to ``path`` through a temporary file and a rename.

    A crash at any moment leaves either the previous file or the new one, never a
    truncated checkpoint.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"checkpoint_version": CHECKPOINT_VERSION, **state}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by ``save_checkpoint``; clear errors for bad files."""
    path = Path(path)
    if path.is_dir():
        path = latest_checkpoint(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(f"{path} is not a readable checkpoint: {error}") from error
    version = state.get("checkpoint_version") if isinstance(state, dict) else None
    if version != CHECKPOINT_VERSION:
        raise ValueError(
            f"{path}: checkpoint_version is {version!r}, this sim2real reads {CHECKPOINT_VERSION}"
        )
    return state


def latest_checkpoint(run_dir: str | Path) -> Path:
    """The checkpoint of the highest iteration (``model_<iteration>.pt``) in a run folder."""
    run_dir = Path(run_dir)
    found = sorted(run_dir.glob("model_*.pt"), key=lambda p: _iteration(p))
    if not found:
        raise FileNotFoundError(f"no checkpoint (model_<iteration>.pt) in {run_dir}")
    return found[-1]


def _iteration(path: Path) -> int:
    try:
        return int(path.stem.split("_", 1)[1])
    except ValueError:
        return -1


def load_actor_critic(path: str | Path):
    """The trained ``ActorCritic`` of a checkpoint (eval mode), its config and raw state.

    Returns:
        (config, model, state): ``TrainConfig``, the model with its weights and
        normalizer statistics, and the checkpoint dict.
    """
    state = load_checkpoint(path)
    config, model = actor_critic_from_state(state, path)
    return config, model, state


def actor_critic_from_state(state: dict[str, Any], path: str | Path = "checkpoint"):
    """(config, ``ActorCritic`` in eval mode) of a PPO checkpoint dict read from ``path``."""
    from sim2real.policies.config import from_dict
    from sim2real.policies.models import ActorCritic, observation_sizes

    kind = state.get("kind", "actor_critic")
    if kind != "actor_critic":
        raise ValueError(f"{path} is a {kind} checkpoint, not a PPO (actor-critic) one")
    config = from_dict(state["config"])
    actor_obs, critic_obs = observation_sizes(config.model, state["obs_sizes"])
    model = ActorCritic(actor_obs, critic_obs, state["num_actions"], config.model)
    model.load_state_dict(state["model"])
    return config, model.eval()
