"""The deployable actor as an ONNX graph: the wrappers that fix its I/O, and the export.

Each wrapper calls the very network code training ran (``ActorCritic.action_mean``,
``StudentPolicy.forward``), so the observation normalizer, the recurrent cell and its
episode-start reset are traced from the same lines, and the graph outputs the mean
(deterministic) action. The wrappers' arguments and results are, in order, the
contract's ``inputs`` and ``outputs`` (``sim2real.export.contract.expected_io``):

- ``MLPActor``: ``obs`` (B, D) → ``actions`` (B, A);
- ``RecurrentActor``: ``obs`` (B, D), ``hidden_in`` (K, B, H), ``starts`` (B,) bool →
  ``actions`` (B, A), ``hidden_out`` (K, B, H). One control step (T = 1 of
  ``Memory``): rows of ``hidden_in`` where ``starts`` is True are zeroed, then the GRU or
  LSTM cell runs (an LSTM's state is its hidden states stacked on its cell states);
- ``StudentActor``: ``obs_history`` (B, H, D), oldest first → ``actions`` (B, A).

**Exporter**: torch's default, the dynamo-based ``torch.onnx.export(..., dynamo=True)``
(``torch.export`` tracing, translated by ``onnxscript``, a declared dependency). The
legacy TorchScript exporter would export faster (0.1 s against 1–2 s here) but is
deprecated along with TorchScript and no longer receives fixes; both produce the same
ONNX ``GRU``/``LSTM`` nodes for these networks, and the parity check guards either way.
**Opset** ``OPSET`` = 18, the oldest the dynamo exporter targets natively (lower ones go
through a version-conversion pass); with the exporter's IR version 10 the files need
onnxruntime ≥ 1.18, the project's minimum. The batch axis is dynamic, named ``batch``;
every other axis is fixed.
"""

from __future__ import annotations

import contextlib
import logging
import warnings

import onnx
import torch
from torch import nn

from sim2real.export.contract import BATCH, TensorSpec
from sim2real.policies.models import ActorCritic
from sim2real.policies.student import StudentPolicy

#: The ONNX opset of every exported policy.
OPSET = 18
#: The batch size of the example inputs (torch.export specializes sizes 0 and 1).
_EXAMPLE_BATCH = 2
_DTYPES = {"float32": torch.float32, "bool": torch.bool}


class MLPActor(nn.Module):
    """The mean action of a feed-forward ``ActorCritic``: obs (B, D) → actions (B, A)."""

    def __init__(self, model: ActorCritic):
        super().__init__()
        self.model = model

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Normalizer, then the actor MLP."""
        return self.model.action_mean(obs)[0]


class RecurrentActor(nn.Module):
    """One step of a recurrent ``ActorCritic``'s actor, its memory state in and out."""

    def __init__(self, model: ActorCritic):
        super().__init__()
        self.model = model

    def forward(
        self, obs: torch.Tensor, hidden_in: torch.Tensor, starts: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(actions (B, A), hidden_out (K, B, H)) from obs (B, D), state and starts (B,)."""
        actions, hidden_out = self.model.action_mean(obs[None], hidden_in, starts[None])
        return actions[0], hidden_out


class StudentActor(nn.Module):
    """The distilled student: obs_history (B, H, D) → actions (B, A)."""

    def __init__(self, student: StudentPolicy):
        super().__init__()
        self.student = student

    def forward(self, obs_history: torch.Tensor) -> torch.Tensor:
        """Normalizer, history encoder and actor."""
        return self.student(obs_history)


def actor_module(network: nn.Module, kind: str) -> nn.Module:
    """The wrapper of ``network`` for a policy of ``kind`` (mlp, recurrent, student)."""
    wrappers = {"mlp": MLPActor, "recurrent": RecurrentActor, "student": StudentActor}
    return wrappers[kind](network).eval()


def export_graph(
    module: nn.Module, inputs: list[TensorSpec], outputs: list[TensorSpec]
) -> onnx.ModelProto:
    """Export ``module`` with the given I/O (names, shapes, dtypes) at opset ``OPSET``.

    Returns:
        the model, weights inside (no external data), no metadata yet.
    """
    batch = torch.export.Dim(BATCH)
    examples = tuple(_example(spec) for spec in inputs)
    dynamic = tuple({spec.shape.index(BATCH): batch} for spec in inputs)
    with _quiet(), torch.no_grad():
        program = torch.onnx.export(
            module.eval(),
            examples,
            dynamo=True,
            verbose=False,
            input_names=[s.name for s in inputs],
            output_names=[s.name for s in outputs],
            dynamic_shapes=dynamic,
            opset_version=OPSET,
            optimize=True,
        )
    return program.model_proto


def _example(spec: TensorSpec) -> torch.Tensor:
    shape = [_EXAMPLE_BATCH if d == BATCH else d for d in spec.shape]
    return torch.zeros(shape, dtype=_DTYPES[spec.dtype])


@contextlib.contextmanager
def _quiet():
    """Silence the exporter's progress warnings and optional-package notices."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)
