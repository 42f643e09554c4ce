"""Parity: the exported graph in onnxruntime against the torch policy it came from.

Two sets of observation sequences, each ``steps`` control steps of ``envs`` envs
(defaults 250 × 8 = 2000 observations):

- ``random``: observations drawn around the policy's own normalizer statistics, mean
  + (std + eps) × N(0, 2²), so they cover the normalized range and its clipped tails;
- ``recorded``: the policy observations of a rollout of the policy itself (its mean
  action) in the task's env with the task's domain randomization on.

Episode starts are the env's (recorded), every env at step 0, and forced ones at a rate
of ``RESET_RATE`` per step in both sets, so recurrent states and student histories are
reset mid-sequence too. Each kind is compared as it is deployed:

- mlp: every observation in one batch;
- student: the (H, D) window of every step, built as ``ObservationHistory`` builds it
  (oldest first, refilled with the first observation of an episode), in one batch;
- recurrent: step by step over the whole sequence, torch and onnxruntime each feeding
  back its own state, with ``starts``; actions and states are compared at every step.

The check passes when the largest absolute difference of any action (and state) entry
is at most ``tolerance`` (default ``PARITY_TOLERANCE`` = 1e-5) in both sets.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from sim2real.export.loading import OnnxPolicy
from sim2real.export.source import DEPLOYABLE_GROUP, PolicySource

#: Largest accepted |onnxruntime - torch| of any action or state entry.
PARITY_TOLERANCE = 1e-5
#: Forced episode starts per env and step.
RESET_RATE = 0.02


@dataclass(frozen=True)
class ParitySet:
    """The comparison on one set of observation sequences.

    Attributes:
        name: random or recorded.
        observations: observations compared (steps × envs).
        steps: sequence length, control steps.
        envs: sequences side by side.
        resets: episode starts in the sequences (step 0 included).
        max_abs_action_diff: max |Δ| over every action entry.
        max_abs_state_diff: max |Δ| over every recurrent state entry (None: no state).
    """

    name: str
    observations: int
    steps: int
    envs: int
    resets: int
    max_abs_action_diff: float
    max_abs_state_diff: float | None


@dataclass(frozen=True)
class ParityReport:
    """Every set's figures and the tolerance they are held to."""

    tolerance: float
    sets: list[ParitySet]

    @property
    def max_abs_diff(self) -> float:
        """The largest difference of any action or state entry in any set."""
        diffs = [s.max_abs_action_diff for s in self.sets]
        diffs += [s.max_abs_state_diff for s in self.sets if s.max_abs_state_diff is not None]
        return max(diffs)

    @property
    def passed(self) -> bool:
        """Whether every difference is within the tolerance."""
        return self.max_abs_diff <= self.tolerance

    def to_dict(self) -> dict:
        """Plain values (the contract's ``parity`` field)."""
        return {
            "tolerance": self.tolerance,
            "max_abs_diff": self.max_abs_diff,
            "passed": self.passed,
            "sets": [asdict(s) for s in self.sets],
        }


class ParityError(RuntimeError):
    """The exported graph disagrees with the torch policy; ``report`` has the figures."""

    def __init__(self, report: ParityReport):
        self.report = report
        worst = max(report.sets, key=lambda s: s.max_abs_action_diff)
        super().__init__(
            f"parity check failed: onnxruntime and torch differ by up to "
            f"{report.max_abs_diff:.3g} (tolerance {report.tolerance:g}; worst set "
            f"{worst.name!r}); nothing was written"
        )


def check_parity(
    source: PolicySource,
    policy: OnnxPolicy,
    tolerance: float = PARITY_TOLERANCE,
    steps: int = 250,
    envs: int = 8,
    seed: int = 0,
) -> ParityReport:
    """Compare ``policy`` (onnxruntime) with ``source`` (torch); see the module docstring."""
    rng = np.random.default_rng(seed)
    sets = {
        "random": random_sequences(source, steps, envs, rng),
        "recorded": recorded_sequences(source, steps, envs, seed),
    }
    results = []
    for name, (obs, starts) in sets.items():
        starts = starts | forced_starts(rng, steps, envs)
        results.append(compare(name, source, policy, obs, starts))
    return ParityReport(tolerance, results)


def forced_starts(rng: np.random.Generator, steps: int, envs: int) -> np.ndarray:
    """(T, N) bool: every env at step 0, then each step with probability ``RESET_RATE``."""
    starts = rng.random((steps, envs)) < RESET_RATE
    starts[0] = True
    return starts


def random_sequences(
    source: PolicySource, steps: int, envs: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(obs (T, N, D) float32, starts (T, N) bool) around the normalizer's statistics."""
    z = rng.normal(0.0, 2.0, (steps, envs, source.obs_size))
    normalizer = source.normalizer
    if hasattr(normalizer, "mean"):
        std = normalizer.var.sqrt().numpy() + normalizer.eps
        z = normalizer.mean.numpy() + std * z
    return z.astype(np.float32), np.zeros((steps, envs), bool)


@torch.inference_mode()
def recorded_sequences(
    source: PolicySource, steps: int, envs: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(obs, starts) of a rollout of the policy in its task, randomization on."""
    from sim2real.policies.evaluation import as_controller
    from sim2real.sim.tasks import make_env

    env = make_env(source.task, envs, seed=seed, nthread=1)
    controller = as_controller(source.network)
    controller.reset(envs)
    obs = env.reset(seed)
    started = torch.ones(envs, dtype=torch.bool)
    recorded, starts = [], []
    for _ in range(steps):
        recorded.append(obs[DEPLOYABLE_GROUP])
        starts.append(started.numpy())
        result = env.step(controller.act(obs, started).numpy())
        obs, started = result.obs, torch.from_numpy(result.terminated | result.time_outs)
    return np.stack(recorded), np.stack(starts)


def compare(
    name: str, source: PolicySource, policy: OnnxPolicy, obs: np.ndarray, starts: np.ndarray
) -> ParitySet:
    """Run both on the sequences (T, N, D) with ``starts`` (T, N); return the differences."""
    steps, envs = starts.shape
    if source.recurrent is not None:
        action_diff, state_diff = _compare_recurrent(source, policy, obs, starts)
    else:
        batch = _batched_inputs(source, obs, starts)
        action_diff, state_diff = _max_diff(source.step(batch)[0], policy(batch)[0]), None
    return ParitySet(name, steps * envs, steps, envs, int(starts.sum()), action_diff, state_diff)


def _batched_inputs(source: PolicySource, obs: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Every step's input of a stateless policy in one batch: (T × N, D) or (T × N, H, D)."""
    if source.kind != "student":
        return obs.reshape(-1, obs.shape[-1])
    from sim2real.policies.student import ObservationHistory

    history = ObservationHistory(obs.shape[1], source.history_length, obs.shape[2])
    windows = [
        history.push(torch.from_numpy(o), torch.from_numpy(s)).numpy().copy()
        for o, s in zip(obs, starts, strict=True)
    ]
    return np.concatenate(windows)


def _compare_recurrent(
    source: PolicySource, policy: OnnxPolicy, obs: np.ndarray, starts: np.ndarray
) -> tuple[float, float]:
    """Max action and state differences over a closed-loop run of the sequences."""
    torch_state = onnx_state = None
    action_diff = state_diff = 0.0
    for o, s in zip(obs, starts, strict=True):
        torch_actions, torch_state = source.step(o, torch_state, s)
        onnx_actions, onnx_state = policy(o, onnx_state, s)
        action_diff = max(action_diff, _max_diff(torch_actions, onnx_actions))
        state_diff = max(state_diff, _max_diff(torch_state, onnx_state))
    return action_diff, state_diff


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))
