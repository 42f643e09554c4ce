"""The env engine: binds a ``Task`` to a batched backend and implements ``VecEnv``.

Per control step: check the actions, turn them into joint targets through the
per-env action delay (plus the per-env joint offset), fire the randomization's interval
terms, run ``decimation`` physics steps in one backend call, build the robot state, then
rewards (× control period), terminations, observations, and auto-reset of the envs that
ended. Envs that MuJoCo found unstable are reset, counted in ``infos["instabilities"]``
and reported as terminated; their observations are never NaN.

Domain randomization (``sim2real.randomization``) is on by default with the task's
shipped ranges. Its draws come from a generator of their own, seeded from the same seed,
so the task's draws (initial states, commands) do not depend on it. The actor's
``"policy"`` group is computed from what the simulated sensors report (biases, offsets,
noise); every other group, the rewards and the terminations see the true state.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sim2real.randomization.config import RandomizationConfig, resolve
from sim2real.randomization.randomizer import Randomizer
from sim2real.randomization.terms import SimHandles
from sim2real.sim.actuation import ActionDelay, PDActuators
from sim2real.sim.backends import make_backend
from sim2real.sim.observations import ObservationGroup
from sim2real.sim.robot import RobotModel
from sim2real.sim.tasks.base import Task
from sim2real.sim.vec_env import Observations, StepResult, VecEnv


class TaskEnv(VecEnv):
    """N envs of ``task`` on a backend.

    Args:
        task: the task instance (it keeps per-env state, so one per env).
        num_envs: N.
        seed: seeds every random draw of the task; the same seed gives bit-identical
            rollouts at any thread count.
        nthread: simulation threads (0: all cores).
        backend: backend name (``sim2real.sim.backends.BACKENDS``).
        randomization: None: the task's shipped defaults
            (``sim2real.randomization.config.default_config``); a path to a YAML file or a
            ``RandomizationConfig`` (kept, not copied: a curriculum may change its ranges);
            ``"off"`` or False: no randomization.

    Attributes:
        joint_offset: (N, J) rad added to every joint position target (the
            ``joint_offset`` term's actuator calibration error; zero without it).
        randomization: the config in use, or None.
        randomizer: its engine (``Randomizer``), or None.
    """

    def __init__(
        self,
        task: Task,
        num_envs: int,
        seed: int = 0,
        nthread: int = 0,
        backend: str = "cpu",
        randomization: RandomizationConfig | str | Path | bool | None = None,
    ):
        self.task = task
        self.model = task.build_model()
        self.robot = RobotModel.from_mujoco(self.model)
        self.backend = make_backend(backend, self.model, num_envs, nthread)
        self.actuators = PDActuators(self.backend)
        self.num_envs = num_envs
        self.num_actions = self.robot.num_joints
        self.step_dt = task.decimation * self.robot.timestep
        self.max_episode_length = round(task.episode_length_s / self.step_dt)
        self.action_delay = ActionDelay(num_envs, self.num_actions, task.max_action_delay)
        self.joint_offset = np.zeros((num_envs, self.num_actions))
        self.episode_length = np.zeros(num_envs, dtype=np.int64)
        self._episode_sums = {t.name: np.zeros(num_envs) for t in task.rewards}
        self._last_action = np.zeros((num_envs, self.num_actions))
        self._rng = np.random.default_rng(seed)
        task.bind(self.backend, self.robot, self.step_dt)
        self.randomization = resolve(randomization, task.name, task.robot)
        self.randomizer = None
        observations = dict(task.observations)
        if self.randomization is not None:
            handles = SimHandles.from_env(self)
            self.randomizer = Randomizer(self.randomization, handles, seed)
            if "policy" in observations:
                observations["policy"] = self.randomizer.wrap_policy_terms(observations["policy"])
            self.randomizer.startup()
        self.obs_groups = {g: ObservationGroup(t) for g, t in observations.items()}
        self._obs = self.reset(seed)
        self.obs_sizes = {g: o.shape[1] for g, o in self._obs.items()}

    def reset(self, seed: int | None = None) -> Observations:
        """Reset every env (reseeding when ``seed`` is given); return the observations."""
        if seed is not None:
            self._rng = np.random.default_rng(seed)
            if self.randomizer is not None:
                self.randomizer.reseed(seed)
        self._reset_envs(np.arange(self.num_envs))
        self._obs = self._observe(np.arange(self.num_envs))
        return {g: o.copy() for g, o in self._obs.items()}

    def step(self, actions: np.ndarray) -> StepResult:
        """Apply actions (N, A) for one control period; see ``sim2real.sim.vec_env``."""
        action = self._checked(actions)
        task = self.task
        targets = self.robot.default_joint_pos + task.action_scale * action
        self.backend.ctrl[:] = self.action_delay(targets) + self.joint_offset
        if self.randomizer is not None:
            self.randomizer.pre_physics()
        task.pre_physics(self._rng)
        unstable = self.backend.step(task.decimation, task.forward_stage)
        self.episode_length += 1

        state = self._robot_state(last_action=action, previous_action=self._last_action)
        task.after_physics(state)
        rewards = np.zeros(self.num_envs)
        for term in task.rewards:
            value = term.weight * term.func(state, **term.params) * self.step_dt
            value[unstable] = 0.0
            self._episode_sums[term.name] += value
            rewards += value
        terminated = np.zeros(self.num_envs, dtype=bool)
        time_outs = self.episode_length >= self.max_episode_length
        for term in task.terminations:
            if term.time_out:
                time_outs |= term.func(state)
            else:
                terminated |= term.func(state)
        terminated[unstable] = True
        time_outs &= ~terminated

        obs = self._groups(state)
        for g, o in obs.items():
            o[unstable] = self._obs[g][unstable]  # the last finite observation
        task.after_step(state, self._rng)
        self._last_action = action
        infos = {"instabilities": len(unstable)}
        done = np.flatnonzero(terminated | time_outs)
        if len(done):
            infos["final_obs"] = {g: o.copy() for g, o in obs.items()}
            infos["episode"] = self._episode_stats(done)
            self._reset_envs(done)
            fresh = self._observe(done)
            for g in obs:
                obs[g][done] = fresh[g][done]
        self._obs = obs
        return StepResult(
            obs={g: o.copy() for g, o in obs.items()},
            rewards=rewards.astype(np.float32),
            terminated=terminated,
            time_outs=time_outs,
            infos=infos,
        )

    def _checked(self, actions: np.ndarray) -> np.ndarray:
        """Validate actions: (N, A), a real floating dtype, finite; return float64."""
        if not isinstance(actions, np.ndarray):
            raise TypeError(f"actions must be a numpy array, got {type(actions).__name__}")
        expected = (self.num_envs, self.num_actions)
        if actions.shape != expected:
            raise ValueError(
                f"actions must have shape {expected} (num_envs, num_actions), got {actions.shape}"
            )
        if actions.dtype.kind != "f":
            raise TypeError(f"actions must be floating point, got dtype {actions.dtype}")
        finite = np.isfinite(actions)
        if not finite.all():
            env = int(np.flatnonzero(~finite.all(axis=1))[0])
            raise ValueError(f"actions contain NaN or Inf (first in env {env}: {actions[env]})")
        return actions.astype(np.float64)

    def _reset_envs(self, env_ids: np.ndarray) -> None:
        self.backend.reset(env_ids, self.robot.home_key)
        if self.randomizer is not None:
            self.randomizer.reset(env_ids)
        self.task.reset(env_ids, self._rng)
        self.backend.forward(env_ids)
        self.backend.ctrl[env_ids] = self.robot.default_joint_pos + self.joint_offset[env_ids]
        self.action_delay.reset(env_ids, self.robot.default_joint_pos)
        self._last_action[env_ids] = 0.0
        self.episode_length[env_ids] = 0
        for sums in self._episode_sums.values():
            sums[env_ids] = 0.0

    def _observe(self, env_ids: np.ndarray) -> Observations:
        """Observations of every env from the current state; rows ``env_ids`` were just reset."""
        state = self._robot_state(self._last_action, self._last_action)
        return self._groups(state)

    def _robot_state(
        self, last_action: np.ndarray, previous_action: np.ndarray
    ) -> dict[str, np.ndarray]:
        """The task's robot state plus the actions: the one just applied and the one before."""
        state = self.task.robot_state()
        state["last_action"] = last_action
        state["previous_action"] = previous_action
        return state

    def _groups(self, state: dict[str, np.ndarray]) -> Observations:
        """Every observation group; the policy group from the state its sensors report."""
        sensed = state if self.randomizer is None else self.randomizer.sense(state)
        return {
            g: group(sensed if g == "policy" else state) for g, group in self.obs_groups.items()
        }

    def _episode_stats(self, env_ids: np.ndarray) -> dict[str, np.ndarray]:
        stats = {name: sums[env_ids].copy() for name, sums in self._episode_sums.items()}
        stats["return"] = np.sum([stats[t.name] for t in self.task.rewards], axis=0)
        stats["length"] = self.episode_length[env_ids].copy()
        stats["env_ids"] = env_ids.copy()
        return stats
