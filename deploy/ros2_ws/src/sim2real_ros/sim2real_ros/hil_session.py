"""``run_hil``: one HIL run, ``sim2real hil``'s engine.

Starts ``sim_robot_node`` and ``policy_node`` as separate processes on a private DDS
domain (``testing.ros_environment``), then, from this process:

1. records every robot and policy topic into a rosbag2 (``BagWriter``, raw CDR);
2. configures the policy node once the robot publishes, and activates it once its
   ``/diagnostics`` say it has the robot's sensors (joint states, IMU): activated without
   them, its first tick would latch DAMPING for a missing input;
3. sends the task command schedule (``/cmd_vel`` or ``/target_point``, refreshed every
   ``COMMAND_REFRESH_S``); the robot applies the faults, the operator ones (e-stop,
   reset) included, on its own sim time;
4. after ``duration_s`` (on the policy's clock: sim time in lockstep), stops the robot
   (it writes its statistics), deactivates and stops the policy node, and builds the
   report (``sim2real.deploy.hil.report``) from the bag.

Every wait has a time-out; a node that dies is reported with the end of its log.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PointStamped, Twist
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import TimeReference

from sim2real.deploy.hil.bag import BagWriter
from sim2real.deploy.hil.faults import FaultSchedule
from sim2real.deploy.hil.hil_log import HilLog
from sim2real.deploy.hil.profile import load_profile
from sim2real.deploy.hil.report import hil_report
from sim2real.deploy.hil.schedule import CommandSchedule
from sim2real.deploy.hil.sim_robot import SimRobot
from sim2real.export.model_file import read_policy_model
from sim2real_ros import conversions as conv
from sim2real_ros.policy_node import DIAGNOSTIC_NAME
from sim2real_ros.testing import (
    NodeProcess,
    RosHarness,
    console_script,
    ros_environment,
    run_domain_id,
    wait_for,
    write_parameters,
)

CONTROLLER = "forward_position_controller"
POLICY_NODE = "policy_node"
COMMAND_REFRESH_S = 0.1
STARTUP_TIMEOUT_S = 60.0
RELIABLE = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
#: Real time: the nodes' SCHED_FIFO priorities; the robot's is above the policy's, as the
#: hardware it stands in for would be.
ROBOT_PRIORITY = 50
POLICY_PRIORITY = 40

#: Recorded topics and their types.
RECORDED = {
    "/joint_states": "sensor_msgs/msg/JointState",
    "/imu/data": "sensor_msgs/msg/Imu",
    "/clock": "rosgraph_msgs/msg/Clock",
    f"/{CONTROLLER}/commands": "std_msgs/msg/Float64MultiArray",
    f"/{POLICY_NODE}/gains": "std_msgs/msg/Float64MultiArray",
    f"/{POLICY_NODE}/input_stamp": "sensor_msgs/msg/TimeReference",
    f"/{POLICY_NODE}/events": "diagnostic_msgs/msg/DiagnosticArray",
    "/diagnostics": "diagnostic_msgs/msg/DiagnosticArray",
    "/cmd_vel": "geometry_msgs/msg/Twist",
    "/target_point": "geometry_msgs/msg/PointStamped",
    "/sim/base_pose": "geometry_msgs/msg/PoseStamped",
    "/sim/base_twist": "geometry_msgs/msg/TwistStamped",
    "/sim/ee_position": "geometry_msgs/msg/PointStamped",
}


@dataclass(frozen=True)
class HilConfig:
    """One HIL run.

    Attributes:
        task: the policy's task (checked against its contract).
        policy: the exported ``policy.onnx``.
        out_dir: where the report, node logs and parameter files go.
        robot_profile: a profile file or shipped name; ``None``: the robot's own profile.
        faults: a fault schedule file or shipped name; ``None``: no faults.
        duration_s: run length after the policy's first tick, s (sim time in lockstep).
        record: keep the rosbag2 (MCAP) here; ``None``: record to a temporary folder.
        realtime: wall-clock mode (timing); else lockstep.
        state_rate_hz: joint state and IMU rate, Hz.
        standup_s: the policy node's soft-start ramp, s.
        fade_s: the policy node's fade-in, s.
        seed: seeds the reach targets.
        lockstep_timeout_s: lockstep: wall time the robot waits for a command, s.
        realtime_scheduling: real time: every thread of the robot and of the policy node
            on SCHED_FIFO (``ROBOT_PRIORITY``, ``POLICY_PRIORITY``; ``sim2real_ros.realtime``);
            False: normal scheduling. The driver and recorder (this process) keep normal
            scheduling, below both, as a logger on a robot would.
        extra_policy_parameters: more policy node parameters (``tick_source``...).
    """

    task: str
    policy: Path
    out_dir: Path
    robot_profile: str | None = None
    faults: str | None = None
    duration_s: float = 20.0
    record: Path | None = None
    realtime: bool = False
    state_rate_hz: float = 500.0
    standup_s: float = 2.0
    fade_s: float = 1.0
    seed: int = 0
    lockstep_timeout_s: float = 2.0
    realtime_scheduling: bool = True
    extra_policy_parameters: dict = field(default_factory=dict)


def run_hil(config: HilConfig, progress: Callable[[float], None] | None = None) -> dict:
    """Run it; returns the report, also written to ``out_dir/hil_report.json``.

    Args:
        config: the run.
        progress: called with the seconds done, now and then.

    Raises:
        ValueError: the policy is for another task, or a profile or fault schedule is bad.
        FileNotFoundError: the policy, profile or schedule does not exist.
        RuntimeError: a node died or did not come up in time (its log's end is included).
    """
    policy = Path(config.policy).resolve()
    if not policy.is_file():
        raise FileNotFoundError(f"no policy file {policy}")
    _, contract = read_policy_model(policy.read_bytes(), str(policy))
    if contract.task != config.task:
        raise ValueError(f"{policy} is a {contract.task!r} policy, not {config.task!r}")
    profile_name = config.robot_profile or contract.robot
    if Path(profile_name).is_file():
        profile_name = str(Path(profile_name).resolve())
    profile = load_profile(profile_name)
    if profile.robot != contract.robot:
        raise ValueError(
            f"robot profile {profile_name} is for {profile.robot!r}; the policy drives "
            f"{contract.robot!r}"
        )
    faults = FaultSchedule.from_yaml(config.faults) if config.faults else FaultSchedule()
    has_imu = SimRobot(profile).has_imu
    faults.check_robot(contract.joint_names, has_imu)
    start_s = config.standup_s + config.fade_s
    schedule = CommandSchedule.default(config.task, config.duration_s, start_s, config.seed)

    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="hil-", dir=out_dir))
    bag_path = Path(config.record) if config.record else scratch / "bag"
    stats_path = scratch / "robot_stats.json"
    domain = run_domain_id()
    env = ros_environment(domain)
    lockstep = not config.realtime
    fifo = config.realtime and config.realtime_scheduling
    sim_params = write_parameters(
        scratch / "sim_robot.yaml",
        "sim_robot",
        {
            "robot_profile": profile_name,
            "faults": str(config.faults or ""),
            "mode": "lockstep" if lockstep else "realtime",
            "control_period_s": contract.control_period_s,
            "lockstep_timeout_s": config.lockstep_timeout_s,
            "lockstep_stop_s": config.duration_s if lockstep else 0.0,
            "joint_states_rate_hz": config.state_rate_hz,
            "imu_rate_hz": config.state_rate_hz,
            "controller": CONTROLLER,
            "command_joints": list(contract.joint_names),
            "gains_topic": f"/{POLICY_NODE}/gains",
            "input_stamp_topic": f"/{POLICY_NODE}/input_stamp",
            "stats_path": str(stats_path),
            "operator_node": f"/{POLICY_NODE}",
            "realtime_priority": ROBOT_PRIORITY if fifo else 0,
        },
    )
    policy_params = write_parameters(
        scratch / "policy_node.yaml",
        POLICY_NODE,
        {
            "policy_path": str(policy),
            "joint_names": list(contract.joint_names),
            "task": contract.task,
            "controller": CONTROLLER,
            "publish_gains": True,
            "standup_s": config.standup_s,
            "fade_s": config.fade_s,
            "use_sim_time": lockstep,
            "realtime_priority": POLICY_PRIORITY if fifo else 0,
            **config.extra_policy_parameters,
        },
    )
    sim = NodeProcess(console_script("sim_robot_node"), sim_params, env, out_dir / "sim_robot.log")
    node = NodeProcess(
        console_script("policy_node"), policy_params, env, out_dir / "policy_node.log"
    )
    harness, session = None, None
    try:
        harness = RosHarness(domain, "sim2real_hil")
        sensors = ("joint_states", "imu") if has_imu else ("joint_states",)
        session = _Session(harness, bag_path, schedule, lockstep, (sim, node), sensors)
        session.run(config.duration_s, progress)
        # the robot stops first (it writes its statistics), then the policy is deactivated
        # (in lockstep its clock stopped at duration_s: no tick after the robot's last state)
        stop_requested_ns = time.time_ns()
        sim.stop(timeout=10.0)
        harness.change_state(POLICY_NODE, "deactivate")
        time.sleep(0.3)  # the last messages reach the recorder
    finally:
        if harness is not None:
            harness.close()  # no recorder callback runs after this
        if session is not None:
            session.bag.close()
        node.stop()
        sim.stop(timeout=10.0)
    if not stats_path.is_file():
        raise RuntimeError(f"sim_robot_node wrote no statistics:\n{_tail(sim)}")
    stats = json.loads(stats_path.read_text())
    stats["stop_requested_ns"] = stop_requested_ns
    log = HilLog.from_bag(bag_path, CONTROLLER, POLICY_NODE)
    report = hil_report(log, contract, schedule, faults, stats, config.duration_s)
    report["run"] = {
        "policy": str(policy),
        "graph_sha256": contract.graph_sha256,
        "robot_profile": profile_name,
        "faults": str(config.faults) if config.faults else None,
        "bag": str(bag_path) if config.record else None,
        "state_rate_hz": config.state_rate_hz,
        "scheduling": {"robot": stats.get("scheduling"), "policy": session.policy_scheduling},
    }
    (out_dir / "hil_report.json").write_text(json.dumps(report, indent=2))
    shutil.rmtree(scratch, ignore_errors=True)
    return report


def _tail(process: NodeProcess, lines: int = 30) -> str:
    return "\n".join(process.log().splitlines()[-lines:])


class _Session:
    """The driving side of one run: recording, lifecycle, task commands."""

    def __init__(
        self,
        harness: RosHarness,
        bag_path: Path,
        schedule: CommandSchedule,
        lockstep: bool,
        processes: tuple[NodeProcess, NodeProcess],
        sensors: tuple[str, ...],
    ):
        self.harness, self.schedule, self.processes = harness, schedule, processes
        self._sensor_keys = [f"{sensor}_receipt_age_s" for sensor in sensors]
        node = harness.node
        if lockstep:
            node.set_parameters([Parameter("use_sim_time", value=True)])
        self.bag = BagWriter(bag_path, check_cdr=False)  # raw subscription bytes are exact
        for topic, msgtype in RECORDED.items():
            self.bag.add_topic(topic, msgtype)
            node.create_subscription(
                _message_class(msgtype), topic, self._recorder(topic), RELIABLE, raw=True
            )
        self.t0_ns: int | None = None
        node.create_subscription(
            TimeReference, f"/{POLICY_NODE}/input_stamp", self._on_tick, RELIABLE
        )
        self.policy_has_sensors = False
        self.policy_scheduling: str | None = None
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, RELIABLE)
        if schedule.kind == "velocity":
            self._command_pub = node.create_publisher(Twist, "/cmd_vel", RELIABLE)
        else:
            self._command_pub = node.create_publisher(PointStamped, "/target_point", RELIABLE)
        self._last_sent: tuple[int, np.ndarray] | None = None

    def _recorder(self, topic: str) -> Callable[[bytes], None]:
        def record(data: bytes) -> None:
            self.bag.write(topic, time.time_ns(), data)

        return record

    def _on_tick(self, msg: TimeReference) -> None:
        if self.t0_ns is None:
            self.t0_ns = conv.stamp_to_ns(msg.header.stamp)

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        values = conv.diagnostic_values(msg, DIAGNOSTIC_NAME)
        self.policy_scheduling = values.get("scheduling", self.policy_scheduling)
        if all(key in values for key in self._sensor_keys):
            self.policy_has_sensors = True

    def _check_alive(self) -> None:
        for process in self.processes:
            if not process.alive():
                name = process.log_path.stem
                raise RuntimeError(
                    f"{name} exited ({process.process.returncode}):\n{_tail(process)}"
                )

    def run(self, duration_s: float, progress: Callable[[float], None] | None) -> None:
        """Bring the policy up, drive the run for ``duration_s``, take the policy down."""
        harness = self.harness
        start = time.monotonic()
        wait_for(
            lambda: self._check_alive() or self.bag.message_counts.get("/joint_states", 0) > 0,
            STARTUP_TIMEOUT_S,
        )
        self._send_command(0.0)
        remaining = STARTUP_TIMEOUT_S - (time.monotonic() - start)
        if not harness.change_state(POLICY_NODE, "configure", timeout=max(remaining, 10.0)):
            raise RuntimeError(f"policy_node failed to configure:\n{_tail(self.processes[1])}")
        wait_for(lambda: self._check_alive() or self.policy_has_sensors, STARTUP_TIMEOUT_S)
        if not harness.change_state(POLICY_NODE, "activate"):
            raise RuntimeError(f"policy_node failed to activate:\n{_tail(self.processes[1])}")
        wait_for(lambda: self._check_alive() or self.t0_ns is not None, STARTUP_TIMEOUT_S)
        while True:
            self._check_alive()
            elapsed = (harness.now_ns() - self.t0_ns) * 1e-9
            self._send_command(elapsed)
            if progress is not None:
                progress(min(elapsed, duration_s))
            if elapsed >= duration_s:
                break
            time.sleep(0.002)

    def _send_command(self, elapsed: float) -> None:
        """The schedule's command, when it changes and every ``COMMAND_REFRESH_S``."""
        now = self.harness.now_ns()
        value = self.schedule.at(max(elapsed, 0.0))
        if self._last_sent is not None:
            sent_ns, sent = self._last_sent
            if np.array_equal(sent, value) and (now - sent_ns) * 1e-9 < COMMAND_REFRESH_S:
                return
        if self.schedule.kind == "velocity":
            msg = Twist()
            msg.linear.x, msg.linear.y, msg.angular.z = (float(v) for v in value)
        else:
            msg = PointStamped()
            msg.header.stamp, msg.header.frame_id = conv.ns_to_stamp(now), "base"
            msg.point.x, msg.point.y, msg.point.z = (float(v) for v in value)
        self._command_pub.publish(msg)
        self._last_sent = (now, value)


def _message_class(msgtype: str):
    """The rclpy message class of ``pkg/msg/Name``."""
    package, _, name = msgtype.split("/")
    module = __import__(f"{package}.msg", fromlist=[name])
    return getattr(module, name)
