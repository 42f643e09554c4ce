"""Joint actuation: PD gains and effort limits per env, and the action-delay buffer.

The PD law runs inside MuJoCo at every physics step, as the ``position`` actuators of
the asset: torque = clip(kp (q* - q) - kd q̇, -effort_limit, +effort_limit), in N·m.
Its parameters live in model fields, so each env can carry its own (randomization
writes them through :class:`PDActuators`).
"""

from __future__ import annotations

import numpy as np

from sim2real.sim.backends.base import SimBackend


class PDActuators:
    """Per-env views of the PD actuators' gains and effort limits, all (N, J)."""

    def __init__(self, backend: SimBackend):
        self._gain = backend.model_field("actuator_gainprm")  # (N, J, 10): [kp, ...]
        self._bias = backend.model_field("actuator_biasprm")  # (N, J, 10): [0, -kp, -kd, ...]
        self._force = backend.model_field("actuator_forcerange")  # (N, J, 2)

    @property
    def kp(self) -> np.ndarray:
        """Proportional gains, N·m/rad (a copy; write with :meth:`set_kp`)."""
        return self._gain[:, :, 0].copy()

    @property
    def kd(self) -> np.ndarray:
        """Derivative gains, N·m·s/rad (a copy; write with :meth:`set_kd`)."""
        return -self._bias[:, :, 2]

    @property
    def effort_limit(self) -> np.ndarray:
        """Torque limits, N·m (a copy; write with :meth:`set_effort_limit`)."""
        return self._force[:, :, 1].copy()

    def set_kp(self, env_ids: np.ndarray, kp: np.ndarray) -> None:
        """Set kp of the given envs; ``kp`` broadcasts to (len(env_ids), J)."""
        self._gain[env_ids, :, 0] = kp
        self._bias[env_ids, :, 1] = -np.asarray(kp)

    def set_kd(self, env_ids: np.ndarray, kd: np.ndarray) -> None:
        """Set kd of the given envs; ``kd`` broadcasts to (len(env_ids), J)."""
        self._bias[env_ids, :, 2] = -np.asarray(kd)

    def set_effort_limit(self, env_ids: np.ndarray, limit: np.ndarray) -> None:
        """Set the symmetric torque limit of the given envs, N·m."""
        limit = np.asarray(limit)
        self._force[env_ids, :, 0] = -limit
        self._force[env_ids, :, 1] = limit


class ActionDelay:
    """Per-env FIFO of joint targets: env i applies the target of ``delay[i]`` steps ago.

    Args:
        num_envs: N.
        num_joints: J.
        max_delay: largest delay k in control steps; each env's delay is in 0..k.
    """

    def __init__(self, num_envs: int, num_joints: int, max_delay: int = 0):
        if max_delay < 0:
            raise ValueError(f"max_delay must be >= 0, got {max_delay}")
        self.max_delay = max_delay
        self.delay = np.zeros(num_envs, dtype=np.int64)
        self._history = np.zeros((max_delay + 1, num_envs, num_joints))  # [0] is newest
        self._rows = np.arange(num_envs)

    def set_delay(self, env_ids: np.ndarray, delay: np.ndarray) -> None:
        """Set the delay (control steps, 0..max_delay) of the given envs."""
        delay = np.asarray(delay)
        if np.any(delay < 0) or np.any(delay > self.max_delay):
            raise ValueError(f"delay must lie in 0..{self.max_delay}, got {delay}")
        self.delay[env_ids] = delay

    def reset(self, env_ids: np.ndarray, targets: np.ndarray) -> None:
        """Fill the history of the given envs with ``targets`` (len(env_ids), J)."""
        self._history[:, env_ids] = targets

    def __call__(self, targets: np.ndarray) -> np.ndarray:
        """Push this step's targets (N, J); return the delayed targets to apply (N, J)."""
        if self.max_delay == 0:
            return targets
        self._history = np.roll(self._history, 1, axis=0)
        self._history[0] = targets
        return self._history[self.delay, self._rows]
