"""The policy contract: everything a deployment must know to run an exported policy.

DESIGN contract 4. The contract travels as JSON inside the ONNX file (``metadata_props``,
key ``sim2real.policy_contract``) and beside it as ``policy.json``. This module holds the
dataclass, its JSON form and its validation in plain Python (no torch, onnx or numpy),
so any robot-side program can read a contract.

Every field is required (``parity`` and ``recurrent`` may be null), except
``velocity_limits``, added to schema 1 later without a version bump: a file exported
before it may lack it (read as ``None``; the deploy runtime then refuses to start, since
its safety filters need the limits), every export writes it. A contract is
validated field by field when it is read: an unknown or missing field, a wrong type, a
list of the wrong length or a value out of range raises ``ContractError`` naming the
field, e.g. ``observation_terms[2].scale``. ``SCHEMA_VERSION`` is bumped on any
incompatible change; a contract of another version is refused, never guessed at.

Conventions the fields follow (``export/README.md`` has the full table):

- joint arrays (``joint_names``, ``default_joint_pos``, ``kp``, ``kd``, ``effort_limits``,
  ``velocity_limits``, ``joint_pos_limits``, ``action_offset``) are in policy order: the
  order of the actions and of every per-joint observation term;
- the policy observation is the concatenation of ``observation_terms`` in order, each
  ``clip(raw * scale, -clip, clip)``; the network normalizes it itself
  (``obs_normalization_in_graph``);
- the graph outputs the deterministic (mean) action; the joint position target is
  ``action_offset + action_scale * action``, computed by the caller
  (``action_scale_in_graph`` is false).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass
from typing import Any

#: Bumped whenever a field is removed or changes meaning, or a required field is added.
SCHEMA_VERSION = 1
#: Fields added to this schema version later: a contract written before may lack them.
OPTIONAL_FIELDS = ("velocity_limits",)
#: ``policy_kind`` values: feed-forward actor, actor with GRU/LSTM memory, history student.
POLICY_KINDS = ("mlp", "recurrent", "student")
#: Recurrent cells.
CELLS = ("gru", "lstm")
#: The name of the dynamic batch axis in ``inputs``/``outputs`` shapes and in the graph.
BATCH = "batch"
#: Graph input and output names, fixed for every policy.
OBS, OBS_HISTORY, HIDDEN_IN, STARTS = "obs", "obs_history", "hidden_in", "starts"
ACTIONS, HIDDEN_OUT = "actions", "hidden_out"

_SHA256 = re.compile(r"[0-9a-f]{64}")


class PolicyFileError(ValueError):
    """A policy file that cannot be used: unreadable, not ONNX, or breaking its contract."""


class ContractError(PolicyFileError):
    """A contract field that is missing, malformed or disagrees with the graph.

    Attributes:
        field: the offending field, dotted and indexed (``observation_terms[1].size``).
    """

    def __init__(self, field: str, problem: str, source: str = "policy contract"):
        self.field = field
        super().__init__(f"{source}: contract field '{field}': {problem}")


@dataclass(frozen=True)
class ObservationTerm:
    """One term of the policy observation: ``clip(raw * scale, -clip, clip)``, ``size`` wide."""

    name: str
    size: int
    scale: float | list[float]
    clip: float


@dataclass(frozen=True)
class RecurrentState:
    """The memory of a recurrent policy, carried by the caller between steps.

    The state tensor is (K, batch, hidden_size): K = layers for a GRU; for an LSTM
    K = 2 × layers, the hidden states of every layer first, then the cell states.
    """

    cell: str
    layers: int
    hidden_size: int

    @property
    def rows(self) -> int:
        """K, the first axis of the state tensor."""
        return self.layers * (2 if self.cell == "lstm" else 1)


@dataclass(frozen=True)
class TensorSpec:
    """A graph input or output: its name, shape (``"batch"`` for the dynamic axis), dtype."""

    name: str
    shape: list[int | str]
    dtype: str


@dataclass(frozen=True)
class PolicyContract:
    """The policy contract; see the module docstring and ``export/README.md``."""

    schema_version: int
    task: str
    robot: str
    policy_kind: str
    joint_names: list[str]
    default_joint_pos: list[float]
    kp: list[float]
    kd: list[float]
    joint_pos_limits: list[list[float]]
    effort_limits: list[float]
    velocity_limits: list[float] | None
    control_period_s: float
    observation_group: str
    observation_terms: list[ObservationTerm]
    history_length: int
    obs_normalization_in_graph: bool
    action_scale: float | list[float]
    action_offset: list[float]
    action_scale_in_graph: bool
    recurrent: RecurrentState | None
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    opset: int
    graph_sha256: str
    producer: dict[str, Any]
    parity: dict[str, Any] | None

    @property
    def num_joints(self) -> int:
        """J, the number of actions and of joints."""
        return len(self.joint_names)

    @property
    def observation_size(self) -> int:
        """D, the width of one policy observation."""
        return sum(t.size for t in self.observation_terms)

    def to_dict(self) -> dict[str, Any]:
        """The contract as plain JSON-ready values."""
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        """The contract as indented JSON, lists of numbers on one line (no NaN or infinity)."""
        return _format(self.to_dict()) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = "policy contract") -> PolicyContract:
        """Parse and validate JSON text; errors name the field."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise PolicyFileError(f"{source}: the contract is not valid JSON ({error})") from None
        return cls.from_dict(data, source)

    @classmethod
    def from_dict(cls, data: Any, source: str = "policy contract") -> PolicyContract:
        """Validate plain values (a parsed JSON object) and build the contract."""
        _validate(data, source)
        fields = {name: None for name in OPTIONAL_FIELDS} | dict(data)
        fields["observation_terms"] = [ObservationTerm(**t) for t in data["observation_terms"]]
        if data["recurrent"] is not None:
            fields["recurrent"] = RecurrentState(**data["recurrent"])
        fields["inputs"] = [TensorSpec(**s) for s in data["inputs"]]
        fields["outputs"] = [TensorSpec(**s) for s in data["outputs"]]
        return cls(**fields)


def expected_io(
    kind: str,
    obs_size: int,
    num_actions: int,
    history_length: int = 1,
    recurrent: RecurrentState | None = None,
) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """The graph's (inputs, outputs) of a policy kind; the one place the I/O names are set.

    - mlp: ``obs`` (B, D) float32 → ``actions`` (B, A) float32.
    - recurrent: ``obs`` (B, D), ``hidden_in`` (K, B, H) float32, ``starts`` (B,) bool (True
      zeroes that env's state before the step: a new episode) → ``actions`` (B, A),
      ``hidden_out`` (K, B, H), the state to feed back next step.
    - student: ``obs_history`` (B, H, D), oldest first, current observation last →
      ``actions`` (B, A).
    """
    actions = TensorSpec(ACTIONS, [BATCH, num_actions], "float32")
    if kind == "student":
        return [TensorSpec(OBS_HISTORY, [BATCH, history_length, obs_size], "float32")], [actions]
    obs = TensorSpec(OBS, [BATCH, obs_size], "float32")
    if kind == "mlp":
        return [obs], [actions]
    if recurrent is None:
        raise ValueError("a recurrent policy needs its RecurrentState")
    state = [recurrent.rows, BATCH, recurrent.hidden_size]
    inputs = [obs, TensorSpec(HIDDEN_IN, state, "float32"), TensorSpec(STARTS, [BATCH], "bool")]
    return inputs, [actions, TensorSpec(HIDDEN_OUT, state, "float32")]


def _format(value: Any, depth: int = 0) -> str:
    """JSON indented by two spaces, except lists of plain values, kept on one line."""
    nested = isinstance(value, dict) or (
        isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value)
    )
    if not nested or not value:
        return json.dumps(value, allow_nan=False)
    pad, inner = "  " * depth, "  " * (depth + 1)
    if isinstance(value, dict):
        items = [f"{inner}{json.dumps(k)}: {_format(v, depth + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    items = [inner + _format(v, depth + 1) for v in value]
    return "[\n" + ",\n".join(items) + f"\n{pad}]"


# ----------------------------------------------------------------------------- validation


class _Check:
    """Field checks that raise ``ContractError`` naming the field read from ``source``."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, field: str, problem: str) -> None:
        raise ContractError(field, problem, self.source)

    def that(self, ok: bool, field: str, problem: str) -> None:
        if not ok:
            self.fail(field, problem)

    def text(self, value: Any, field: str) -> str:
        self.that(isinstance(value, str) and bool(value), field, f"expected text, got {value!r}")
        return value

    def integer(self, value: Any, field: str, minimum: int = 0) -> int:
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
        self.that(ok, field, f"expected an integer ≥ {minimum}, got {value!r}")
        return value

    def number(self, value: Any, field: str, positive: bool = False) -> float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        self.that(ok and math.isfinite(value), field, f"expected a finite number, got {value!r}")
        self.that(not positive or value > 0, field, f"must be positive, got {value!r}")
        return float(value)

    def flag(self, value: Any, field: str, expected: bool) -> None:
        self.that(isinstance(value, bool), field, f"expected true or false, got {value!r}")
        self.that(value is expected, field, f"must be {str(expected).lower()} in this schema")

    def mapping(self, value: Any, field: str, keys: tuple[str, ...] | None = None) -> dict:
        self.that(isinstance(value, dict), field, f"expected an object, got {value!r}")
        if keys is not None:
            self.keys(value, keys, field + ".")
        return value

    def keys(
        self, data: dict, keys: tuple[str, ...], prefix: str = "", optional: tuple[str, ...] = ()
    ) -> None:
        for key in data:
            self.that(key in keys, prefix + str(key), "unknown field")
        for key in keys:
            self.that(key in data or key in optional, prefix + key, "missing")

    def sequence(self, value: Any, field: str, length: int | None = None) -> list:
        self.that(isinstance(value, list), field, f"expected a list, got {value!r}")
        if length is not None:
            self.that(len(value) == length, field, f"expected {length} entries, got {len(value)}")
        return value

    def numbers(self, value: Any, field: str, length: int, positive: bool = False) -> None:
        for i, item in enumerate(self.sequence(value, field, length)):
            self.number(item, f"{field}[{i}]", positive)

    def scale(self, value: Any, field: str, length: int) -> None:
        if isinstance(value, list):
            self.numbers(value, field, length)
        else:
            self.number(value, field)


def _validate(data: Any, source: str) -> None:
    """Raise ``ContractError`` (naming the field) unless ``data`` is a valid contract."""
    check = _Check(source)
    check.that(isinstance(data, dict), "(root)", "expected a JSON object")
    version = data.get("schema_version")
    check.that(
        version == SCHEMA_VERSION,
        "schema_version",
        f"schema version {version!r}, this sim2real reads version {SCHEMA_VERSION}; "
        "export the checkpoint again with this sim2real",
    )
    check.keys(data, tuple(f.name for f in dataclasses.fields(PolicyContract)), "", OPTIONAL_FIELDS)
    for field in ("task", "robot", "observation_group"):
        check.text(data[field], field)
    kind = data["policy_kind"]
    check.that(kind in POLICY_KINDS, "policy_kind", f"expected one of {POLICY_KINDS}, got {kind!r}")

    names = check.sequence(data["joint_names"], "joint_names")
    check.that(bool(names), "joint_names", "no joints")
    for i, name in enumerate(names):
        check.text(name, f"joint_names[{i}]")
    check.that(len(set(names)) == len(names), "joint_names", "duplicate joint names")
    joints = len(names)
    for field in ("default_joint_pos", "kd", "action_offset"):
        check.numbers(data[field], field, joints)
    check.numbers(data["kp"], "kp", joints, positive=True)
    check.numbers(data["effort_limits"], "effort_limits", joints, positive=True)
    if data.get("velocity_limits") is not None:
        check.numbers(data["velocity_limits"], "velocity_limits", joints, positive=True)
    for i, pair in enumerate(check.sequence(data["joint_pos_limits"], "joint_pos_limits", joints)):
        field = f"joint_pos_limits[{i}]"
        check.numbers(pair, field, 2)
        check.that(pair[0] < pair[1], field, f"lower limit {pair[0]} is not below {pair[1]}")
    check.number(data["control_period_s"], "control_period_s", positive=True)
    check.scale(data["action_scale"], "action_scale", joints)
    check.flag(data["action_scale_in_graph"], "action_scale_in_graph", False)
    check.flag(data["obs_normalization_in_graph"], "obs_normalization_in_graph", True)

    obs_size = _validate_terms(check, data["observation_terms"])
    history = check.integer(data["history_length"], "history_length", minimum=1)
    check.that(
        kind == "student" or history == 1,
        "history_length",
        f"a {kind} policy sees one observation, got {history}",
    )
    recurrent = _validate_recurrent(check, data["recurrent"], kind)
    inputs, outputs = expected_io(kind, obs_size, joints, history, recurrent)
    _validate_io(check, data["inputs"], inputs, "inputs")
    _validate_io(check, data["outputs"], outputs, "outputs")

    check.integer(data["opset"], "opset", minimum=1)
    digest = data["graph_sha256"]
    ok = isinstance(digest, str) and _SHA256.fullmatch(digest) is not None
    check.that(ok, "graph_sha256", f"expected 64 lowercase hex digits, got {digest!r}")
    check.mapping(data["producer"], "producer")
    if data["parity"] is not None:
        check.mapping(data["parity"], "parity")


def _validate_terms(check: _Check, terms: Any) -> int:
    """Check ``observation_terms``; return the observation size D."""
    check.that(bool(check.sequence(terms, "observation_terms")), "observation_terms", "no terms")
    keys = tuple(f.name for f in dataclasses.fields(ObservationTerm))
    seen: set[str] = set()
    for i, term in enumerate(terms):
        field = f"observation_terms[{i}]"
        check.mapping(term, field, keys)
        name = check.text(term["name"], f"{field}.name")
        check.that(name not in seen, f"{field}.name", f"duplicate term {name!r}")
        seen.add(name)
        size = check.integer(term["size"], f"{field}.size", minimum=1)
        check.scale(term["scale"], f"{field}.scale", size)
        check.number(term["clip"], f"{field}.clip", positive=True)
    return sum(t["size"] for t in terms)


def _validate_recurrent(check: _Check, value: Any, kind: str) -> RecurrentState | None:
    """Check ``recurrent`` (null unless the policy is recurrent); return it."""
    if kind != "recurrent":
        check.that(value is None, "recurrent", f"must be null for a {kind} policy")
        return None
    keys = tuple(f.name for f in dataclasses.fields(RecurrentState))
    check.mapping(value, "recurrent", keys)
    cell = value["cell"]
    check.that(cell in CELLS, "recurrent.cell", f"expected one of {CELLS}, got {cell!r}")
    check.integer(value["layers"], "recurrent.layers", minimum=1)
    check.integer(value["hidden_size"], "recurrent.hidden_size", minimum=1)
    return RecurrentState(**value)


def _validate_io(check: _Check, value: Any, expected: list[TensorSpec], field: str) -> None:
    """Check that ``inputs``/``outputs`` state exactly what the other fields imply."""
    check.sequence(value, field, len(expected))
    keys = tuple(f.name for f in dataclasses.fields(TensorSpec))
    for i, (spec, want) in enumerate(zip(value, expected, strict=True)):
        check.mapping(spec, f"{field}[{i}]", keys)
        for key, wanted in dataclasses.asdict(want).items():
            check.that(
                spec[key] == wanted,
                f"{field}[{i}].{key}",
                f"expected {wanted!r} (from the other fields), got {spec[key]!r}",
            )
