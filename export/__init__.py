"""ONNX export of the deployable actor with the policy contract embedded (DESIGN contract 4).

Reading side (no torch needed, what a deployment imports)::

    from sim2real.export import load_policy

    policy = load_policy("policy.onnx")  # checks the contract, the hash, the graph's I/O
    actions, state = policy(obs, state, starts)

Writing side: ``sim2real export CHECKPOINT -o policy.onnx`` or
``sim2real.export.exporter.export_checkpoint``. See ``export/README.md``.
"""

from sim2real.export.contract import (
    SCHEMA_VERSION,
    ContractError,
    PolicyContract,
    PolicyFileError,
)
from sim2real.export.loading import OnnxPolicy, load_policy
from sim2real.export.model_file import METADATA_KEY, graph_sha256

__all__ = [
    "METADATA_KEY",
    "SCHEMA_VERSION",
    "ContractError",
    "OnnxPolicy",
    "PolicyContract",
    "PolicyFileError",
    "graph_sha256",
    "load_policy",
]
