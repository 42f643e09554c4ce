"""The curricula of a training run, driven by finished episodes, saved in checkpoints.

``Curricula.for_env`` collects what applies to the env:

- ``commands``: ``CommandCurriculum`` for tasks with velocity commands
  (``task.command_ranges``), when ``curriculum.commands`` is on;
- ``adr``: ``AutomaticDomainRandomization`` over the scalar terms of ``ADR_TERMS`` that
  the run randomizes, when ``curriculum.adr`` is on; boundary envs are pinned through
  a randomizer reset hook;
- ``terrain``: the task's own level curriculum (``go2-rough``), which the task updates.

After every env step the loop hands ``infos["episode"]`` to ``update``; ``state_dict``
goes into checkpoints and ``metrics`` into the logs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sim2real.policies.config import CurriculumConfig
from sim2real.randomization.curriculum import (
    ADRTerm,
    AutomaticDomainRandomization,
    CommandCurriculum,
    Curriculum,
)

#: ADR's hard bounds and step for the scalar terms it may move (units of each term).
ADR_TERMS = {
    "ground_friction": ((0.1, 2.0), 0.05),
    "base_mass": ((-2.0, 6.0), 0.25),
    "motor_strength": ((0.5, 1.5), 0.025),
    "kp_scale": ((0.5, 1.5), 0.025),
    "kd_scale": ((0.5, 1.5), 0.025),
}
#: Tracking terms that score a velocity-command episode (per second, fraction of max).
TRACKING_TERMS = ("track_lin_vel_xy_exp",)


class Curricula:
    """The named curricula of one env.

    Args:
        env: the ``TaskEnv`` being trained.
        curricula: name → curriculum (``Curriculum`` protocol).
    """

    def __init__(self, env: Any, curricula: dict[str, Curriculum]):
        self.env, self.curricula = env, curricula

    @classmethod
    def for_env(cls, env: Any, config: CurriculumConfig) -> Curricula:
        """The curricula ``config`` asks for that apply to ``env``'s task."""
        task, curricula = env.task, {}
        if config.commands and hasattr(task, "command_ranges"):
            commands = CommandCurriculum.from_task(task, min_episodes=max(env.num_envs // 4, 16))
            task.command_ranges = commands.ranges
            curricula["commands"] = commands
        if config.adr:
            curricula["adr"] = _attach_adr(env)
        if hasattr(task, "curriculum"):
            curricula["terrain"] = task.curriculum
        return cls(env, curricula)

    def update(self, episode: dict[str, np.ndarray] | None) -> None:
        """Feed the episodes that ended this step (``infos["episode"]``, or None)."""
        if episode is None:
            return
        task = self.env.task
        commands = self.curricula.get("commands")
        if commands is not None and commands.update(episode, task.episode_length_s):
            task.command_ranges = commands.ranges
        adr = self.curricula.get("adr")
        if adr is not None and adr.report_many(episode["env_ids"], tracking_score(task, episode)):
            adr.write_to(self.env.randomization)

    def state_dict(self) -> dict[str, Any]:
        """Each curriculum's state, by name."""
        return {name: c.state_dict() for name, c in self.curricula.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``state_dict()``; a curriculum missing from it is an error."""
        missing = set(self.curricula) - set(state)
        if missing:
            raise ValueError(f"checkpoint has no state for curricula {sorted(missing)}")
        for name, curriculum in self.curricula.items():
            curriculum.load_state_dict(state[name])
        commands = self.curricula.get("commands")
        if commands is not None:
            self.env.task.command_ranges = commands.ranges
        adr = self.curricula.get("adr")
        if adr is not None:
            adr.write_to(self.env.randomization)

    def metrics(self) -> dict[str, float]:
        """Every curriculum's scalars, keyed ``curriculum/...``."""
        out = {}
        for curriculum in self.curricula.values():
            out.update(curriculum.metrics())
        return out


def tracking_score(task: Any, episode: dict[str, np.ndarray]) -> np.ndarray:
    """(E,) each episode's tracking reward per second as a fraction of its maximum."""
    weights = {term.name: term.weight for term in task.rewards}
    terms = [name for name in TRACKING_TERMS if name in weights]
    if not terms:
        raise ValueError(f"task {task.name!r} has no tracking term {TRACKING_TERMS} to score ADR")
    total = sum(episode[name] / weights[name] for name in terms) / len(terms)
    return total / task.episode_length_s


def _attach_adr(env: Any) -> AutomaticDomainRandomization:
    """ADR over the run's randomized ``ADR_TERMS``, pinning boundary envs at reset."""
    config = env.randomization
    if config is None:
        raise ValueError("curriculum.adr needs randomization on")
    terms = {}
    for name, (bounds, step) in ADR_TERMS.items():
        term = config.terms.get(name)
        if term is not None and term.enabled and not isinstance(term.range, dict):
            low, high = (float(v) for v in term.range)
            terms[name] = ADRTerm(nominal=(low, high), bounds=bounds, step=step)
    if not terms:
        raise ValueError(f"curriculum.adr: the run randomizes none of {sorted(ADR_TERMS)}")
    adr = AutomaticDomainRandomization(terms, t_low=0.5, t_high=0.8)
    adr.write_to(config)

    def pin_boundaries(env_ids: np.ndarray, randomizer: Any) -> None:
        for env_id, (name, side) in adr.assign(env_ids, randomizer.rng).items():
            randomizer.pin([env_id], name, adr.boundary_value(name, side))

    env.randomizer.reset_hooks.append(pin_boundaries)
    return adr
