"""``sim2real sysid``: excite a robot, identify it from its log, write randomization ranges."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

console = Console()

DESCRIPTION = (
    "System identification: `excite` drives a simulated robot (a HIL robot profile) with "
    "per-joint multi-sine or chirp targets through the deploy safety filters and records "
    "the log; `fit` identifies the robot from a log (rosbag2 from `sim2real hil --record`, "
    "an npz or CSV log): Kp/Kd scale per joint and the command delay from the efforts; "
    "with a fixed base (an arm, or a legged robot on a stand) also damping, armature and "
    "friction loss per joint and the links' mass scale by trajectory matching. It writes "
    "randomization ranges for `sim2real train --randomization` and an HTML report."
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``sysid`` with its ``excite`` and ``fit`` subcommands."""
    sysid = sub.add_parser("sysid", help="identify the robot from logs", description=DESCRIPTION)
    commands = sysid.add_subparsers(dest="sysid_command", required=True)

    excite = commands.add_parser("excite", help="excite a simulated robot and record its log")
    excite.add_argument(
        "--robot-profile", required=True, help="HIL profile: file or shipped name (panda-hidden)"
    )
    excite.add_argument("--signal", default="multisine", choices=("multisine", "chirp"))
    excite.add_argument("--duration", type=float, default=60.0, help="seconds of excitation")
    excite.add_argument("--amplitude", type=float, default=0.3, help="fraction of the joint range")
    excite.add_argument("--seed", type=int, default=0, help="seeds the multi-sine")
    excite.add_argument("-o", "--output", default="excite.npz", help="the log (.npz)")
    excite.set_defaults(func=cmd_excite)

    fit = commands.add_parser("fit", help="identify a robot from a log; write ranges")
    fit.add_argument("--log", required=True, help="rosbag2 folder, .npz, or CSV stem")
    fit.add_argument("--robot", required=True, choices=("panda", "go2"), help="the robot")
    fit.add_argument("--stand", action="store_true", help="a legged robot's log on a stand")
    fit.add_argument("--task", help="the task the ranges are for (default: the robot's)")
    fit.add_argument("--physics-rate", type=float, help="the robot's loop rate, Hz (default: log)")
    fit.add_argument(
        "--start", type=float, default=0.0, help="fit from this many s after the first command"
    )
    fit.add_argument("--end", type=float, help="fit up to this many s after the first command")
    fit.add_argument(
        "--truth-profile", help="compare with a HIL profile's hidden values (validation)"
    )
    fit.add_argument("--report", help="report folder (default: <output>_report)")
    fit.add_argument("-o", "--output", default="ranges.yaml", help="randomization ranges YAML")
    fit.set_defaults(func=cmd_fit)


def cmd_excite(args: argparse.Namespace) -> int:
    """Excite a simulated robot and write its log."""
    from sim2real.deploy.hil.profile import load_profile
    from sim2real.deploy.hil.sim_robot import SimRobot
    from sim2real.sysid.excitation import excitation_targets, run_excitation

    profile = load_profile(args.robot_profile)
    robot = SimRobot(profile).robot
    t, targets = excitation_targets(
        robot, args.signal, args.duration, amplitude=args.amplitude, seed=args.seed
    )
    with console.status(f"exciting {profile.robot} for {args.duration:g} s"):
        log = run_excitation(profile, t, targets)
    log.to_npz(args.output)
    console.print(f"wrote {args.output}: {log.duration:.1f} s, {len(log.command_t)} commands")
    return 0


def cmd_fit(args: argparse.Namespace) -> int:
    """Identify the robot; write the ranges and the report."""
    from sim2real.randomization import config as rconfig
    from sim2real.sysid.robot_log import load_log

    log = load_log(args.log)
    if args.start or args.end is not None:
        log = log.window(args.start, args.end)
    truth = None
    if args.truth_profile:
        from sim2real.deploy.hil.profile import load_profile
        from sim2real.sysid.validation import profile_truth

        truth = profile_truth(load_profile(args.truth_profile))
    report = Path(args.report or f"{Path(args.output).with_suffix('')}_report")
    _, page = fit_and_write(
        log, args.robot, args.task or rconfig.ROBOT_DEFAULTS[args.robot], Path(args.output),
        report, truth, stand=args.stand,
        physics_dt=1.0 / args.physics_rate if args.physics_rate else None,
    )  # fmt: skip
    console.print(f"ranges: {args.output} (train with --randomization {args.output})")
    console.print(f"report: {page}")
    return 0


def fit_and_write(
    log, robot: str, task: str, ranges: Path, report: Path, truth: dict | None = None,
    stand: bool = False, physics_dt: float | None = None,
):  # fmt: skip
    """Identify ``robot`` from ``log``; write the ranges and the report; print the summary.

    Writes the ``ranges`` YAML for ``task`` and the ``report`` folder, prints the summary
    table and the notes, and returns the identification and the report's page. ``truth``:
    a HIL profile's hidden values (``validation.profile_truth``), compared in the report.
    """
    from sim2real.randomization import config as rconfig
    from sim2real.sim.tasks import make_env
    from sim2real.sysid.identify import identify, robot_facts
    from sim2real.sysid.report import write_report

    with console.status(f"identifying {robot} from {log.duration:.1f} s of log"):
        identification = identify(log, robot_facts(robot, stand), robot, stand, physics_dt)
    control_period = make_env(task, num_envs=1, nthread=1).step_dt
    rconfig.dump(identification.ranges(task, control_period), ranges)
    page = write_report(identification, report, truth)
    console.print(summary_table(identification))
    for note in identification.notes:
        console.print(f"[yellow]note:[/] {note}")
    return identification, page


def summary_table(identification) -> Table:
    """Identified values, joint by joint (95 % half-widths in parentheses)."""
    table = Table(title=f"sysid: {identification.robot}")
    table.add_column("joint")
    names = list(identification.values)
    for name in names:
        table.add_column(name)
    for j, joint in enumerate(identification.joint_names):
        cells = [
            f"{identification.values[n][j]:.4g} (±{identification.half_widths[n][j]:.2g})"
            for n in names
        ]
        table.add_row(joint, *cells)
    table.caption = f"delay {identification.delay_s * 1e3:.1f} ms"
    if identification.link_mass_scale is not None:
        table.caption += f", link mass scale {identification.link_mass_scale:.4g}"
    return table
