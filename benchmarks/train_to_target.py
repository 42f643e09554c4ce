"""Wall-clock to a trained policy: train a task and evaluate it until it meets its targets.

Prints one JSON object. Trains with the task's default config (``sim2real train TASK``),
and every ``--eval-every`` iterations evaluates the current policy deterministically on
held-out episodes (another seed, ``--eval-envs`` envs, one episode limit), with
randomization on, as ``sim2real play`` does. Stops when every target holds or after
``--budget-min`` minutes of training. Training time excludes evaluation time (both are
reported).

Targets (issue 4):

- ``arm-reach``: ``ee_error`` ≤ 0.02 m (end-effector distance over each episode's last
  second); time target 3 min.
- ``go2-flat``: ``lin_vel_error`` ≤ 0.25 m/s over commands vx ∈ [-1, 1], vy ∈ [-0.5, 0.5]
  m/s, yaw ∈ [-1, 1] rad/s, and ``fall_rate`` ≤ 0.02 in 20 s episodes; time target 30 min.
- ``point-reach``: ``ee_error`` ≤ 0.03 m (the smoke case).

    .venv/bin/python benchmarks/train_to_target.py arm-reach > /tmp/arm.json
    .venv/bin/python benchmarks/train_to_target.py go2-flat --budget-min 40 > /tmp/go2.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

from sim2real.policies.config import build_config
from sim2real.policies.evaluation import evaluate
from sim2real.policies.runner import Trainer
from sim2real.sim.tasks import make_env

sys.path.insert(0, os.path.dirname(__file__))
from machine import describe_machine  # noqa: E402

TARGETS = {
    "arm-reach": ({"ee_error": 0.02}, 3.0),
    "go2-flat": ({"lin_vel_error": 0.25, "fall_rate": 0.02}, 30.0),
    "point-reach": ({"ee_error": 0.03}, 1.0),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("task", nargs="?", default="arm-reach", choices=sorted(TARGETS))
    parser.add_argument("--eval-every", type=int, default=10, help="iterations")
    parser.add_argument("--eval-envs", type=int, default=256)
    parser.add_argument("--budget-min", type=float, default=None, help="training minutes")
    parser.add_argument("--set", nargs="*", default=[], help="config overrides")
    parser.add_argument("--run-dir", default=None, help="keep the run here (default: temp)")
    args = parser.parse_args()
    targets, minutes = TARGETS[args.task]
    budget_s = 60.0 * (args.budget_min if args.budget_min is not None else 2 * minutes)

    run_dir = args.run_dir or tempfile.mkdtemp(prefix=f"{args.task}-")
    config = build_config(args.task, overrides=["tensorboard=false", *args.set])
    config.max_iterations = 10**6  # the budget stops the run
    trainer = Trainer(config, run_dir=run_dir)
    eval_env = make_env(args.task, args.eval_envs, seed=10_000)
    history, train_s, eval_s, met_at = [], 0.0, 0.0, None
    while train_s < budget_s:
        start = time.perf_counter()
        for _ in range(args.eval_every):
            trainer.train_iteration()
        train_s += time.perf_counter() - start
        start = time.perf_counter()
        metrics, _ = evaluate(trainer.model, eval_env, seed=10_000)
        eval_s += time.perf_counter() - start
        history.append({"iteration": trainer.iteration, "train_s": train_s, **metrics})
        print(json.dumps(history[-1]), file=sys.stderr)
        if all(metrics.get(k, float("inf")) <= v for k, v in targets.items()):
            met_at = history[-1]
            break
    trainer.save()
    report = {
        "benchmark": "train_to_target",
        "task": args.task,
        "command": " ".join(sys.argv),
        "machine": describe_machine(),
        "loadavg_1_5_15_min": os.getloadavg(),
        "config": {"num_envs": config.num_envs, "num_steps": config.ppo.num_steps},
        "targets": targets,
        "time_target_min": minutes,
        "met": met_at is not None,
        "train_minutes_to_target": None if met_at is None else met_at["train_s"] / 60.0,
        "iterations": trainer.iteration,
        "env_steps": trainer.iteration * config.num_envs * config.ppo.num_steps,
        "train_s": train_s,
        "eval_s": eval_s,
        "final": history[-1],
        "history": history,
        "checkpoint": str(trainer.run_dir / f"model_{trainer.iteration}.pt"),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
