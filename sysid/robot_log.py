"""``RobotLog``: what sysid reads from a robot, from a rosbag2, an npz or a CSV file.

A log holds, on one clock (s):

- the measured joint states: times ``t`` (N,), positions ``q``, velocities ``qd`` and,
  where the robot measures them, efforts ``effort`` (N, J), in ``joint_names`` order;
- the joint position commands sent: their times ``command_t`` (M,), ``targets`` (M, J),
  and the gains that came with them where known (``command_kp``, ``command_kd``).

Sources:

- **rosbag2** (``from_bag``): a ``sim2real hil --record`` bag, or a real robot's with the
  same topics: ``/joint_states``, ``/<controller>/commands`` and ``/policy_node/input_stamp``
  (each command's time is its tick's ``header.stamp``; commands and ticks are paired in
  order), ``/policy_node/gains``.
- **npz** (``from_npz`` / ``to_npz``): the arrays above by name, ``joint_names`` as strings.
- **CSV** (``from_csv``): two files, ``<stem>_states.csv`` with columns ``t``, then
  ``q/<joint>``, ``qd/<joint>``, optionally ``effort/<joint>``; and
  ``<stem>_commands.csv`` with ``t``, ``target/<joint>``, optionally ``kp/<joint>``,
  ``kd/<joint>``.

``aligned(dt)`` resamples both onto one regular grid for the fits: states by linear
interpolation, commands held from their time until the next (zero-order hold, as the
robot's driver applies them). A command acts *after* its time: a joint state stamped at
the same instant was measured before it (the robot publishes the state, then the policy
answers it), so the sample at ``t`` holds the last command stamped before
``t − dt / 2`` (half a grid step absorbs rounding in the stamps).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

NS = 1e-9


@dataclass(frozen=True)
class RobotLog:
    """Joint states and commands on one clock; see the module docstring. Arrays: float64."""

    joint_names: tuple[str, ...]
    t: np.ndarray
    q: np.ndarray
    qd: np.ndarray
    effort: np.ndarray | None
    command_t: np.ndarray
    targets: np.ndarray
    command_kp: np.ndarray | None = None
    command_kd: np.ndarray | None = None

    def __post_init__(self):
        for name in ("t", "command_t"):
            object.__setattr__(self, name, np.asarray(getattr(self, name), dtype=np.float64))
        joints = len(self.joint_names)
        n, m = len(self.t), len(self.command_t)
        shapes = {"q": (n, joints), "qd": (n, joints), "targets": (m, joints)}
        for name in ("effort", "command_kp", "command_kd"):
            if getattr(self, name) is not None:
                shapes[name] = (n if name == "effort" else m, joints)
        for name, shape in shapes.items():
            value = np.asarray(getattr(self, name), dtype=np.float64)
            if value.shape != shape:
                raise ValueError(f"log field {name} has shape {value.shape}, expected {shape}")
            object.__setattr__(self, name, value)
        if n < 2 or m < 1:
            raise ValueError(f"the log has {n} joint states and {m} commands: too short")
        if np.any(np.diff(self.t) <= 0) or np.any(np.diff(self.command_t) < 0):
            raise ValueError("log times must increase (joint states) and not decrease (commands)")

    @property
    def duration(self) -> float:
        """Seconds of joint states."""
        return float(self.t[-1] - self.t[0])

    def select(self, joint_names: Sequence[str]) -> RobotLog:
        """The log of these joints only, in this order.

        Raises:
            ValueError: a joint is not in the log (the message lists the log's joints).
        """
        missing = [name for name in joint_names if name not in self.joint_names]
        if missing:
            raise ValueError(
                f"joints {missing} are not in the log; it has {list(self.joint_names)}"
            )
        index = [self.joint_names.index(name) for name in joint_names]

        def pick(array):
            return None if array is None else array[:, index]

        return RobotLog(
            tuple(joint_names), self.t, self.q[:, index], self.qd[:, index],
            pick(self.effort), self.command_t, self.targets[:, index],
            pick(self.command_kp), pick(self.command_kd),
        )  # fmt: skip

    def window(self, start_s: float, end_s: float | None = None) -> RobotLog:
        """The span from ``start_s`` to ``end_s`` (s after the first command; None: the end).

        For a log whose start holds something the fits should not see: faults injected on
        purpose (``sim2real pipeline`` fits the span after the last one), a robot being
        set down.

        Raises:
            ValueError: the span holds fewer than two joint states or no command.
        """
        t0 = self.command_t[0]
        end = np.inf if end_s is None else end_s

        def inside(t):
            return (t >= t0 + start_s) & (t < t0 + end)

        states, commands = inside(self.t), inside(self.command_t)
        if states.sum() < 2 or not commands.any():
            raise ValueError(
                f"the log's span {start_s:g}..{end:g} s after its first command is empty "
                f"(the log covers {self.t[-1] - t0:.2f} s after it)"
            )
        return self._rows(states, commands)

    def finite(self) -> RobotLog:
        """The log without joint states or commands that hold a NaN or an infinity.

        A robot's sensors and a HIL fault schedule both produce them (``nonfinite``
        faults); the fits need finite samples, and the gap they leave is interpolated over
        like any other.

        Raises:
            ValueError: fewer than two joint states or no command are left.
        """
        states = np.isfinite(self.q).all(1) & np.isfinite(self.qd).all(1)
        if self.effort is not None:
            states &= np.isfinite(self.effort).all(1)
        commands = np.isfinite(self.targets).all(1)
        if states.all() and commands.all():
            return self
        return self._rows(states, commands)

    def _rows(self, states: np.ndarray, commands: np.ndarray) -> RobotLog:
        """The log of these joint-state and command rows (boolean masks)."""

        def rows(array, keep):
            return None if array is None else array[keep]

        return RobotLog(
            self.joint_names, self.t[states], self.q[states], self.qd[states],
            rows(self.effort, states), self.command_t[commands], self.targets[commands],
            rows(self.command_kp, commands), rows(self.command_kd, commands),
        )  # fmt: skip

    def aligned(self, dt: float) -> AlignedLog:
        """States and commands on the grid ``t[0], t[0] + dt, ...`` within the states' span.

        Samples up to the first command are dropped (nothing was commanded yet).
        """
        start = max(self.t[0], self.command_t[0])
        grid = np.arange(start, self.t[-1] + 1e-12, dt)
        if grid.size < 2:
            raise ValueError(f"the log's commanded span is too short for a {dt} s grid")

        def interpolate(values):
            return np.stack([np.interp(grid, self.t, v) for v in values.T], axis=1)

        held = np.searchsorted(self.command_t, grid - 0.5 * dt, side="right") - 1
        keep = held >= 0
        grid, held = grid[keep], held[keep]

        def hold(values):
            return None if values is None else values[held]

        return AlignedLog(
            self.joint_names, grid, interpolate(self.q), interpolate(self.qd),
            None if self.effort is None else interpolate(self.effort),
            self.targets[held], hold(self.command_kp), hold(self.command_kd),
        )  # fmt: skip

    # -- sources ---------------------------------------------------------------------------

    @classmethod
    def from_bag(
        cls, path: str | Path, controller: str = "forward_position_controller"
    ) -> RobotLog:
        """From a rosbag2 with the HIL topics; see the module docstring.

        Raises:
            ValueError: a topic sysid needs is missing or empty (named).
        """
        from sim2real.deploy.hil.hil_log import HilLog

        log = HilLog.from_bag(path, controller)
        needs = {
            "/joint_states": log.joint_ns.size,
            f"/{controller}/commands": log.command_targets.shape[0],
            "/policy_node/input_stamp": log.tick_ns.size,
        }
        empty = [topic for topic, count in needs.items() if not count]
        if empty:
            raise ValueError(f"{path}: no messages on {empty}; topics: {sorted(log.counts)}")
        commands = min(log.tick_ns.size, log.command_targets.shape[0])
        effort = log.joint_effort if log.joint_effort.size else None
        gains = log.command_kp.shape[0] >= commands
        return cls(
            joint_names=log.joint_names,
            t=log.joint_ns * NS,
            q=log.joint_pos,
            qd=log.joint_vel,
            effort=effort,
            command_t=log.tick_ns[:commands] * NS,
            targets=log.command_targets[:commands],
            command_kp=log.command_kp[:commands] if gains else None,
            command_kd=log.command_kd[:commands] if gains else None,
        )

    def to_npz(self, path: str | Path) -> None:
        """Write the log as an npz file (``from_npz`` reads it)."""
        arrays = {
            name: getattr(self, name)
            for name in (
                "t",
                "q",
                "qd",
                "effort",
                "command_t",
                "targets",
                "command_kp",
                "command_kd",
            )
            if getattr(self, name) is not None
        }
        np.savez_compressed(path, joint_names=np.array(self.joint_names), **arrays)

    @classmethod
    def from_npz(cls, path: str | Path) -> RobotLog:
        """Read an npz log.

        Raises:
            ValueError: a required array is missing (named).
        """
        with np.load(path) as data:
            required = ("joint_names", "t", "q", "qd", "command_t", "targets")
            missing = [name for name in required if name not in data]
            if missing:
                raise ValueError(f"{path}: missing arrays {missing}; it has {sorted(data)}")
            optional = {name: data.get(name) for name in ("effort", "command_kp", "command_kd")}
            return cls(
                tuple(str(n) for n in data["joint_names"]), data["t"], data["q"], data["qd"],
                optional["effort"], data["command_t"], data["targets"],
                optional["command_kp"], optional["command_kd"],
            )  # fmt: skip

    @classmethod
    def from_csv(cls, stem: str | Path) -> RobotLog:
        """Read ``<stem>_states.csv`` and ``<stem>_commands.csv`` (module docstring).

        Raises:
            ValueError: a column is missing (named).
        """
        states = _read_csv(Path(f"{stem}_states.csv"))
        commands = _read_csv(Path(f"{stem}_commands.csv"))
        names = tuple(c.split("/", 1)[1] for c in states if c.startswith("q/"))
        if not names:
            raise ValueError(f"{stem}_states.csv has no q/<joint> columns")

        def columns(table, kind, path, required=True):
            keys = [f"{kind}/{n}" for n in names]
            missing = [k for k in keys if k not in table]
            if missing and (required or len(missing) < len(keys)):
                raise ValueError(f"{path}: missing columns {missing}")
            return None if missing else np.stack([table[k] for k in keys], axis=1)

        state_file, command_file = f"{stem}_states.csv", f"{stem}_commands.csv"
        for table, path in ((states, state_file), (commands, command_file)):
            if "t" not in table:
                raise ValueError(f"{path}: missing column 't'")
        return cls(
            names, states["t"], columns(states, "q", state_file),
            columns(states, "qd", state_file), columns(states, "effort", state_file, False),
            commands["t"], columns(commands, "target", command_file),
            columns(commands, "kp", command_file, False),
            columns(commands, "kd", command_file, False),
        )  # fmt: skip


def load_log(path: str | Path) -> RobotLog:
    """A log from a rosbag2 folder, an ``.npz`` file, or a CSV stem, non-finite rows dropped.

    A CSV stem ``run`` names ``run_states.csv`` and ``run_commands.csv``. Joint states and
    commands with a NaN or an infinity are left out (``RobotLog.finite``).

    Raises:
        FileNotFoundError: none of these exists at ``path``.
    """
    path = Path(path)
    if path.is_dir():
        return RobotLog.from_bag(path).finite()
    if path.suffix == ".npz" and path.is_file():
        return RobotLog.from_npz(path).finite()
    if Path(f"{path}_states.csv").is_file():
        return RobotLog.from_csv(path).finite()
    raise FileNotFoundError(
        f"no log at {path}: expected a rosbag2 folder, an .npz file or {path}_states.csv"
    )


def _read_csv(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise FileNotFoundError(f"no such CSV file: {path}")
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], np.array(rows[1:], dtype=np.float64).reshape(-1, len(rows[0]))
    return {name: body[:, i] for i, name in enumerate(header)}


@dataclass(frozen=True)
class AlignedLog:
    """A log on one regular grid (``RobotLog.aligned``): ``t`` (N,), the rest (N, J)."""

    joint_names: tuple[str, ...]
    t: np.ndarray
    q: np.ndarray
    qd: np.ndarray
    effort: np.ndarray | None
    targets: np.ndarray
    command_kp: np.ndarray | None
    command_kd: np.ndarray | None

    @property
    def dt(self) -> float:
        """Grid step, s."""
        return float(self.t[1] - self.t[0])
