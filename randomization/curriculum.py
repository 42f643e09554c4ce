"""Curricula: widen what the policy trains on as it gets better at it.

Two schedules, each a small pure object that consumes numbers (episode statistics,
performances) and produces ranges. None of them touches an env; the training loop and
the env read their ranges:

- ``CommandCurriculum`` widens the velocity-command ranges of a locomotion task when the
  tracking reward of the finished episodes passes a threshold (legged_gym's
  ``update_command_curriculum``, Isaac Lab's ``lin_vel_cmd_levels``).
- ``AutomaticDomainRandomization`` (ADR, OpenAI et al. 2019, "Solving Rubik's Cube with a
  Robot Hand") widens each randomization range at a boundary where the policy performs
  well, and narrows it where it fails.

Both satisfy the ``Curriculum`` protocol: ``state_dict()`` holds plain Python values only
(ints, floats, strings, lists, dicts, None), so a checkpoint that stores it loads with
``torch.load(..., weights_only=True)``; ``metrics()`` gives floats to log, keyed
``"curriculum/..."``.

Wiring (one ``TaskEnv`` ``env``, its randomization config ``config``; the env resets ended
envs inside ``step``, so ``infos["episode"]`` arrives after their reset)::

    commands = CommandCurriculum.from_task(env.task)  # limits and weights from the task
    env.task.command_ranges = commands.ranges          # the task draws commands from these
    adr = AutomaticDomainRandomization(
        {"friction": ADRTerm(nominal=(0.8, 1.0), bounds=(0.2, 2.0), step=0.05)},
        t_low=0.5, t_high=0.8,
    )
    adr.write_to(config)                               # the randomizer draws from these
    # in the env, whenever env_ids reset, before the randomizer draws their values:
    #     for env_id, (term, side) in adr.assign(env_ids, rng).items():
    #         pin term of env_id to adr.boundary_value(term, side) for the new episode
    # in the training loop, after each step:
    episode = result.infos.get("episode")
    if episode is not None:
        if commands.update(episode, env.task.episode_length_s):
            env.task.command_ranges = commands.ranges
        score = episode["track_lin_vel_xy_exp"] / env.task.episode_length_s  # weight 1
        if adr.report_many(episode["env_ids"], score):
            adr.write_to(config)
    # checkpoint: {"curriculum": {"commands": commands.state_dict(), "adr": adr.state_dict()}}

Range arithmetic is exact: each range is its start moved by an integer number of steps
(then clipped), so widening and narrowing never drift and a restored state reproduces
the same floats.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

Range = tuple[float, float]
SIDES = ("low", "high")
_EPS = 1e-9  # tolerance when counting how many steps reach a limit


@runtime_checkable
class Curriculum(Protocol):
    """What the training loop needs from every curriculum: save, restore, log."""

    def state_dict(self) -> dict[str, Any]:
        """The mutable state, as plain Python values (loads with ``weights_only=True``)."""
        ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the state that ``state_dict`` returned."""
        ...

    def metrics(self) -> dict[str, float]:
        """Scalars to log, keyed ``"curriculum/<name>"``."""
        ...


def _range(value: Sequence[float], what: str) -> Range:
    """``value`` as a ``(low, high)`` tuple of finite floats with ``low <= high``."""
    if len(value) != 2:
        raise ValueError(f"{what} must be a (low, high) pair, got {value!r}")
    low, high = float(value[0]), float(value[1])
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise ValueError(f"{what} must be finite with low <= high, got {value!r}")
    return low, high


def _steps_to(distance: float, step: float) -> int:
    """How many steps of ``step`` it takes to cover ``distance`` (0 when step is 0)."""
    if step <= 0.0 or distance <= 0.0:
        return 0
    return math.ceil(distance / step - _EPS)


class CommandCurriculum:
    """Command ranges that widen while the policy tracks the commands well.

    The ranges start at ``initial``. After ``min_episodes`` finished episodes have been
    fed to ``update``, their mean per-second sum of each tracking term is compared with
    ``threshold × weight`` (the most an ``*_exp`` kernel can give per second is its weight,
    since the env sums ``weight × kernel × dt``). When every term passes, every range
    widens by its ``step`` on both sides (``low - step``, ``high + step``), clipped to
    ``limits``; the episode counters then restart. Ranges only ever widen.

    The per-second sum divides by the episode time *limit*, not by the time the episode
    lasted: an episode that ends in a fall tracked nothing for the rest of it
    (legged_gym's convention).

    The task reads the ranges: ``task.command_ranges = curriculum.ranges`` after
    construction and after every ``update`` that returns True. Commands drawn earlier keep
    their values until the task resamples them (at reset and every ``resample_s``).

    Args:
        initial: starting (low, high) range of each command.
        limits: the widest (low, high) range of each command; contains ``initial``.
        step: widening of each command's range per promotion, on each side (0: fixed).
        reward_terms: tracking reward term name → its weight in the task.
        threshold: fraction of the maximum tracking reward that promotes (legged_gym: 0.8).
        min_episodes: finished episodes averaged per decision (about ``num_envs``).
        names: command names, used in metric keys.
    """

    def __init__(
        self,
        initial: Sequence[Sequence[float]] = ((-0.5, 0.5), (-0.25, 0.25), (-0.5, 0.5)),
        limits: Sequence[Sequence[float]] = ((-1.0, 1.0), (-0.5, 0.5), (-1.0, 1.0)),
        step: Sequence[float] = (0.1, 0.05, 0.1),
        reward_terms: Mapping[str, float] | None = None,
        threshold: float = 0.8,
        min_episodes: int = 100,
        names: Sequence[str] = ("vx", "vy", "yaw"),
    ):
        if reward_terms is None:
            reward_terms = {"track_lin_vel_xy_exp": 1.0}
        if not len(initial) == len(limits) == len(step) == len(names):
            raise ValueError(
                f"initial, limits, step and names must have one entry per command, got "
                f"{len(initial)}, {len(limits)}, {len(step)}, {len(names)}"
            )
        self.initial = tuple(_range(r, f"initial[{i}]") for i, r in enumerate(initial))
        self.limits = tuple(_range(r, f"limits[{i}]") for i, r in enumerate(limits))
        for i, ((lo, hi), (lim_lo, lim_hi)) in enumerate(
            zip(self.initial, self.limits, strict=True)
        ):
            if lo < lim_lo or hi > lim_hi:
                raise ValueError(f"initial[{i}] {(lo, hi)} lies outside limits[{i}]")
        self.step = tuple(float(s) for s in step)
        if any(not math.isfinite(s) or s < 0.0 for s in self.step):
            raise ValueError(f"step must be finite and >= 0, got {tuple(step)}")
        if not reward_terms:
            raise ValueError("reward_terms needs at least one tracking term")
        self.reward_terms = {str(k): float(w) for k, w in reward_terms.items()}
        if any(not w > 0.0 for w in self.reward_terms.values()):
            raise ValueError(f"tracking reward weights must be > 0, got {self.reward_terms}")
        if not threshold > 0.0:
            raise ValueError(f"threshold must be > 0, got {threshold}")
        if min_episodes < 1:
            raise ValueError(f"min_episodes must be >= 1, got {min_episodes}")
        self.threshold = float(threshold)
        self.min_episodes = int(min_episodes)
        self.names = tuple(names)
        self.max_level = max(
            max(_steps_to(i_lo - l_lo, s), _steps_to(l_hi - i_hi, s))
            for (i_lo, i_hi), (l_lo, l_hi), s in zip(
                self.initial, self.limits, self.step, strict=True
            )
        )
        self.level = 0
        self._sums = dict.fromkeys(self.reward_terms, 0.0)
        self._episodes = 0
        self._last_score: float | None = None

    @classmethod
    def from_task(
        cls,
        task: Any,
        initial: Sequence[Sequence[float]] = ((-0.5, 0.5), (-0.25, 0.25), (-0.5, 0.5)),
        step: Sequence[float] = (0.1, 0.05, 0.1),
        reward_terms: Sequence[str] = ("track_lin_vel_xy_exp",),
        **kwargs: Any,
    ) -> CommandCurriculum:
        """A curriculum whose limits and weights come from the task, so each lives in one place.

        Reads ``task.command_ranges`` as the limits, so build it before assigning
        ``task.command_ranges = curriculum.ranges``, and the weights of ``reward_terms``
        from ``task.rewards``. ``kwargs`` go to the constructor.
        """
        weights = {term.name: term.weight for term in task.rewards}
        missing = [name for name in reward_terms if name not in weights]
        if missing:
            raise KeyError(f"task {task.name!r} has no reward term {missing}")
        return cls(
            initial=initial,
            limits=task.command_ranges,
            step=step,
            reward_terms={name: weights[name] for name in reward_terms},
            **kwargs,
        )

    @property
    def ranges(self) -> tuple[Range, ...]:
        """The current (low, high) range of each command."""
        return tuple(
            (max(lo - self.level * s, l_lo), min(hi + self.level * s, l_hi))
            for (lo, hi), (l_lo, l_hi), s in zip(self.initial, self.limits, self.step, strict=True)
        )

    def update(self, episode_stats: Mapping[str, np.ndarray], max_episode_length_s: float) -> bool:
        """Add finished episodes; promote when enough of them tracked well.

        Args:
            episode_stats: ``infos["episode"]`` of a step: per-term sums over the envs that
                ended, each (E,); must hold every tracking term.
            max_episode_length_s: the episode time limit, s (``task.episode_length_s``).

        Returns:
            True when the ranges changed.
        """
        if not max_episode_length_s > 0.0:
            raise ValueError(f"max_episode_length_s must be > 0, got {max_episode_length_s}")
        missing = [name for name in self.reward_terms if name not in episode_stats]
        if missing:
            raise KeyError(f"episode statistics lack the tracking term(s) {missing}")
        counts = {len(np.atleast_1d(episode_stats[name])) for name in self.reward_terms}
        if len(counts) != 1:
            raise ValueError("tracking terms cover different numbers of episodes")
        count = counts.pop()
        if count == 0:
            return False
        for name in self.reward_terms:
            self._sums[name] += float(np.sum(episode_stats[name]))
        self._episodes += count
        if self._episodes < self.min_episodes:
            return False
        # fraction of the best possible tracking, per term; the worst term decides
        score = min(
            self._sums[name] / self._episodes / max_episode_length_s / weight
            for name, weight in self.reward_terms.items()
        )
        self._last_score = score
        self._sums = dict.fromkeys(self.reward_terms, 0.0)
        self._episodes = 0
        if score > self.threshold and self.level < self.max_level:
            self.level += 1
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        """Level, the episodes counted towards the next decision, the last score."""
        return {
            "level": self.level,
            "sums": dict(self._sums),
            "episodes": self._episodes,
            "last_score": self._last_score,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore ``state_dict()``; the tracking terms must be the same."""
        if set(state["sums"]) != set(self.reward_terms):
            raise KeyError(
                f"saved tracking terms {sorted(state['sums'])} differ from "
                f"{sorted(self.reward_terms)}"
            )
        level = int(state["level"])
        if not 0 <= level <= self.max_level:
            raise ValueError(f"saved level {level} outside [0, {self.max_level}]")
        self.level = level
        self._sums = {name: float(state["sums"][name]) for name in self.reward_terms}
        self._episodes = int(state["episodes"])
        last = state["last_score"]
        self._last_score = None if last is None else float(last)

    def metrics(self) -> dict[str, float]:
        """``curriculum/command_<name>_min|max``, the level, the last tracking score."""
        out = {}
        for name, (lo, hi) in zip(self.names, self.ranges, strict=True):
            out[f"curriculum/command_{name}_min"] = float(lo)
            out[f"curriculum/command_{name}_max"] = float(hi)
        out["curriculum/command_level"] = float(self.level)
        if self._last_score is not None:
            out["curriculum/command_tracking"] = float(self._last_score)
        return out


@dataclass(frozen=True)
class ADRTerm:
    """One scalar randomization range under ADR.

    Attributes:
        nominal: the (low, high) range training starts from; ADR never narrows inside it.
            A point ``(v, v)`` starts from no randomization, as in the ADR paper.
        bounds: hard (low, high) bounds; ADR never widens past them.
        step: Δ, how far one decision moves a boundary.
    """

    nominal: Range
    bounds: Range
    step: float

    def __post_init__(self):
        nominal, bounds = _range(self.nominal, "nominal"), _range(self.bounds, "bounds")
        if nominal[0] < bounds[0] or nominal[1] > bounds[1]:
            raise ValueError(f"nominal {nominal} lies outside bounds {bounds}")
        if not (math.isfinite(self.step) and self.step > 0.0):
            raise ValueError(f"step must be finite and > 0, got {self.step}")
        object.__setattr__(self, "nominal", nominal)
        object.__setattr__(self, "bounds", bounds)
        object.__setattr__(self, "step", float(self.step))


class AutomaticDomainRandomization:
    """ADR over scalar randomization ranges (OpenAI et al. 2019, Algorithm 1).

    Each range is its ``nominal`` range widened at each side by a whole number of steps Δ
    (clipped to ``bounds``). Whenever envs reset, ``assign`` picks each of them with
    probability ``p_boundary`` to evaluate one (term, side) drawn uniformly: for that
    episode the env's value of the term is pinned to ``boundary_value(term, side)``, the
    other terms being drawn as usual. When the episode has ended, ``report`` adds its
    performance to the buffer of that (term, side). A buffer that reaches ``buffer_size``
    entries decides and empties: mean ≥ ``t_high`` widens that side by Δ (up to the
    bound), mean ≤ ``t_low`` narrows it by Δ (never inside the nominal range, so never
    ``low > high``), anything between leaves it.

    Call order, the ``VecEnv`` one (ended envs are reset inside ``step``, and their
    statistics come after): the env calls ``assign`` for every env it resets (assigned
    or not); that closes each env's previous episode. ``report(env_id, performance)``
    then scores the episode the env's last ``assign`` closed. Reports are ignored for an
    episode that evaluated no boundary, for one already reported, and for one whose
    boundary moved while it ran (its performance was measured elsewhere).

    Args:
        terms: ADR name → its ``ADRTerm``. A name is a randomization term of the config,
            or ``"term/key"`` for one entry of a term whose range is a per-name mapping.
        t_low: performance at or below which a boundary narrows.
        t_high: performance at or above which a boundary widens.
        buffer_size: m, performances averaged per decision.
        p_boundary: probability that a resetting env evaluates a boundary (paper: 0.5).
    """

    def __init__(
        self,
        terms: Mapping[str, ADRTerm],
        t_low: float,
        t_high: float,
        buffer_size: int = 64,
        p_boundary: float = 0.5,
    ):
        if not terms:
            raise ValueError("ADR needs at least one term")
        if not t_low < t_high:
            raise ValueError(f"need t_low < t_high, got {t_low} and {t_high}")
        if buffer_size < 1:
            raise ValueError(f"buffer_size must be >= 1, got {buffer_size}")
        if not 0.0 <= p_boundary <= 1.0:
            raise ValueError(f"p_boundary must be in [0, 1], got {p_boundary}")
        self.terms = dict(terms)
        self.t_low, self.t_high = float(t_low), float(t_high)
        self.buffer_size = int(buffer_size)
        self.p_boundary = float(p_boundary)
        self.boundaries = tuple((name, side) for name in self.terms for side in SIDES)
        self._max_steps = {
            name: (
                _steps_to(t.nominal[0] - t.bounds[0], t.step),
                _steps_to(t.bounds[1] - t.nominal[1], t.step),
            )
            for name, t in self.terms.items()
        }
        self._steps = {name: [0, 0] for name in self.terms}
        self._buffers: dict[tuple[str, str], list[float]] = {b: [] for b in self.boundaries}
        # env id -> (name, side, boundary value) of its running / last closed episode
        self._running: dict[int, tuple[str, str, float]] = {}
        self._closed: dict[int, tuple[str, str, float]] = {}

    @property
    def ranges(self) -> dict[str, Range]:
        """The current (low, high) range of each term."""
        return {
            name: (self.boundary_value(name, "low"), self.boundary_value(name, "high"))
            for name in self.terms
        }

    def boundary_value(self, term: str, side: str) -> float:
        """The current value of ``term`` at ``side`` (``"low"`` or ``"high"``)."""
        t, (n_low, n_high) = self.terms[term], self._steps[term]
        if side == "low":
            return max(t.nominal[0] - n_low * t.step, t.bounds[0])
        if side == "high":
            return min(t.nominal[1] + n_high * t.step, t.bounds[1])
        raise ValueError(f"side must be 'low' or 'high', got {side!r}")

    def assign(
        self, env_ids: Iterable[int], rng: np.random.Generator
    ) -> dict[int, tuple[str, str]]:
        """Close the episodes of ``env_ids`` (resetting now) and pick boundaries for the new ones.

        Draws ``len(env_ids)`` uniforms, then one integer per picked env, from ``rng``.

        Returns:
            env id → (term, side) for the envs whose new episode evaluates a boundary;
            pin their value of ``term`` to ``boundary_value(term, side)``.
        """
        env_ids = [int(e) for e in np.asarray(env_ids, dtype=np.int64).ravel()]
        for env_id in env_ids:
            running = self._running.pop(env_id, None)
            if running is None:
                self._closed.pop(env_id, None)
            else:
                self._closed[env_id] = running
        picked = [
            e for e, u in zip(env_ids, rng.random(len(env_ids)), strict=True) if u < self.p_boundary
        ]
        which = rng.integers(len(self.boundaries), size=len(picked))
        out = {}
        for env_id, k in zip(picked, which, strict=True):
            term, side = self.boundaries[int(k)]
            self._running[env_id] = (term, side, self.boundary_value(term, side))
            out[env_id] = (term, side)
        return out

    def report(self, env_id: int, performance: float) -> bool:
        """Score the episode that env ``env_id``'s last ``assign`` closed.

        Returns:
            True when a range changed (then write the ranges to the config again).
        """
        closed = self._closed.pop(int(env_id), None)
        if closed is None:
            return False
        performance = float(performance)
        if not math.isfinite(performance):
            raise ValueError(f"performance of env {env_id} is not finite: {performance}")
        term, side, value = closed
        if value != self.boundary_value(term, side):
            return False  # the boundary moved while this episode ran
        buffer = self._buffers[term, side]
        buffer.append(performance)
        if len(buffer) < self.buffer_size:
            return False
        mean = math.fsum(buffer) / len(buffer)
        buffer.clear()
        if mean >= self.t_high:
            return self._move(term, side, +1)
        if mean <= self.t_low:
            return self._move(term, side, -1)
        return False

    def report_many(self, env_ids: Iterable[int], performances: Iterable[float]) -> bool:
        """``report`` each (env id, performance) pair in order; True when any range changed."""
        env_ids = np.asarray(env_ids).ravel()
        performances = np.asarray(performances, dtype=np.float64).ravel()
        if len(env_ids) != len(performances):
            raise ValueError(f"{len(env_ids)} env ids but {len(performances)} performances")
        changed = False
        for env_id, performance in zip(env_ids, performances, strict=True):
            changed |= self.report(int(env_id), float(performance))
        return changed

    def _move(self, term: str, side: str, direction: int) -> bool:
        index = SIDES.index(side)
        steps = self._steps[term]
        new = min(max(steps[index] + direction, 0), self._max_steps[term][index])
        changed = new != steps[index]
        steps[index] = new
        return changed

    def write_to(self, config: Any) -> None:
        """Write the current ranges into ``config.terms[name].range``.

        ``config`` is duck-typed: anything whose ``terms[name]`` has a ``range``. A
        ``"term/key"`` name replaces entry ``key`` of a per-name mapping of ranges. A
        frozen dataclass term is replaced by a copy with the new range.
        """
        for name, value in self.ranges.items():
            term_name, _, key = name.partition("/")
            term = config.terms[term_name]
            if key:
                if not isinstance(term.range, Mapping) or key not in term.range:
                    raise KeyError(f"term {term_name!r} has no per-name range {key!r}")
                new = {**term.range, key: value}
            elif isinstance(term.range, Mapping):
                raise TypeError(
                    f"term {term_name!r} has per-name ranges; name ADR terms '{term_name}/<name>'"
                )
            else:
                new = value
            try:
                term.range = new
            except AttributeError:  # frozen dataclass
                config.terms[term_name] = dataclasses.replace(term, range=new)

    def state_dict(self) -> dict[str, Any]:
        """Steps taken at each side and the buffered performances.

        Running assignments are not saved: every env resets when training resumes.
        """
        return {
            "steps": {name: list(steps) for name, steps in self._steps.items()},
            "buffers": {f"{t}:{s}": list(self._buffers[t, s]) for t, s in self.boundaries},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore ``state_dict()``; the terms must be the same."""
        if set(state["steps"]) != set(self.terms):
            raise KeyError(
                f"saved ADR terms {sorted(state['steps'])} differ from {sorted(self.terms)}"
            )
        steps = {}
        for name, (n_low, n_high) in state["steps"].items():
            max_low, max_high = self._max_steps[name]
            if not (0 <= n_low <= max_low and 0 <= n_high <= max_high):
                raise ValueError(
                    f"saved steps {[n_low, n_high]} of {name!r} outside [0, {[max_low, max_high]}]"
                )
            steps[name] = [int(n_low), int(n_high)]
        self._steps = steps
        self._buffers = {
            (t, s): [float(p) for p in state["buffers"][f"{t}:{s}"]] for t, s in self.boundaries
        }
        self._running.clear()
        self._closed.clear()

    def metrics(self) -> dict[str, float]:
        """``curriculum/adr_<name>_low|high`` and how many envs evaluate a boundary."""
        out = {}
        for name, (low, high) in self.ranges.items():
            out[f"curriculum/adr_{name}_low"] = float(low)
            out[f"curriculum/adr_{name}_high"] = float(high)
        out["curriculum/adr_boundary_envs"] = float(len(self._running))
        return out
