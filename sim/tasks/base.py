"""What a task declares: its robot, timing, observation groups, rewards and terminations.

Rewards and terminations are declarative term lists in the Isaac Lab manner, the
kernel in the name (``track_lin_vel_xy_exp``), each weight in one place: the task's
term list. A task keeps its own per-env state (commands, targets) and fills the robot
state that observation, reward and termination terms read.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import mujoco
import numpy as np

from sim2real.sim.assets import asset_path
from sim2real.sim.backends.base import SimBackend
from sim2real.sim.observations import ObsTerm, RobotState
from sim2real.sim.robot import RobotModel


@dataclass(frozen=True)
class RewardTerm:
    """``weight * func(state, **params)``, a (N,) contribution per control step."""

    name: str
    func: Callable[..., np.ndarray]
    weight: float
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TerminationTerm:
    """``func(state) -> (N,) bool``; a ``time_out`` term truncates instead of terminating."""

    name: str
    func: Callable[[RobotState], np.ndarray]
    time_out: bool = False


class Task(abc.ABC):
    """A task on one robot asset; an env engine binds it to a backend.

    Class attributes every task sets:
        name: registry name, e.g. ``"go2-flat"``.
        robot: asset name (``sim2real.sim.assets``).
        decimation: physics steps per control step.
        episode_length_s: episode time limit, s.
        action_scale: joint target = default + action_scale * action, rad.
        max_action_delay: capacity of the action-delay buffer, control steps.
        forward_stage: mjtStage to which sensors are recomputed after each control
            step (``mjSTAGE_NONE``: they describe the state one physics step earlier).
        feet: geom names of the feet, whose friction and restitution the foot-contact
            randomization terms draw (empty: a robot without feet).
    """

    name: str
    robot: str
    decimation: int = 4
    episode_length_s: float = 20.0
    action_scale: float = 0.25
    max_action_delay: int = 0
    forward_stage: int = int(mujoco.mjtStage.mjSTAGE_NONE)
    feet: tuple[str, ...] = ()

    observations: Mapping[str, tuple[ObsTerm, ...]]
    rewards: tuple[RewardTerm, ...]
    terminations: tuple[TerminationTerm, ...]

    def build_model(self) -> mujoco.MjModel:
        """Compile the simulated scene: by default the robot's asset as it is.

        A task that needs more scene (terrain, objects) edits the asset through
        ``mujoco.MjSpec.from_file(str(asset_path(self.robot)))`` and compiles that.
        """
        return mujoco.MjModel.from_xml_path(str(asset_path(self.robot)))

    @abc.abstractmethod
    def bind(self, backend: SimBackend, robot: RobotModel, dt: float) -> None:
        """Allocate per-env task state for ``backend.num_envs`` envs; dt is the control period."""

    @abc.abstractmethod
    def reset(self, env_ids: np.ndarray, rng: np.random.Generator) -> None:
        """Write initial states of ``env_ids`` (after the keyframe reset) and sample commands."""

    def pre_physics(self, rng: np.random.Generator) -> None:
        """Before each control step's physics: e.g. apply disturbances. Default: nothing."""

    @abc.abstractmethod
    def robot_state(self) -> dict[str, np.ndarray]:
        """The robot state after physics, and what the task's rewards read (pure).

        See ``sim2real.sim.observations`` for the names. The engine adds the actions
        (``last_action``, ``previous_action``).
        """

    def after_physics(self, state: dict[str, np.ndarray]) -> None:
        """Before rewards: update trackers (e.g. feet air time) and add their entries."""

    def after_step(self, state: RobotState, rng: np.random.Generator) -> None:
        """After observations: update task state (e.g. resample commands). Default: nothing."""
