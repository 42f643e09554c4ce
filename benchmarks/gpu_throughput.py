"""Accelerator backends: env-steps/s of ``cpu``, ``mjx`` and ``warp`` at each N.

Prints one JSON object. One env-step is one control step of one env. For each backend
and N, median of ``--repeats`` runs after a warm-up (which compiles):

- ``physics``: the backend alone, ``decimation`` physics steps per control step with
  fixed joint targets, host synchronization included (the ceiling under ``TaskEnv``);
- ``sim_only``: the ``TaskEnv`` stepping random actions, shipped randomization on;
- ``training``: ``Trainer.train_iteration`` (rollout through the policy + PPO update)
  with the task's training config at that N (``--no-training`` skips it).

The issue's goal is ≥ 1M sim-only env-steps/s for go2-flat on an H100. Run it on a GPU
machine with the extras and JAX's CUDA plugin installed; on a CPU, small N only (JAX's
CPU runs MJX envs one after another, ~10 ms per physics step):

    .venv/bin/python benchmarks/gpu_throughput.py > /tmp/gpu_throughput.json   # GPU
    .venv/bin/python benchmarks/gpu_throughput.py --num-envs 16 --steps 10 --no-training
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

from sim2real.policies.config import build_config
from sim2real.policies.runner import Trainer
from sim2real.sim.backends import BACKENDS, extra_installed, make_backend
from sim2real.sim.robot import RobotModel
from sim2real.sim.tasks import task_class

sys.path.insert(0, os.path.dirname(__file__))
from machine import describe_machine  # noqa: E402
from training_throughput import sim_only_rate, training_rate  # noqa: E402


def physics_rate(task: str, backend: str, num_envs: int, steps: int) -> float:
    """Env-steps/s of the bare backend holding the default pose."""
    spec = task_class(task)()
    model = spec.build_model()
    home = RobotModel.from_mujoco(model).home_key
    sim = make_backend(backend, model, num_envs, nthread=0)
    envs = np.arange(num_envs)
    sim.reset(envs, home)
    sim.forward(envs)
    sim.ctrl[:] = model.key_ctrl[home]
    sim.step(spec.decimation)  # warm-up: compiles on the accelerators
    start = time.perf_counter()
    for _ in range(steps):
        sim.step(spec.decimation)
    return num_envs * steps / (time.perf_counter() - start)


def devices() -> dict:
    """The accelerator each installed backend would run on."""
    found = {"mjx": "not installed", "warp": "not installed"}
    if extra_installed("mjx"):
        import jax

        found["mjx"] = f"{jax.devices()[0].platform}: {jax.devices()[0].device_kind}"
    if extra_installed("warp"):
        import warp as wp

        wp.config.log_level = wp.LOG_WARNING  # no line per kernel module loaded
        device = wp.get_preferred_device()
        found["warp"] = f"{device.alias}: {device.name}"
    return found


def measure(args: argparse.Namespace, backend: str, num_envs: int) -> dict:
    """The three rates of one backend at one N."""
    row = {"backend": backend, "num_envs": num_envs}
    runs = {"physics": [], "sim_only": [], "training": []}
    trainer = None
    if args.training:
        overrides = [f"num_envs={num_envs}", f"backend={backend}", "tensorboard=false"]
        trainer = Trainer(build_config(args.task, overrides=overrides))
        training_rate(trainer)  # warm-up
    for _ in range(args.repeats):
        runs["physics"].append(physics_rate(args.task, backend, num_envs, args.steps))
        runs["sim_only"].append(sim_only_rate(args.task, num_envs, 0, args.steps, backend))
        if trainer is not None:
            runs["training"].append(training_rate(trainer)[0])
    for name, rates in runs.items():
        if rates:
            row[f"{name}_steps_per_s"] = statistics.median(rates)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", default="go2-flat")
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    parser.add_argument("--num-envs", type=int, nargs="+", default=[1024, 4096, 16384])
    parser.add_argument("--steps", type=int, default=50, help="control steps per timed run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-training", dest="training", action="store_false")
    args = parser.parse_args()
    rows = []
    for backend in args.backends:
        for num_envs in args.num_envs:
            rows.append(measure(args, backend, num_envs))
            print(json.dumps(rows[-1]), file=sys.stderr)
    report = {
        "benchmark": "gpu_throughput",
        "task": args.task,
        "command": " ".join(sys.argv),
        "machine": describe_machine(),
        "devices": devices(),
        "loadavg_1_5_15_min": os.getloadavg(),
        "rows": rows,
        "goal": "≥ 1M sim-only env-steps/s for go2-flat on an H100",
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
