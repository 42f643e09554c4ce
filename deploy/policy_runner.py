"""One robot's policy on onnxruntime: the memory a policy carries between control steps.

``PolicyRunner`` wraps a loaded ``OnnxPolicy`` (``sim2real.export.load_policy``) for a
single robot and keeps what its kind needs across steps, exactly as ``export/README.md``
states it and training did it:

- ``mlp``: nothing; ``obs`` (1, D) → ``actions`` (1, A).
- ``recurrent``: the state ``hidden_in``/``hidden_out`` (K, 1, H), fed back each step;
  ``starts`` is True on the first step of an episode, which zeroes the state inside the
  graph (the runner never zeroes anything itself).
- ``student``: the last H observations, oldest first; at the start of an episode the
  whole history is filled with the first observation
  (``sim2real.policies.student.ObservationHistory``'s convention, without torch).

Inputs are preallocated and ``InferenceSession.run`` is called directly (no per-step
shape checks or conversions): the shapes are fixed by the contract at construction.
"""

from __future__ import annotations

import numpy as np

from sim2real.export.contract import HIDDEN_IN, STARTS
from sim2real.export.loading import OnnxPolicy


class PolicyRunner:
    """Step an exported policy for one robot; ``start_episode`` before a new episode.

    Args:
        policy: the loaded policy.

    Attributes:
        policy: the ``OnnxPolicy``.
        kind: mlp, recurrent or student.
        steps: policy steps since the episode started.
    """

    def __init__(self, policy: OnnxPolicy):
        contract = policy.contract
        self.policy = policy
        self.kind = contract.policy_kind
        self._session = policy.session
        self._input = contract.inputs[0].name
        size = contract.observation_size
        shape = (1, contract.history_length, size) if self.kind == "student" else (1, size)
        self._obs = np.zeros(shape, np.float32)
        self._starts = np.ones(1, bool)
        self._hidden = policy.initial_state(1)
        self._new_episode = True
        self.steps = 0

    def start_episode(self) -> None:
        """The next step begins an episode: recurrent state zeroed, history refilled."""
        self._new_episode = True

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """The raw (mean) action (A,) float32 for this step's observation (D,)."""
        start, self._new_episode = self._new_episode, False
        buffer = self._obs
        if self.kind != "student":
            buffer[0] = obs
        elif start:
            buffer[0] = obs  # (H, D) ← (D,): every row the first observation
        else:
            buffer[0, :-1] = buffer[0, 1:]  # drop the oldest; numpy copies overlaps safely
            buffer[0, -1] = obs
        feed = {self._input: buffer}
        if self._hidden is not None:
            self._starts[0] = start
            feed[HIDDEN_IN] = self._hidden
            feed[STARTS] = self._starts
            actions, self._hidden = self._session.run(None, feed)
        else:
            (actions,) = self._session.run(None, feed)
        self.steps = 1 if start else self.steps + 1
        return actions[0]

    @property
    def hidden_state(self) -> np.ndarray | None:
        """The recurrent state (K, 1, H) after the last step, or None."""
        return self._hidden

    @property
    def history(self) -> np.ndarray | None:
        """The student's history (H, D) after the last step (a copy), or None."""
        return self._obs[0].copy() if self.kind == "student" else None
