"""The ROS 2 policy node (deploy/ros2_ws/src/sim2real_ros): conversions, and a real node.

The conversion and timing helpers are pure functions, tested without DDS. The node tests
start ``policy_node`` as a real process through its console entry point (``pip install -e
deploy/ros2_ws/src/sim2real_ros``, done by ``make``) and talk to it over DDS from a
test-side rclpy node, on a ROS_DOMAIN_ID unique to the test run with LOCALHOST discovery
(``sim2real_ros.testing``). The policy is a tiny point-reach MLP trained for two
iterations and exported once per module. One node process serves every node test; each
test starts from the unconfigured state. Every wait has a timeout and the process group
is killed at the end whatever happens.

No timing figures are asserted beyond "about the contract's period" (medians with wide
margins); the loop timing is measured by ``benchmarks/node_loop.py``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="the `ros` extra (ROS 2 Jazzy wheels)")

from builtin_interfaces.msg import Time  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from geometry_msgs.msg import PointStamped, Twist  # noqa: E402
from sensor_msgs.msg import Imu  # noqa: E402
from sensor_msgs.msg import JointState as JointStateMsg  # noqa: E402
from std_msgs.msg import Float64MultiArray  # noqa: E402
from trajectory_msgs.msg import JointTrajectory  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PACKAGE_SRC = REPO / "deploy" / "ros2_ws" / "src" / "sim2real_ros"
try:
    import sim2real_ros  # noqa: F401
except ImportError:  # not pip-installed: the pure modules still import from the sources
    sys.path.insert(0, str(PACKAGE_SRC))

from sim2real_ros import conversions as conv  # noqa: E402
from sim2real_ros.loop_timing import LoopTiming  # noqa: E402
from sim2real_ros.testing import (  # noqa: E402
    NodeProcess,
    RosHarness,
    console_script,
    isolate_this_process,
    ros_environment,
    run_domain_id,
    wait_for,
    write_parameters,
)

NODE = "policy_node"
POLICY_JOINTS = ["x", "y"]  # point-reach, policy order
COMMAND_JOINTS = ["y", "x"]  # the controller's order in these tests: reversed
POSE = {"y": -0.1, "x": 0.05}  # the published joint positions (m), by name
STANDUP_S, FADE_S, WATCHDOG_S = 0.2, 0.1, 0.5


# -- conversions (no DDS) ----------------------------------------------------------------


def test_stamps_round_trip_in_nanoseconds():
    stamp = Time(sec=1_700_000_000, nanosec=123_456_789)
    ns = conv.stamp_to_ns(stamp)
    assert ns == 1_700_000_000_123_456_789
    assert conv.ns_to_stamp(ns) == stamp
    assert conv.to_seconds(ns, ns - 1_500_000_000) == 1.5
    duration = conv.seconds_to_duration(0.002)
    assert (duration.sec, duration.nanosec) == (0, 2_000_000)


def test_joint_state_keeps_names_and_uses_receipt_time_when_unstamped():
    msg = JointStateMsg(name=["y", "x"], position=[0.1, 0.2], velocity=[0.0, -1.0])
    msg.header.stamp = Time(sec=10, nanosec=500_000_000)
    joints = conv.joint_state_from_msg(msg, receipt_ns=11 * 10**9, epoch_ns=9 * 10**9)
    assert list(joints.names) == ["y", "x"]
    np.testing.assert_array_equal(joints.position, [0.1, 0.2])
    np.testing.assert_array_equal(joints.velocity, [0.0, -1.0])
    assert joints.stamp == pytest.approx(1.5)

    msg.header.stamp = Time()  # unstamped: the receipt time
    assert conv.joint_state_from_msg(msg, 11 * 10**9, 9 * 10**9).stamp == pytest.approx(2.0)
    msg.velocity = []  # passed on: the runtime names the fault
    assert conv.joint_state_from_msg(msg, 0, 0).velocity.shape == (0,)


def test_imu_quaternion_is_reordered_and_missing_fields_follow_the_covariance_convention():
    msg = Imu()
    msg.orientation.x, msg.orientation.y, msg.orientation.z, msg.orientation.w = 0.1, 0.2, 0.3, 0.9
    msg.angular_velocity.x, msg.angular_velocity.z = 0.5, -0.25
    msg.linear_acceleration.z = 9.81
    msg.header.stamp = Time(sec=3)
    imu = conv.imu_from_msg(msg, receipt_ns=0, epoch_ns=2 * 10**9)
    np.testing.assert_array_equal(imu.quat, [0.9, 0.1, 0.2, 0.3])
    np.testing.assert_array_equal(imu.ang_vel, [0.5, 0.0, -0.25])
    np.testing.assert_array_equal(imu.lin_acc, [0.0, 0.0, 9.81])
    assert imu.stamp == 1.0

    msg.orientation_covariance[0] = -1.0  # no orientation
    msg.linear_acceleration_covariance[0] = -1.0  # no accelerometer
    imu = conv.imu_from_msg(msg, 0, 0)
    assert np.isnan(imu.quat).all() and imu.lin_acc is None


def test_task_commands():
    twist = Twist()
    twist.linear.x, twist.linear.y, twist.angular.z = 0.5, -0.2, 1.0
    twist.linear.z = twist.angular.x = 9.0  # not part of the command
    np.testing.assert_array_equal(conv.twist_to_command(twist), [0.5, -0.2, 1.0])
    point = PointStamped()
    point.point.x, point.point.y, point.point.z = 0.4, 0.1, 0.3
    np.testing.assert_array_equal(conv.point_to_command(point), [0.4, 0.1, 0.3])
    np.testing.assert_array_equal(conv.point_to_command(point.point), [0.4, 0.1, 0.3])


def test_joint_order_maps_policy_order_to_the_controller_and_refuses_other_joints():
    order = conv.JointOrder(["a", "b", "c"], ["c", "a", "b"])
    assert order.names == ("c", "a", "b")
    np.testing.assert_array_equal(order(np.array([1.0, 2.0, 3.0])), [3.0, 1.0, 2.0])
    assert conv.JointOrder(["a", "b"]).names == ("a", "b")  # default: policy order
    with pytest.raises(ValueError, match=r"missing \['c'\], unknown \['d'\]"):
        conv.JointOrder(["a", "b", "c"], ["a", "b", "d"])
    with pytest.raises(ValueError, match=r"repeated \['a'\]"):
        conv.JointOrder(["a", "b"], ["a", "a", "b"])


def test_command_messages():
    msg = conv.float64_multi_array(np.array([0.1, -0.2]))
    assert list(msg.data) == [0.1, -0.2]
    assert [(d.label, d.size, d.stride) for d in msg.layout.dim] == [("joints", 2, 2)]

    gains = conv.gains_array(np.array([400.0, 300.0]), np.array([40.0, 30.0]))
    assert list(gains.data) == [400.0, 300.0, 40.0, 30.0]
    assert [(d.label, d.size) for d in gains.layout.dim] == [("gain", 2), ("joint", 2)]

    trajectory = conv.joint_trajectory(np.array([0.3, 0.4]), ["y", "x"], 5 * 10**9 + 7, 0.02)
    assert trajectory.joint_names == ["y", "x"]
    assert (trajectory.header.stamp.sec, trajectory.header.stamp.nanosec) == (5, 7)
    (point,) = trajectory.points
    assert list(point.positions) == [0.3, 0.4]
    assert (point.time_from_start.sec, point.time_from_start.nanosec) == (0, 20_000_000)


def test_diagnostics_are_flattened_and_formatted():
    values = {"state": "running", "loop": {"period_mean_s": 0.0200001234, "ticks": 3}}
    values.update(flag=True, nothing=None, vec=np.array([1.0, 2.5]))
    msg = conv.diagnostic_array(10**9, "node", DiagnosticStatus.WARN, "hello", values)
    (status,) = msg.status
    assert (status.name, status.level, status.message) == ("node", DiagnosticStatus.WARN, "hello")
    assert conv.diagnostic_values(msg) == {
        "state": "running",
        "loop.period_mean_s": "0.0200001",
        "loop.ticks": "3",
        "flag": "True",
        "nothing": "",
        "vec": "[1, 2.5]",
    }
    assert msg.header.stamp.sec == 1
    assert conv.diagnostic_values(msg, "other") == {}


def test_loop_timing_reports_each_window_once():
    timing = LoopTiming(0.02)
    for tick, ns in enumerate([0, 20_000_000, 40_500_000, 90_000_000]):
        timing.record(ns, 0.001 * (tick + 1))
    summary = timing.summary()
    assert summary["ticks"] == summary["window_ticks"] == 4
    assert summary["overruns"] == 1  # the 49.5 ms period
    assert summary["period_error_max_s"] == pytest.approx(0.0295)
    assert summary["period_error_median_s"] == pytest.approx(0.0005)
    assert summary["compute_max_s"] == pytest.approx(0.004)
    empty = timing.summary()
    assert empty["window_ticks"] == 0 and empty["period_mean_s"] is None
    timing.restart()  # a pause is not a period
    timing.record(10**9, 0.0)
    assert timing.summary()["period_mean_s"] is None


# -- the colcon build ------------------------------------------------------------------------


def test_colcon_build_of_the_workspace(tmp_path):
    """``colcon build`` of deploy/ros2_ws with colcon-ros from PyPI, no ROS install."""
    colcon = console_script("colcon")
    if not colcon.exists():
        pytest.skip("colcon is not installed (the `ros` extra)")
    shutil.copytree(
        PACKAGE_SRC.parent,
        tmp_path / "src",
        ignore=shutil.ignore_patterns("*.egg-info", "__pycache__", "build", "install", "log"),
    )
    done = subprocess.run(
        [str(colcon), "--log-base", "log", "build", "--base-paths", "src"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Finished <<< sim2real_ros" in done.stdout + done.stderr
    prefix = tmp_path / "install" / "sim2real_ros"
    assert (prefix / "share/ament_index/resource_index/packages/sim2real_ros").is_file()
    for name in ("package.xml", "launch/policy.launch.py", "config/params.yaml"):
        assert (prefix / "share/sim2real_ros" / name).is_file(), name
    script = prefix / "lib/sim2real_ros/policy_node"  # where `ros2 run` looks
    assert script.is_file() and "'console_scripts', 'policy_node'" in script.read_text()
    (package,) = (prefix / "lib").glob("python3*/site-packages/sim2real_ros")
    assert (package / "policy_node.py").is_file()


# -- a real node ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def policy_path(tmp_path_factory) -> Path:
    """A tiny point-reach MLP, trained for two iterations and exported."""
    from sim2real.export.exporter import export_checkpoint
    from sim2real.policies.config import build_config
    from sim2real.policies.runner import Trainer

    folder = tmp_path_factory.mktemp("ros-policy")
    overrides = ["nthread=1", "tensorboard=false", "torch_threads=1", "num_envs=32",
                 "max_iterations=2"]  # fmt: skip
    config = build_config("point-reach", overrides=overrides)
    Trainer(config, run_dir=folder / "run").learn()
    return export_checkpoint(folder / "run", folder / "policy.onnx", task="point-reach").onnx_path


@pytest.fixture
def in_process_node(policy_path):
    """Makes in-process policy nodes: ``make(**parameters) -> (node, published)``.

    The node is configured and activated with the parameter overrides; ``published``
    collects its commands. No executor spins it (no timer fires, no message arrives): the
    test calls the callbacks; no subscriber is needed.
    """
    from rclpy.parameter import Parameter
    from rclpy.signals import SignalHandlerOptions
    from sim2real_ros.policy_node import PolicyNode

    domain_id = run_domain_id(offset=1)  # not the node process's domain
    isolate_this_process(domain_id)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain_id, signal_handler_options=SignalHandlerOptions.NO)
    nodes = []

    def make(**overrides):
        overrides = {"policy_path": str(policy_path), "joint_names": POLICY_JOINTS,
                     "standup_s": 0.0, "fade_s": 0.0, "watchdog_s": WATCHDOG_S,
                     **overrides}  # fmt: skip
        node = PolicyNode(
            "policy_node_in_process",
            context=context,
            parameter_overrides=[Parameter(name, value=value) for name, value in overrides.items()],
        )
        nodes.append(node)
        published = []
        node._publish = lambda command, now_ns: published.append(command)
        node.trigger_configure()
        node.trigger_activate()
        return node, published

    yield make
    for node in nodes:
        node.destroy_node()
    context.try_shutdown()


def joint_state_msg() -> JointStateMsg:
    """The test pose, unstamped (the node uses the receipt time)."""
    return JointStateMsg(name=list(POSE), position=list(POSE.values()), velocity=[0.0, 0.0])


def test_a_failing_tick_latches_damping_and_still_publishes(in_process_node):
    """The node's own tick raising must not go silent."""
    from sim2real.deploy.controller import Mode

    node, published = in_process_node()
    node._caches["joint_states"] = (joint_state_msg(), node._now_ns())
    node._tick()
    node._tick()
    assert published[-1].mode is Mode.POSITION

    def broken():
        raise RuntimeError("conversion bug")

    node._robot_state = broken
    node._tick()
    assert published[-1].mode is Mode.DAMPING
    np.testing.assert_allclose(published[-1].targets, [POSE["x"], POSE["y"]])
    diagnostics = node._runtime.diagnostics()
    assert diagnostics["state"] == "damping" and "conversion bug" in diagnostics["reason"]
    assert node._tick_errors == 1


def test_state_pacing_ticks_on_the_joint_state_and_the_timer_only_when_none_came(
    in_process_node,
):
    node, published = in_process_node()  # tick_source: state, the default
    clock = [node._now_ns()]
    node._now_ns = lambda: clock[0]  # the node's clock, stepped by the test
    ms = 1_000_000
    node._on_joint_states(joint_state_msg())  # the first state after activation ticks
    assert len(published) == 1
    clock[0] += 2 * ms
    node._on_joint_states(joint_state_msg())  # within the period: cached only
    node._on_control_timer()  # the watchdog is not due: no tick, the timer re-armed
    assert len(published) == 1
    assert node._control_timer.timer_period_ns == node._pacer.timer_ns() - clock[0]
    clock[0] += 16 * ms
    node._on_joint_states(joint_state_msg())  # 18 ms: a period less a state period: due
    assert len(published) == 2
    clock[0] += 40 * ms  # no state: past the next slot and the watchdog's grace (≤ 10 ms)
    node._on_control_timer()
    clock[0] += ms
    node._on_joint_states(joint_state_msg())  # a state right after: not the same slot
    assert len(published) == 3
    assert node._pacer.summary()["watchdog_ticks"] == 1


def test_timer_pacing_ticks_on_the_timer_only(in_process_node):
    node, published = in_process_node(tick_source="timer")
    node._on_joint_states(joint_state_msg())
    assert published == [] and node._pacer is None
    node._on_control_timer()
    node._on_control_timer()
    assert len(published) == 2


class Robot:
    """The test side: fake joint-state and target publishers, recorders of the node's output.

    A 100 Hz timer publishes the joint states (stamped now) and the target while
    ``publishing`` is set; every message of the node is recorded with its arrival time.
    """

    def __init__(self, harness: RosHarness):
        node = harness.node
        self.harness = harness
        self.publishing = True
        self.joints = node.create_publisher(JointStateMsg, "/joint_states", 10)
        self.target = node.create_publisher(PointStamped, "/target_point", 10)
        self.records: dict[str, list] = {
            "commands": [], "trajectory": [], "gains": [], "diagnostics": []
        }  # fmt: skip
        topics = {
            "commands": (Float64MultiArray, "/forward_position_controller/commands"),
            "trajectory": (JointTrajectory, "/forward_position_controller/joint_trajectory"),
            "gains": (Float64MultiArray, f"/{NODE}/gains"),
            "diagnostics": (DiagnosticArray, "/diagnostics"),
        }
        for key, (msg_type, topic) in topics.items():
            node.create_subscription(msg_type, topic, self._recorder(key), 50)
        node.create_timer(0.01, self._publish)

    def _recorder(self, key):
        def record(msg):
            self.records[key].append((time.monotonic(), msg))

        return record

    def _publish(self):
        if not self.publishing:
            return
        msg = JointStateMsg(name=list(POSE), position=list(POSE.values()), velocity=[0.0, 0.0])
        msg.header.stamp = self.harness.node.get_clock().now().to_msg()
        self.joints.publish(msg)
        target = PointStamped()
        target.point.x, target.point.y = 0.2, 0.1
        self.target.publish(target)

    def clear(self):
        for records in self.records.values():
            records.clear()

    def latest(self, key):
        records = self.records[key]
        return records[-1][1] if records else None

    def diagnostics(self, predicate=lambda values: True, timeout=5.0) -> dict[str, str]:
        """The first diagnostics published from now on whose values satisfy ``predicate``."""
        start = len(self.records["diagnostics"])

        def found():
            for _, msg in self.records["diagnostics"][start:]:
                values = conv.diagnostic_values(msg, "sim2real: policy_node")
                if values and predicate(values):
                    return values
            return None

        return wait_for(found, timeout)

    def mode(self) -> str | None:
        """From the latest ~/gains: position (kp > 0), damping (kp = 0, kd > 0) or passive."""
        gains = self.latest("gains")
        if gains is None:
            return None
        kp, kd = np.reshape(gains.data, (2, -1))
        return "position" if kp.min() > 0 else "damping" if kd.min() > 0 else "passive"


@pytest.fixture(scope="module")
def ros(policy_path, tmp_path_factory):
    """``(harness, robot, node_process)``: the node process and the test side, one per module."""
    executable = console_script("policy_node")
    assert executable.exists(), (
        f"{executable} is missing: install the ROS package into the venv with "
        "`.venv/bin/pip install -e deploy/ros2_ws/src/sim2real_ros` (make does)"
    )
    folder = tmp_path_factory.mktemp("ros-node")
    params = write_parameters(folder / "params.yaml", NODE, {
        "policy_path": str(policy_path),
        "joint_names": POLICY_JOINTS,
        "command_joints": COMMAND_JOINTS,
        "task_command": "point",
        "publish_gains": True,
        "standup_s": STANDUP_S,
        "fade_s": FADE_S,
        "watchdog_s": WATCHDOG_S,
        "diagnostics_period_s": 0.1,
    })  # fmt: skip
    domain_id = run_domain_id()
    process = NodeProcess(executable, params, ros_environment(domain_id), folder / "node.log")
    harness = None
    try:
        harness = RosHarness(domain_id)
        robot = Robot(harness)
        wait_for(lambda: robot.latest("diagnostics") or not process.alive(), 30.0)
        assert process.alive(), process.log()
        yield harness, robot, process
    finally:
        if harness is not None:
            harness.close()
        code = process.stop()
        print(f"policy_node exit code {code}; log:\n{process.log()}")


@pytest.fixture
def node(ros):
    """The test side with the node unconfigured, its defaults restored and inputs flowing."""
    harness, robot, process = ros
    assert process.alive(), process.log()
    state = harness.lifecycle_state(NODE)
    if state == "active":
        harness.trigger(f"/{NODE}/reset")  # no latch may carry over to the next test
        assert harness.change_state(NODE, "deactivate")
        state = "inactive"
    if state == "inactive":
        assert harness.change_state(NODE, "cleanup")
    results = harness.set_parameters(NODE, {
        "joint_names": POLICY_JOINTS, "use_joint_trajectory": False, "task_command": "point",
        "task": "", "tick_source": "state",
    })  # fmt: skip
    assert all(ok for ok, _ in results), results
    robot.publishing = True
    robot.clear()
    yield harness, robot
    assert process.alive(), process.log()


def configure(harness: RosHarness, robot: Robot) -> dict[str, str]:
    """Configure, then wait until the node has the joint states (its diagnostics say so)."""
    assert harness.change_state(NODE, "configure")
    return robot.diagnostics(lambda v: "joint_states_receipt_age_s" in v)


def activate_until(harness: RosHarness, robot: Robot, state: str = "running") -> dict[str, str]:
    """Activate and wait for the runtime's ``state`` in the diagnostics."""
    assert harness.change_state(NODE, "activate")
    return robot.diagnostics(lambda v: v.get("runtime.state") == state)


def test_configure_refuses_a_wrong_joint_list(node):
    harness, robot = node
    assert harness.set_parameters(NODE, {"joint_names": ["y", "x"]}) == [(True, "")]
    assert not harness.change_state(NODE, "configure")
    assert harness.lifecycle_state(NODE) == "unconfigured"
    values = robot.diagnostics(lambda v: "configure_error" in v)
    assert "joint_names" in values["configure_error"]
    assert robot.latest("diagnostics").status[0].level == DiagnosticStatus.ERROR

    assert harness.set_parameters(NODE, {"joint_names": POLICY_JOINTS}) == [(True, "")]
    for name, value in (("task", "go2-flat"), ("task_command", "twist")):
        harness.set_parameters(NODE, {name: value})
        assert not harness.change_state(NODE, "configure")
        values = robot.diagnostics(lambda v, name=name: name in v.get("configure_error", ""))
        assert f"'{name}'" in values["configure_error"] or f"{name} is" in values["configure_error"]
        harness.set_parameters(NODE, {"task": "point-reach", "task_command": "auto"})
    values = configure(harness, robot)
    assert harness.lifecycle_state(NODE) == "inactive"
    assert values["task_command_input"] == "point" and "configure_error" not in values


def test_configure_refuses_an_unknown_tick_source(node):
    harness, robot = node
    assert harness.set_parameters(NODE, {"tick_source": "clock"}) == [(True, "")]
    assert not harness.change_state(NODE, "configure")
    values = robot.diagnostics(lambda v: "tick_source" in v.get("configure_error", ""))
    assert "'clock'" in values["configure_error"]


def test_parameters_read_at_configure_are_locked_until_cleanup(node):
    harness, robot = node
    configure(harness, robot)
    ((ok, reason),) = harness.set_parameters(NODE, {"joint_names": ["a", "b"]})
    assert not ok and "configure" in reason
    ((ok, _),) = harness.set_parameters(NODE, {"standup_s": 0.0})  # a read-only safety limit
    assert not ok
    assert harness.change_state(NODE, "cleanup")
    ((ok, _),) = harness.set_parameters(NODE, {"standup_s": 0.0})
    assert not ok  # read-only in every state


@pytest.mark.parametrize("tick_source", ["state", "timer"])
def test_activate_commands_at_the_contract_period(node, tick_source):
    harness, robot = node
    assert harness.set_parameters(NODE, {"tick_source": tick_source}) == [(True, "")]
    values = configure(harness, robot)
    assert values["tick_source"] == tick_source
    period = float(values["control_period_s"])
    assert period == pytest.approx(0.02)
    assert robot.records["commands"] == []  # nothing before activation
    values = activate_until(harness, robot, "running")
    assert robot.mode() == "position"

    robot.clear()
    time.sleep(1.0)
    arrivals = np.array([t for t, _ in robot.records["commands"]])
    assert 0.5 / period < len(arrivals) < 1.5 / period
    assert np.median(np.diff(arrivals)) == pytest.approx(period, rel=0.3)
    for _, msg in robot.records["commands"]:
        assert len(msg.data) == 2 and np.all(np.abs(msg.data) <= 0.5)  # inside the limits
    values = robot.diagnostics()
    for key in (
        "loop.period_mean_s",
        "loop.period_error_max_s",
        "runtime.inference_us",
        "runtime.joint_state_age_s",
        "runtime.last_fault",
        "joint_states_receipt_age_s",
    ):
        assert key in values, key
    assert float(values["runtime.policy_steps"]) > 0
    assert float(values["loop.period_mean_s"]) == pytest.approx(period, rel=0.3)
    assert values["runtime.command"] == "0.2 0.1 0"  # the /target_point target
    if tick_source == "state":  # the 100 Hz joint states pace the ticks
        assert int(values["pacing.state_ticks"]) > int(values["pacing.watchdog_ticks"])
        assert float(values["pacing.state_period_s"]) == pytest.approx(0.01, rel=0.3)
    else:
        assert "pacing.state_ticks" not in values


def test_stale_inputs_lead_to_damping_that_holds_until_reset(node):
    harness, robot = node
    configure(harness, robot)
    activate_until(harness, robot, "running")
    robot.publishing = False  # the joint states go stale
    values = robot.diagnostics(lambda v: v.get("runtime.state") == "damping", WATCHDOG_S + 5)
    assert "joint state is stale" in values["runtime.reason"]
    assert int(values["pacing.watchdog_ticks"]) > 0  # no states: the timer ticked
    wait_for(lambda: robot.mode() == "damping", 2.0)
    # damping holds the last valid pose, in the controller's order
    expected = [POSE[name] for name in COMMAND_JOINTS]
    np.testing.assert_allclose(robot.latest("commands").data, expected, atol=1e-9)
    assert robot.latest("diagnostics").status[0].level == DiagnosticStatus.ERROR

    robot.publishing = True  # fresh inputs do not clear the latch
    time.sleep(0.3)
    assert robot.mode() == "damping"
    assert harness.trigger(f"/{NODE}/reset").success
    robot.diagnostics(lambda v: v.get("runtime.state") in ("standup", "running"))


def test_estop_latches_damping_until_the_reset_service(node):
    harness, robot = node
    configure(harness, robot)
    activate_until(harness, robot, "running")
    response = harness.trigger(f"/{NODE}/estop")
    assert response.success
    robot.diagnostics(lambda v: v.get("runtime.state") == "damping")
    wait_for(lambda: robot.mode() == "damping", 2.0)
    time.sleep(0.3)  # inputs are fresh: still damping
    assert robot.mode() == "damping"
    robot.clear()
    wait_for(lambda: len(robot.records["gains"]) > 3, 2.0)
    assert robot.mode() == "damping"

    assert harness.trigger(f"/{NODE}/reset").success
    robot.diagnostics(lambda v: v.get("runtime.state") == "running", STANDUP_S + FADE_S + 5)
    wait_for(lambda: robot.mode() == "position", 2.0)
    assert not harness.trigger(f"/{NODE}/reset").success  # nothing to reset


def test_estop_while_unconfigured_latches_damping_after_activation(node):
    harness, robot = node
    assert harness.trigger(f"/{NODE}/estop").success
    configure(harness, robot)
    assert harness.change_state(NODE, "activate")
    values = robot.diagnostics(lambda v: v.get("lifecycle_state") == "active")
    assert values["runtime.state"] == "damping"
    wait_for(lambda: robot.mode() == "damping", 2.0)
    assert harness.trigger(f"/{NODE}/reset").success
    robot.diagnostics(lambda v: v.get("runtime.state") in ("standup", "running"))


def test_deactivate_sends_a_last_damping_command_then_stops(node):
    harness, robot = node
    configure(harness, robot)
    assert not harness.trigger(f"/{NODE}/reset").success  # inactive: refused
    activate_until(harness, robot, "running")
    assert harness.change_state(NODE, "deactivate")
    wait_for(lambda: robot.mode() == "damping", 2.0)
    count = len(robot.records["commands"])
    time.sleep(0.3)
    assert len(robot.records["commands"]) == count  # silent while inactive
    values = robot.diagnostics(lambda v: v.get("lifecycle_state") == "inactive")
    assert values["runtime.state"] == "damping"


def test_joint_trajectory_option(node):
    harness, robot = node
    assert harness.set_parameters(NODE, {"use_joint_trajectory": True}) == [(True, "")]
    values = configure(harness, robot)
    period = float(values["control_period_s"])
    activate_until(harness, robot, "running")
    robot.clear()
    time.sleep(0.5)
    messages = [msg for _, msg in robot.records["trajectory"]]
    assert len(messages) > 5 and robot.records["commands"] == []
    assert all(msg.joint_names == COMMAND_JOINTS for msg in messages)
    stamps = np.array([conv.stamp_to_ns(msg.header.stamp) for msg in messages]) * 1e-9
    assert np.median(np.diff(stamps)) == pytest.approx(period, rel=0.2)
    point = messages[-1].points[0]
    assert conv.stamp_to_ns(point.time_from_start) == round(period * 1e9)
