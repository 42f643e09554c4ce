"""The ``sim2real`` command line: one subcommand per stage of the sim-to-real loop."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

console = Console()


def cmd_envs(args: argparse.Namespace) -> int:
    """List the registered tasks with their observation and action sizes."""
    from sim2real.sim.tasks import TASKS, make_env

    table = Table(title="sim2real tasks")
    for column in ("task", "robot", "policy obs", "critic obs", "actions", "control", "episode"):
        table.add_column(column)
    for name in sorted(TASKS):
        env = make_env(name, num_envs=1, nthread=1)
        table.add_row(
            name,
            env.task.robot,
            str(env.obs_sizes["policy"]),
            str(env.obs_sizes["critic"]),
            str(env.num_actions),
            f"{1 / env.step_dt:g} Hz",
            f"{env.max_episode_length * env.step_dt:g} s",
        )
    console.print(table)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Run a short random-action rollout of every task and print env-steps/s."""
    from sim2real.sim.tasks import TASKS, make_env

    cmd_envs(args)
    rng = np.random.default_rng(args.seed)
    columns = (TextColumn("{task.description}"), BarColumn(), TimeRemainingColumn())
    for name in sorted(TASKS):
        env = make_env(name, num_envs=args.num_envs, seed=args.seed, nthread=args.nthread)
        with Progress(*columns, console=console, transient=True) as progress:
            bar = progress.add_task(f"{name}: random actions", total=args.steps)
            start = time.perf_counter()
            for _ in range(args.steps):
                actions = rng.uniform(-1.0, 1.0, (env.num_envs, env.num_actions))
                env.step(actions.astype(np.float32))
                progress.advance(bar)
            elapsed = time.perf_counter() - start
        rate = env.num_envs * args.steps / elapsed
        physics = rate * env.task.decimation
        console.print(
            f"[bold]{name}[/]: {args.num_envs} envs × {args.steps} steps in {elapsed:.1f} s "
            f"= [green]{rate:,.0f} env-steps/s[/] ({physics:,.0f} physics steps/s)"
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="sim2real", description="Train in simulation, deploy on the robot, close the loop."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    envs = sub.add_parser("envs", help="list the tasks with their observation and action sizes")
    envs.set_defaults(func=cmd_envs)

    demo = sub.add_parser("demo", help="run a short random-action rollout of every task")
    demo.add_argument("--num-envs", type=int, default=1024, help="parallel envs per task")
    demo.add_argument("--steps", type=int, default=100, help="control steps per task")
    demo.add_argument("--nthread", type=int, default=0, help="simulation threads (0: all cores)")
    demo.add_argument("--seed", type=int, default=0, help="random seed")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sim2real`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, FileNotFoundError) as error:
        console.print(f"[red]error:[/] {error}")
        return 2
