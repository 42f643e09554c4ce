"""What domain randomization costs: go2-flat env-steps/s with it on against off.

Prints one JSON object. Three variants of ``make_env("go2-flat", N, seed, nthread)`` run in
the same process, from the same seed, on the same uniform random actions in [-1, 1]
(drawn before timing):

- ``off``: ``randomization="off"``.
- ``reset_terms``: the shipped default config with only its reset-mode terms (the 17
  model, gain, delay and sensor-bias terms drawn at every reset; no pushes, forces or
  per-step noise): the cost of randomizing at reset.
- ``default``: the shipped default config, every term (plus pushes and held forces at
  intervals, the policy's sensor model and observation noise every step).

Resets are forced far more often than in training: the episode limit is cut to
``--episode-steps`` control steps (default 50 = 1 s; the task's is 1000) and every env
starts at a random point of its episode, so about N / 50 envs reset every step (falls
add more; ``resets_per_step`` reports what happened). Training with 20 s episodes resets
~N / 1000 envs per step, so the figures are an upper bound of the reset cost.

Timing: the variants run interleaved, block by block: after a warm-up block, ``--blocks``
blocks of ``--block-steps`` control steps, the variants' order rotating from block to
block, each block timed in wall-clock and in process CPU time (all threads). The
overhead of a variant is ``1 - t_off / t_variant`` per block, summarized by its median
over blocks (and quartiles): block pairs are close in time, so slow drifts of a shared
machine cancel, and the median ignores the blocks that another process disturbed. CPU
time is the figure to trust on a loaded machine (it does not count time spent waiting for
a core); wall time is reported beside it. ``env_steps_per_s_*`` is N x steps / total
time. ``profile_default`` splits the default variant's extra time by hook
(``Randomizer.reset``, ``pre_physics``, sensing and noise), measured in a separate run.
The verdict compares the median CPU-time overhead of ``default`` and ``reset_terms``
with the target of at most 10 %. Run from the repository root::

    .venv/bin/python benchmarks/randomization_overhead.py > /tmp/randomization_overhead.json
    .venv/bin/python benchmarks/randomization_overhead.py --quick   # smoke run, seconds
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time

import numpy as np
from machine import describe_machine

from sim2real.randomization.config import RandomizationConfig, default_config
from sim2real.sim.tasks import make_env

TASK = "go2-flat"
TARGET = 0.10  # randomization may cost at most 10 % of env-steps/s


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num-envs", type=int, default=1024, help="N (default 1024)")
    parser.add_argument("--nthread", type=int, default=0, help="threads (0: all cores)")
    parser.add_argument("--blocks", type=int, default=30, help="timed blocks per variant")
    parser.add_argument("--block-steps", type=int, default=10, help="control steps per block")
    parser.add_argument("--episode-steps", type=int, default=50, help="forced episode limit")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="smoke run: N=64, few steps")
    args = parser.parse_args(argv)
    if args.quick:
        args.num_envs, args.blocks, args.block_steps = 64, 4, 5
    return args


def reset_terms_only() -> RandomizationConfig:
    """The default config with only its reset-mode terms."""
    config = default_config(TASK)
    config.terms = {n: t for n, t in config.terms.items() if t.mode == "reset"}
    return config


VARIANTS = {
    "off": lambda: "off",
    "reset_terms": reset_terms_only,
    "default": lambda: None,
}


def build(variant: str, args: argparse.Namespace):
    env = make_env(
        TASK, args.num_envs, seed=args.seed, nthread=args.nthread,
        randomization=VARIANTS[variant](),
    )  # fmt: skip
    env.max_episode_length = args.episode_steps
    # desynchronize the episodes, the same way in every variant
    env.episode_length[:] = np.random.default_rng(args.seed).integers(
        0, args.episode_steps, args.num_envs
    )
    return env


class Counter:
    """Counts steps and reset envs."""

    def __init__(self):
        self.steps = self.resets = 0

    def run(self, env, actions: np.ndarray, steps: int) -> tuple[float, float]:
        """Step ``steps`` times; return the wall and the process CPU time, s."""
        wall, cpu = time.perf_counter(), time.process_time()
        for t in range(self.steps, self.steps + steps):
            result = env.step(actions[t % len(actions)])
            self.resets += int(np.count_nonzero(result.terminated | result.time_outs))
        self.steps += steps
        return time.perf_counter() - wall, time.process_time() - cpu


def _quartiles(values: list[float]) -> dict[str, float]:
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return {"median": float(median), "q1": float(q1), "q3": float(q3)}


def profile_hooks(args: argparse.Namespace, actions: np.ndarray) -> dict[str, float]:
    """Milliseconds per control step inside each randomizer hook (default variant)."""
    env = build("default", args)
    randomizer = env.randomizer
    spent = {"reset": 0.0, "pre_physics": 0.0, "sense": 0.0, "noise": 0.0}

    def timed(name, func):
        def wrapper(*a, **k):
            start = time.perf_counter()
            try:
                return func(*a, **k)
            finally:
                spent[name] += time.perf_counter() - start

        return wrapper

    randomizer.reset = timed("reset", randomizer.reset)
    randomizer.pre_physics = timed("pre_physics", randomizer.pre_physics)
    randomizer.sense = timed("sense", randomizer.sense)
    randomizer.noise = timed("noise", randomizer.noise)
    counter = Counter()
    steps = args.blocks * args.block_steps // 2
    total, _ = counter.run(env, actions, steps)
    out = {f"{k}_ms_per_step": 1e3 * v / steps for k, v in spent.items()}
    out["step_ms"] = 1e3 * total / steps
    out["resets_per_step"] = counter.resets / counter.steps
    return out


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    rng = np.random.default_rng(args.seed)
    steps = args.blocks * args.block_steps
    actions = rng.uniform(-1, 1, (steps, args.num_envs, 12)).astype(np.float32)
    envs = {v: build(v, args) for v in VARIANTS}
    counters = {v: Counter() for v in VARIANTS}
    for env in envs.values():  # warm-up
        Counter().run(env, actions, args.block_steps)
    wall: dict[str, list[float]] = {v: [] for v in VARIANTS}
    cpu: dict[str, list[float]] = {v: [] for v in VARIANTS}
    names = list(VARIANTS)
    for block in range(args.blocks):
        for v in names[block % len(names) :] + names[: block % len(names)]:
            w, c = counters[v].run(envs[v], actions, args.block_steps)
            wall[v].append(w)
            cpu[v].append(c)
    n = args.num_envs
    results = {}
    for v in VARIANTS:
        results[v] = {
            "env_steps_per_s_wall": n * counters[v].steps / sum(wall[v]),
            "env_steps_per_s_cpu": n * counters[v].steps / sum(cpu[v]),
            "resets_per_step": counters[v].resets / counters[v].steps,
        }
        if v != "off":
            for clock, times in (("cpu", cpu), ("wall", wall)):
                pairs = [1 - off / on for on, off in zip(times[v], times["off"], strict=True)]
                results[v][f"overhead_{clock}"] = _quartiles(pairs)
    verdict = {
        v: {
            "overhead_cpu": results[v]["overhead_cpu"]["median"],
            "overhead_wall": results[v]["overhead_wall"]["median"],
            "pass": results[v]["overhead_cpu"]["median"] <= TARGET,
        }
        for v in ("reset_terms", "default")
    }
    report = {
        "benchmark": "randomization_overhead",
        "task": TASK,
        "command": " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]),
        "machine": describe_machine(),
        "settings": {
            "num_envs": n,
            "nthread": envs["off"].backend.nthread,
            "blocks": args.blocks,
            "block_steps": args.block_steps,
            "episode_steps": args.episode_steps,
            "seed": args.seed,
            "default_terms": list(default_config(TASK).terms),
            "reset_terms": list(reset_terms_only().terms),
        },
        "target": {
            "max_overhead": TARGET,
            "statement": "randomization costs <= 10 % of "
            f"{TASK} env-steps/s at N = {n} against randomization off",
        },
        "variants": results,
        "profile_default": profile_hooks(args, actions),
        "verdict": verdict,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
