"""Fault injection for HIL runs: a YAML schedule, and what each fault does to the robot side.

Times are seconds of sim time after the policy's first command reaches the robot (the
start of the soft start), so a schedule means the same in lockstep and real time::

    faults:
      - {at: 4.0, kind: dropout, topic: joint_states, duration: 0.3}
      - {at: 5.0, kind: reset}
      - {at: 8.0, kind: nonfinite, topic: joint_states, field: position, joint: FL_calf_joint}
      - {at: 9.0, kind: push, velocity: [0.6, 0.0, 0.0]}
      - {at: 12.0, kind: estop}

Fault kinds (``duration`` in s; sensor faults last ``duration``, at least one message):

==================  ==========  ===========================================================
kind                applied by  what happens
==================  ==========  ===========================================================
``dropout``         robot       ``topic`` (joint_states, imu) is not published
``nonfinite``       robot       ``field`` of ``topic`` (all entries, or ``joint``'s) becomes
                                ``value``: nan (default), inf or -inf
``frozen``          robot       ``topic`` repeats its last message before the fault, stamp
                                included (a hung driver)
``missing_joint``   robot       ``joint`` is left out of joint_states
``renamed_joint``   robot       ``joint`` is published as ``to``
``command_delay``   robot       joint commands take effect ``delay_s`` later
``imu_spike``       robot       ``value`` (3,) is added to the IMU's ``field``
                                (angular_velocity, default; or linear_acceleration)
``push``            robot       base velocity change ``velocity`` (3,) m/s, world frame; or
                                ``force`` (3,) N on ``body`` (default: the base) for
                                ``duration``
``estop``           operator    the policy node's e-stop service
``reset``           operator    the policy node's reset service
==================  ==========  ===========================================================

The robot side (``sim_robot_node``) applies robot faults through ``FaultInjector``; the
HIL driver (``sim2real hil``) calls the operator services. ``STANDARD_FAULTS`` is the
schedule ``sim2real pipeline`` uses; the shipped YAML files are in ``fault_schedules/``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import yaml

ROBOT_KINDS = (
    "dropout",
    "nonfinite",
    "frozen",
    "missing_joint",
    "renamed_joint",
    "command_delay",
    "imu_spike",
    "push",
)
OPERATOR_KINDS = ("estop", "reset")
SENSOR_TOPICS = ("joint_states", "imu")
#: The fields of each sensor topic a ``nonfinite`` fault may corrupt.
SENSOR_FIELDS = {
    "joint_states": ("position", "velocity", "effort"),
    "imu": ("orientation", "angular_velocity", "linear_acceleration"),
}
NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
#: The shipped schedules (package data).
SCHEDULES_DIR = Path(str(resources.files(__package__).joinpath("fault_schedules")))

#: Per kind: the required fields, then the optional ones (``at`` is always required).
FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "dropout": (("topic",), ("duration",)),
    "nonfinite": (("topic", "field"), ("joint", "value", "duration")),
    "frozen": (("topic",), ("duration",)),
    "missing_joint": (("joint",), ("duration",)),
    "renamed_joint": (("joint", "to"), ("duration",)),
    "command_delay": (("delay_s",), ("duration",)),
    "imu_spike": (("value",), ("field", "duration")),
    "push": ((), ("velocity", "force", "body", "duration")),
    "estop": ((), ()),
    "reset": ((), ()),
}


@dataclass(frozen=True)
class Fault:
    """One scheduled fault; see the module docstring for the kinds and their fields.

    Attributes:
        kind: one of ``ROBOT_KINDS`` or ``OPERATOR_KINDS``.
        at: start, s after the policy's first command.
        duration: how long it lasts, s (0: one message, or instantaneous).
        topic: ``joint_states`` or ``imu`` (sensor faults).
        field: the message field a ``nonfinite`` or ``imu_spike`` fault changes.
        joint: the joint a fault acts on (``nonfinite``: all joints if ``None``).
        value: ``nonfinite``: nan, inf or -inf; ``imu_spike``: the (3,) vector added.
        to: the new name of a ``renamed_joint``.
        delay_s: the extra command delay of a ``command_delay``, s.
        velocity: a ``push``'s base velocity change (3,), m/s, world frame.
        force: a ``push``'s force (3,), N, world frame, held ``duration``.
        body: the body a force ``push`` acts on (``None``: the base).
    """

    kind: str
    at: float
    duration: float = 0.0
    topic: str | None = None
    field: str | None = None
    joint: str | None = None
    value: object = None
    to: str | None = None
    delay_s: float | None = None
    velocity: tuple[float, ...] | None = None
    force: tuple[float, ...] | None = None
    body: str | None = None

    @property
    def end(self) -> float:
        """When it stops, s."""
        return self.at + self.duration

    def active(self, t: float) -> bool:
        """Whether it acts at time ``t`` (a zero duration still covers its start instant)."""
        return self.at <= t <= self.end if self.duration == 0 else self.at <= t < self.end

    def describe(self) -> str:
        """One line for reports: the kind and its set fields."""
        skip = {"kind", "at"}
        values = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in skip and getattr(self, f.name) not in (None, 0.0)
        }
        detail = ", ".join(f"{k}={v}" for k, v in values.items())
        return f"{self.kind}({detail})" if detail else self.kind

    @classmethod
    def from_dict(cls, entry: Mapping, where: str = "fault") -> Fault:
        """Build and validate one fault; ``where`` names it in errors."""
        if not isinstance(entry, Mapping):
            raise ValueError(f"{where}: expected a mapping, got {entry!r}")
        kind = entry.get("kind")
        if kind not in FIELDS:
            raise ValueError(f"{where}: kind {kind!r} is not one of {sorted(FIELDS)}")
        required, optional = FIELDS[kind]
        unknown = sorted(set(entry) - {"kind", "at", *required, *optional})
        missing = [name for name in ("at", *required) if name not in entry]
        if unknown or missing:
            raise ValueError(
                f"{where} ({kind}): unknown fields {unknown}, missing fields {missing}; "
                f"{kind} takes at, {', '.join((*required, *optional))}"
            )
        values = dict(entry)
        values["at"] = _seconds(values["at"], f"{where}.at")
        values["duration"] = _seconds(values.get("duration", 0.0), f"{where}.duration")
        if "delay_s" in values:
            values["delay_s"] = _seconds(values["delay_s"], f"{where}.delay_s")
        _check_topic(kind, values, where)
        if kind == "nonfinite":
            text = str(values.get("value", "nan")).lower()
            if text not in NONFINITE:
                raise ValueError(f"{where}.value must be one of {list(NONFINITE)}, got {text!r}")
            values["value"] = text
        if kind == "imu_spike":
            values["field"] = values.get("field", "angular_velocity")
            if values["field"] not in ("angular_velocity", "linear_acceleration"):
                raise ValueError(
                    f"{where}.field must be angular_velocity or linear_acceleration, "
                    f"got {values['field']!r}"
                )
            values["value"] = _vector(values["value"], f"{where}.value")
        if kind == "push":
            if ("velocity" in values) == ("force" in values):
                raise ValueError(f"{where} (push): give exactly one of velocity or force")
            for name in ("velocity", "force"):
                if name in values:
                    values[name] = _vector(values[name], f"{where}.{name}")
        return cls(**values)


def _seconds(value, where: str) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where} must be a number of seconds, got {value!r}") from None
    if not (math.isfinite(seconds) and seconds >= 0):
        raise ValueError(f"{where} must be finite and >= 0, got {value!r}")
    return seconds


def _vector(value, where: str) -> tuple[float, float, float]:
    array = np.asarray(value, dtype=np.float64) if isinstance(value, Sequence) else None
    if array is None or array.shape != (3,) or not np.isfinite(array).all():
        raise ValueError(f"{where} must be 3 finite numbers, got {value!r}")
    return tuple(float(v) for v in array)


def _check_topic(kind: str, values: dict, where: str) -> None:
    if "topic" not in values:
        return
    topic = values["topic"]
    if topic not in SENSOR_TOPICS:
        raise ValueError(f"{where}.topic must be one of {list(SENSOR_TOPICS)}, got {topic!r}")
    if kind == "nonfinite" and values["field"] not in SENSOR_FIELDS[topic]:
        raise ValueError(
            f"{where}.field must be one of {list(SENSOR_FIELDS[topic])} for {topic}, "
            f"got {values['field']!r}"
        )


@dataclass(frozen=True)
class FaultSchedule:
    """An ordered list of faults.

    Attributes:
        faults: the faults, sorted by start time.
    """

    faults: tuple[Fault, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "faults", tuple(sorted(self.faults, key=lambda f: f.at)))

    @classmethod
    def from_dict(cls, document: Mapping | None, source: str = "fault schedule") -> FaultSchedule:
        """From ``{"faults": [...]}`` (an empty document: no faults)."""
        if document is None:
            return cls()
        if not isinstance(document, Mapping) or set(document) - {"faults"}:
            raise ValueError(f"{source}: expected a mapping with one key, 'faults'")
        entries = document.get("faults") or []
        if not isinstance(entries, list):
            raise ValueError(f"{source}: 'faults' must be a list")
        return cls(
            tuple(Fault.from_dict(e, f"{source}: faults[{i}]") for i, e in enumerate(entries))
        )

    @classmethod
    def from_yaml(cls, path: str | Path) -> FaultSchedule:
        """Load a schedule file, or a shipped one by name (``standard``; ``fault_schedules/``)."""
        path = fault_schedule_path(path)
        return cls.from_dict(yaml.safe_load(path.read_text()), str(path))

    def to_dict(self) -> dict:
        """The YAML document (set fields only)."""
        entries = []
        for fault in self.faults:
            entry = {"at": fault.at, "kind": fault.kind}
            for f in dataclasses.fields(fault):
                value = getattr(fault, f.name)
                if f.name not in entry and value is not None and (f.name != "duration" or value):
                    entry[f.name] = list(value) if isinstance(value, tuple) else value
            entries.append(entry)
        return {"faults": entries}

    def of_kinds(self, kinds: Sequence[str]) -> tuple[Fault, ...]:
        """The faults of the given kinds."""
        return tuple(f for f in self.faults if f.kind in kinds)

    def check_robot(self, joint_names: Sequence[str], has_imu: bool) -> None:
        """Refuse faults that name unknown joints, or the IMU of a robot that has none."""
        for fault in self.faults:
            if fault.joint is not None and fault.joint not in joint_names:
                raise ValueError(
                    f"fault {fault.describe()} at {fault.at} s: unknown joint {fault.joint!r}; "
                    f"the robot's joints: {list(joint_names)}"
                )
            uses_imu = fault.topic == "imu" or fault.kind == "imu_spike"
            if uses_imu and not has_imu:
                raise ValueError(f"fault {fault.describe()} at {fault.at} s: the robot has no IMU")


def fault_schedule_path(name_or_path: str | Path) -> Path:
    """A schedule file's path: an existing file, or a shipped schedule's name."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = SCHEDULES_DIR / f"{name_or_path}.yaml"
    if shipped.is_file():
        return shipped
    names = sorted(p.name.removesuffix(".yaml") for p in shipped_fault_files())
    raise FileNotFoundError(
        f"no fault schedule {str(name_or_path)!r}: not a file, nor a shipped one ({names})"
    )


def shipped_fault_files() -> list[Path]:
    """The shipped fault schedules."""
    return sorted(SCHEDULES_DIR.glob("*.yaml"))


@dataclass
class SensorMessage:
    """The data of one outgoing sensor message, before it becomes a ROS message.

    Attributes:
        topic: ``joint_states`` or ``imu``.
        stamp_ns: header stamp, ns, on the clock the nodes share.
        fields: joint_states: ``position``, ``velocity``, ``effort`` (J,); imu:
            ``orientation`` (4,) wxyz, ``angular_velocity`` (3,), ``linear_acceleration`` (3,).
        names: the joint names (joint_states), in the arrays' order.
    """

    topic: str
    stamp_ns: int
    fields: dict[str, np.ndarray]
    names: tuple[str, ...] = ()

    def copy(self) -> SensorMessage:
        """A deep copy (arrays copied)."""
        fields = {k: np.array(v, dtype=np.float64) for k, v in self.fields.items()}
        return SensorMessage(self.topic, self.stamp_ns, fields, tuple(self.names))


class FaultInjector:
    """Applies a schedule's robot faults to the robot side of a HIL run.

    Args:
        schedule: the faults (operator faults are ignored here).

    Call ``sensor`` for every outgoing sensor message, ``command_delay`` for every
    incoming joint command, and ``due_pushes`` once per physics step or so.
    """

    def __init__(self, schedule: FaultSchedule):
        self.faults = schedule.of_kinds(ROBOT_KINDS)
        self._last: dict[str, SensorMessage] = {}
        self._frozen: dict[int, SensorMessage] = {}
        self._pushed: set[int] = set()

    def sensor(self, message: SensorMessage, t: float) -> SensorMessage | None:
        """What is published for ``message`` at fault time ``t``; ``None``: nothing."""
        active = [
            (i, f) for i, f in enumerate(self.faults) if f.active(t) and _on_topic(f, message)
        ]
        if not active:
            self._last[message.topic] = message
            return message
        out = message.copy()
        for index, fault in active:
            if fault.kind == "dropout":
                return None
            if fault.kind == "frozen":
                frozen = self._frozen.setdefault(index, self._last.get(message.topic, message))
                return frozen.copy()
            out = _corrupt(out, fault)
        return out

    def command_delay(self, t: float) -> float:
        """The extra delay of a joint command arriving at fault time ``t``, s."""
        return sum(f.delay_s for f in self.faults if f.kind == "command_delay" and f.active(t))

    def due_pushes(self, t: float) -> list[Fault]:
        """Pushes that start at or before ``t`` and were not returned yet."""
        due = []
        for index, fault in enumerate(self.faults):
            if fault.kind == "push" and fault.at <= t and index not in self._pushed:
                self._pushed.add(index)
                due.append(fault)
        return due


def _on_topic(fault: Fault, message: SensorMessage) -> bool:
    if fault.kind in ("missing_joint", "renamed_joint"):
        return message.topic == "joint_states"
    if fault.kind == "imu_spike":
        return message.topic == "imu"
    return fault.topic == message.topic


def _corrupt(message: SensorMessage, fault: Fault) -> SensorMessage:
    """``message`` (a copy, changed in place) under a value fault."""
    names = list(message.names)
    if fault.kind == "nonfinite":
        values = message.fields[fault.field]
        if fault.joint is None:
            values[:] = NONFINITE[fault.value]
        elif fault.joint in names:
            values[names.index(fault.joint)] = NONFINITE[fault.value]
    elif fault.kind == "imu_spike":
        message.fields[fault.field] = message.fields[fault.field] + np.asarray(fault.value)
    elif fault.kind == "missing_joint" and fault.joint in names:
        keep = [i for i, name in enumerate(names) if name != fault.joint]
        message.fields = {k: v[keep] for k, v in message.fields.items()}
        message.names = tuple(names[i] for i in keep)
    elif fault.kind == "renamed_joint" and fault.joint in names:
        names[names.index(fault.joint)] = fault.to
        message.names = tuple(names)
    return message
