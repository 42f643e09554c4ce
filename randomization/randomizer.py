"""The engine that draws a randomization config into one env engine (``TaskEnv``).

When each mode draws (the env calls these hooks):

- ``startup`` terms: once, in :meth:`Randomizer.startup`, when the env is built, for
  every env, from their own stream (so they never repeat the first reset's numbers).
- ``reset`` terms: in :meth:`Randomizer.reset`, for the envs being reset, after the
  keyframe reset and before the task writes its initial state. Interval timers of
  those envs restart, and a held external force ends.
- ``interval`` terms: in :meth:`Randomizer.pre_physics`, before each control step's
  physics, for the envs whose per-env timer ran out; each timer is then redrawn from
  U(interval_s) seconds, rounded to whole control steps (at least 1).
- ``step`` (observation noise): every time the policy group is computed.

Every value is drawn from the randomizer's generator, seeded from the env's seed:
the same seed gives the same draws at any thread count. The task's own draws (initial
states, commands) come from the env's other generator, so switching randomization on
or off, or changing a term, leaves them unchanged.

The config is read while the env runs: each draw reads ``config.terms[name].range`` and
``enabled`` anew, so a curriculum (ADR) may change ranges between draws. Which terms
exist, their modes and per-name keys are checked when the randomizer is built; a term
that was disabled then stays off. ``pin`` fixes one env's next draw of a term (ADR's
boundary sampling); ``reset_hooks`` run at every reset before the draws, so a
curriculum can pin the envs being reset.

Whenever a draw changed an ``mj_setConst`` input (masses, inertias, CoM, armature), the
randomizer calls ``backend.set_const`` for the envs it changed.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from sim2real.randomization.config import (
    ConfigError,
    RandomizationConfig,
    check_range,
    match_entries,
)
from sim2real.randomization.distributions import apply_operation, sample, sample_int
from sim2real.randomization.terms import TERMS, SimHandles, clear_forces, expire_forces
from sim2real.sim.observations import ObsTerm, RobotState

SENSING = ("imu_gyro_bias", "imu_tilt", "encoder_offset")
ResetHook = Callable[[np.ndarray, "Randomizer"], None]


class Randomizer:
    """Draws the enabled terms of ``config`` into the simulation ``sim`` handles.

    Args:
        config: the (validated) config; kept, not copied, and read at every draw.
        sim: what the terms write.
        seed: the env's seed.

    Raises:
        ConfigError: a term the robot or task cannot take (no feet, no floating base),
            a per-name key that names no entry, a delay beyond the task's buffer.
    """

    def __init__(self, config: RandomizationConfig, sim: SimHandles, seed: int):
        self.config = config
        self.sim = sim
        self.reset_hooks: list[ResetHook] = []
        self._pins: dict[str, dict[int, dict[str | None, float]]] = {}
        self._columns: dict[tuple[str, tuple[str, ...]], list[list[int]]] = {}
        self.terms = tuple(config.enabled())
        self._resolved: dict[str, tuple[Any, Any]] = {}
        self._entries = {name: TERMS[name].entries(sim) for name in self.terms}
        for name in self.terms:
            self._check_applicable(name)
        self._nominal = {
            name: np.asarray(TERMS[name].nominal(sim, np.arange(1)))
            for name in self.terms
            if TERMS[name].nominal is not None and not TERMS[name].state_nominal
        }
        self._by_mode = {
            mode: tuple(n for n in self.terms if config.terms[n].mode == mode)
            for mode in ("startup", "reset", "interval", "step")
        }
        self._timers = {name: np.zeros(sim.backend.num_envs, np.int64) for name in self.interval}
        self._sensing = any(name in SENSING for name in self.terms)
        self._forces = "external_force" in self.terms
        self.reseed(seed)

    @property
    def interval(self) -> tuple[str, ...]:
        """Names of the interval-mode terms."""
        return self._by_mode["interval"]

    def reseed(self, seed: int) -> None:
        """Restart the generators from ``seed`` (the env's ``reset(seed)``)."""
        sequence = np.random.SeedSequence(seed)
        events, startup = sequence.spawn(2)
        self.rng = np.random.default_rng(events)
        self._startup_rng = np.random.default_rng(startup)

    # --------------------------------------------------------------------- env hooks

    def startup(self) -> None:
        """Draw the startup terms for every env (once, when the env is built)."""
        env_ids = np.arange(self.sim.backend.num_envs)
        self._draw_all(self._by_mode["startup"], env_ids, self._startup_rng)

    def reset(self, env_ids: np.ndarray) -> None:
        """Draw the reset terms of ``env_ids`` and restart their interval timers."""
        env_ids = np.asarray(env_ids, dtype=np.int64)
        for hook in self.reset_hooks:
            hook(env_ids, self)
        if self._forces:
            clear_forces(self.sim, env_ids)
        self._draw_all(self._by_mode["reset"], env_ids, self.rng)
        for name in self.interval:
            self._timers[name][env_ids] = self._interval_steps(name, len(env_ids))

    def pre_physics(self) -> None:
        """Before a control step's physics: fire due interval terms, end held forces."""
        for name in self.interval:
            timer = self._timers[name]
            timer -= 1
            due = np.flatnonzero(timer <= 0)
            if len(due):
                self._draw_all((name,), due, self.rng)
                timer[due] = self._interval_steps(name, len(due))
        if self._forces:
            expire_forces(self.sim)

    def sense(self, state: RobotState) -> RobotState:
        """The robot state as the policy's sensors report it (a corrupted copy)."""
        return self.sim.sensors.corrupt(state) if self._sensing else state

    def wrap_policy_terms(self, terms: Sequence[ObsTerm]) -> tuple[ObsTerm, ...]:
        """The policy group's terms, each adding its observation noise to its raw value."""
        if "observation_noise" not in self.terms:
            return tuple(terms)
        return tuple(replace(t, func=_Noisy(t.func, t.name, self)) for t in terms)

    def pin(self, env_ids: Sequence[int], term: str, value: float, key: str | None = None) -> None:
        """Fix the next draw of ``term`` (entry ``key`` of a per-name range) for ``env_ids``.

        The pinned number replaces the distribution's sample (before the operation),
        once; ADR pins an env to a range boundary for one episode this way.
        """
        if term not in self.terms:
            raise KeyError(f"term {term!r} is not drawn by this randomizer")
        pins = self._pins.setdefault(term, {})
        for env_id in np.atleast_1d(env_ids):
            pins.setdefault(int(env_id), {})[key] = float(value)

    # ----------------------------------------------------------------------- drawing

    def _draw_all(self, names: Sequence[str], env_ids: np.ndarray, rng) -> None:
        if not len(env_ids):
            return
        const = False
        for name in names:
            const |= self._draw(name, env_ids, rng)
        if const:
            self.sim.backend.set_const(env_ids)

    def _draw(self, name: str, env_ids: np.ndarray, rng: np.random.Generator) -> bool:
        """Draw and write ``name`` for ``env_ids``; return whether set_const is needed."""
        term = self.config.terms[name]
        if not term.enabled:
            return False
        spec = TERMS[name]
        cols, low, high, keys = self._ranges(name, term)
        shape = (len(env_ids), 1 if spec.shared else len(cols))
        if spec.integer:
            draw = sample_int(low, high, shape, rng).astype(np.float64)
        else:
            draw = sample(term.distribution, low, high, shape, rng)
        if name in self._pins:
            self._apply_pins(name, env_ids, draw, keys)
        if spec.state_nominal:
            nominal = np.asarray(spec.nominal(self.sim, env_ids))
        else:  # the unexpanded model's values, fixed
            nominal = self._nominal[name]
        values = np.clip(apply_operation(term.operation, nominal[..., cols], draw), *spec.bounds)
        everything = len(self._entries[name])
        if len(cols) < everything:  # entries a per-name range leaves out get their nominal
            full = np.array(np.broadcast_to(nominal, (len(env_ids), everything)))
            full[:, cols] = values
            cols, values = np.arange(everything), full
        params = {**spec.params, **term.params}
        spec.write(self.sim, env_ids, cols, values, params, rng)
        return spec.set_const

    def _ranges(self, name: str, term) -> tuple[np.ndarray, Any, Any, list[str | None]]:
        """Columns (entry indices), lows and highs, and each column's key, read now.

        The range is checked and resolved again whenever it differs from the last one.
        """
        cached = self._resolved.get(name)
        if cached is not None and cached[0] == (term.distribution, term.range):
            return cached[1]
        path = f"terms.{name}.range"
        entries = self._entries[name]
        if not isinstance(term.range, Mapping):
            check_range(path, name, term.distribution, term.range)
            low, high = term.range
            out = (np.arange(len(entries)), low, high, [None] * len(entries))
        else:
            keys = tuple(term.range)
            groups = self._match(name, keys, entries)
            cols, lows, highs, owners = [], [], [], []
            for key, group in zip(keys, groups, strict=True):
                check_range(f"{path}.{key}", name, term.distribution, term.range[key])
                cols += group
                lows += [term.range[key][0]] * len(group)
                highs += [term.range[key][1]] * len(group)
                owners += [key] * len(group)
            out = (np.array(cols, np.int64), np.array(lows, float), np.array(highs, float), owners)
        self._resolved[name] = ((term.distribution, copy.deepcopy(term.range)), out)
        return out

    def _match(self, name: str, keys: tuple[str, ...], entries: Sequence[str]):
        cached = self._columns.get((name, keys))
        if cached is None:
            cached = match_entries(f"terms.{name}.range", keys, entries)
            self._columns[name, keys] = cached
        return cached

    def _apply_pins(self, name: str, env_ids: np.ndarray, draw: np.ndarray, keys) -> None:
        pins = self._pins[name]
        for row, env_id in enumerate(env_ids.tolist()):
            pinned = pins.pop(env_id, None)
            if not pinned:
                continue
            for key, value in pinned.items():
                if key is None:
                    draw[row] = value
                else:
                    draw[row, [c for c, k in enumerate(keys) if k == key]] = value

    def _interval_steps(self, name: str, n: int) -> np.ndarray:
        low, high = self.config.terms[name].interval_s
        seconds = self.rng.uniform(low, high, n)
        return np.maximum(1, np.round(seconds / self.sim.step_dt)).astype(np.int64)

    def noise(self, obs_term: str, value: np.ndarray) -> np.ndarray:
        """``value`` of policy term ``obs_term`` plus this step's noise (raw units)."""
        term = self.config.terms["observation_noise"]
        if not term.enabled:
            return value
        cols, low, high, _ = self._ranges("observation_noise", term)
        column = self.sim.policy_terms.index(obs_term)
        where = np.flatnonzero(cols == column)
        if not len(where):
            return value  # no noise on this term
        low, high = np.broadcast_to(low, cols.shape), np.broadcast_to(high, cols.shape)
        i = where[0]
        return value + sample(term.distribution, low[i], high[i], value.shape, self.rng)

    # ----------------------------------------------------------------------- binding

    def _check_applicable(self, name: str) -> None:
        spec, sim, term = TERMS[name], self.sim, self.config.terms[name]
        path = f"terms.{name}"
        if spec.requires == "feet" and not sim.feet:
            raise ConfigError(
                f"{path}: not applicable to task {sim.task_name!r}: it declares no feet (Task.feet)"
            )
        if spec.requires == "base" and sim.base_body is None:
            raise ConfigError(
                f"{path}: not applicable to task {sim.task_name!r}: robot "
                f"{sim.robot.name!r} has no floating base"
            )
        if isinstance(term.range, Mapping):
            self._match(name, tuple(term.range), spec.entries(sim))
        if name == "action_delay":
            high = max(term.range)
            if high > sim.action_delay.max_delay:
                raise ConfigError(
                    f"{path}.range: high {high} > max_action_delay "
                    f"{sim.action_delay.max_delay} of task {sim.task_name!r}"
                )
        if spec.nominal is not None:  # e.g. restitution refuses direct solref
            try:
                spec.nominal(sim, np.arange(1))
            except ValueError as error:
                raise ConfigError(f"{path}: {error}") from None


class _Noisy:
    """An observation kernel plus the randomizer's per-step noise (picklable, no lambda)."""

    def __init__(self, func: Callable[[RobotState], np.ndarray], name: str, owner: Randomizer):
        self.func, self.name, self.owner = func, name, owner
        functools.update_wrapper(self, func)  # __name__, __doc__, __wrapped__ of the kernel

    def __call__(self, state: RobotState) -> np.ndarray:
        return self.owner.noise(self.name, self.func(state))
