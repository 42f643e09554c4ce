"""Evaluate a trained policy: deterministic rollouts, task metrics, a recorded episode.

The policy acts with its mean action, through a ``Controller``: anything that turns
env observation dicts into actions step by step, holding its own memory (a recurrent
state, an observation history). ``as_controller`` wraps the networks of this package:
an ``ActorCritic`` (PPO) and a ``StudentPolicy`` (distillation). Every env runs for one
episode limit of control steps (envs that end early start a new episode and keep
counting). Metrics, averaged over envs and the steps each one counts:

- ``return``, ``length``: of the episodes that ended; ``fall_rate``: the fraction of
  them that ended in a termination rather than a time-out.
- ``lin_vel_error`` (m/s): |v_cmd,xy − v_xy| in the base frame and ``yaw_rate_error``
  (rad/s), for velocity-command tasks, from 1 s after each reset (the start-up transient
  excluded).
- ``ee_error`` (m): end-effector distance to the target over the last second of each
  episode, for reach tasks.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch

from sim2real.policies.models import ActorCritic, observation_groups

#: Seconds after a reset before velocity tracking counts.
TRACKING_WARMUP_S = 1.0
#: Seconds at the end of an episode over which the reach error counts.
REACH_FINAL_S = 1.0


class Controller(Protocol):
    """A deterministic policy acting on a ``VecEnv``'s observations, one step at a time.

    Attributes:
        num_actions: A.
        obs_sizes: D of each observation group it reads, e.g. ``{"policy": 45}``.
    """

    num_actions: int
    obs_sizes: dict[str, int]

    def reset(self, num_envs: int) -> None:
        """Forget all memory; the next ``act`` starts N = ``num_envs`` episodes."""

    def act(self, obs: dict[str, np.ndarray], starts: torch.Tensor) -> torch.Tensor:
        """Mean action (N, A) from the observation groups (N, D_g) of one step.

        ``starts`` (N,) bool: True where ``obs`` is the first observation of an episode.
        """


class ActorCriticController:
    """The actor of an ``ActorCritic`` as a ``Controller`` (recurrent state kept here).

    Args:
        model: the actor-critic; its ``config.actor_group`` names the group it reads.
    """

    def __init__(self, model: ActorCritic):
        self.model = model
        self.group, _ = observation_groups(model.config)
        self.num_actions = model.num_actions
        self.obs_sizes = {self.group: model.actor_obs}
        self.state = None

    def reset(self, num_envs: int) -> None:
        """Zero the memory state (recurrent models)."""
        self.state = self.model.initial_state(num_envs)

    def act(self, obs: dict[str, np.ndarray], starts: torch.Tensor) -> torch.Tensor:
        """Mean action (N, A) of the actor's observation group."""
        model, actor_obs = self.model, torch.from_numpy(obs[self.group])
        if not model.is_recurrent:
            return model.action_mean(actor_obs)[0]
        mean, actor_state = model.action_mean(actor_obs[None], self.state[0], starts[None])
        self.state = (actor_state, self.state[1])
        return mean[0]


def as_controller(policy: Any) -> Controller:
    """``policy`` as a ``Controller``: an ``ActorCritic``, a ``StudentPolicy``, or one already."""
    from sim2real.policies.student import StudentController, StudentPolicy

    if isinstance(policy, ActorCritic):
        return ActorCriticController(policy)
    if isinstance(policy, StudentPolicy):
        return StudentController(policy)
    if hasattr(policy, "act") and hasattr(policy, "reset"):
        return policy
    raise TypeError(f"cannot evaluate a {type(policy).__name__}: it is no policy of sim2real")


@torch.inference_mode()
def evaluate(
    model: Any, env: Any, record_env: int | None = None, seed: int = 0
) -> tuple[dict[str, float], np.ndarray | None]:
    """Run ``model`` deterministically on ``env`` for one episode limit of steps.

    Args:
        model: the trained policy: an ``ActorCritic``, a ``StudentPolicy`` or any
            ``Controller``.
        env: a ``TaskEnv`` whose observation sizes match the model.
        record_env: an env index whose joint positions (qpos) are recorded for rendering.
        seed: env reset seed.

    Returns:
        metrics (see the module docstring) and the recorded (T + 1, nq) qpos, or None.
    """
    controller = as_controller(model)
    for group, size in controller.obs_sizes.items():
        if env.obs_sizes.get(group) != size or env.num_actions != controller.num_actions:
            raise ValueError(
                f"policy expects {size} {group!r} observations and {controller.num_actions} "
                f"actions; task {env.task.name!r} gives {env.obs_sizes.get(group)} and "
                f"{env.num_actions}"
            )
    obs = env.reset(seed)
    controller.reset(env.num_envs)
    starts = torch.ones(env.num_envs, dtype=torch.bool)
    errors: dict[str, list[np.ndarray]] = {}
    returns, lengths, falls = [], [], 0
    frames = [env.backend.qpos[record_env].copy()] if record_env is not None else None
    for _ in range(env.max_episode_length):
        _measure(env, errors)
        mean = controller.act(obs, starts)
        result = env.step(mean.numpy())
        if frames is not None:
            frames.append(env.backend.qpos[record_env].copy())
        obs, starts = result.obs, torch.from_numpy(result.terminated | result.time_outs)
        episode = result.infos.get("episode")
        if episode is not None:
            returns.append(episode["return"])
            lengths.append(episode["length"])
            falls += int(result.terminated.sum())
    metrics: dict[str, float] = {
        name: float(np.mean(np.concatenate(v))) for name, v in errors.items()
    }
    if returns:
        ended = np.concatenate(returns)
        metrics["return"] = float(ended.mean())
        metrics["length"] = float(np.concatenate(lengths).mean())
        metrics["fall_rate"] = falls / len(ended)
        metrics["episodes"] = float(len(ended))
    return metrics, None if frames is None else np.array(frames)


def _measure(env: Any, errors: dict[str, list[np.ndarray]]) -> None:
    """Append this step's task errors of the envs that count now."""
    state = env.task.robot_state()
    steps = env.episode_length  # control steps since each env's reset
    if "command" in state and "base_lin_vel" in state:
        counted = steps >= round(TRACKING_WARMUP_S / env.step_dt)
        command, velocity = state["command"][counted], state["base_lin_vel"][counted]
        angular = state["imu_ang_vel"][counted]
        errors.setdefault("lin_vel_error", []).append(
            np.linalg.norm(command[:, :2] - velocity[:, :2], axis=1)
        )
        errors.setdefault("yaw_rate_error", []).append(np.abs(command[:, 2] - angular[:, 2]))
    if "ee_pos" in state and "target_pos" in state:
        counted = steps >= env.max_episode_length - round(REACH_FINAL_S / env.step_dt)
        distance = np.linalg.norm(state["ee_pos"] - state["target_pos"], axis=1)
        errors.setdefault("ee_error", []).append(distance[counted])
