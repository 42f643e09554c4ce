"""The ``sim2real`` command line: one subcommand per stage of the sim-to-real loop."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from sim2real import cli_hil, cli_pipeline, cli_sysid
from sim2real.sim.backends import BACKENDS

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


def cmd_train(args: argparse.Namespace) -> int:
    """Train a policy with PPO (or resume a run); see ``sim2real.policies.runner``."""
    from sim2real.policies.config import build_config
    from sim2real.policies.distributed import Distributed
    from sim2real.policies.runner import Trainer

    overrides = _overrides(args)
    if args.resume:
        changed = _resume_overrides(args, overrides)
        dist = Distributed.from_environment()
        trainer = Trainer.resume(args.resume, changed, dist=dist, console=console)
        _check_resumed_task(trainer.config, args)
    else:
        config = build_config(args.task, args.config, overrides)
        dist = Distributed.from_environment()
        trainer = Trainer(config, dist=dist, console=console)
    if dist.is_main:
        console.print(
            f"[bold]training {trainer.config.task}[/] in {trainer.run_dir} "
            f"({dist.world_size} process(es) × {trainer.config.num_envs} envs)"
        )
    try:
        scalars = trainer.learn()
    finally:
        dist.close()
    if dist.is_main:
        console.print(f"done: {trainer.run_dir} ({_episode_summary(scalars)})")
    return 0


def cmd_distill(args: argparse.Namespace) -> int:
    """Distill a privileged teacher into a student; see ``sim2real.policies.distillation``."""
    from sim2real.policies.config import build_config
    from sim2real.policies.distillation import Distiller

    overrides = _overrides(args, teacher=args.teacher)
    if args.resume:
        changed = _resume_overrides(args, overrides)
        distiller = Distiller.resume(args.resume, changed, console=console)
        _check_resumed_task(distiller.config, args)
    else:
        if not args.teacher:
            raise ValueError("--teacher CHECKPOINT is required (or --resume RUN)")
        distiller = Distiller(build_config(args.task, args.config, overrides), console=console)
    config = distiller.config
    console.print(
        f"[bold]distilling {config.distill.teacher}[/] into a student of {config.task} "
        f"in {distiller.run_dir} ({config.num_envs} envs, "
        f"history {config.distill.history_length} steps)"
    )
    scalars = distiller.learn()
    console.print(f"done: {distiller.run_dir} ({_episode_summary(scalars)})")
    return 0


def _overrides(args: argparse.Namespace, teacher: str | None = None) -> list[str]:
    """``--set`` pairs, then ``--backend``, ``--randomization`` (and a ``--teacher``)."""
    overrides = list(args.set)
    if args.backend:
        overrides.append(f"backend={args.backend}")
    if args.randomization:
        overrides.append(f"randomization={args.randomization}")
    if teacher:
        overrides.append(f"distill.teacher={teacher}")
    return overrides


def _resume_overrides(args: argparse.Namespace, overrides: list[str]) -> dict:
    """The ``--set`` pairs of a resumed run by dotted key (checked when they are applied)."""
    from sim2real.policies.config import parse_overrides

    if args.config:
        raise ValueError("--resume continues a run with its own config; drop --config")
    return parse_overrides(overrides)


def _check_resumed_task(config, args: argparse.Namespace) -> None:
    if config.task != args.task:
        raise ValueError(f"run {args.resume} trains {config.task!r}, not {args.task!r}")


def _episode_summary(scalars: dict[str, float]) -> str:
    summary = ", ".join(
        f"{k} {scalars[k]:.3f}" for k in ("episode/return", "episode/length") if k in scalars
    )
    return summary or "no finished episodes"


def cmd_play(args: argparse.Namespace) -> int:
    """Evaluate a checkpoint (PPO or student) with randomization off and on; metrics, video."""
    import json

    from sim2real.policies.checkpoint import actor_critic_from_state, load_checkpoint
    from sim2real.policies.distillation import STUDENT_KIND, student_from_state
    from sim2real.policies.evaluation import evaluate
    from sim2real.sim.tasks import make_env

    state = load_checkpoint(args.checkpoint)
    kind = state.get("kind", "actor_critic")
    from_state = student_from_state if kind == STUDENT_KIND else actor_critic_from_state
    config, model = from_state(state, args.checkpoint)
    if config.task != args.task:
        raise ValueError(f"checkpoint {args.checkpoint} was trained on {config.task!r}")
    report = {
        "task": args.task,
        "checkpoint": str(args.checkpoint),
        "kind": kind,
        "num_envs": args.num_envs,
    }
    qpos = None
    for label, randomization in (("randomization_off", "off"), ("randomization_on", None)):
        env = make_env(args.task, args.num_envs, seed=args.seed, randomization=randomization)
        record = 0 if label == "randomization_off" and args.video else None
        metrics, recorded = evaluate(model, env, record_env=record, seed=args.seed)
        report[label] = metrics
        qpos = recorded if recorded is not None else qpos
        table = Table(title=f"{args.task}: {label.replace('_', ' ')}")
        table.add_column("metric")
        table.add_column("value", justify="right")
        for key, value in metrics.items():
            table.add_row(key, f"{value:.4f}")
        console.print(table)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2))
    console.print(f"metrics: {output}")
    if args.video:
        from sim2real.sim.render import render_episode, rendering_available, write_video

        available, reason = rendering_available()
        if not available:
            raise RuntimeError(f"cannot render a video here: {reason}")
        fps = 1.0 / env.step_dt
        frames = render_episode(env.model, qpos, fps=fps)
        console.print(f"video: {write_video(frames, args.video, fps=fps)}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Export a checkpoint's deployable policy to ONNX with its contract; parity-checked."""
    from sim2real.export.exporter import export_checkpoint
    from sim2real.export.inspection import parity_table

    result = export_checkpoint(args.checkpoint, args.output, task=args.task, seed=args.seed)
    contract = result.contract
    console.print(parity_table(result.parity))
    console.print(
        f"wrote {result.onnx_path} and {result.json_path}: {contract.policy_kind} policy of "
        f"{contract.task}, opset {contract.opset}, graph sha256 {contract.graph_sha256[:16]}…"
    )
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    """Check a policy file and print its contract (exit 2 with the error if invalid)."""
    from sim2real.export.inspection import contract_tables
    from sim2real.export.loading import load_policy

    contract = load_policy(args.policy).contract
    if args.json:
        print(contract.to_json(), end="")
        return 0
    for table in contract_tables(contract):
        console.print(table)
    console.print(f"[green]valid[/]: {args.policy}")
    return 0


def _config_help() -> str:
    from sim2real.policies.config import describe

    lines = ["configuration (--set KEY=VALUE, or a YAML file with --config):"]
    for key, kind, default, doc in describe():
        lines.append(f"  {key} ({kind}, default {default})")
        lines.append(f"      {doc}")
    return "\n".join(lines)


def _add_run_arguments(parser: argparse.ArgumentParser, example: str, resume: str) -> None:
    """--config, --set, --resume, --backend and --randomization of a training-like subcommand."""
    parser.add_argument("--config", metavar="FILE", help="YAML file of config fields")
    parser.add_argument(
        "--set",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help=f"override config fields, e.g. {example}",
    )
    parser.add_argument("--resume", metavar="RUN", help=resume)
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        help="simulation backend (cpu: the default; mjx, warp: accelerators, need their extra)",
    )
    parser.add_argument(
        "--randomization",
        metavar="FILE",
        help="randomization YAML (e.g. from sim2real sysid fit), or 'off'",
    )


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

    train = sub.add_parser(
        "train",
        help="train a policy with PPO",
        description="Train TASK with PPO. Defaults, then the task's overrides, then --config, "
        "then --set.",
        epilog=_config_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument("task", help="registered task (sim2real envs lists them)")
    _add_run_arguments(train, "ppo.learning_rate=3e-4 num_envs=256", "run folder to continue from")
    train.set_defaults(func=cmd_train)

    distill = sub.add_parser(
        "distill",
        help="distill a privileged teacher into a deployable student",
        description="Distill the teacher CHECKPOINT (trained on TASK with "
        "--set model.actor_group=critic) into a student that sees a history of the "
        "policy observations only. Defaults, then the task's overrides, then --config, "
        "then --set (distill.* fields; ppo.num_steps, ppo.num_minibatches and "
        "ppo.max_grad_norm shape the rollouts and updates).",
        epilog=_config_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    distill.add_argument("task", help="the task the teacher was trained on")
    distill.add_argument("--teacher", metavar="CHECKPOINT", help="teacher checkpoint or run folder")
    _add_run_arguments(
        distill, "distill.history_length=32 max_iterations=200", "distillation run to continue"
    )
    distill.set_defaults(func=cmd_distill)

    play = sub.add_parser(
        "play", help="evaluate a checkpoint (PPO or student); metrics JSON and a video"
    )
    play.add_argument("task", help="the task the checkpoint was trained on")
    play.add_argument("--checkpoint", required=True, help="checkpoint file or run folder")
    play.add_argument("--num-envs", type=int, default=64, help="envs evaluated in parallel")
    play.add_argument("--seed", type=int, default=1, help="seed of the evaluation episodes")
    play.add_argument("-o", "--output", default="play.json", help="metrics JSON file")
    play.add_argument("--video", metavar="FILE", help="render env 0 to FILE (.mp4 or .gif)")
    play.set_defaults(func=cmd_play)

    export = sub.add_parser(
        "export",
        help="export a checkpoint's policy to ONNX with its contract (parity-checked)",
        description="Export the deployable actor of CHECKPOINT (PPO: MLP or recurrent; "
        "distillation: the student) to ONNX, observation normalization inside, the policy "
        "contract in its metadata and beside it as .json. onnxruntime is checked against "
        "torch first; a model that fails the check is not written.",
    )
    export.add_argument("checkpoint", help="checkpoint file or run folder (its latest)")
    export.add_argument("-o", "--output", default="policy.onnx", help="the .onnx file")
    export.add_argument("--task", help="refuse a checkpoint trained on another task")
    export.add_argument("--seed", type=int, default=0, help="seed of the parity observations")
    export.set_defaults(func=cmd_export)

    inspect = sub.add_parser(
        "inspect", help="check a policy file (ONNX + contract) and print its contract"
    )
    inspect.add_argument("policy", help="the .onnx file written by sim2real export")
    inspect.add_argument("--json", action="store_true", help="print the contract as JSON")
    inspect.set_defaults(func=cmd_inspect)

    cli_hil.add_parser(sub)
    cli_sysid.add_parser(sub)
    cli_pipeline.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sim2real`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, OSError, RuntimeError) as error:
        console.print(f"[red]error:[/] {escape(str(error))}")
        return 2
