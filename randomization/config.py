"""Randomization ranges are data (DESIGN contract 5): the YAML schema, its checks, its files.

One file configures every randomization term of a training run. System identification
writes the same format (identified values as ``operation: set`` with per-joint ranges
from their confidence intervals), so its output can be handed straight to training.

Schema (version 1)::

    schema_version: 1          # required; this module reads version 1
    task: go2-flat             # optional: the task the file was written for
    terms:                     # term name -> how it is drawn; names in TERMS
      ground_friction:
        mode: reset            # startup | reset | interval | step
        distribution: uniform  # uniform | log_uniform | gaussian
        operation: set         # scale | add | set (relative to the nominal model value)
        range: [0.4, 1.25]     # [low, high]; gaussian: [mean, std]
      joint_damping:           # a per-name mapping: one range per entry (fnmatch patterns
        mode: reset            # allowed); entries not named keep their nominal value
        distribution: uniform
        operation: set
        range: {FL_hip_joint: [0.08, 0.12], "*_calf_joint": [0.1, 0.2]}
      push:
        mode: interval
        interval_s: [5.0, 10.0]  # interval mode only: per-env time between draws, s
        distribution: uniform
        operation: add
        range: {x: [-0.5, 0.5], y: [-0.5, 0.5]}
        enabled: true          # optional, default true
        params: {}             # optional, term-specific (see TermSpec.params)

Modes: ``startup`` draws once when the env is built; ``reset`` at every reset of an env;
``interval`` every U(interval_s) seconds per env (timers restart at reset); ``step`` at
every control step (observation noise only). The values a term writes and their units
are in ``sim2real.randomization.terms``; the distributions and operations in
``sim2real.randomization.distributions``.

The randomizer reads ``config.terms[name].range`` every time it draws, so a curriculum
(ADR) may replace a range during training; entry names are checked against the robot
when an env binds the config.

Every error names the field and the value, e.g.
``terms.ground_friction.range: low 1.5 > high 0.4``.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sim2real.randomization.distributions import DISTRIBUTIONS, OPERATIONS
from sim2real.randomization.terms import MODES, TERMS

SCHEMA_VERSION = 1
DEFAULTS_DIR = Path(__file__).resolve().parent / "defaults"
# a task without its own defaults file uses its robot's
ROBOT_DEFAULTS = {"go2": "go2-flat", "panda": "arm-reach"}

Range = tuple[float, float]


class ConfigError(ValueError):
    """A randomization config that breaks the schema; the message names field and value."""


@dataclass
class TermConfig:
    """How one term is drawn; fields as in the module docstring's schema.

    Attributes:
        mode: ``startup``, ``reset``, ``interval`` or ``step``.
        distribution: ``uniform``, ``log_uniform`` or ``gaussian``.
        operation: ``scale``, ``add`` or ``set``.
        range: ``(low, high)`` (gaussian: ``(mean, std)``), or entry name → such a pair.
        interval_s: ``(low, high)`` seconds between draws, interval mode only.
        enabled: a disabled term is kept in the file but never drawn.
        params: term-specific parameters (``TermSpec.params`` lists them).
    """

    mode: str
    distribution: str
    operation: str
    range: Range | dict[str, Range]
    interval_s: Range | None = None
    enabled: bool = True
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        # sequences become tuples, so configs built in code compare equal to loaded ones
        self.range = _tuples(self.range)
        self.interval_s = _tuples(self.interval_s)
        self.params = {k: _tuples(v) for k, v in dict(self.params).items()}


@dataclass
class RandomizationConfig:
    """A whole randomization file.

    Attributes:
        schema_version: the schema the file follows (``SCHEMA_VERSION``).
        task: the task the file was written for, or None.
        terms: term name → its config, in file order.
    """

    schema_version: int = SCHEMA_VERSION
    task: str | None = None
    terms: dict[str, TermConfig] = field(default_factory=dict)

    def enabled(self) -> dict[str, TermConfig]:
        """The terms that are drawn."""
        return {name: term for name, term in self.terms.items() if term.enabled}


def _tuples(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _tuples(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return tuple(_tuples(v) for v in value)
    return value


# ------------------------------------------------------------------------ validation

_TOP_FIELDS = ("schema_version", "task", "terms")
_TERM_FIELDS = ("mode", "distribution", "operation", "range", "interval_s", "enabled", "params")
_REQUIRED = ("mode", "distribution", "operation", "range")


def _show(value: Any) -> str:
    """A value as the message shows it: numbers plain, everything else repr'd."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {_show(v)}" for k, v in value.items()) + "}"
    return repr(value)


def _number(path: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{path}: {_show(value)} is not a number")
    if not math.isfinite(value):
        raise ConfigError(f"{path}: {_show(value)} is not finite")
    return value


def _pair(path: str, value: Any, what: str = "[low, high]") -> tuple[float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ConfigError(f"{path}: expected {what}, got {_show(_tuples(value))}")
    return _number(path, value[0]), _number(path, value[1])


def check_range(path: str, spec_name: str, distribution: str, value: Any) -> None:
    """Check one ``[low, high]`` / ``[mean, std]`` pair of a term with ``distribution``."""
    if distribution == "gaussian":
        _, std = _pair(path, value, "[mean, std]")
        if std < 0:
            raise ConfigError(f"{path}: std {_show(std)} must be >= 0")
        return
    low, high = _pair(path, value)
    if low > high:
        raise ConfigError(f"{path}: low {_show(low)} > high {_show(high)}")
    if distribution == "log_uniform" and low <= 0:
        raise ConfigError(f"{path}: low {_show(low)} must be > 0 for log_uniform")
    if TERMS[spec_name].integer:
        for v in (low, high):
            if float(v) != int(v):
                raise ConfigError(f"{path}: {_show(v)} is not a whole number")


def _choice(path: str, value: Any, options: Sequence[str]) -> str:
    if value not in options:
        raise ConfigError(f"{path}: {_show(value)} is not one of {', '.join(options)}")
    return value


def check_term(name: str, term: TermConfig) -> None:
    """Check one term's config against the schema and its ``TermSpec``.

    Raises:
        ConfigError: naming ``terms.<name>.<field>`` and the bad value.
    """
    path = f"terms.{name}"
    if name not in TERMS:
        raise ConfigError(f"{path}: unknown term {name!r} (known: {', '.join(TERMS)})")
    spec = TERMS[name]
    _choice(f"{path}.mode", term.mode, MODES)
    if term.mode not in spec.modes:
        raise ConfigError(
            f"{path}.mode: {term.mode!r} is not allowed for {name} "
            f"(allowed: {', '.join(spec.modes)})"
        )
    _choice(f"{path}.distribution", term.distribution, DISTRIBUTIONS)
    if term.distribution not in spec.distributions:
        raise ConfigError(
            f"{path}.distribution: {term.distribution!r} is not allowed for {name} "
            f"(allowed: {', '.join(spec.distributions)})"
        )
    _choice(f"{path}.operation", term.operation, OPERATIONS)
    if term.operation not in spec.operations:
        raise ConfigError(
            f"{path}.operation: {term.operation!r} is not allowed for {name} "
            f"(allowed: {', '.join(spec.operations)})"
        )
    if isinstance(term.range, Mapping):
        if not spec.per_name:
            raise ConfigError(
                f"{path}.range: {name} takes one [low, high] pair, not a per-name "
                f"mapping; got {_show(term.range)}"
            )
        if not term.range:
            raise ConfigError(f"{path}.range: the per-name mapping is empty")
        for key, value in term.range.items():
            if not isinstance(key, str) or not key:
                raise ConfigError(f"{path}.range: entry name {_show(key)} is not a string")
            check_range(f"{path}.range.{key}", name, term.distribution, value)
    else:
        check_range(f"{path}.range", name, term.distribution, term.range)
    if term.mode == "interval":
        if term.interval_s is None:
            raise ConfigError(f"{path}.interval_s: required when mode is 'interval'")
        low, high = _pair(f"{path}.interval_s", term.interval_s)
        if not 0 < low <= high:
            raise ConfigError(
                f"{path}.interval_s: need 0 < low <= high, got {_show(term.interval_s)}"
            )
    elif term.interval_s is not None:
        raise ConfigError(
            f"{path}.interval_s: only allowed when mode is 'interval', got {_show(term.interval_s)}"
        )
    if not isinstance(term.enabled, bool):
        raise ConfigError(f"{path}.enabled: expected true or false, got {_show(term.enabled)}")
    if not isinstance(term.params, Mapping):
        raise ConfigError(f"{path}.params: expected a mapping, got {_show(term.params)}")
    for key, value in term.params.items():
        if key not in spec.params:
            known = ", ".join(spec.params) or "none"
            raise ConfigError(f"{path}.params.{key}: unknown parameter (known: {known})")
        _check_param(f"{path}.params.{key}", spec.params[key], value)


def _check_param(path: str, default: Any, value: Any) -> None:
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {_show(value)}")
    elif isinstance(default, tuple):
        low, high = _pair(path, value)
        if not 0 <= low <= high:
            raise ConfigError(f"{path}: need 0 <= low <= high, got {_show(_tuples(value))}")
    else:
        _number(path, value)


def validate(config: RandomizationConfig) -> RandomizationConfig:
    """Check a whole config (as built in code or loaded); return it.

    Raises:
        ConfigError: naming the field and the bad value.
    """
    if config.schema_version != SCHEMA_VERSION:
        raise ConfigError(
            f"schema_version: {_show(config.schema_version)} is not supported "
            f"(supported: {SCHEMA_VERSION})"
        )
    if config.task is not None and not isinstance(config.task, str):
        raise ConfigError(f"task: expected a task name, got {_show(config.task)}")
    if not isinstance(config.terms, Mapping):
        raise ConfigError(f"terms: expected a mapping of term names, got {_show(config.terms)}")
    for name, term in config.terms.items():
        if not isinstance(term, TermConfig):
            raise ConfigError(f"terms.{name}: expected a TermConfig, got {_show(term)}")
        check_term(name, term)
    both = [n for n in ("ground_friction", "foot_friction") if config.terms.get(n)]
    if len([n for n in both if config.terms[n].enabled]) == 2:
        raise ConfigError(
            "terms.foot_friction: conflicts with terms.ground_friction (both write the "
            "feet's friction); enable one of them"
        )
    return config


def from_dict(data: Any) -> RandomizationConfig:
    """Build and validate a config from parsed YAML (plain dicts, lists, scalars)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"expected a mapping with {', '.join(_TOP_FIELDS)}, got {_show(data)}")
    for key in data:
        if key not in _TOP_FIELDS:
            raise ConfigError(f"{key}: unknown field (known: {', '.join(_TOP_FIELDS)})")
    if "schema_version" not in data:
        raise ConfigError(f"schema_version: required field is missing (use {SCHEMA_VERSION})")
    terms_data = data.get("terms") or {}
    if not isinstance(terms_data, Mapping):
        raise ConfigError(f"terms: expected a mapping of term names, got {_show(terms_data)}")
    terms = {}
    for name, fields in terms_data.items():
        path = f"terms.{name}"
        if name not in TERMS:
            raise ConfigError(f"{path}: unknown term {name!r} (known: {', '.join(TERMS)})")
        if not isinstance(fields, Mapping):
            raise ConfigError(f"{path}: expected a mapping of fields, got {_show(fields)}")
        for key in fields:
            if key not in _TERM_FIELDS:
                raise ConfigError(f"{path}.{key}: unknown field (known: {', '.join(_TERM_FIELDS)})")
        for key in _REQUIRED:
            if key not in fields:
                raise ConfigError(f"{path}.{key}: required field is missing")
        terms[name] = TermConfig(
            mode=fields["mode"],
            distribution=fields["distribution"],
            operation=fields["operation"],
            range=fields["range"],
            interval_s=fields.get("interval_s"),
            enabled=fields.get("enabled", True),
            params=fields.get("params") or {},
        )
    return validate(
        RandomizationConfig(
            schema_version=data["schema_version"], task=data.get("task"), terms=terms
        )
    )


def to_dict(config: RandomizationConfig) -> dict[str, Any]:
    """The config as plain YAML-ready values (lists for pairs), every field written."""

    def plain(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    terms = {}
    for name, term in config.terms.items():
        entry = {
            "mode": term.mode,
            "distribution": term.distribution,
            "operation": term.operation,
            "range": plain(term.range),
        }
        if term.interval_s is not None:
            entry["interval_s"] = plain(term.interval_s)
        entry["enabled"] = term.enabled
        if term.params:
            entry["params"] = plain(term.params)
        terms[name] = entry
    out: dict[str, Any] = {"schema_version": config.schema_version}
    if config.task is not None:
        out["task"] = config.task
    out["terms"] = terms
    return out


# ------------------------------------------------------------------------------- I/O


def loads(text: str, source: str = "<string>") -> RandomizationConfig:
    """Parse and validate YAML text.

    Raises:
        ConfigError: ``<source>: <field>: <problem>``.
    """
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{source}: not valid YAML: {error}") from None
    try:
        return from_dict(data)
    except ConfigError as error:
        if source == "<string>":
            raise
        raise ConfigError(f"{source}: {error}") from None


def load(path: str | Path) -> RandomizationConfig:
    """Read and validate a YAML file."""
    path = Path(path)
    return loads(path.read_text(), source=str(path))


def dumps(config: RandomizationConfig) -> str:
    """YAML text of a (validated) config; ``loads(dumps(c)) == c`` exactly."""
    validate(config)
    header = "# sim2real randomization config (schema: sim2real.randomization.config)\n"
    return header + yaml.safe_dump(
        to_dict(config), sort_keys=False, default_flow_style=None, allow_unicode=True
    )


def dump(config: RandomizationConfig, path: str | Path) -> None:
    """Write a config as YAML."""
    Path(path).write_text(dumps(config))


# -------------------------------------------------------------------------- defaults


def default_config_path(task: str) -> Path:
    """The shipped defaults of ``task``: its own file, else its robot's (go2-rough → go2-flat).

    Raises:
        ValueError: when neither exists.
    """
    own = DEFAULTS_DIR / f"{task}.yaml"
    if own.is_file():
        return own
    from sim2real.sim.tasks import task_class  # the registry imports the engine lazily

    robot = task_class(task).robot
    if robot in ROBOT_DEFAULTS:
        return DEFAULTS_DIR / f"{ROBOT_DEFAULTS[robot]}.yaml"
    raise ValueError(f"no default randomization for task {task!r} (robot {robot!r})")


def default_config(task: str) -> RandomizationConfig:
    """A fresh copy of the shipped default config of ``task``."""
    return load(default_config_path(task))


def resolve(randomization: Any, task: str, robot: str) -> RandomizationConfig | None:
    """What ``make_env(..., randomization=...)`` means; None: randomization off.

    Args:
        randomization: None → the task's shipped default; ``"off"`` or False → off; a
            path (str or Path) → that file; a ``RandomizationConfig`` → itself (not
            copied, so a curriculum may change its ranges while the env runs).
        task: the env's task name.
        robot: the env's robot name, checked against the config's ``task``.
    """
    if randomization is None:
        config = default_config(task)
    elif randomization is False or (isinstance(randomization, str) and randomization == "off"):
        return None
    elif isinstance(randomization, RandomizationConfig):
        config = validate(randomization)
    elif isinstance(randomization, (str, Path)):
        config = load(randomization)
    else:
        raise TypeError(
            "randomization must be None (task default), 'off', a path or a "
            f"RandomizationConfig, got {type(randomization).__name__}"
        )
    if config.task is not None and config.task != task:
        from sim2real.sim.tasks import TASKS

        other = TASKS[config.task].robot if config.task in TASKS else None
        if other != robot:
            raise ConfigError(
                f"task: the config is for task {config.task!r} (robot {other!r}), "
                f"the env runs {task!r} (robot {robot!r})"
            )
    return config


def match_entries(path: str, keys: Sequence[str], entries: Sequence[str]) -> list[list[int]]:
    """Indices of ``entries`` each per-name key (a name or an fnmatch pattern) selects.

    Raises:
        ConfigError: a key that selects nothing, or an entry two keys select.
    """
    owner: dict[int, str] = {}
    out = []
    for key in keys:
        hits = [i for i, e in enumerate(entries) if e == key or fnmatch.fnmatchcase(e, key)]
        if not hits:
            raise ConfigError(
                f"{path}.{key}: {key!r} names no entry (entries: {', '.join(entries)})"
            )
        for i in hits:
            if i in owner:
                raise ConfigError(f"{path}.{key}: {entries[i]!r} is already given by {owner[i]!r}")
            owner[i] = key
        out.append(hits)
    return out
