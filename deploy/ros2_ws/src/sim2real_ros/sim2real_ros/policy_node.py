"""``policy_node``: a lifecycle node that runs an exported policy on the robot.

A thin shell over the ROS-free ``sim2real.deploy.runtime.PolicyRuntime`` (DESIGN contract
6): this module translates messages and time, and every decision (contract checks, the
soft start, the safety chain, the DAMPING latch) is the runtime's. Written after the
ros2/demos ``lifecycle_py`` talker; portable to Humble and Jazzy (``rclpy.lifecycle``).

Lifecycle:

- **configure**: read the parameters, load ``policy_path`` and check its contract against
  ``joint_names`` (a mismatch fails the transition, logged and in ``/diagnostics``, naming
  the field); create the subscriptions and the (lifecycle) command publishers.
- **activate**: the runtime's soft start (ramp to the default pose, then fade the policy
  in), then the policy, ticked once per contract period (see "Pacing").
- **deactivate**: the runtime goes to DAMPING; one last DAMPING command is published, then
  the ticks and the command publishers stop.
- **cleanup**: back to unconfigured; parameters can be changed again.

The subscriptions cache the latest message (sensor-data QoS); a tick reads the caches,
ticks the runtime and publishes its ``Command``, and with it, on ``~/input_stamp``
(``sensor_msgs/TimeReference``), the stamp of the joint state the command was computed
from (``time_ref``; ``header.stamp`` is the tick's time): logs then tell the
state-to-command latency and the input each command used.

Pacing (parameter ``tick_source``, read at configure):

- ``state`` (default): the joint states pace the policy (the robot's clock). The tick runs
  in the ``/joint_states`` callback when ``TickPacer`` says a period is up, so it uses the
  state that just arrived and the command leaves at once; the control timer is a watchdog
  that ticks only when no state has ticked a slot by ``TickPacer.grace_ns`` after it
  (6 ms for 500 Hz states at 50 Hz; in a dropout every period, so the runtime's
  stale-input watchdog still latches DAMPING). Chosen as the default because it removes
  the wait for the timer (on average half a state period, up to a whole one) from the
  state-to-command latency, and the policy's period is then the robot's; in exchange the
  ticks follow the robot's own publication jitter (``benchmarks/hil_timing.py``).
- ``timer``: the control timer ticks every period on its own phase.

On sim time (``use_sim_time``) the node always ticks on the timer: the timer then runs on
the simulator's ``/clock``, which already is the robot's clock (in lockstep ``/clock``
moves only after the period's joint states), while the states arrive before the clock
moves and could not pace it. ``/diagnostics`` tells the source in use (``tick_source``).

Every state change of the runtime (STANDUP → RUNNING, → DAMPING with the fault...) goes
out on ``~/events`` (``diagnostic_msgs/DiagnosticArray``: one status whose message is
``source -> target`` and whose values hold ``from``, ``to``, ``reason``; stamped with the
change's time). E-stop and reset are ``std_srvs/Trigger`` services; ``/diagnostics`` is
published in every lifecycle state.
``deploy/README.md`` ("ROS 2 nodes") documents the topics, services, parameters and QoS.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PointStamped, Twist
from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    SetParametersResult,
)
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Imu, TimeReference
from sensor_msgs.msg import JointState as JointStateMsg
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from sim2real.deploy.controller import Command, Mode
from sim2real.deploy.robot_state import JointState, RobotState
from sim2real.deploy.runtime import DEACTIVATED, PolicyRuntime
from sim2real.deploy.state_machine import State
from sim2real_ros import conversions as conv
from sim2real_ros.loop_timing import LoopTiming
from sim2real_ros.parameters import parameter_value
from sim2real_ros.realtime import node_scheduling
from sim2real_ros.tick_pacer import TickPacer

NODE_NAME = "policy_node"
DIAGNOSTIC_NAME = "sim2real: policy_node"

#: The task-command inputs, by the ``task_command`` parameter: topic, message type, converter.
TASK_COMMANDS: dict[str, tuple[str, type, Callable]] = {
    "twist": ("/cmd_vel", Twist, conv.twist_to_command),
    "point": ("/target_point", PointStamped, conv.point_to_command),
}
#: The input that fills each runtime command (``ObservationBuilder.command.key``).
COMMAND_INPUTS = {"command": "twist", "target_pos": "point", None: "none"}

#: Parameters read at configure: they can change only while the node is unconfigured.
STRUCTURAL = (
    "policy_path",
    "joint_names",
    "command_joints",
    "controller",
    "use_joint_trajectory",
    "publish_gains",
    "task_command",
    "task",
    "tick_source",
)

#: The command publishers' QoS: reliable, keep the last one (a late command is useless).
COMMAND_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
#: ``~/events``: reliable, and deep enough that a burst of state changes is not lost.
EVENTS_QOS = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)

#: ``tick_source`` values: what paces the policy's ticks (see the module docstring).
TICK_SOURCES = ("state", "timer")

NO_JOINTS = JointState(names=(), position=np.zeros(0), velocity=np.zeros(0), stamp=float("nan"))


def _seconds(
    description: str, low: float, high: float, *, read_only: bool = True
) -> ParameterDescriptor:
    return ParameterDescriptor(
        description=description,
        read_only=read_only,
        floating_point_range=[FloatingPointRange(from_value=low, to_value=high, step=0.0)],
    )


#: name -> (default, descriptor). ``Parameter.Type.STRING_ARRAY``: no default (required or
#: optional, see the description). Safety limits are read-only: set them at launch.
PARAMETERS: dict[str, tuple[object, ParameterDescriptor]] = {
    "policy_path": (
        "",
        ParameterDescriptor(description="policy.onnx exported by `sim2real export` (required)"),
    ),
    "joint_names": (
        Parameter.Type.STRING_ARRAY,
        ParameterDescriptor(
            description="the robot's joints in policy order; configure refuses a policy whose "
            "contract lists other joints or another order (required)"
        ),
    ),
    "command_joints": (
        Parameter.Type.STRING_ARRAY,
        ParameterDescriptor(
            description="the controller's `joints`, in its order (the order of the published "
            "commands); unset: joint_names"
        ),
    ),
    "controller": (
        "forward_position_controller",
        ParameterDescriptor(
            description="ros2_control controller name: commands go to /<controller>/commands "
            "(Float64MultiArray) or /<controller>/joint_trajectory (JointTrajectory)"
        ),
    ),
    "use_joint_trajectory": (
        False,
        ParameterDescriptor(
            description="publish trajectory_msgs/JointTrajectory (one point, reached in one "
            "control period) instead of std_msgs/Float64MultiArray"
        ),
    ),
    "publish_gains": (
        False,
        ParameterDescriptor(
            description="also publish each command's Kp and Kd (2 x J Float64MultiArray, "
            "controller order) on ~/gains, for drivers that take per-command gains"
        ),
    ),
    "task": (
        "",
        ParameterDescriptor(
            description="refuse a policy trained on another task (go2-flat...); empty: any task"
        ),
    ),
    "task_command": (
        "auto",
        ParameterDescriptor(
            description="the task command input: twist (/cmd_vel, geometry_msgs/Twist: vx, vy, "
            "yaw rate), point (/target_point, geometry_msgs/PointStamped: target x, y, z in "
            "the base frame), none, or auto: the one the policy's task takes"
        ),
    ),
    "tick_source": (
        "state",
        ParameterDescriptor(
            description="what paces the policy: state (a tick on the joint state that "
            "completes a period, the timer as a watchdog) or timer (the control timer); "
            "on sim time always the timer"
        ),
    ),
    "cmd_vel_timeout_s": (
        0.5,
        _seconds(
            "a twist command older than this is replaced by zero velocity (stand); 0: never",
            0.0,
            60.0,
            read_only=False,
        ),
    ),
    "standup_s": (2.0, _seconds("soft start: ramp to the default pose, s", 0.0, 60.0)),
    "fade_s": (1.0, _seconds("soft start: policy fade-in after the ramp, s", 0.0, 60.0)),
    "watchdog_s": (
        0.0,
        _seconds("maximum input age before DAMPING, s; 0: the runtime's default", 0.0, 1.0),
    ),
    "max_tilt_rad": (
        0.0,
        _seconds("maximum base tilt before DAMPING, rad; 0: the runtime's default", 0.0, 3.2),
    ),
    "diagnostics_period_s": (
        0.5,
        _seconds("period of /diagnostics, s", 0.05, 60.0),
    ),
    "realtime_priority": (
        0,
        ParameterDescriptor(
            description="SCHED_FIFO priority (1..99) of the node's threads (executor and DDS), "
            "set at start-up; needs CAP_SYS_NICE or an rtprio limit, else a warning and "
            "normal scheduling; 0: normal scheduling",
            read_only=True,
            integer_range=[IntegerRange(from_value=0, to_value=99, step=1)],
        ),
    ),
}


def _optional(value: float) -> float | None:
    return None if value <= 0.0 else float(value)


class PolicyNode(LifecycleNode):
    """The lifecycle policy node; see the module docstring.

    Args:
        node_name: the node's name.
        **kwargs: passed to ``rclpy.lifecycle.LifecycleNode`` (``parameter_overrides``...).
    """

    def __init__(self, node_name: str = NODE_NAME, **kwargs):
        self._lifecycle = "unconfigured"
        self._runtime: PolicyRuntime | None = None
        self._configure_error = ""
        self._estop_pending = False
        self._epoch_ns = 0
        self._caches: dict[str, tuple[object, int] | None] = {}
        self._task_command_kind = "none"
        self._task_command_ns: int | None = None
        self._task_command_errors = 0
        self._inputs: list = []
        self._command_pub = None
        self._gains_pub = None
        self._input_stamp_pub = None
        self._events_seen = 0
        self._control_timer = None
        self._order: conv.JointOrder | None = None
        self._use_trajectory = False
        self._timing: LoopTiming | None = None
        self._pacer: TickPacer | None = None
        self._tick_errors = 0
        self._last_error = ""
        self._last_command: Command | None = None
        super().__init__(node_name, **kwargs)
        for name, (default, descriptor) in PARAMETERS.items():
            self.declare_parameter(name, default, descriptor)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._events_pub = self.create_publisher(DiagnosticArray, "~/events", EVENTS_QOS)
        self._diagnostics_timer = self.create_timer(
            self.get_parameter("diagnostics_period_s").value, self._publish_diagnostics
        )
        self.create_service(Trigger, "~/estop", self._on_estop)
        self.create_service(Trigger, "~/reset", self._on_reset)
        self._scheduling = node_scheduling(
            self.get_parameter("realtime_priority").value, self.get_logger()
        )

    # -- parameters ------------------------------------------------------------------------

    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        """Structural parameters change only while unconfigured (they are read at configure)."""
        if self._lifecycle != "unconfigured":
            names = [p.name for p in parameters if p.name in STRUCTURAL]
            if names:
                return SetParametersResult(
                    successful=False,
                    reason=f"{names} are read at configure: clean the node up first",
                )
        return SetParametersResult(successful=True)

    def _param(self, name: str):
        """A parameter's value; ``None`` for an unset (uninitialized) one."""
        return parameter_value(self, name)

    # -- lifecycle ---------------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Load the policy and check its contract; create subscriptions and publishers."""
        try:
            self._configure()
        except Exception as error:  # any failure fails the transition
            self._configure_error = f"{type(error).__name__}: {error}"
            self.get_logger().error(f"configure failed: {self._configure_error}")
            self._teardown()
            return TransitionCallbackReturn.FAILURE
        self._configure_error = ""
        self._lifecycle = "inactive"
        runtime = self._runtime
        self.get_logger().info(
            f"configured: {len(runtime.joint_names)} joints, "
            f"{1.0 / runtime.control_period:.4g} Hz, commands on {self._command_pub.topic_name}"
        )
        return TransitionCallbackReturn.SUCCESS

    def _configure(self) -> None:
        policy_path = self._param("policy_path")
        joint_names = self._param("joint_names")
        if not policy_path:
            raise ValueError("parameter policy_path is not set")
        if not joint_names:
            raise ValueError("parameter joint_names is not set")
        runtime = PolicyRuntime(
            policy_path,
            list(joint_names),
            standup_s=self._param("standup_s"),
            fade_s=self._param("fade_s"),
            watchdog_s=_optional(self._param("watchdog_s")),
            max_tilt=_optional(self._param("max_tilt_rad")),
            task=self._param("task") or None,
        )
        runtime.configure()
        task_command = self._task_command_input(runtime)
        tick_source = self._tick_source_in_use()
        self._order = conv.JointOrder(runtime.joint_names, self._param("command_joints") or ())
        self._runtime = runtime
        self._epoch_ns = self._now_ns()
        self._timing = LoopTiming(runtime.control_period)
        period_ns = round(runtime.control_period * conv.NS_PER_S)
        self._pacer = TickPacer(period_ns) if tick_source == "state" else None
        self._tick_errors, self._last_error, self._last_command = 0, "", None
        self._task_command_kind = task_command
        self._task_command_ns: int | None = None
        self._task_command_errors = 0
        self._caches = {"joint_states": None, "imu": None, "task_command": None}

        self._inputs = [
            self.create_subscription(
                JointStateMsg, "/joint_states", self._on_joint_states, qos_profile_sensor_data
            ),
            self.create_subscription(Imu, "/imu/data", self._cache("imu"), qos_profile_sensor_data),
        ]
        if task_command != "none":
            topic, msg_type, _ = TASK_COMMANDS[task_command]
            self._inputs.append(
                self.create_subscription(
                    msg_type, topic, self._cache("task_command"), qos_profile_sensor_data
                )
            )
        controller = self._param("controller")
        self._use_trajectory = bool(self._param("use_joint_trajectory"))
        if self._use_trajectory:
            topic, msg_type = f"/{controller}/joint_trajectory", JointTrajectory
        else:
            topic, msg_type = f"/{controller}/commands", Float64MultiArray
        self._command_pub = self.create_lifecycle_publisher(msg_type, topic, COMMAND_QOS)
        if self._param("publish_gains"):
            self._gains_pub = self.create_lifecycle_publisher(
                Float64MultiArray, "~/gains", COMMAND_QOS
            )
        self._input_stamp_pub = self.create_lifecycle_publisher(
            TimeReference, "~/input_stamp", COMMAND_QOS
        )
        self._events_seen = 0
        self._control_timer = self.create_timer(runtime.control_period, self._on_control_timer)
        self._control_timer.cancel()  # runs while active
        if self._estop_pending:  # an e-stop while unconfigured latches this runtime too
            runtime.estop(self._seconds(self._now_ns()), "e-stop service (before configure)")
            self._estop_pending = False

    def _tick_source_in_use(self) -> str:
        """The ``tick_source`` parameter, checked; ``timer`` on sim time (module docstring)."""
        chosen = self._param("tick_source")
        if chosen not in TICK_SOURCES:
            raise ValueError(f"parameter tick_source must be one of {TICK_SOURCES}, got {chosen!r}")
        if chosen == "state" and self._param("use_sim_time"):
            self.get_logger().info("use_sim_time: the timer on /clock paces the policy")
            return "timer"
        return chosen

    def _task_command_input(self, runtime: PolicyRuntime) -> str:
        """The ``task_command`` input: the policy's own for ``auto``, else checked against it."""
        spec = runtime.builder.command
        expected = COMMAND_INPUTS[None if spec is None else spec.key]
        chosen = self._param("task_command")
        if chosen == "auto":
            return expected
        if chosen != expected:
            raise ValueError(
                f"parameter task_command is {chosen!r}, but the policy's task "
                f"{runtime.contract.task!r} takes {expected!r}"
            )
        return chosen

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Start the soft start and the ticks."""
        result = super().on_activate(state)  # enables the lifecycle publishers
        runtime = self._runtime
        runtime.activate(self._seconds(self._now_ns()))
        self._timing.restart()
        if self._pacer is not None:
            self._pacer.restart()
            self._arm_watchdog()
        else:
            self._control_timer.reset()
        self._lifecycle = "active"
        if runtime.state is State.DAMPING:
            reason = runtime.diagnostics()["reason"]
            self.get_logger().warning(f"activated in DAMPING ({reason}): call ~/reset to start")
        else:
            self.get_logger().info("activated: soft start, then the policy")
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """DAMPING: publish one last DAMPING command, then stop the timer and the output."""
        self._control_timer.cancel()
        self._runtime.deactivate(self._seconds(self._now_ns()))
        self._tick()
        self._lifecycle = "inactive"
        self.get_logger().info("deactivated: damping")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Drop the runtime, subscriptions and publishers: back to unconfigured.

        A DAMPING latched by an e-stop or a fault (not by deactivate) carries over to the
        next configure: activation then needs ``~/reset`` as before.
        """
        runtime = self._runtime
        if runtime.state is State.DAMPING and runtime.diagnostics()["reason"] != DEACTIVATED:
            self._estop_pending = True
        self._teardown()
        self._lifecycle = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """From active: a last DAMPING command first; then as cleanup."""
        if self._lifecycle == "active":
            self.on_deactivate(state)
        self._teardown()
        self._lifecycle = "finalized"
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """A transition raised: latch DAMPING if possible, drop everything (→ unconfigured)."""
        self.get_logger().error(f"error in lifecycle state {self._lifecycle}")
        if self._runtime is not None:
            self._runtime.estop(self._seconds(self._now_ns()), "lifecycle error")
        self._teardown()
        self._lifecycle = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def _teardown(self) -> None:
        if self._control_timer is not None:
            self.destroy_timer(self._control_timer)
        for subscription in self._inputs:
            self.destroy_subscription(subscription)
        for publisher in (self._command_pub, self._gains_pub, self._input_stamp_pub):
            if publisher is not None:
                self.destroy_lifecycle_publisher(publisher)
        self._control_timer, self._command_pub, self._gains_pub = None, None, None
        self._input_stamp_pub, self._pacer = None, None
        self._inputs = []
        self._runtime = None

    # -- time and inputs ---------------------------------------------------------------------

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _seconds(self, ns: int) -> float:
        return conv.to_seconds(ns, self._epoch_ns)

    def _cache(self, key: str) -> Callable:
        """A subscription callback that keeps the latest message and its receipt time."""

        def callback(msg) -> None:
            self._caches[key] = (msg, self._now_ns())

        return callback

    def _on_joint_states(self, msg: JointStateMsg) -> None:
        """Cache the state; with state pacing, tick on it when the pacer says so."""
        now_ns = self._now_ns()
        self._caches["joint_states"] = (msg, now_ns)
        pacer = self._pacer
        if pacer is not None and self._lifecycle == "active" and pacer.on_state(now_ns):
            self._tick()
            self._arm_watchdog()

    def _robot_state(self) -> RobotState:
        """The latest inputs as the runtime's ``RobotState`` (no joints yet: an empty one)."""
        epoch = self._epoch_ns
        joints, imu = NO_JOINTS, None
        if (cached := self._caches["joint_states"]) is not None:
            joints = conv.joint_state_from_msg(cached[0], cached[1], epoch)
        if (cached := self._caches["imu"]) is not None:
            imu = conv.imu_from_msg(cached[0], cached[1], epoch)
        return RobotState(joints=joints, imu=imu)

    def _update_task_command(self, now_ns: int) -> None:
        """Hand a new task command to the runtime; a twist that timed out becomes zero.

        A command the runtime refuses (wrong size, not finite) is dropped, logged and counted:
        the previous command stays, the robot is not stopped for a bad teleop message.
        """
        kind = self._task_command_kind
        if (cached := self._caches["task_command"]) is not None:
            self._caches["task_command"] = None
            values = TASK_COMMANDS[kind][2](cached[0])
            try:
                self._runtime.set_command(values)
                self._task_command_ns = cached[1]
            except ValueError as error:
                self._task_command_errors += 1
                self.get_logger().warning(f"task command refused: {error}")
        timeout = self._param("cmd_vel_timeout_s")
        if (
            kind == "twist"
            and timeout > 0
            and self._task_command_ns is not None
            and now_ns - self._task_command_ns > timeout * 1e9
        ):
            self._runtime.set_command(np.zeros(3))
            self._task_command_ns = None
            self.get_logger().warning(f"no /cmd_vel for {timeout:g} s: zero velocity")

    # -- the control loop --------------------------------------------------------------------

    def _on_control_timer(self) -> None:
        """Timer pacing: tick. State pacing: the watchdog; tick if the pacer says so."""
        pacer = self._pacer
        if pacer is None:
            self._tick()
            return
        if pacer.on_timer(self._now_ns()):
            self._tick()
        self._arm_watchdog()

    def _arm_watchdog(self) -> None:
        """State pacing: fire the timer next when the pacer says (``TickPacer.timer_ns``).

        One period from now before the first tick; at once if the executor was held past it.
        """
        fire_ns = self._pacer.timer_ns()
        delay_ns = self._pacer.period_ns if fire_ns is None else max(fire_ns - self._now_ns(), 1)
        self._control_timer.timer_period_ns = delay_ns
        self._control_timer.reset()

    def _tick(self) -> None:
        """Read the caches, tick the runtime, publish its command."""
        now_ns = self._now_ns()
        start = time.perf_counter()
        runtime = self._runtime
        now = self._seconds(now_ns)
        try:
            self._update_task_command(now_ns)
            command = runtime.tick(now, self._robot_state())
        except Exception as error:  # a bug here must not kill the node or the output: latch
            self._tick_errors += 1
            self._last_error = f"{type(error).__name__}: {error}"
            self.get_logger().error(f"tick failed, e-stop: {self._last_error}")
            runtime.estop(now, f"tick failed: {self._last_error}")
            # no joints: a fault, so the runtime answers DAMPING at the last valid pose
            command = runtime.tick(now, RobotState(joints=NO_JOINTS))
        self._publish(command, now_ns)
        self._publish_events()
        self._last_command = command
        self._timing.record(now_ns, time.perf_counter() - start)

    def _publish(self, command: Command, now_ns: int) -> None:
        """POSITION and DAMPING commands go out (targets: the last valid pose in DAMPING).

        PASSIVE (before activation) sends nothing: the controller keeps its own command.
        """
        if command.mode is Mode.PASSIVE:
            return
        order = self._order
        targets = order(command.targets)
        if self._use_trajectory:
            msg = conv.joint_trajectory(targets, order.names, now_ns, self._runtime.control_period)
        else:
            msg = conv.float64_multi_array(targets)
        self._command_pub.publish(msg)
        if self._gains_pub is not None:
            self._gains_pub.publish(conv.gains_array(order(command.kp), order(command.kd)))
        if (cached := self._caches["joint_states"]) is not None:
            stamp = TimeReference(time_ref=cached[0].header.stamp, source="/joint_states")
            stamp.header.stamp = conv.ns_to_stamp(now_ns)
            self._input_stamp_pub.publish(stamp)

    def _publish_events(self) -> None:
        """The runtime's state changes since the last call, on ``~/events``."""
        transitions = self._runtime.controller.transitions
        for transition in transitions[self._events_seen :]:
            stamp_ns = self._epoch_ns + round(transition.time * conv.NS_PER_S)
            source, target = transition.source.value, transition.target.value
            level = DiagnosticStatus.ERROR if target == State.DAMPING.value else DiagnosticStatus.OK
            values = {"from": source, "to": target, "reason": transition.reason}
            self._events_pub.publish(
                conv.diagnostic_array(
                    stamp_ns, DIAGNOSTIC_NAME, level, f"{source} -> {target}", values
                )
            )
        self._events_seen = len(transitions)

    # -- services ----------------------------------------------------------------------------

    def _on_estop(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        """Latch DAMPING (from the next tick on, within one control period) until reset.

        In any lifecycle state: unconfigured, the latch is applied at the next configure.
        """
        if self._runtime is None:
            self._estop_pending = True
            self.get_logger().warning("e-stop while unconfigured: damping until reset")
            response.success, response.message = True, "latched: damping until reset"
            return response
        self._runtime.estop(self._seconds(self._now_ns()), "e-stop service")
        self.get_logger().warning("e-stop: damping until reset")
        response.success, response.message = True, "damping until reset"
        return response

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        """Clear the DAMPING latch: soft start again from the current pose (active only)."""
        if self._lifecycle != "active":
            response.success = False
            response.message = f"node is {self._lifecycle}: reset needs it active"
            return response
        changed = self._runtime.reset(self._seconds(self._now_ns()))
        response.success = bool(changed)
        response.message = "soft start" if changed else "not in damping: nothing to reset"
        return response

    # -- diagnostics -------------------------------------------------------------------------

    def _publish_diagnostics(self) -> None:
        now_ns = self._now_ns()
        values: dict[str, object] = {
            "lifecycle_state": self._lifecycle,
            "scheduling": self._scheduling,
        }
        level, message = DiagnosticStatus.OK, self._lifecycle
        if self._configure_error:
            values["configure_error"] = self._configure_error
            level, message = DiagnosticStatus.ERROR, f"configure failed: {self._configure_error}"
        runtime = self._runtime
        if runtime is not None:
            values["control_period_s"] = runtime.control_period
            values["tick_source"] = "timer" if self._pacer is None else "state"
            values["loop"] = self._timing.summary()
            if self._pacer is not None:
                values["pacing"] = self._pacer.summary()
            values["tick_errors"] = self._tick_errors
            values["last_tick_error"] = self._last_error
            values["task_command_input"] = self._task_command_kind
            values["task_command_errors"] = self._task_command_errors
            for key in ("joint_states", "imu"):
                if (cached := self._caches[key]) is not None:
                    values[f"{key}_receipt_age_s"] = (now_ns - cached[1]) * 1e-9
            if self._task_command_ns is not None:
                values["task_command_receipt_age_s"] = (now_ns - self._task_command_ns) * 1e-9
            values["runtime"] = runtime.diagnostics()
            if self._lifecycle == "active" and self._last_command is not None:
                state = self._last_command.state.value
                message = state
                if self._last_command.mode is Mode.DAMPING:
                    level = DiagnosticStatus.ERROR
                    message = f"damping: {values['runtime'].get('reason', '') or 'latched'}"
        self._diagnostics_pub.publish(
            conv.diagnostic_array(now_ns, DIAGNOSTIC_NAME, level, message, values)
        )


class RosLogHandler(logging.Handler):
    """Forwards Python ``logging`` records (the runtime's state changes) to a ROS logger."""

    def __init__(self, ros_logger):
        super().__init__()
        self.ros_logger = ros_logger

    def emit(self, record: logging.LogRecord) -> None:
        """Log ``record`` at the matching ROS severity."""
        message = f"[{record.name}] {record.getMessage()}"
        if record.levelno >= logging.ERROR:
            self.ros_logger.error(message)
        elif record.levelno >= logging.WARNING:
            self.ros_logger.warning(message)
        elif record.levelno >= logging.INFO:
            self.ros_logger.info(message)
        else:
            self.ros_logger.debug(message)


def main(args: list[str] | None = None) -> None:
    """Console entry point: ``policy_node --ros-args -p policy_path:=... -p joint_names:=[...]``.

    The node starts unconfigured; drive it with lifecycle transitions (``ros2 lifecycle
    set /policy_node configure``, then ``activate``) or the launch file.
    """
    rclpy.init(args=args)
    node = PolicyNode()
    sim2real_logger = logging.getLogger("sim2real")
    sim2real_logger.addHandler(RosLogHandler(node.get_logger()))
    sim2real_logger.setLevel(logging.INFO)
    sim2real_logger.propagate = False
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.remove_node(node)
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
