"""``sim_robot_node``: a simulated robot that speaks a real robot driver's ROS 2 interface.

A thin node over ``sim2real.deploy.hil`` (``SimRobot``: one MuJoCo robot with the hidden
parameters of a robot profile; ``RobotDriver``: sensor schedule, faults, commands,
statistics). It publishes what a ros2_control robot publishes and takes what the
``policy_node`` sends:

- out: ``/joint_states`` (``sensor_msgs/JointState``: position, velocity, effort) and
  ``/imu/data`` (``sensor_msgs/Imu``, robots with an IMU) at their rates; ``/clock`` (sim
  time; ``clock_rate_hz`` in real time); the ground truth a real robot does not have,
  for reports: ``/sim/base_pose`` (``geometry_msgs/PoseStamped``, world frame) and
  ``/sim/base_twist`` (``geometry_msgs/TwistStamped``, base frame) for a floating base,
  ``/sim/ee_position`` (``geometry_msgs/PointStamped``, world frame) for an arm.
- in: ``/<controller>/commands`` (``std_msgs/Float64MultiArray``, one target per joint in
  ``command_joints`` order, as forward_command_controller takes), the policy's per-command
  gains (``gains_topic``: Kp then Kd; DAMPING sends Kp = 0) and the stamp of the joint
  state each command was computed from (``input_stamp_topic``, for the latency figures).

Two modes (parameter ``mode``):

- ``realtime``: physics steps on the wall clock at the profile's rate; header stamps are
  the wall clock (the policy node runs on it); for timing. ``realtime_priority`` puts the
  node's threads (physics, executor, DDS) on SCHED_FIFO, as a robot's driver loop is
  (``sim2real_ros.realtime``).
- ``lockstep``: sim time advances one control period at a time; header stamps are sim
  time, and ``/clock`` is published only at period boundaries, after the period's sensor
  messages, so the policy node (``use_sim_time``) ticks exactly once per period on fresh
  data. The sim then waits for the tick's command (up to ``lockstep_timeout_s`` of wall
  time; before the first command, one control period, so an idle robot runs in about
  real time). Deterministic enough for CI and faster than real time. With
  ``lockstep_stop_s`` the sim time stands still that long after the first command (the
  run's end, exact however late the node is stopped).

Faults (parameter ``faults``, ``sim2real.deploy.hil.faults``): the robot applies its own
(sensor, command-delay and push faults) and, as the HIL rig's operator, calls the
policy node's ``estop`` and ``reset`` services (under ``operator_node``) on sim time: in
lockstep before the period's ``/clock`` goes out, waiting for the answer, so the policy's
next tick already sees the e-stop; in real time without waiting.

On shutdown the statistics go to ``stats_path`` (JSON), if set.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import numpy as np
import rclpy
from geometry_msgs.msg import PointStamped, PoseStamped, TwistStamped
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Imu, TimeReference
from sensor_msgs.msg import JointState as JointStateMsg
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import Trigger

from sim2real.deploy.hil.faults import OPERATOR_KINDS, FaultInjector, FaultSchedule
from sim2real.deploy.hil.profile import load_profile
from sim2real.deploy.hil.robot_driver import (
    NS_PER_S,
    JointCommand,
    LatencyTracker,
    RobotDriver,
    SensorRates,
    steps_between,
)
from sim2real.deploy.hil.sim_robot import SimRobot
from sim2real.deploy.hil.statistics import summarize
from sim2real_ros import conversions as conv
from sim2real_ros.parameters import parameter_value
from sim2real_ros.realtime import NORMAL, node_scheduling

NODE_NAME = "sim_robot"
MODES = ("realtime", "lockstep")
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
SERVICE_TIMEOUT_S = 5.0

#: name -> default (an empty list: a STRING_ARRAY that may stay unset).
PARAMETERS: dict[str, object] = {
    "robot_profile": "",  # a profile file or a shipped profile's name (go2, panda-hidden...)
    "faults": "",  # a fault schedule file or a shipped schedule's name; "": none
    "mode": "realtime",
    "control_period_s": 0.02,  # lockstep: sim time advanced per command
    "lockstep_timeout_s": 2.0,  # lockstep: wall time to wait for a command, s
    "lockstep_stop_s": 0.0,  # lockstep: sim time after the first command to stop at, s; 0: never
    "joint_states_rate_hz": 500.0,
    "imu_rate_hz": 500.0,
    "ground_truth_rate_hz": 50.0,
    "clock_rate_hz": 100.0,  # realtime: /clock rate (lockstep: once per control period)
    "controller": "forward_position_controller",
    "command_joints": Parameter.Type.STRING_ARRAY,  # the command arrays' order; unset: robot's
    "gains_topic": "/policy_node/gains",  # "": commands carry no gains
    "input_stamp_topic": "/policy_node/input_stamp",
    "imu_frame": "imu",
    # realtime: SCHED_FIFO priority of the node's threads (1..99, needs the privilege; a
    # warning and normal scheduling without it); 0: normal scheduling. Lockstep ignores it:
    # it runs flat out.
    "realtime_priority": 0,
    "stats_path": "",
    "operator_node": "/policy_node",  # whose estop/reset services operator faults call; "": none
}


class SimRobotNode(Node):
    """The simulated robot's node; see the module docstring."""

    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        for name, default in PARAMETERS.items():
            self.declare_parameter(name, default)
        param = self._param
        mode = param("mode")
        if mode not in MODES:
            raise ValueError(f"parameter mode must be one of {MODES}, got {mode!r}")
        if not param("robot_profile"):
            raise ValueError("parameter robot_profile is not set (a file or a shipped name)")
        self.lockstep = mode == "lockstep"
        profile = load_profile(param("robot_profile"))
        self.robot = SimRobot(profile)
        schedule = FaultSchedule.from_yaml(param("faults")) if param("faults") else None
        schedule = schedule or FaultSchedule()
        schedule.check_robot(self.robot.joint_names, self.robot.has_imu)
        operator = param("operator_node")
        self._operator_faults = list(schedule.of_kinds(OPERATOR_KINDS)) if operator else []
        self._operator = {
            kind: self.create_client(Trigger, f"{operator}/{kind}")
            for kind in {fault.kind for fault in self._operator_faults}
        }
        rates = SensorRates(
            param("joint_states_rate_hz"), param("imu_rate_hz"), param("ground_truth_rate_hz")
        )
        stamp_clock = None if self.lockstep else time.time_ns
        self.driver = RobotDriver(
            self.robot, FaultInjector(schedule), rates, self._publish, stamp_clock
        )
        self.latency = LatencyTracker(wall_stamps=not self.lockstep)
        self.period_steps = max(1, round(param("control_period_s") / self.robot.physics_dt))
        self._order = _command_order(self.robot.joint_names, param("command_joints"))
        self._lock = threading.Lock()
        self._command_ready = threading.Event()
        self._stop = threading.Event()
        self._targets: np.ndarray | None = None
        self._gains: np.ndarray | None = None
        self._expect_gains = bool(param("gains_topic"))
        self._imu_frame = param("imu_frame")
        self._arrivals_ns: list[int] = []
        self._lockstep_timeouts = 0
        self._late_steps = 0
        self._step_lateness: list[float] = []
        self._wall_start = time.perf_counter()
        self.scheduling = NORMAL

        self._pubs = {
            "joint_states": self.create_publisher(JointStateMsg, "/joint_states", RELIABLE),
            "imu": self.create_publisher(Imu, "/imu/data", RELIABLE),
            "clock": self.create_publisher(Clock, "/clock", RELIABLE),
            "base_pose": self.create_publisher(PoseStamped, "/sim/base_pose", RELIABLE),
            "base_twist": self.create_publisher(TwistStamped, "/sim/base_twist", RELIABLE),
            "ee_position": self.create_publisher(PointStamped, "/sim/ee_position", RELIABLE),
        }
        topic = f"/{param('controller')}/commands"
        self.create_subscription(Float64MultiArray, topic, self._on_targets, RELIABLE)
        if self._expect_gains:
            self.create_subscription(
                Float64MultiArray, param("gains_topic"), self._on_gains, RELIABLE
            )
        if param("input_stamp_topic"):
            self.create_subscription(
                TimeReference, param("input_stamp_topic"), self._on_input_stamp, RELIABLE
            )
        self._thread = threading.Thread(target=self._run, name="physics", daemon=True)
        self.get_logger().info(
            f"{profile.robot} ({param('robot_profile')}) in {mode} mode at "
            f"{1.0 / self.robot.physics_dt:.0f} Hz physics; commands on {topic}"
        )

    def _param(self, name: str):
        """A parameter's value; ``None`` for an unset one."""
        return parameter_value(self, name)

    def start(self) -> None:
        """Apply ``realtime_priority`` (real time only), then start the physics thread."""
        if not self.lockstep:
            self.scheduling = node_scheduling(self._param("realtime_priority"), self.get_logger())
        self._thread.start()

    def stop(self) -> None:
        """Stop the physics thread and wait for it."""
        self._stop.set()
        self._command_ready.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)

    # -- commands (executor thread) ---------------------------------------------------------

    def _on_targets(self, msg: Float64MultiArray) -> None:
        now = time.time_ns()
        self._arrivals_ns.append(now)
        self.latency.command(now)
        self._targets = np.asarray(msg.data, dtype=np.float64)
        if not self._expect_gains:
            self._deliver()

    def _on_gains(self, msg: Float64MultiArray) -> None:
        self._gains = np.asarray(msg.data, dtype=np.float64)
        if self._targets is not None:
            self._deliver()

    def _on_input_stamp(self, msg: TimeReference) -> None:
        self.latency.input_stamp(conv.stamp_to_ns(msg.time_ref), conv.stamp_to_ns(msg.header.stamp))

    def _deliver(self) -> None:
        """Hand the assembled command (controller order -> robot order) to the driver."""
        targets, gains = self._targets, self._gains
        self._targets = None
        kp = kd = None
        joints = len(self._order)
        if gains is not None and gains.size == 2 * joints:
            kp, kd = gains[:joints][self._order], gains[joints:][self._order]
        if targets.size == joints:
            targets = targets[self._order]
        with self._lock:
            self.driver.command(JointCommand(targets, kp, kd))
        self._command_ready.set()

    # -- physics thread ----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            if self.lockstep:
                self._run_lockstep()
            else:
                self._run_realtime()
        except Exception as error:  # the robot is gone: report it and stop the node
            self.get_logger().fatal(f"physics thread failed: {type(error).__name__}: {error}")
            rclpy.try_shutdown(context=self.context)
            raise

    def _run_lockstep(self) -> None:
        period_wall = self.period_steps * self.robot.physics_dt
        timeout = self._param("lockstep_timeout_s")
        stop_ns = round(self._param("lockstep_stop_s") * NS_PER_S)
        settle = 0.001  # lets the period's sensor messages arrive before /clock moves on
        while not self._stop.is_set():
            t0_ns = self.driver.t0_ns
            if stop_ns > 0 and t0_ns is not None and self.driver.time_ns - t0_ns >= stop_ns:
                self._stop.wait()  # the run's end: sim time stands still until stopped
                break
            with self._lock:
                self.driver.step(self.period_steps)
            self._call_operator_faults(wait=True)
            time.sleep(settle)
            self._command_ready.clear()
            self._publish_clock()
            engaged = self.driver.t0_ns is not None
            if not self._command_ready.wait(timeout if engaged else period_wall) and engaged:
                self._lockstep_timeouts += 1

    def _run_realtime(self) -> None:
        dt = self.robot.physics_dt
        clock_every = steps_between(self._param("clock_rate_hz"), dt)
        start = time.perf_counter()
        step = 0
        while not self._stop.is_set():
            step += 1
            deadline = start + step * dt
            delay = deadline - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            with self._lock:
                self.driver.step(1)
            self._call_operator_faults(wait=False)
            lateness = time.perf_counter() - deadline
            self._step_lateness.append(lateness)
            if lateness > dt:
                self._late_steps += 1
            if step % clock_every == 0:
                self._publish_clock()

    def _call_operator_faults(self, wait: bool) -> None:
        """Call the services of the operator faults that are due (see the module docstring)."""
        now = self.driver.fault_time()
        while self._operator_faults and self._operator_faults[0].at <= now:
            kind = self._operator_faults.pop(0).kind
            client = self._operator[kind]
            if not client.service_is_ready():
                self.get_logger().error(f"operator fault {kind}: {client.srv_name} is not there")
                continue
            done = threading.Event()
            client.call_async(Trigger.Request()).add_done_callback(lambda _, e=done: e.set())
            self.get_logger().info(f"operator fault at {now:.3f} s: {client.srv_name}")
            if wait and not done.wait(SERVICE_TIMEOUT_S):
                self.get_logger().error(
                    f"operator fault {kind}: no answer in {SERVICE_TIMEOUT_S} s"
                )

    # -- publishing --------------------------------------------------------------------------

    def _publish_clock(self) -> None:
        self._pubs["clock"].publish(Clock(clock=conv.ns_to_stamp(self.driver.time_ns)))

    def _publish(self, kind: str, payload, stamp_ns: int) -> None:
        if kind == "joint_states":
            f = payload.fields
            msg = conv.joint_state_msg(
                payload.names, f["position"], f["velocity"], f["effort"], stamp_ns
            )
            self._pubs["joint_states"].publish(msg)
            self.latency.published(stamp_ns, time.time_ns())
        elif kind == "imu":
            f = payload.fields
            msg = conv.imu_msg(
                f["orientation"],
                f["angular_velocity"],
                f["linear_acceleration"],
                stamp_ns,
                self._imu_frame,
            )
            self._pubs["imu"].publish(msg)
        else:
            self._publish_ground_truth(payload, stamp_ns)

    def _publish_ground_truth(self, truth: dict, stamp_ns: int) -> None:
        stamp = conv.ns_to_stamp(stamp_ns)
        if "base_pos" in truth:
            pose = PoseStamped()
            pose.header.stamp, pose.header.frame_id = stamp, "world"
            p, q = truth["base_pos"], truth["base_quat"]
            pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = map(float, p)
            o = pose.pose.orientation
            o.w, o.x, o.y, o.z = map(float, q)
            self._pubs["base_pose"].publish(pose)
            twist = TwistStamped()
            twist.header.stamp, twist.header.frame_id = stamp, "base"
            v, w = truth["base_lin_vel"], truth["base_ang_vel"]
            twist.twist.linear.x, twist.twist.linear.y, twist.twist.linear.z = map(float, v)
            twist.twist.angular.x, twist.twist.angular.y, twist.twist.angular.z = map(float, w)
            self._pubs["base_twist"].publish(twist)
        if "ee_pos" in truth:
            point = PointStamped()
            point.header.stamp, point.header.frame_id = stamp, "world"
            point.point.x, point.point.y, point.point.z = map(float, truth["ee_pos"])
            self._pubs["ee_position"].publish(point)

    # -- statistics --------------------------------------------------------------------------

    def statistics(self) -> dict:
        """What this run measured; see ``sim2real.deploy.hil.report`` for the fields."""
        driver = self.driver
        wall = time.perf_counter() - self._wall_start
        sim_time = driver.time_ns / NS_PER_S
        arrivals = np.diff(np.asarray(self._arrivals_ns, dtype=np.int64)) / NS_PER_S
        stats = {
            "mode": "lockstep" if self.lockstep else "realtime",
            "scheduling": self.scheduling,
            "physics_rate_hz": 1.0 / self.robot.physics_dt,
            "sim_time_s": sim_time,
            "wall_time_s": wall,
            "real_time_factor": sim_time / wall if wall > 0 else None,
            "published": dict(driver.counts),
            "commands_received": driver.commands_received,
            "commands_refused": driver.commands_refused,
            "pushes": driver.pushes,
            "first_command_s": None if driver.t0_ns is None else driver.t0_ns / NS_PER_S,
            "first_command_stamp_ns": driver.t0_stamp_ns,
            "last_stamp_ns": driver.stamp_clock(),
            "state_to_command_latency": summarize(self.latency.latencies_s),
            "state_age_at_tick": summarize(self.latency.state_age_s),
            "tick_to_command": summarize(self.latency.tick_to_command_s),
            "latency_unmatched": self.latency.unmatched,
            "command_interarrival": summarize(arrivals),
        }
        if self.lockstep:
            stats["lockstep_timeouts"] = self._lockstep_timeouts
        else:
            stats["late_steps"] = self._late_steps
            stats["step_lateness"] = summarize(self._step_lateness)
        return stats


def _command_order(joint_names: tuple[str, ...], command_joints) -> np.ndarray:
    """Index into a command array (controller order) for each robot joint (actuator order)."""
    command_joints = list(command_joints or joint_names)
    if sorted(command_joints) != sorted(joint_names):
        raise ValueError(
            f"parameter command_joints {command_joints} must list the robot's joints "
            f"{list(joint_names)} once each"
        )
    return np.array([command_joints.index(name) for name in joint_names], dtype=np.intp)


def main(args: list[str] | None = None) -> None:
    """Console entry point: ``sim_robot_node --ros-args -p robot_profile:=go2 ...``."""
    # The physics thread must get the GIL back promptly after each sleep: the default
    # switch interval (5 ms) is longer than a physics step.
    sys.setswitchinterval(1e-4)
    rclpy.init(args=args)
    node = SimRobotNode()
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    node.start()
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.stop()
        stats_path = node._param("stats_path")
        if stats_path:
            Path(stats_path).write_text(json.dumps(node.statistics(), indent=2))
        executor.remove_node(node)
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
