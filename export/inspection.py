"""Readable views of a policy contract and of a parity report, as rich tables."""

from __future__ import annotations

from rich.table import Table

from sim2real.export.contract import PolicyContract
from sim2real.export.parity import ParityReport


def contract_tables(contract: PolicyContract) -> list[Table]:
    """The contract as four tables: summary, joints, observation terms, graph I/O."""
    return [
        _summary(contract),
        _joints(contract),
        _observation(contract),
        _io(contract),
    ]


def parity_table(report: ParityReport) -> Table:
    """One row per observation set: sizes, resets and the largest differences."""
    table = Table(title=f"parity: onnxruntime vs torch (tolerance {report.tolerance:g})")
    columns = ("set", "observations", "steps × envs", "resets", "max |Δ action|", "max |Δ state|")
    for column in columns:
        table.add_column(column, justify="right")
    for s in report.sets:
        state = "—" if s.max_abs_state_diff is None else f"{s.max_abs_state_diff:.2e}"
        table.add_row(
            s.name,
            str(s.observations),
            f"{s.steps} × {s.envs}",
            str(s.resets),
            f"{s.max_abs_action_diff:.2e}",
            state,
        )
    return table


def _summary(c: PolicyContract) -> Table:
    producer = c.producer
    checkpoint = producer.get("checkpoint") or {}
    rows = {
        "schema_version": c.schema_version,
        "task": c.task,
        "robot": c.robot,
        "policy_kind": c.policy_kind,
        "recurrent": _recurrent(c),
        "control_period_s": f"{c.control_period_s:g} ({1 / c.control_period_s:g} Hz)",
        "observation": f"{c.observation_group}: {c.observation_size} values, history "
        f"{c.history_length}; normalized in the graph: {c.obs_normalization_in_graph}",
        "action": f"target = action_offset + {c.action_scale} × action; "
        f"scale in the graph: {c.action_scale_in_graph}",
        "action_offset": "default_joint_pos"
        if c.action_offset == c.default_joint_pos
        else str(c.action_offset),
        "opset": c.opset,
        "graph_sha256": c.graph_sha256,
        "producer.commit": producer.get("commit"),
        "producer.sim2real_version": producer.get("sim2real_version"),
        "producer.checkpoint": f"{checkpoint.get('file')}, iteration "
        f"{checkpoint.get('iteration')}, {checkpoint.get('kind')}",
        "parity.max_abs_diff": None if c.parity is None else f"{c.parity['max_abs_diff']:.2e}",
    }
    table = Table(title="policy contract", show_header=False)
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    for key, value in rows.items():
        table.add_row(key, "—" if value is None else str(value))
    return table


def _recurrent(c: PolicyContract) -> str | None:
    r = c.recurrent
    if r is None:
        return None
    state = f"({r.rows}, batch, {r.hidden_size})"
    return f"{r.cell}, {r.layers} layer(s) of {r.hidden_size}; state {state}"


def _joints(c: PolicyContract) -> Table:
    table = Table(title="joints (policy order)")
    columns = ("#", "name", "default", "kp", "kd", "lower", "upper", "velocity", "effort")
    for column in columns:
        table.add_column(column, justify="left" if column == "name" else "right")
    velocities = c.velocity_limits or [None] * c.num_joints  # absent in older files
    rows = zip(
        c.joint_names, c.default_joint_pos, c.kp, c.kd, c.joint_pos_limits, velocities,
        c.effort_limits, strict=True,
    )  # fmt: skip
    for i, (name, default, kp, kd, (lower, upper), velocity, effort) in enumerate(rows):
        numbers = (f"{default:+.4f}", f"{kp:g}", f"{kd:g}", f"{lower:+.3f}", f"{upper:+.3f}")
        speed = "—" if velocity is None else f"{velocity:g}"
        table.add_row(str(i), name, *numbers, speed, f"{effort:g}")
    return table


def _observation(c: PolicyContract) -> Table:
    table = Table(title=f"observation terms ({c.observation_group}, concatenated in order)")
    for column in ("term", "columns", "size", "scale", "clip"):
        table.add_column(column, justify="left" if column == "term" else "right")
    start = 0
    for term in c.observation_terms:
        stop = start + term.size
        table.add_row(
            term.name, f"{start}:{stop}", str(term.size), str(term.scale), f"{term.clip:g}"
        )
        start = stop
    return table


def _io(c: PolicyContract) -> Table:
    table = Table(title="graph inputs and outputs")
    for column in ("", "name", "shape", "dtype"):
        table.add_column(column)
    for role, specs in (("input", c.inputs), ("output", c.outputs)):
        for spec in specs:
            table.add_row(role, spec.name, f"({', '.join(map(str, spec.shape))})", spec.dtype)
    return table
