"""Training throughput: PPO env-steps/s against sim-only env-steps/s, and against SB3.

Prints one JSON object. One env-step is one control step of one env. For each N:

- ``sim_only``: the TaskEnv stepping random actions (drawn before timing), as training
  runs it (shipped randomization, ``nthread`` threads);
- ``training``: ``Trainer.train_iteration`` (rollout through the policy + PPO update +
  normalizer update) with the task's training config at the same N; env-steps of an
  iteration are ``num_steps × N``;
- ``ratio`` = training / sim_only, median over runs taken back to back;
  ``collection_share`` is the rollout's part of an iteration;
- ``target``: ratio ≥ 0.6 at the N the task trains with (its config's ``num_envs``:
  1024 for go2-flat); the other N are for comparison;
- ``other_processes_cores``: cores the machine's other processes kept busy meanwhile, on
  average (Linux ``/proc/stat``; null elsewhere): above ~0.05 the figures are not those
  of a quiet machine.

``sb3``: stable-baselines3 PPO (its defaults: 2048-step rollouts, 10 epochs, 64-sample
minibatches, MLP 64×64) on the project's Gymnasium adapter (``make_gym_env`` single envs
in SB3's ``DummyVecEnv``), timed over whole ``learn`` calls after a warm-up, in the same
process; the reference the issue names is SB3 PPO on Ant at 1.8k env-steps/s.

    .venv/bin/python benchmarks/training_throughput.py > /tmp/training_throughput.json
    .venv/bin/python benchmarks/training_throughput.py --quick   # smoke run
    .venv/bin/python benchmarks/training_throughput.py --set ppo.num_epochs=4  # a variant
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
from sim2real.sim.tasks import make_env

sys.path.insert(0, os.path.dirname(__file__))
from machine import describe_machine  # noqa: E402


def sim_only_rate(
    task: str, num_envs: int, nthread: int, steps: int, backend: str = "cpu"
) -> float:
    """Env-steps/s of random actions on the training env (randomization on)."""
    env = make_env(task, num_envs, seed=0, nthread=nthread, backend=backend)
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (steps, num_envs, env.num_actions)).astype(np.float32)
    env.step(actions[0])
    start = time.perf_counter()
    for a in actions:
        env.step(a)
    return num_envs * steps / (time.perf_counter() - start)


def busy_cpu_s() -> float | None:
    """CPU seconds every process on the machine has used so far; None without /proc/stat."""
    try:
        with open("/proc/stat") as f:
            user, nice, system, _, _, irq, softirq = map(int, f.readline().split()[1:8])
    except (OSError, ValueError):
        return None
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def training_rate(trainer: Trainer) -> tuple[float, float]:
    """(env-steps/s, rollout share) of one training iteration."""
    scalars = trainer.train_iteration()
    total = scalars["perf/collection_s"] + scalars["perf/learn_s"]
    return scalars["perf/steps_per_s"], scalars["perf/collection_s"] / total


def sb3_rate(task: str, num_envs: int, steps: int) -> dict:
    """Env-steps/s of SB3 PPO ``learn`` on ``num_envs`` Gymnasium adapter envs."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    from sim2real.sim.gym_adapter import make_gym_env

    vec = DummyVecEnv([lambda i=i: make_gym_env(task, seed=i) for i in range(num_envs)])
    n_steps = max(steps // num_envs, 64)
    model = PPO("MlpPolicy", vec, n_steps=n_steps, batch_size=64, seed=0, device="cpu")
    model.learn(n_steps * num_envs)  # warm-up
    start = time.perf_counter()
    model.learn(n_steps * num_envs * 2)
    elapsed = time.perf_counter() - start
    return {
        "num_envs": num_envs,
        "n_steps": n_steps,
        "env_steps_per_s": n_steps * num_envs * 2 / elapsed,
    }


def ratio_target(rows: list[dict], training_num_envs: int) -> dict:
    """The 0.6 ratio target, judged at the N the task trains with (its config's ``num_envs``).

    ``met`` is None when that N was not measured.
    """
    at_training_n = [r["ratio"] for r in rows if r["num_envs"] == training_num_envs]
    return {
        "ratio_at_least": 0.6,
        "num_envs": training_num_envs,
        "met": at_training_n[0] >= 0.6 if at_training_n else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", default="go2-flat")
    parser.add_argument("--num-envs", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--nthread", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sb3-envs", type=int, default=8)
    parser.add_argument("--sb3-steps", type=int, default=4096)
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="training config override (as sim2real train --set), e.g. ppo.num_epochs=4",
    )
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    args = parser.parse_args()
    if args.quick:
        args.task, args.repeats = "point-reach", 1
        args.num_envs = [build_config(args.task).num_envs]
        args.sb3_envs, args.sb3_steps = 2, 128

    rows = []
    for num_envs in args.num_envs:
        overrides = [f"num_envs={num_envs}", f"nthread={args.nthread}", "tensorboard=false"]
        overrides += args.overrides
        trainer = Trainer(build_config(args.task, overrides=overrides))
        steps = trainer.config.ppo.num_steps
        training_rate(trainer)  # warm-up
        sims, trains, ratios, shares = [], [], [], []
        busy, own, start = busy_cpu_s(), time.process_time(), time.perf_counter()
        for _ in range(args.repeats):
            sim = sim_only_rate(args.task, num_envs, args.nthread, steps * 2)
            train, share = training_rate(trainer)
            sims.append(sim)
            trains.append(train)
            ratios.append(train / sim)
            shares.append(share)
        others = None
        if busy is not None:
            others_s = busy_cpu_s() - busy - (time.process_time() - own)
            others = max(others_s, 0.0) / (time.perf_counter() - start)
        rows.append(
            {
                "num_envs": num_envs,
                "sim_only_steps_per_s": statistics.median(sims),
                "training_steps_per_s": statistics.median(trains),
                "ratio": statistics.median(ratios),
                "collection_share": statistics.median(shares),
                "runs": len(ratios),
                "other_processes_cores": others,
            }
        )
    report = {
        "benchmark": "training_throughput",
        "task": args.task,
        "command": " ".join(sys.argv),
        "machine": describe_machine(),
        "loadavg_1_5_15_min": os.getloadavg(),
        "nthread": args.nthread,
        "overrides": args.overrides,
        "training": rows,
        "sb3": sb3_rate(args.task, args.sb3_envs, args.sb3_steps),
        "target": ratio_target(rows, build_config(args.task, overrides=args.overrides).num_envs),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
