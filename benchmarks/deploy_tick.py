"""Deploy tick latency in-process: observation + ONNX + safety, one robot, one thread.

Prints one JSON object. Each policy is a random-init actor at its task's default size
(``export_latency.untrained_state``: latency does not depend on the weights), exported
with ``sim2real.export.exporter.export_policy`` to a temporary folder and run by a
``PolicyRuntime`` (``sim2real.deploy.runtime``) configured for the policy's own joints,
activated with no soft start (``standup_s = fade_s = 0``), so every timed tick is a
RUNNING tick: the observation from the training code's terms, the ONNX step, the targets,
the whole safety chain (validation, watchdog, tilt, four target bounds).

Inputs: states recorded from the task's simulator (randomization off, the default pose
held), delivered as a robot driver would: ``RobotState`` by name in the reverse of the
policy's joint order (so the by-name mapping does real work), fresh stamps, go2 with
its IMU and a velocity command, the arm with a target. They are built before the
timing; the tick is timed alone with ``perf_counter_ns``, and its parts
(``observation_us``, ``inference_us``, ``safety_us``) come from the runtime's own
``diagnostics()``, read after each tick. The policies take turns in rounds so that load
from other processes spreads over both; ``loadavg`` records how busy the machine was.

Python's garbage collector runs as in a default process; ``--gc-freeze`` calls
``gc.freeze()`` after set-up (what a deploy process can do once configured) to show its
share of the tail.

    .venv/bin/python benchmarks/deploy_tick.py > /tmp/deploy_tick.json   # ~30 s
    .venv/bin/python benchmarks/deploy_tick.py --quick                   # smoke run
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime

from sim2real.deploy.controller import Mode
from sim2real.deploy.robot_state import ImuReading, JointState, RobotState
from sim2real.deploy.runtime import PolicyRuntime
from sim2real.export.exporter import export_policy
from sim2real.export.source import source_from_state
from sim2real.sim.tasks import make_env

sys.path.insert(0, os.path.dirname(__file__))
from export_latency import untrained_state  # noqa: E402
from machine import describe_machine  # noqa: E402

#: The issue's targets for one tick, µs.
TARGET_MEDIAN_US = 150.0
TARGET_P99_US = 400.0
#: Parts of a tick as ``PolicyRuntime.diagnostics`` reports them.
PARTS = ("observation_us", "inference_us", "safety_us")


def recorded_states(task: str, count: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """``count`` robot states of the task's simulator, holding the default pose."""
    env = make_env(task, 1, seed=seed, nthread=1, randomization="off")
    env.reset(seed=seed)
    states = []
    for _ in range(count):
        env.step(np.zeros((1, env.num_actions), np.float32))
        states.append({k: np.array(v[0]) for k, v in env.task.robot_state().items()})
    return states


def robot_state(recorded: dict[str, np.ndarray], names: list[str], now: float) -> RobotState:
    """A recorded state as a driver delivers it: joints by ``names`` (reversed), stamped now."""
    s = recorded
    joints = JointState(names, s["joint_pos"][::-1], s["joint_vel"][::-1], now)
    imu = ImuReading(s["imu_quat"], s["imu_ang_vel"], now) if "imu_quat" in s else None
    return RobotState(joints, imu, s.get("command", s.get("target_pos")))


class Subject:
    """One policy under test: its runtime, its inputs and the samples taken so far."""

    def __init__(self, task: str, folder: Path):
        source = source_from_state(untrained_state(task, "mlp"), f"untrained {task}")
        exported = export_policy(source, folder / f"{task}.onnx")
        self.task, self.network = task, source.config.model.actor_hidden
        joints = exported.contract.joint_names  # the robot here is the policy's own
        self.runtime = PolicyRuntime(exported.onnx_path, joints, standup_s=0.0, fade_s=0.0)
        self.runtime.configure()
        self.runtime.activate(0.0)
        self.recorded = recorded_states(task, 200)
        self.names = list(joints)[::-1]
        self.next = 0
        self.samples: dict[str, list[float]] = {"tick_us": [], **{p: [] for p in PARTS}}
        self.not_running = 0

    @property
    def period(self) -> float:
        """The policy's control period, s."""
        return self.runtime.control_period

    def ticks(self, count: int, record: bool) -> None:
        """Run ``count`` ticks; keep their times when ``record``."""
        runtime, samples = self.runtime, self.samples
        for _ in range(count):
            k = self.next
            self.next += 1
            now = k * self.period
            state = robot_state(self.recorded[k % len(self.recorded)], self.names, now)
            start = time.perf_counter_ns()
            command = runtime.tick(now, state)
            elapsed = time.perf_counter_ns() - start
            if not record:
                continue
            self.not_running += command.mode is not Mode.POSITION
            samples["tick_us"].append(elapsed / 1e3)
            values = runtime.diagnostics()
            for part in PARTS:
                samples[part].append(values[part])

    def report(self) -> dict:
        """The JSON row of this policy: figures of the tick and its parts."""
        contract = self.runtime.contract
        row = {
            "policy": self.task,
            "network": f"MLP {contract.observation_size} → "
            f"{'-'.join(map(str, self.network))} → {contract.num_joints}",
            "joints": contract.num_joints,
            "ticks": len(self.samples["tick_us"]),
            "ticks_not_running": self.not_running,
        }
        for key, values in self.samples.items():
            row[key.removesuffix("_us")] = figures(np.asarray(values))
        parts = sum(np.asarray(self.samples[p]) for p in PARTS)
        row["other_median_us"] = round(float(np.median(self.samples["tick_us"] - parts)), 2)
        return row


def figures(values: np.ndarray) -> dict[str, float]:
    return {
        "median_us": round(float(np.median(values)), 2),
        "p99_us": round(float(np.percentile(values, 99)), 2),
        "mean_us": round(float(values.mean()), 2),
        "max_us": round(float(values.max()), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--policies", nargs="+", default=["go2-flat", "arm-reach"])
    parser.add_argument("--rounds", type=int, default=20, help="turns of each policy")
    parser.add_argument("--calls", type=int, default=1000, help="timed ticks per turn")
    parser.add_argument("--warmup", type=int, default=500, help="untimed ticks first")
    parser.add_argument("--gc-freeze", action="store_true", help="gc.freeze() after set-up")
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.calls, args.warmup = 2, 100, 20

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as folder:
        subjects = [Subject(task, Path(folder)) for task in args.policies]
    for subject in subjects:
        subject.ticks(args.warmup, record=False)
    if args.gc_freeze:
        gc.collect()
        gc.freeze()
    collections = sum(s["collections"] for s in gc.get_stats())
    for _ in range(args.rounds):
        for subject in subjects:
            subject.ticks(args.calls, record=True)
    rows = [s.report() for s in subjects]
    met = all(
        r["tick"]["median_us"] <= TARGET_MEDIAN_US and r["tick"]["p99_us"] <= TARGET_P99_US
        for r in rows
    )
    report = {
        "benchmark": "deploy_tick",
        "command": " ".join(sys.argv),
        "machine": {**describe_machine(), "onnxruntime": onnxruntime.__version__},
        "loadavg_1_5_15_min": {"before": load_before, "after": os.getloadavg()},
        "settings": {
            "rounds": args.rounds,
            "calls": args.calls,
            "warmup": args.warmup,
            "gc_freeze": args.gc_freeze,
            "gc_collections_while_timed": sum(s["collections"] for s in gc.get_stats())
            - collections,
        },
        "policies": rows,
        "target": {
            "median_us_at_most": TARGET_MEDIAN_US,
            "p99_us_at_most": TARGET_P99_US,
            "met": met,
        },
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
