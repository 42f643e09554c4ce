"""The VecEnv contract between simulation and learning (DESIGN contract 2).

N environments reset and step together. Shapes (N envs, A actions, D_g features of
observation group g):

- ``reset(seed) -> obs``; ``step(actions (N, A) float32) -> StepResult``.
- ``obs`` is a dict of groups: ``"policy"`` (N, D_policy), what the deployed actor sees;
  ``"critic"`` (N, D_critic), privileged observations for an asymmetric critic. float32.
- ``rewards`` (N,) float32, already multiplied by the control period.
- ``terminated`` (N,) bool: the episode ended in a terminal state (a fall): do not
  bootstrap. ``time_outs`` (N,) bool: the episode was cut by its time limit:
  bootstrap the value from ``infos["final_obs"]``.
- Envs that ended are reset automatically; the returned ``obs`` rows of those envs are
  the first observations of their new episode, and ``infos["final_obs"]`` holds the
  last observations of the ended episodes (same groups and shapes; rows of envs that
  did not end equal ``obs``).
- ``infos["episode"]``: statistics of the episodes that ended this step, as arrays over
  those envs: ``env_ids``, ``return``, ``length`` (control steps) and one entry per
  reward term (its summed contribution). ``infos["instabilities"]``: how many envs MuJoCo found
  unstable this step (they are reset and counted as terminated).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Observations = dict[str, np.ndarray]


@dataclass
class StepResult:
    """What one ``VecEnv.step`` returns; shapes in the module docstring."""

    obs: Observations
    rewards: np.ndarray
    terminated: np.ndarray
    time_outs: np.ndarray
    infos: dict[str, Any] = field(default_factory=dict)


class VecEnv(abc.ABC):
    """N environments stepped together; see the module docstring for the contract.

    Attributes:
        num_envs: N.
        num_actions: A.
        obs_sizes: D of each observation group, e.g. ``{"policy": 45, "critic": 57}``.
        step_dt: control period, s.
        max_episode_length: episode limit in control steps.
    """

    num_envs: int
    num_actions: int
    obs_sizes: dict[str, int]
    step_dt: float
    max_episode_length: int

    @abc.abstractmethod
    def reset(self, seed: int | None = None) -> Observations:
        """Reset every env (reseeding when ``seed`` is given); return the observations."""

    @abc.abstractmethod
    def step(self, actions: np.ndarray) -> StepResult:
        """Apply actions (N, A) for one control period and return the result."""
