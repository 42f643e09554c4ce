"""``sim2real pipeline``: train, export, HIL-verify, identify, fine-tune, HIL again, report."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rich.console import Console

from sim2real.pipeline.run_folder import STAGES

console = Console()

DESCRIPTION = (
    "The whole sim-to-real loop in one run folder: train TASK with PPO, export the policy "
    "to ONNX (parity-checked), run it against a simulated robot with hidden parameters "
    "over ROS 2 with a fault schedule (recorded), identify the robot from that log, "
    "fine-tune on the identified randomization ranges, run the HIL test again and write an "
    "HTML report. Running it again on the same --run-dir skips the finished stages "
    "(a crashed training resumes from its checkpoint); --from STAGE redoes STAGE and the "
    f"ones after it. Stages: {', '.join(STAGES)}."
)

#: Option → PipelineConfig field, for the options given on the command line.
FIELDS = {
    "task": "task",
    "robot_profile": "robot_profile",
    "faults": "faults",
    "train_iterations": "train_iterations",
    "finetune_iterations": "finetune_iterations",
    "num_envs": "num_envs",
    "init_checkpoint": "init_checkpoint",
    "hil_duration": "hil_duration_s",
    "sysid_seconds": "sysid_seconds",
    "state_rate": "state_rate_hz",
    "seed": "seed",
    "video": "video",
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``pipeline`` on the top-level subparsers."""
    parser = sub.add_parser(
        "pipeline", help="train → export → HIL → sysid → fine-tune → HIL → report",
        description=DESCRIPTION,
    )  # fmt: skip
    parser.add_argument("--task", help="arm-reach (default) or go2-flat, or any task")
    parser.add_argument(
        "--robot-profile", help="HIL robot: profile YAML or shipped name (default <robot>-hidden)"
    )
    parser.add_argument("--faults", help="HIL fault schedule: YAML or shipped name (standard)")
    parser.add_argument("--train-iterations", type=int, help="PPO iterations (arm-reach: 70)")
    parser.add_argument(
        "--finetune-iterations", type=int, help="fine-tune iterations (a third of training)"
    )
    parser.add_argument("--num-envs", type=int, help="training envs (the task's default)")
    parser.add_argument(
        "--init-checkpoint", help="train on from this checkpoint instead of from scratch"
    )
    parser.add_argument("--hil-duration", type=float, help="s per HIL run (default: fits it)")
    parser.add_argument("--sysid-seconds", type=float, help="s of fault-free log for sysid (20)")
    parser.add_argument("--state-rate", type=float, help="HIL joint-state rate, Hz (500)")
    parser.add_argument("--seed", type=int, help="training and HIL seed (0)")
    parser.add_argument(
        "--no-video", dest="video", action="store_const", const=False, help="no GIF in the report"
    )
    parser.add_argument(
        "--run-dir", help="the run folder (default runs/pipeline-<task>-<time>); reopens a run"
    )
    parser.add_argument("--from", dest="first", choices=STAGES, help="redo from this stage")
    parser.add_argument("--to", dest="last", choices=STAGES, help="stop after this stage")
    parser.set_defaults(func=cmd_pipeline)


def cmd_pipeline(args: argparse.Namespace) -> int:
    """Open (or create) the run folder and run the stages."""
    from sim2real.pipeline.config import PipelineConfig
    from sim2real.pipeline.run_folder import RunFolder
    from sim2real.pipeline.runner import run_pipeline

    changes = {
        field: getattr(args, option)
        for option, field in FIELDS.items()
        if getattr(args, option) is not None
    }
    if args.init_checkpoint:
        changes["init_checkpoint"] = str(Path(args.init_checkpoint).resolve())
    task = changes.get("task", PipelineConfig.task)
    root = Path(args.run_dir or f"runs/pipeline-{task}-{time.strftime('%Y%m%d-%H%M%S')}")
    run = RunFolder.open(root, changes)
    console.print(f"[bold]sim2real pipeline[/] {run.config.task} in {run.root}")
    started = time.perf_counter()
    run_pipeline(run, console, args.first, args.last)
    console.print(f"pipeline done in {time.perf_counter() - started:.0f} s")
    if run.done("report"):
        console.print(f"report: [bold]{run.artifact('report', 'page')}[/]")
    return 0
