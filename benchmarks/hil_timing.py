"""HIL timing in real-time mode: policy period error, state-to-command latency, real time.

Prints one JSON object. ``sim2real hil`` (``run_hil``) runs the committed go2-flat policy
(``pretrained/go2-flat``, exported to a temporary folder) against ``sim_robot_node`` with
the ``go2`` profile in real-time mode: physics and PD at 500 Hz on the wall clock, joint
states and IMU at ``--state-rate`` (500 Hz), the policy node at the contract's 50 Hz,
paced by ``--tick-source``: ``state`` (the node's default: a tick on the joint state that
completes a period, the timer as a watchdog) or ``timer`` (its own wall-clock timer).
Both nodes' threads on SCHED_FIFO (robot 50, policy 40; ``--normal-scheduling``: the
default policy), this process (driver and recorder) on normal scheduling below them;
``scheduling`` says what each node got. No faults; the default velocity command cycle.
Figures, from the report, over the run (not the teardown), in ms:

- ``period_error``: ``|period − 20 ms|`` of the policy's ticks (the ``input_stamp``
  header stamps: the node's clock read at each tick); target p99 ≤ 1 ms. Paced by the
  states, a tick follows its state's publication, so this includes the simulated
  robot's own step lateness (a Python loop on a shared machine);
- ``input_period_error``: the same on the robot's clock: from the header stamps of the
  joint states consecutive ticks used (the robot's wall clock at publication);
- ``state_to_command_latency``: from the publication of the joint state a command was
  computed from to the command's arrival at the robot, both read by the robot on the wall
  clock; target p99 ≤ 2 ms; split at the tick into ``state_age_at_tick`` (the state's
  transport and the wait for the tick: up to a state period, 2 ms, with timer pacing)
  and ``tick_to_command`` (the tick's work and the command's transport);
  ``latency_unmatched``: commands the robot could not pair with their tick;
- ``real_time``: the robot's sim time over wall time, its late physics steps (a step
  that started more than one step late) and step lateness p99;
- ``dropped``: messages published but not recorded, commands sent but not received.

``loadavg`` records how busy the machine was (a 2-core machine shared with other work
gives other figures than a quiet one).

    .venv/bin/python benchmarks/hil_timing.py > /tmp/hil_timing.json     # ~75 s
    .venv/bin/python benchmarks/hil_timing.py --seconds 20 --tick-source timer  # compare
    .venv/bin/python benchmarks/hil_timing.py --seconds 20 --normal-scheduling
    .venv/bin/python benchmarks/hil_timing.py --quick                    # 5 s smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from machine import describe_machine
from sim2real_ros.hil_session import HilConfig, run_hil

from sim2real.export.exporter import export_checkpoint

REPO = Path(__file__).resolve().parents[1]
CHECKPOINT = REPO / "pretrained" / "go2-flat" / "model_550.pt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="run length, s")
    parser.add_argument("--state-rate", type=float, default=500.0, help="joint state rate, Hz")
    parser.add_argument(
        "--tick-source",
        choices=("state", "timer"),
        default="state",
        help="policy_node's tick_source: paced by the joint states, or by its timer",
    )
    parser.add_argument(
        "--normal-scheduling",
        action="store_true",
        help="both nodes on normal scheduling (default: SCHED_FIFO, robot 50, policy 40)",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 5 s")
    args = parser.parse_args()
    if args.quick:
        args.seconds = 5.0
    with tempfile.TemporaryDirectory() as tmp:
        policy = Path(tmp) / "go2.onnx"
        export_checkpoint(CHECKPOINT, policy)
        load_before = os.getloadavg()
        report = run_hil(
            HilConfig(
                task="go2-flat",
                policy=policy,
                out_dir=Path(tmp) / "hil",
                duration_s=args.seconds,
                realtime=True,
                state_rate_hz=args.state_rate,
                extra_policy_parameters={"tick_source": args.tick_source},
                realtime_scheduling=not args.normal_scheduling,
            )
        )
    messages = report["messages"]
    result = {
        "benchmark": "hil_timing",
        "mode": report["mode"],
        "seconds": args.seconds,
        "state_rate_hz": args.state_rate,
        "tick_source": args.tick_source,
        "scheduling": report["run"]["scheduling"],
        "physics_rate_hz": report["robot"]["physics_rate_hz"],
        "period_error": report["loop"]["period_error"],
        "input_period_error": report["loop"]["input_period_error"],
        "command_interarrival": report["loop"]["command_interarrival"],
        "state_to_command_latency": report["latency"]["state_to_command"],
        "state_age_at_tick": report["latency"]["state_age_at_tick"],
        "tick_to_command": report["latency"]["tick_to_command"],
        "latency_unmatched": report["latency"]["unmatched"],
        "real_time": {
            "real_time_factor": report["robot"]["real_time_factor"],
            "late_steps": messages.get("late_steps"),
            "step_lateness": report["robot"]["step_lateness"],
        },
        "dropped": {
            "topics": messages["topics"],
            "commands_dropped": messages["commands_dropped"],
        },
        "tracking": report["tracking"],
        "falls": report.get("falls"),
        "safety_events": len(report["safety_events"]),
        "targets": {"period_error_p99_ms": 1.0, "state_to_command_latency_p99_ms": 2.0},
        "loadavg": {"before": load_before, "after": os.getloadavg()},
        "machine": describe_machine(),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
