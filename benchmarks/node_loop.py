"""ROS 2 policy node loop timing: period error at 50 Hz and 500 Hz from the command stamps.

Prints one JSON object. ``policy_node`` (deploy/ros2_ws/src/sim2real_ros) runs as a real
process through its console entry point, on a ROS_DOMAIN_ID of its own with LOCALHOST
discovery, with ``use_joint_trajectory`` on: each command is a
``trajectory_msgs/JointTrajectory`` whose ``header.stamp`` is the node clock read at the
start of its control tick. The policy is go2-flat at its default size (MLP 45 → 128³ →
12, random-init weights: timing does not depend on them), exported with
``export_policy``; the 500 Hz run uses the same file with the contract's
``control_period_s`` rewritten to 0.002 s (the node ticks at the contract's period).

This process plays the robot: joint states (12 joints at the default pose), an upright
IMU and a zero ``/cmd_vel`` at ``--input-hz``, stamped now. It configures and activates
the node, waits for RUNNING (soft start 0.2 + 0.1 s) and records every command for
``--seconds`` per rate. The node's watchdog is 0.2 s, so a hiccup of this process does not
end the run in DAMPING (``final_state`` and ``damping_transitions`` say if it did).

Figures per rate, in µs (``period`` = stamp difference of consecutive commands, nominal P):

- ``stamp_period_error``: ``|period − P|`` from the node's stamps: the timer's jitter as
  the node itself sees it (median, p99, max), plus ``mean_period_us`` and ``late_ticks``
  (periods > 1.5 P: a tick skipped or overrun);
- ``arrival_period_error``: the same from the arrival times at this process (DDS and this
  process's own scheduling added);
- ``latency``: arrival − stamp (tick start to delivery, both on the same clock);
- ``bare_timer``: the same stamp figures for a bare rclpy timer in its own process
  publishing ``std_msgs/Header`` at the same period: what rclpy alone gives on this
  machine at this moment, for comparison (skip with ``--no-bare-timer``).

``loadavg`` records how busy the machine was.

    .venv/bin/python benchmarks/node_loop.py > /tmp/node_loop.json   # ~1 min
    .venv/bin/python benchmarks/node_loop.py --quick                 # smoke run
    .venv/bin/python benchmarks/node_loop.py --realtime-priority 40  # node on SCHED_FIFO
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Twist
from sensor_msgs.msg import Imu, JointState
from std_msgs.msg import Header
from trajectory_msgs.msg import JointTrajectory

from sim2real.export.exporter import export_policy
from sim2real.export.model_file import METADATA_KEY
from sim2real.export.source import source_from_state
from sim2real.policies.config import build_config, to_dict
from sim2real.policies.runner import build_model
from sim2real.sim.tasks import make_env

sys.path.insert(0, os.path.dirname(__file__))
from machine import describe_machine  # noqa: E402
from sim2real_ros.conversions import diagnostic_values, stamp_to_ns  # noqa: E402
from sim2real_ros.testing import (  # noqa: E402
    NodeProcess,
    RosHarness,
    console_script,
    ros_environment,
    run_domain_id,
    wait_for,
    write_parameters,
)

NODE = "policy_node"
RATES_HZ = (50, 500)

BARE_TIMER = """
import sys, rclpy
from std_msgs.msg import Header
rclpy.init()
node = rclpy.create_node("bare_timer")
pub = node.create_publisher(Header, "/bare_timer", 10)
def tick():
    msg = Header()
    msg.stamp = node.get_clock().now().to_msg()
    pub.publish(msg)
node.create_timer(float(sys.argv[1]), tick)
try:
    rclpy.spin(node)
except BaseException:
    pass
"""


def export_go2(folder: Path) -> tuple[Path, list[str], np.ndarray]:
    """Random-init go2-flat policy exported to ``folder``; its joints and default pose."""
    task = "go2-flat"
    config = build_config(task)
    env = make_env(task, 1, nthread=1, randomization="off")
    state = {
        "task": task,
        "config": to_dict(config),
        "model": build_model(config, env).state_dict(),
        "obs_sizes": dict(env.obs_sizes),
        "num_actions": env.num_actions,
        "iteration": 0,
    }
    result = export_policy(source_from_state(state, "untrained go2-flat"), folder / "go2.onnx")
    contract = result.contract
    return result.onnx_path, list(contract.joint_names), np.array(contract.default_joint_pos)


def with_period(path: Path, period_s: float, output: Path) -> Path:
    """A copy of the policy file whose contract says ``control_period_s = period_s``."""
    model = onnx.load(path)
    entry = next(p for p in model.metadata_props if p.key == METADATA_KEY)
    contract = json.loads(entry.value)
    contract["control_period_s"] = period_s
    entry.value = json.dumps(contract)
    output.write_bytes(model.SerializeToString())
    return output


def stats_us(values_s: np.ndarray) -> dict[str, float]:
    """Median, p99 and max of ``values_s`` (s), in µs."""
    values = np.asarray(values_s) * 1e6
    return {
        "median_us": round(float(np.median(values)), 1),
        "p99_us": round(float(np.percentile(values, 99)), 1),
        "max_us": round(float(values.max()), 1),
    }


def period_figures(times_s: np.ndarray, period_s: float) -> dict:
    """Period-error figures of a series of tick times."""
    periods = np.diff(times_s)
    return {
        "samples": int(periods.size),
        "mean_period_us": round(float(periods.mean()) * 1e6, 2),
        "std_period_us": round(float(periods.std()) * 1e6, 2),
        "late_ticks": int(np.count_nonzero(periods > 1.5 * period_s)),
        **stats_us(np.abs(periods - period_s)),
    }


class Robot:
    """The inputs a Go2 driver would publish, and a recorder of the node's commands."""

    def __init__(self, harness: RosHarness, joints: list[str], pose: np.ndarray, input_hz: float):
        self.harness, node = harness, harness.node
        self.joint_msg = JointState(name=joints, position=pose.tolist(), velocity=[0.0] * 12)
        self.imu_msg = Imu()
        self.imu_msg.orientation.w = 1.0
        self.twist = Twist()
        self.joint_pub = node.create_publisher(JointState, "/joint_states", 10)
        self.imu_pub = node.create_publisher(Imu, "/imu/data", 10)
        self.cmd_pub = node.create_publisher(Twist, "/cmd_vel", 10)
        self.records: list[tuple[int, int]] = []  # (stamp ns, arrival ns)
        self.bare: list[tuple[int, int]] = []
        self.bare_seen = 0  # bare-timer messages, recording or not
        self.recording = False
        topic = "/forward_position_controller/joint_trajectory"
        node.create_subscription(
            JointTrajectory, topic, self._record(self.records, lambda m: m.header.stamp), 1000
        )
        node.create_subscription(
            Header, "/bare_timer", self._record(self.bare, lambda m: m.stamp), 1000
        )
        node.create_timer(1.0 / input_hz, self._publish)

    def _record(self, records: list, stamp_of):
        def record(msg):
            if records is self.bare:
                self.bare_seen += 1
            if self.recording:
                records.append((stamp_to_ns(stamp_of(msg)), self.harness.now_ns()))

        return record

    def _publish(self):
        stamp = self.harness.node.get_clock().now().to_msg()
        self.joint_msg.header.stamp = stamp
        self.imu_msg.header.stamp = stamp
        self.joint_pub.publish(self.joint_msg)
        self.imu_pub.publish(self.imu_msg)
        self.cmd_pub.publish(self.twist)

    def record(self, seconds: float, into: list) -> np.ndarray:
        """Record for ``seconds``; (N, 2) stamps and arrivals, s."""
        into.clear()
        self.recording = True
        time.sleep(seconds)
        self.recording = False
        return np.array(into, dtype=np.int64).reshape(-1, 2) * 1e-9


def measure_node(harness: RosHarness, robot: Robot, period_s: float, seconds: float) -> dict:
    """Configure and activate the node, wait for RUNNING, record; then deactivate, clean up."""
    assert harness.change_state(NODE, "configure"), "configure failed"
    time.sleep(0.3)  # inputs reach the node
    assert harness.change_state(NODE, "activate"), "activate failed"
    diagnostics = []
    sub = harness.node.create_subscription(
        DiagnosticArray,
        "/diagnostics",
        lambda msg: diagnostics.append(diagnostic_values(msg, "sim2real: policy_node")),
        10,
    )
    wait_for(lambda: any(d.get("runtime.state") == "running" for d in diagnostics), 10.0)
    data = robot.record(seconds, robot.records)
    diagnostics.clear()
    final = wait_for(lambda: diagnostics[-1] if diagnostics else None, 5.0)
    harness.node.destroy_subscription(sub)
    assert harness.change_state(NODE, "deactivate") and harness.change_state(NODE, "cleanup")
    stamps, arrivals = data[:, 0], data[:, 1]
    return {
        "period_ms": period_s * 1e3,
        "stamp_period_error": period_figures(stamps, period_s),
        "arrival_period_error": period_figures(arrivals, period_s),
        "latency": stats_us(arrivals - stamps),
        "final_state": final.get("runtime.state"),
        # the node's own figures over its last diagnostics window (0.5 s): tick + publish
        "node_compute_mean_us": _us(final.get("loop.compute_mean_s")),
        "node_compute_max_us": _us(final.get("loop.compute_max_s")),
        "runtime_tick_us": _us_text(final.get("runtime.tick_us")),
        "runtime_inference_us": _us_text(final.get("runtime.inference_us")),
    }


def _us(text: str | None) -> float | None:
    """A diagnostics value in s as µs."""
    return round(float(text) * 1e6, 1) if text else None


def _us_text(text: str | None) -> float | None:
    """A diagnostics value already in µs (the runtime's last tick)."""
    return round(float(text), 1) if text else None


def measure_bare_timer(robot: Robot, env: dict, period_s: float, seconds: float) -> dict:
    """The stamp figures of a bare rclpy timer process at ``period_s``."""
    process = subprocess.Popen(
        [sys.executable, "-c", BARE_TIMER, str(period_s)], env=env, start_new_session=True
    )
    try:
        robot.bare_seen = 0
        wait_for(lambda: robot.bare_seen > 10, 30.0)  # started and discovered
        stamps = robot.record(seconds, robot.bare)[:, 0]
    finally:
        os.killpg(process.pid, 2)
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait(5)
    return period_figures(stamps, period_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 1 s smoke run per rate")
    parser.add_argument("--seconds", type=float, default=20.0, help="recording per rate")
    parser.add_argument("--input-hz", type=float, default=200.0, help="joint state/IMU rate")
    parser.add_argument("--no-bare-timer", action="store_true", help="skip the rclpy baseline")
    parser.add_argument(
        "--realtime-priority",
        type=int,
        default=0,
        help="the node's realtime_priority (SCHED_FIFO 1..99; 0: normal scheduling)",
    )

    args = parser.parse_args()
    seconds = 1.0 if args.quick else args.seconds

    report = {
        "benchmark": "node_loop",
        "command": " ".join(sys.argv),
        "machine": describe_machine(),
        "settings": {
            "rates_hz": list(RATES_HZ),
            "seconds_per_rate": seconds,
            "input_hz": args.input_hz,
            "policy": "go2-flat mlp 45 -> 128x3 -> 12 (random init)",
            "command_message": "trajectory_msgs/JointTrajectory",
            "realtime_priority": args.realtime_priority,
        },
        "loadavg_before": list(os.getloadavg()),
    }
    domain_id = run_domain_id(offset=50)
    env = ros_environment(domain_id)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        go2, joints, pose = export_go2(folder)
        policies = {50: go2, 500: with_period(go2, 0.002, folder / "go2-500hz.onnx")}
        params = write_parameters(folder / "params.yaml", NODE, {
            "policy_path": str(policies[RATES_HZ[0]]),
            "joint_names": joints,
            "use_joint_trajectory": True,
            "standup_s": 0.2,
            "fade_s": 0.1,
            "watchdog_s": 0.2,
            "tick_source": "timer",  # what this benchmark measures: the timer-paced loop
            "realtime_priority": args.realtime_priority,
        })  # fmt: skip
        node = NodeProcess(console_script("policy_node"), params, env, folder / "node.log")
        try:
            with RosHarness(domain_id, "node_loop_benchmark") as harness:
                robot = Robot(harness, joints, pose, args.input_hz)
                wait_for(lambda: node.alive() and harness.lifecycle_state(NODE, 20.0), 30.0)
                rows = []
                for rate in RATES_HZ:
                    period = 1.0 / rate
                    results = harness.set_parameters(NODE, {"policy_path": str(policies[rate])})
                    assert all(ok for ok, _ in results), results
                    row = {"rate_hz": rate, **measure_node(harness, robot, period, seconds)}
                    if not args.no_bare_timer:
                        row["bare_timer"] = measure_bare_timer(robot, env, period, seconds)
                    rows.append(row)
                report["rates"] = rows
        except Exception:
            print(node.log(), file=sys.stderr)
            raise
        finally:
            node.stop()
    report["loadavg_after"] = list(os.getloadavg())
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
