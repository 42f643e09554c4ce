"""Training configuration: typed dataclasses whose field docs are the ``--help``.

A run is described by one ``TrainConfig``. It is built from the defaults below, then the
task's explicit overrides (``TASK_OVERRIDES``), then an optional YAML file, then
``--set key=value`` pairs with dotted keys (``ppo.learning_rate=3e-4``). Each field is
declared with ``option(default, doc)``; the doc is what ``sim2real train --help`` shows.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sim2real.sim.backends import BACKENDS


def option(default: Any, doc: str, choices: tuple[str, ...] = ()) -> Any:
    """A dataclass field with a default (deep-copied when mutable), its doc and choices."""
    metadata = {"doc": doc, "choices": choices}
    if isinstance(default, (list, dict)) or dataclasses.is_dataclass(default):
        # deep: a section's lists must not be shared between configs either
        return field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class ModelConfig:
    """Actor and critic networks."""

    actor_hidden: list = option([256, 128, 64], "hidden layer sizes of the actor MLP")
    critic_hidden: list = option([256, 128, 64], "hidden layer sizes of the critic MLP")
    activation: str = option(
        "elu", "activation between hidden layers", choices=("elu", "relu", "tanh")
    )
    init_noise_std: float = option(1.0, "initial std of the Gaussian policy, in action units")
    recurrent: str = option("none", "memory before the MLPs", choices=("none", "gru", "lstm"))
    rnn_hidden: int = option(64, "hidden size of the recurrent memory")
    rnn_layers: int = option(1, "stacked recurrent layers")
    normalize_obs: bool = option(True, "empirical (running mean/variance) obs normalization")
    asymmetric: bool = option(True, "the critic sees the privileged 'critic' observations")
    actor_group: str = option(
        "policy",
        "observations of the actor: policy (deployable) or critic (privileged: a teacher)",
        choices=("policy", "critic"),
    )


@dataclass
class PPOConfig:
    """Proximal policy optimization (clipped surrogate, GAE, adaptive-KL learning rate)."""

    num_steps: int = option(24, "control steps per env per rollout")
    num_epochs: int = option(5, "passes over each rollout")
    num_minibatches: int = option(4, "minibatches per pass")
    gamma: float = option(0.99, "discount factor per control step")
    lam: float = option(0.95, "GAE lambda")
    clip_param: float = option(0.2, "PPO ratio clip (and value clip) range")
    value_loss_coef: float = option(1.0, "weight of the value loss")
    clipped_value_loss: bool = option(True, "clip the value update around the old value")
    entropy_coef: float = option(0.01, "weight of the entropy bonus")
    learning_rate: float = option(1e-3, "Adam learning rate (initial, if adaptive)")
    schedule: str = option(
        "adaptive", "learning-rate schedule (adaptive: KL-driven)", choices=("adaptive", "fixed")
    )
    desired_kl: float = option(0.01, "target KL divergence of the adaptive schedule")
    max_grad_norm: float = option(1.0, "gradient-norm clip")
    normalize_advantages: bool = option(True, "normalize advantages over the rollout")


@dataclass
class DistillConfig:
    """Teacher-student distillation (the student sees a history of deployable obs)."""

    teacher: str = option("", "checkpoint of the teacher; empty: train PPO, no distillation")
    history_length: int = option(16, "control steps of policy observations the student sees")
    latent_size: int = option(16, "output size of the student's history encoder")
    encoder_hidden: list = option([128, 64], "hidden layer sizes of the history encoder")
    learning_rate: float = option(1e-3, "Adam learning rate of the student")
    num_epochs: int = option(2, "passes over each rollout")
    teacher_actions_until: int = option(0, "iterations during which the teacher drives the env")


@dataclass
class CurriculumConfig:
    """Curricula driven by finished episodes (see sim2real.randomization.curriculum)."""

    commands: bool = option(True, "widen velocity-command ranges as tracking improves")
    adr: bool = option(False, "automatic domain randomization of the randomization ranges")


@dataclass
class TrainConfig:
    """One training run."""

    task: str = option("", "registered task name (sim2real envs lists them)")
    num_envs: int = option(1024, "parallel environments (per process)")
    max_iterations: int = option(500, "PPO iterations (rollout + update) in total")
    seed: int = option(0, "seed of the env, the networks and the minibatch order")
    nthread: int = option(0, "simulation threads (0: all cores)")
    backend: str = option("cpu", "simulation backend", choices=BACKENDS)
    randomization: str = option("", "randomization YAML file; empty: task defaults; 'off'")
    save_interval: int = option(50, "checkpoint every this many iterations")
    log_dir: str = option("runs", "folder holding one folder per run")
    run_name: str = option("", "run folder name; empty: <task>-<date>-<time>")
    torch_threads: int = option(
        0,
        "CPU threads of torch's math (0: torch's default, one per core); set 1 on a machine "
        "shared with other jobs, where spinning threads slow the update down several times",
    )
    tensorboard: bool = option(True, "write TensorBoard event files")
    model: ModelConfig = option(ModelConfig(), "")
    ppo: PPOConfig = option(PPOConfig(), "")
    distill: DistillConfig = option(DistillConfig(), "")
    curriculum: CurriculumConfig = option(CurriculumConfig(), "")


#: Per-task overrides of the defaults, as ``--set`` pairs: one place per weight.
TASK_OVERRIDES: dict[str, dict[str, Any]] = {
    # 3 epochs: ~1.45x the iterations to the go2 targets at 0.75x the time per iteration
    # (benchmarks/README.md, train_to_target and training_throughput).
    "go2-flat": {
        "max_iterations": 1500,
        "model.actor_hidden": [128, 128, 128],
        "ppo.num_epochs": 3,
    },
    "go2-rough": {"max_iterations": 3000},
    "arm-reach": {
        "num_envs": 512,
        "max_iterations": 150,
        "model.actor_hidden": [128, 128],
        "model.critic_hidden": [128, 128],
        "ppo.entropy_coef": 0.0,
        "curriculum.commands": False,
    },
    "point-reach": {
        "num_envs": 64,
        "max_iterations": 40,
        "model.actor_hidden": [32, 32],
        "model.critic_hidden": [32, 32],
        "ppo.entropy_coef": 0.0,
        "ppo.num_minibatches": 2,
        "curriculum.commands": False,
    },
}


def to_dict(config: Any) -> dict[str, Any]:
    """The config as nested plain dicts (YAML- and checkpoint-friendly)."""
    return dataclasses.asdict(config)


def from_dict(data: dict[str, Any], cls: type = TrainConfig) -> Any:
    """Build ``cls`` from nested dicts; unknown keys and wrong types are errors naming the key."""
    return apply_overrides(cls(), _flatten(data))


def build_config(
    task: str,
    config_file: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
) -> TrainConfig:
    """Defaults, then the task's overrides, then ``config_file`` (YAML), then ``overrides``.

    Args:
        task: registered task name.
        config_file: YAML mapping of (nested or dotted) fields.
        overrides: ``key=value`` strings; values are parsed as YAML scalars or lists.
    """
    config = TrainConfig(task=task)
    config = apply_overrides(config, TASK_OVERRIDES.get(task, {}))
    if config_file is not None:
        path = Path(config_file)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a config file must be a mapping of fields")
        config = apply_overrides(config, _flatten(data))
    config = apply_overrides(config, parse_overrides(overrides))
    if config.task != task:
        raise ValueError(f"the config names task {config.task!r} but the run is for {task!r}")
    return config


def describe(cls: type = TrainConfig, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """Every field as (dotted key, type, default, doc), for ``--help``."""
    rows = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        if dataclasses.is_dataclass(kind):
            rows += describe(kind, f"{prefix}{f.name}.")
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        doc = f.metadata.get("doc", "")
        if f.metadata.get("choices"):
            doc += f" (one of: {', '.join(f.metadata['choices'])})"
        rows.append((prefix + f.name, _type_name(kind), repr(default), doc))
    return rows


def _type_name(kind: Any) -> str:
    return getattr(kind, "__name__", str(kind))


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def parse_overrides(overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``key=value`` strings (``--set``) as dotted pairs for ``apply_overrides``.

    The values stay text: ``apply_overrides`` parses them for their field's type (YAML
    scalars or lists; a string field keeps the text as written, so ``off`` stays ``off``).
    """
    pairs = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects key=value, got {item!r}")
        pairs[key.strip()] = _Text(value)
    return pairs


def apply_overrides(config: Any, pairs: dict[str, Any]) -> Any:
    """A copy of ``config`` with dotted ``pairs`` set, each checked against its field type."""
    for key, value in pairs.items():
        config = _set(config, key.split("."), value, key)
    return config


def _set(config: Any, path: list[str], value: Any, key: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(config)}
    if path[0] not in fields:
        known = ", ".join(sorted(fields))
        raise ValueError(f"unknown config key {key!r} (known here: {known})")
    kind = typing.get_type_hints(type(config))[path[0]]
    current = getattr(config, path[0])
    if dataclasses.is_dataclass(kind):
        if len(path) == 1:
            raise ValueError(f"config key {key!r} is a section; set one of its fields")
        return dataclasses.replace(config, **{path[0]: _set(current, path[1:], value, key)})
    if len(path) > 1:
        raise ValueError(f"config key {key!r}: {path[0]!r} is not a section")
    value = _coerce(value, kind, key)
    choices = fields[path[0]].metadata.get("choices")
    if choices and value not in choices:
        raise ValueError(f"config key {key!r} expects one of {', '.join(choices)}, got {value!r}")
    return dataclasses.replace(config, **{path[0]: value})


_SCIENTIFIC = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


class _Text(str):
    """A ``--set`` value as typed: text for str fields, parsed as YAML for the others."""


def _coerce(value: Any, kind: Any, key: str) -> Any:
    """``value`` as type ``kind``; ints pass as floats, anything else must match."""
    if isinstance(kind, types.UnionType):
        kind = next(k for k in typing.get_args(kind) if k is not type(None))
    if isinstance(value, _Text):
        # str fields take the text as typed (YAML would read "off" as False)
        value = str(value) if kind is str else yaml.safe_load(value)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is float and isinstance(value, str) and _SCIENTIFIC.fullmatch(value.strip()):
        return float(value)  # YAML 1.1 (PyYAML) reads "3e-4", without a dot, as a string
    if kind is str and value is None:
        return ""
    if kind is list and isinstance(value, (list, tuple)):
        return list(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        hint = " (quote it: YAML reads off/on/no/yes as booleans)" if kind is str else ""
        raise ValueError(
            f"config key {key!r} expects {_type_name(kind)}, got {value!r} "
            f"({type(value).__name__}){hint}"
        )
    return value
