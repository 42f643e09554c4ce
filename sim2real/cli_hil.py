"""``sim2real hil``: run an exported policy against the simulated robot over ROS 2."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

console = Console()

DESCRIPTION = (
    "Start sim_robot_node (a MuJoCo robot with the hidden parameters of a robot profile) and "
    "policy_node (the deploy runtime that drives real robots) as separate processes, drive a "
    "command schedule (velocity commands for go2, targets for the arm), inject the faults of "
    "a schedule, and write a JSON report: tracking, falls, safety events, loop timing, "
    "state-to-command latency, dropped messages. Lockstep by default (sim time advances as "
    "fast as the policy keeps up); --realtime for timing. Shipped robot profiles: go2, "
    "go2-hidden, go2-stand-hidden, panda, panda-hidden, point; fault schedules: standard, "
    "panda-all, go2-all (sim2real/deploy/hil/profiles and fault_schedules)."
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``hil`` on the top-level subparsers."""
    hil = sub.add_parser(
        "hil", help="run a policy against the simulated robot on ROS 2", description=DESCRIPTION
    )
    hil.add_argument("task", help="the policy's task")
    hil.add_argument("--policy", required=True, help="policy.onnx from sim2real export")
    hil.add_argument(
        "--robot-profile", help="profile YAML or shipped name (default: the robot's own)"
    )
    hil.add_argument("--faults", help="fault schedule YAML or shipped name (default: none)")
    hil.add_argument("--duration", type=float, default=20.0, help="seconds after the policy starts")
    hil.add_argument("--record", metavar="BAG", help="keep the rosbag2 (MCAP) in this folder")
    hil.add_argument("--realtime", action="store_true", help="wall-clock mode (timing)")
    hil.add_argument(
        "--normal-scheduling",
        action="store_true",
        help="real time: leave both nodes on normal scheduling (default: SCHED_FIFO, robot "
        "50 and policy 40, where permitted)",
    )
    hil.add_argument("--state-rate", type=float, default=500.0, help="joint state / IMU rate, Hz")
    hil.add_argument("--standup", type=float, default=2.0, help="soft-start ramp, s")
    hil.add_argument("--fade", type=float, default=1.0, help="soft-start fade-in, s")
    hil.add_argument("--seed", type=int, default=0, help="seeds the reach targets")
    hil.add_argument("-o", "--out-dir", default="hil", help="report, node logs")
    hil.set_defaults(func=cmd_hil)


def cmd_hil(args: argparse.Namespace) -> int:
    """Run one HIL session and print its summary."""
    from sim2real_ros.hil_session import HilConfig, run_hil

    if args.duration <= 0:
        raise ValueError(f"--duration must be > 0 s, got {args.duration}")
    if args.record and Path(args.record).exists():
        raise FileExistsError(f"--record {args.record} exists: choose a new folder")
    config = HilConfig(
        task=args.task,
        policy=Path(args.policy),
        out_dir=Path(args.out_dir),
        robot_profile=args.robot_profile,
        faults=args.faults,
        duration_s=args.duration,
        record=Path(args.record) if args.record else None,
        realtime=args.realtime,
        state_rate_hz=args.state_rate,
        standup_s=args.standup,
        fade_s=args.fade,
        seed=args.seed,
        realtime_scheduling=not args.normal_scheduling,
    )
    columns = (TextColumn("{task.description}"), BarColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(f"HIL {args.task}", total=args.duration)
        report = run_hil(config, lambda done: bar.update(task, completed=done))
    console.print(summary_table(report))
    console.print(f"report: {Path(args.out_dir) / 'hil_report.json'}")
    if args.record:
        console.print(f"bag: {args.record}")
    return 0


def summary_table(report: dict) -> Table:
    """The report's headline figures."""
    table = Table(title=f"HIL {report['task']} ({report['mode']}, {report['duration_s']:g} s)")
    table.add_column("figure")
    table.add_column("value")
    for figure, value in summary_rows(report):
        table.add_row(figure, value)
    return table


def summary_rows(report: dict) -> list[tuple[str, str]]:
    """The report's headline figures as (figure, value with its unit) pairs."""
    rows = []
    tracking = report["tracking"]
    if tracking["kind"] == "velocity":
        rows.append(("lin. velocity error", _fmt(tracking["lin_vel_error"], "m/s")))
        rows.append(("yaw rate error", _fmt(tracking["yaw_rate_error"], "rad/s")))
    else:
        rows.append(("end-effector error", _fmt(tracking["ee_error"], "m")))
    if "falls" in report:
        rows.append(("falls", str(report["falls"]["count"])))
    rows.append(("safety events", str(len(report["safety_events"]))))
    rows.append(("faults injected", str(len(report["faults"]))))
    period = report["loop"]["period_error"]
    rows.append((f"period error p99 ({report['loop']['clock']})", _fmt(period["p99_ms"], "ms")))
    latency = report["latency"]["state_to_command"] or {}
    rows.append(("state→command latency p50 / p99", _pair(latency, "ms")))
    scheduling = report.get("run", {}).get("scheduling")
    if report["mode"] == "realtime" and scheduling:
        pair = f"{scheduling['robot']} / {scheduling['policy']}"
        rows.append(("scheduling robot / policy", pair))
    rows.append(("commands dropped", str(report["messages"]["commands_dropped"])))
    rows.append(("commands outside limits", str(report["limits"]["commands_outside_limits"])))
    return rows


def _fmt(value, unit: str) -> str:
    return "n/a" if value is None else f"{value:.4g} {unit}"


def _pair(stats: dict, unit: str) -> str:
    if stats.get("p50_ms") is None:
        return "n/a"
    return f"{stats['p50_ms']:.3g} / {stats['p99_ms']:.3g} {unit}"
