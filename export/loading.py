"""Load an exported policy: the contract checked, an onnxruntime session, a step function.

``load_policy(path)`` reads the file, checks it (``sim2real.export.model_file``: ONNX
validity, contract fields, graph hash, opset, inputs and outputs) and opens an
onnxruntime session on the CPU. It needs onnx, onnxruntime and numpy, not torch: this
is what the deploy runtime imports.

One call of ``OnnxPolicy`` is one control step of B robots (or envs)::

    policy = load_policy("policy.onnx")
    state = policy.initial_state(1)            # None unless the policy is recurrent
    actions, state = policy(obs, state, starts)
    targets = policy.joint_targets(actions)   # action_offset + action_scale * actions
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from sim2real.export.contract import (
    HIDDEN_IN,
    STARTS,
    PolicyContract,
    PolicyFileError,
    TensorSpec,
)
from sim2real.export.model_file import read_policy_model


class OnnxPolicy:
    """An exported policy ready to run: its ``contract`` and onnxruntime ``session``.

    Args:
        contract: the validated contract.
        session: an onnxruntime session of the model.
        source: the file it came from (for messages).
    """

    def __init__(self, contract: PolicyContract, session: ort.InferenceSession, source: str):
        self.contract, self.session, self.source = contract, session, source
        self._obs_spec: TensorSpec = contract.inputs[0]

    @property
    def kind(self) -> str:
        """mlp, recurrent or student."""
        return self.contract.policy_kind

    def initial_state(self, batch: int) -> np.ndarray | None:
        """Zero memory (K, batch, H) float32 for a recurrent policy; None otherwise."""
        recurrent = self.contract.recurrent
        if recurrent is None:
            return None
        return np.zeros((recurrent.rows, batch, recurrent.hidden_size), np.float32)

    def __call__(
        self,
        obs: np.ndarray,
        state: np.ndarray | None = None,
        starts: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """One step: mean actions (B, A) and the next memory state (None if feed-forward).

        Args:
            obs: (B, D) observations, or (B, H, D) histories for a student (oldest first).
            state: recurrent only: (K, B, H), the previous step's state; None for zeros.
            starts: recurrent only: (B,) bool, True where an episode starts (its state is
                zeroed before the step); None for no starts.
        """
        obs = np.asarray(obs, dtype=np.float32)
        expected = self._obs_spec.shape[1:]
        if obs.ndim != len(expected) + 1 or list(obs.shape[1:]) != expected:
            raise ValueError(
                f"{self.source}: input {self._obs_spec.name!r} must have shape "
                f"(B, {', '.join(map(str, expected))}), got {obs.shape}"
            )
        feed = {self._obs_spec.name: obs}
        if self.contract.recurrent is not None:
            batch = obs.shape[0]
            state = self.initial_state(batch) if state is None else state
            starts = np.zeros(batch, bool) if starts is None else starts
            feed[HIDDEN_IN] = np.asarray(state, dtype=np.float32)
            feed[STARTS] = np.asarray(starts, dtype=bool)
        outputs = self.session.run(None, feed)
        return outputs[0], outputs[1] if len(outputs) > 1 else None

    def joint_targets(self, actions: np.ndarray) -> np.ndarray:
        """PD position targets (B, J), rad: ``action_offset + action_scale * actions``.

        The scale and offset are not in the graph (``action_scale_in_graph`` is false).
        """
        offset = np.asarray(self.contract.action_offset)
        return offset + np.asarray(self.contract.action_scale) * actions


def load_policy(
    path: str | Path, threads: int = 1, providers: tuple[str, ...] = ("CPUExecutionProvider",)
) -> OnnxPolicy:
    """Read, check and open the policy file at ``path``.

    Args:
        path: the ``.onnx`` file written by ``sim2real export``.
        threads: onnxruntime intra-op threads; 1 is fastest for single-robot inference.
        providers: onnxruntime execution providers, in order of preference.

    Raises:
        FileNotFoundError: no such file.
        PolicyFileError: unreadable or not ONNX; ``ContractError`` (a subclass) when the
            contract is missing, invalid or disagrees with the graph: it names the field.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"policy file not found: {path}")
    return policy_from_bytes(path.read_bytes(), str(path), threads, providers)


def policy_from_bytes(
    data: bytes,
    source: str = "<policy bytes>",
    threads: int = 1,
    providers: tuple[str, ...] = ("CPUExecutionProvider",),
) -> OnnxPolicy:
    """``load_policy`` on the content of a policy file; ``source`` names it in errors."""
    _, contract = read_policy_model(data, source)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        session = ort.InferenceSession(data, options, providers=list(providers))
    except Exception as error:  # onnxruntime's own exception types
        raise PolicyFileError(f"{source}: onnxruntime cannot load the model ({error})") from None
    return OnnxPolicy(contract, session, source)
