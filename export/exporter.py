"""``sim2real export``: checkpoint → checked ONNX policy file and its readable contract.

``export_checkpoint(checkpoint, "policy.onnx")``:

1. reads the deployable policy of the checkpoint (``sim2real.export.source``);
2. reads the task's facts from the task and its MJCF asset (DESIGN contract 1): joint
   names in policy order, default pose, Kp/Kd, limits, control period, action scale,
   the policy observation terms with their sizes, scales and clips — and checks that
   the checkpoint's observation and action sizes agree with them;
3. exports the graph (``sim2real.export.onnx_export``) and hashes it;
4. embeds the contract, reads the bytes back through ``policy_from_bytes`` (every check
   a deployment makes) and runs the parity check (``sim2real.export.parity``) on them;
5. only if parity passes, records its figures in the contract and writes
   ``policy.onnx`` and ``policy.json`` (the same contract, indented) atomically.

Any failure raises before step 5, so nothing is written, and a previous file at the
destination stays as it was.
"""

from __future__ import annotations

import dataclasses
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from sim2real.export.contract import (
    SCHEMA_VERSION,
    ObservationTerm,
    PolicyContract,
    expected_io,
)
from sim2real.export.loading import policy_from_bytes
from sim2real.export.model_file import embed_contract, graph_sha256, write_atomically
from sim2real.export.onnx_export import OPSET, actor_module, export_graph
from sim2real.export.parity import PARITY_TOLERANCE, ParityError, ParityReport, check_parity
from sim2real.export.source import DEPLOYABLE_GROUP, PolicySource, load_source
from sim2real.policies.config import to_dict


@dataclass(frozen=True)
class ExportResult:
    """What ``export_checkpoint`` wrote and checked."""

    onnx_path: Path
    json_path: Path
    contract: PolicyContract
    parity: ParityReport


def export_checkpoint(
    checkpoint: str | Path,
    output: str | Path,
    task: str | None = None,
    tolerance: float = PARITY_TOLERANCE,
    seed: int = 0,
) -> ExportResult:
    """Export the deployable policy of ``checkpoint`` to ``output`` (module docstring).

    Args:
        checkpoint: checkpoint file or run folder (its latest checkpoint).
        output: the ``.onnx`` path; the contract goes beside it as ``.json``.
        task: when given, refuse a checkpoint trained on another task.
        tolerance: parity tolerance (max abs difference).
        seed: seed of the parity observations.

    Raises:
        ValueError: a checkpoint that cannot be exported (with the field at fault).
        ParityError: onnxruntime and torch disagree; nothing is written.
    """
    return export_policy(load_source(checkpoint, task), output, tolerance, seed)


def export_policy(
    source: PolicySource,
    output: str | Path,
    tolerance: float = PARITY_TOLERANCE,
    seed: int = 0,
) -> ExportResult:
    """``export_checkpoint`` for a ``PolicySource`` already in memory."""
    output = Path(output)
    json_path = output.with_suffix(".json")
    if json_path == output:
        raise ValueError(f"{output}: name the .onnx file; the contract goes beside it as .json")
    facts = task_facts(source.task)
    _check_sizes(source, facts)
    inputs, outputs = expected_io(
        source.kind, source.obs_size, source.num_actions, source.history_length, source.recurrent
    )
    model = export_graph(actor_module(source.network, source.kind), inputs, outputs)
    contract = PolicyContract(
        schema_version=SCHEMA_VERSION,
        **facts,
        task=source.task,
        policy_kind=source.kind,
        history_length=source.history_length,
        obs_normalization_in_graph=True,
        action_scale_in_graph=False,
        recurrent=source.recurrent,
        inputs=inputs,
        outputs=outputs,
        opset=OPSET,
        graph_sha256=graph_sha256(model),
        producer=producer(source),
        parity=None,
    )
    policy = policy_from_bytes(embed_contract(model, contract), str(output))
    report = check_parity(source, policy, tolerance, seed=seed)
    if not report.passed:
        raise ParityError(report)
    contract = dataclasses.replace(contract, parity=report.to_dict())
    write_atomically(
        {output: embed_contract(model, contract), json_path: contract.to_json().encode()}
    )
    return ExportResult(output, json_path, contract, report)


def task_facts(task: str) -> dict[str, Any]:
    """The contract fields a task and its robot asset fix, read from a 1-env env."""
    from sim2real.sim.tasks import make_env

    env = make_env(task, 1, nthread=1, randomization="off")
    robot, terms = env.robot, env.task.observations[DEPLOYABLE_GROUP]
    state = env.task.robot_state()
    state["last_action"] = state["previous_action"] = np.zeros((1, env.num_actions))
    sizes = env.obs_groups[DEPLOYABLE_GROUP].sizes(state)
    return {
        "robot": env.task.robot,
        "joint_names": list(robot.joint_names),
        "default_joint_pos": _floats(robot.default_joint_pos),
        "kp": _floats(robot.kp),
        "kd": _floats(robot.kd),
        "joint_pos_limits": [_floats(pair) for pair in robot.joint_limits],
        "effort_limits": _floats(robot.effort_limits),
        "velocity_limits": _floats(robot.velocity_limits),
        "control_period_s": float(env.step_dt),
        "observation_group": DEPLOYABLE_GROUP,
        "observation_terms": [
            ObservationTerm(t.name, sizes[t.name], _scale(t.scale), float(t.clip)) for t in terms
        ],
        "action_scale": _scale(env.task.action_scale),
        "action_offset": _floats(robot.default_joint_pos),  # targets = default + scale * action
    }


def producer(source: PolicySource) -> dict[str, Any]:
    """Provenance: sim2real's version and commit, the checkpoint, the training config."""
    try:
        version = metadata.version("sim2real")
    except metadata.PackageNotFoundError:
        version = None
    return {
        "sim2real_version": version,
        "commit": source_commit(),
        "checkpoint": source.checkpoint,
        "config": to_dict(source.config),
    }


def source_commit() -> str | None:
    """The git commit of the sim2real sources (``+dirty`` with local changes), else None.

    The exporting code's commit: checkpoints do not record the commit that trained them.
    """
    root = Path(__file__).resolve().parents[1]  # the repository root of a source checkout
    try:
        if Path(_git(root, "rev-parse", "--show-toplevel")).resolve() != root:
            return None  # an installed copy that happens to sit inside another repository
        commit = _git(root, "rev-parse", "HEAD")
        dirty = _git(root, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10, check=True
    )
    return done.stdout.strip()


def _check_sizes(source: PolicySource, facts: dict[str, Any]) -> None:
    """The checkpoint's observation and action sizes against the task's layout."""
    name = source.checkpoint.get("file") or "checkpoint"
    obs_size = sum(t.size for t in facts["observation_terms"])
    if source.obs_size != obs_size:
        raise ValueError(
            f"{name} ({source.task}): field 'obs_sizes.{DEPLOYABLE_GROUP}' is "
            f"{source.obs_size}, but task {source.task!r} observes {obs_size} values "
            f"({', '.join(t.name for t in facts['observation_terms'])}): a checkpoint of "
            "another task, or one trained before the task's observations changed"
        )
    joints = len(facts["joint_names"])
    if source.num_actions != joints:
        raise ValueError(
            f"{name} ({source.task}): field 'num_actions' is {source.num_actions}, but "
            f"task {source.task!r} drives {joints} joints"
        )


def _floats(values: Any) -> list[float]:
    return [float(v) for v in np.asarray(values, dtype=np.float64).ravel()]


def _scale(value: Any) -> float | list[float]:
    """A scale as the contract states it: one number, or one per entry."""
    return float(value) if np.ndim(value) == 0 else _floats(value)
