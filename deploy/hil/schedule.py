"""The task commands a HIL run sends: velocity commands for go2, targets for the arm.

A schedule is piecewise constant: ``values[k]`` holds from ``times[k]`` (s after the
policy's first command) until the next entry. The defaults:

- **velocity** (go2 tasks): stand through the soft start, then a fixed cycle of 4 s
  segments that a person reads at a glance: forward 0.5 m/s, forward 1.0 m/s, turn left
  1 rad/s, sideways 0.3 m/s, backward 0.5 m/s, forward 0.5 m/s while turning right
  0.5 rad/s, stand. Planar commands stay at or above the 0.2 m/s training deadband.
- **target** (reach tasks): a new target every 3 s, drawn (seeded) uniformly in the task's
  target box (base frame, m); the first one holds from the start.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim2real.sim.tasks import task_class

KINDS = ("velocity", "target")
VELOCITY_CYCLE = (
    (0.5, 0.0, 0.0),
    (1.0, 0.0, 0.0),
    (0.0, 0.0, 1.0),
    (0.0, 0.3, 0.0),
    (-0.5, 0.0, 0.0),
    (0.5, 0.0, -0.5),
    (0.0, 0.0, 0.0),
)
VELOCITY_SEGMENT_S = 4.0
TARGET_SEGMENT_S = 3.0


@dataclass(frozen=True)
class CommandSchedule:
    """Piecewise-constant task commands.

    Attributes:
        kind: ``velocity`` (vx m/s, vy m/s, yaw rate rad/s) or ``target`` (x, y, z in m,
            base frame).
        times: (K,) start of each entry, s after the policy's first command, increasing,
            the first 0.
        values: (K, 3) the commands.
    """

    kind: str
    times: np.ndarray
    values: np.ndarray

    def __post_init__(self):
        times = np.asarray(self.times, dtype=np.float64)
        values = np.asarray(self.values, dtype=np.float64).reshape(len(times), 3)
        if self.kind not in KINDS:
            raise ValueError(f"schedule kind must be one of {KINDS}, got {self.kind!r}")
        if times.size == 0 or times[0] != 0 or np.any(np.diff(times) <= 0):
            raise ValueError(f"schedule times must start at 0 and increase, got {times}")
        object.__setattr__(self, "times", times)
        object.__setattr__(self, "values", values)

    def index(self, t: float | np.ndarray) -> np.ndarray:
        """Entry index in force at time(s) ``t``, s (before 0: the first)."""
        return np.clip(np.searchsorted(self.times, t, side="right") - 1, 0, None)

    def at(self, t: float | np.ndarray) -> np.ndarray:
        """The command(s) at time(s) ``t``: (3,) or (T, 3)."""
        return self.values[self.index(t)]

    def segment_ends(self, duration_s: float) -> np.ndarray:
        """(K,) end of each entry, s (the last ends at ``duration_s``)."""
        return np.append(self.times[1:], max(duration_s, self.times[-1]))

    @classmethod
    def default(
        cls, task: str, duration_s: float, start_s: float = 0.0, seed: int = 0
    ) -> CommandSchedule:
        """The default schedule of ``task`` over ``duration_s``; see the module docstring.

        Args:
            task: a registered task name.
            duration_s: run length after the first command, s.
            start_s: when the robot can follow commands (the soft start's end), s.
            seed: seeds the reach targets.
        """
        task_cls = task_class(task)
        if hasattr(task_cls, "command_ranges"):
            times, values = ([0.0], [(0.0, 0.0, 0.0)]) if start_s > 0 else ([], [])
            t, k = start_s, 0
            while t < duration_s or not times:
                times.append(t)
                values.append(VELOCITY_CYCLE[k % len(VELOCITY_CYCLE)])
                t, k = t + VELOCITY_SEGMENT_S, k + 1
            return cls("velocity", times, values)
        if hasattr(task_cls, "target_box"):
            low, high = np.array(task_cls.target_box).T
            rng = np.random.default_rng(seed)
            count = max(1, int(np.ceil(duration_s / TARGET_SEGMENT_S)))
            times = np.arange(count) * TARGET_SEGMENT_S
            return cls("target", times, rng.uniform(low, high, size=(count, 3)))
        raise ValueError(f"task {task!r} takes neither velocity commands nor targets")
