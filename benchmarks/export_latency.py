"""Exported policy latency: onnxruntime single-sample inference against torch eager.

Prints one JSON object. Each policy is built at its task's default network size
(``policies/config.py`` ``TASK_OVERRIDES``) with random-init weights — latency does not
depend on the weights — and exported with ``sim2real.export.exporter.export_policy``
(parity check included) to a temporary folder, then loaded with ``load_policy``.

Policies: ``go2-flat`` (MLP 45 → 128-128-128 → 12), ``arm-reach`` (MLP 24 → 128-128 →
7) and, unless ``--quick``, ``go2-flat:gru`` (GRU 64 before the MLP, state in and out)
and ``go2-flat:student`` (16 × 45 history → encoder 128-64 → latent 16, actor 128³).

One call is one control step of one robot (batch 1), on one thread for both:

- ``ort``: ``InferenceSession.run`` on prepared inputs (intra-op threads 1, sequential,
  all graph optimizations), what a C++ or Python deploy loop pays per step;
- ``ort_policy``: ``OnnxPolicy.__call__`` (input checks and dtype conversion included);
- ``torch``: the network's own forward in eager mode under ``torch.inference_mode``
  with ``torch.set_num_threads(1)``, on a prepared tensor.

Every call is timed alone (``perf_counter_ns``). The backends take turns in rounds
(``--rounds`` of ``--calls`` calls each) after a warm-up, so load from other processes
spreads over all of them; the figures are the median, 99th percentile and mean over all
calls, in microseconds. ``loadavg`` records how busy the machine was.

    .venv/bin/python benchmarks/export_latency.py > /tmp/export_latency.json   # ~1 min
    .venv/bin/python benchmarks/export_latency.py --quick                     # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import torch

from sim2real.export.contract import HIDDEN_IN, STARTS
from sim2real.export.exporter import export_policy
from sim2real.export.loading import load_policy
from sim2real.export.source import source_from_state
from sim2real.policies.config import build_config, to_dict
from sim2real.policies.distillation import STUDENT_KIND, build_student
from sim2real.policies.runner import build_model
from sim2real.sim.tasks import make_env

sys.path.insert(0, os.path.dirname(__file__))
from machine import describe_machine  # noqa: E402

#: Median latency the go2 policy must meet in onnxruntime, µs.
TARGET_GO2_MEDIAN_US = 30.0


def untrained_state(task: str, variant: str) -> dict:
    """A checkpoint dict of a random-init policy: mlp, gru (PPO) or student."""
    overrides = ["model.recurrent=gru"] if variant == "gru" else []
    config = build_config(task, overrides=overrides)
    env = make_env(task, 1, nthread=1, randomization="off")
    state = {
        "task": task,
        "config": to_dict(config),
        "obs_sizes": dict(env.obs_sizes),
        "num_actions": env.num_actions,
        "iteration": 0,
    }
    if variant == "student":
        student = build_student(config, env.obs_sizes["policy"], env.num_actions)
        state.update(kind=STUDENT_KIND, student=student.state_dict())
        state["history_length"] = student.history_length
    else:
        state["model"] = build_model(config, env).state_dict()
    return state


def graph_weights(path: Path) -> int:
    """Numbers stored in the graph's initializers (weights and normalizer statistics)."""
    return sum(int(np.prod(t.dims)) for t in onnx.load(path).graph.initializer)


def torch_call(source, feed: dict[str, np.ndarray]):
    """A no-argument callable: one eager forward of the torch network on ``feed``."""
    tensors = [torch.from_numpy(v) for v in feed.values()]
    network = source.network
    if source.kind == "student":
        return lambda: network(tensors[0])
    if source.kind == "mlp":
        return lambda: network.action_mean(tensors[0])
    obs, state, starts = tensors
    return lambda: network.action_mean(obs[None], state, starts[None])


def time_calls(calls: dict, rounds: int, per_round: int, warmup: int) -> dict[str, np.ndarray]:
    """Per-call times (µs) of each callable, taking turns round by round."""
    with torch.inference_mode():
        for call in calls.values():
            for _ in range(warmup):
                call()
        samples = {name: [] for name in calls}
        for _ in range(rounds):
            for name, call in calls.items():
                times = samples[name]
                for _ in range(per_round):
                    start = time.perf_counter_ns()
                    call()
                    times.append(time.perf_counter_ns() - start)
    return {name: np.asarray(t) / 1000.0 for name, t in samples.items()}


def measure(name: str, folder: Path, args: argparse.Namespace) -> dict:
    """Export one policy and time its three ways of running a step."""
    task, _, variant = name.partition(":")
    source = source_from_state(untrained_state(task, variant or "mlp"), f"untrained {name}")
    start = time.perf_counter()
    result = export_policy(source, folder / f"{name.replace(':', '-')}.onnx")
    export_s = time.perf_counter() - start
    policy = load_policy(result.onnx_path, threads=1)
    rng = np.random.default_rng(0)
    obs = rng.normal(size=[1, *policy.contract.inputs[0].shape[1:]]).astype(np.float32)
    state = policy.initial_state(1)
    feed = {policy.contract.inputs[0].name: obs}
    if state is not None:
        feed.update({HIDDEN_IN: state, STARTS: np.zeros(1, bool)})
    calls = {
        "ort": lambda: policy.session.run(None, feed),
        "ort_policy": lambda: policy(obs, state),
        "torch": torch_call(source, feed),
    }
    times = time_calls(calls, args.rounds, args.calls, args.warmup)
    row = {
        "policy": name,
        "kind": source.kind,
        "obs_shape": policy.contract.inputs[0].shape,
        "num_actions": policy.contract.num_joints,
        "hidden": source.config.model.actor_hidden,
        "graph_weights": graph_weights(result.onnx_path),
        "export_s": round(export_s, 2),
        "parity_max_abs_diff": result.parity.max_abs_diff,
        "calls_per_backend": len(times["ort"]),
    }
    for backend, t in times.items():
        row[backend] = {
            "median_us": round(float(np.median(t)), 2),
            "p99_us": round(float(np.percentile(t, 99)), 2),
            "mean_us": round(float(t.mean()), 2),
        }
    row["torch_over_ort_median"] = round(row["torch"]["median_us"] / row["ort"]["median_us"], 2)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--policies",
        nargs="+",
        default=["go2-flat", "arm-reach", "go2-flat:gru", "go2-flat:student"],
        help="TASK or TASK:VARIANT (mlp, gru, student)",
    )
    parser.add_argument("--rounds", type=int, default=20, help="turns of each backend")
    parser.add_argument("--calls", type=int, default=500, help="timed calls per turn")
    parser.add_argument("--warmup", type=int, default=500, help="untimed calls first")
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    args = parser.parse_args()
    if args.quick:
        args.policies, args.rounds, args.calls, args.warmup = ["go2-flat", "arm-reach"], 2, 50, 20
    torch.set_num_threads(1)

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as folder:
        rows = [measure(name, Path(folder), args) for name in args.policies]
    go2 = next((r for r in rows if r["policy"] == "go2-flat"), None)
    report = {
        "benchmark": "export_latency",
        "command": " ".join(sys.argv),
        "machine": {
            **describe_machine(),
            "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__,
        },
        "loadavg_1_5_15_min": {"before": load_before, "after": os.getloadavg()},
        "settings": {"rounds": args.rounds, "calls": args.calls, "warmup": args.warmup},
        "policies": rows,
        "target": {
            "go2_ort_median_us_at_most": TARGET_GO2_MEDIAN_US,
            "met": go2 is not None and go2["ort"]["median_us"] <= TARGET_GO2_MEDIAN_US,
        },
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
