"""The policy file: an ONNX model with its contract in ``metadata_props``, and its hash.

**Graph hash** (``graph_sha256``, the contract field): the lowercase hex SHA-256 of the
model's ``GraphProto`` serialized by protobuf — in Python
``hashlib.sha256(model.graph.SerializeToString(deterministic=True)).hexdigest()``, in
C++ ``model.graph().SerializeAsString()`` with deterministic serialization. The graph
holds the nodes, the weights (initializers, stored inside the file, never as external
data) and the input and output declarations; the contract lives outside it, in
``ModelProto.metadata_props``, so embedding or editing the contract never changes the
hash, and any change to the network does. ``GraphProto`` has no map fields, so a parsed
graph serializes to the same bytes in every protobuf implementation. The opset, also
outside the graph, is checked separately against the contract's ``opset``.

Checks on read (``read_policy_model``), in order, each failure a ``PolicyFileError``:
parseable ONNX (a truncated or corrupted file fails here or at the hash), the ONNX
checker, the contract entry present, its JSON valid field by field, the graph hash, the
opset, and the graph's inputs and outputs against the contract's ``inputs``/``outputs``
(names, shapes with the ``batch`` axis, dtypes). A mismatch names the contract field.

Writes are atomic (``write_atomically``): each file goes to a temporary file in the same
folder, flushed and fsynced, then renamed over its destination; if anything fails before
the renames, the temporary files are removed and no destination is touched.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import onnx

from sim2real.export.contract import (
    ContractError,
    PolicyContract,
    PolicyFileError,
    TensorSpec,
)

#: The ``metadata_props`` key of the contract JSON.
METADATA_KEY = "sim2real.policy_contract"

_DTYPES = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.BOOL: "bool"}


def graph_sha256(model: onnx.ModelProto) -> str:
    """SHA-256 (hex) of the serialized graph; see the module docstring."""
    return hashlib.sha256(model.graph.SerializeToString(deterministic=True)).hexdigest()


def embed_contract(model: onnx.ModelProto, contract: PolicyContract) -> bytes:
    """The serialized model with ``contract`` as its only sim2real metadata entry."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    kept = [p for p in out.metadata_props if p.key != METADATA_KEY]
    del out.metadata_props[:]
    out.metadata_props.extend(kept)
    out.metadata_props.add(key=METADATA_KEY, value=contract.to_json())
    return out.SerializeToString()


def read_policy_model(data: bytes, source: str) -> tuple[onnx.ModelProto, PolicyContract]:
    """Parse a policy file's bytes and check it against its contract (module docstring).

    Args:
        data: the file's content.
        source: how errors name the file.

    Returns:
        (model, contract).

    Raises:
        PolicyFileError: not a readable ONNX model.
        ContractError: contract missing or invalid, or the graph disagrees with it.
    """
    try:
        model = onnx.load_model_from_string(data)
        onnx.checker.check_model(model)
    except Exception as error:  # protobuf's DecodeError, onnx's ValidationError
        raise PolicyFileError(
            f"{source}: not a readable ONNX model, truncated or corrupted? ({error})"
        ) from None
    if not model.graph.node:
        raise PolicyFileError(f"{source}: the ONNX model has an empty graph (truncated?)")
    entries = {p.key: p.value for p in model.metadata_props}
    if METADATA_KEY not in entries:
        raise ContractError(
            f"metadata_props[{METADATA_KEY}]",
            "missing: this ONNX file carries no policy contract (not written by "
            "`sim2real export`, or its metadata was stripped)",
            source,
        )
    contract = PolicyContract.from_json(entries[METADATA_KEY], source)
    digest = graph_sha256(model)
    if digest != contract.graph_sha256:
        raise ContractError(
            "graph_sha256",
            f"the graph hashes to {digest}, the contract says {contract.graph_sha256}: the "
            "network was changed after export (or the file is corrupted)",
            source,
        )
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset != contract.opset:
        raise ContractError(
            "opset", f"the model imports opset {opset}, the contract says {contract.opset}", source
        )
    _check_values(model.graph.input, contract.inputs, "inputs", source)
    _check_values(model.graph.output, contract.outputs, "outputs", source)
    return model, contract


def _check_values(values, specs: list[TensorSpec], field: str, source: str) -> None:
    """The graph's inputs (or outputs) against the contract's, one by one, in order."""
    found = [v.name for v in values]
    wanted = [s.name for s in specs]
    if found != wanted:
        raise ContractError(field, f"the graph has {found}, the contract says {wanted}", source)
    for i, (value, spec) in enumerate(zip(values, specs, strict=True)):
        tensor = value.type.tensor_type
        dtype = _DTYPES.get(tensor.elem_type, onnx.TensorProto.DataType.Name(tensor.elem_type))
        if dtype != spec.dtype:
            raise ContractError(
                f"{field}[{i}].dtype", f"graph {value.name!r} is {dtype}, not {spec.dtype}", source
            )
        shape = [d.dim_param or d.dim_value for d in tensor.shape.dim]
        if shape != spec.shape:
            raise ContractError(
                f"{field}[{i}].shape",
                f"graph {value.name!r} has shape {shape}, the contract says {spec.shape}",
                source,
            )


def write_atomically(files: Mapping[str | Path, bytes]) -> None:
    """Write every ``{path: content}`` through temporary files and renames (docstring)."""
    staged: list[tuple[str, Path]] = []
    try:
        for path, content in files.items():
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            staged.append((tmp, path))
            with os.fdopen(fd, "wb") as f:
                f.write(content)
                f.flush()
                os.fsync(f.fileno())
        for tmp, path in staged:
            os.replace(tmp, path)
    finally:
        for tmp, _ in staged:
            Path(tmp).unlink(missing_ok=True)
