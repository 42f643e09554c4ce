"""The ROS-free HIL logic: fault schedules and injection, the robot driver, schedules, report."""

from __future__ import annotations

import math
from types import SimpleNamespace

import mujoco
import numpy as np
import pytest

from sim2real.deploy.hil.faults import (
    Fault,
    FaultInjector,
    FaultSchedule,
    SensorMessage,
    shipped_fault_files,
)
from sim2real.deploy.hil.hil_log import Event, HilLog
from sim2real.deploy.hil.profile import RobotProfile
from sim2real.deploy.hil.report import StateTimeline, hil_report, tilt
from sim2real.deploy.hil.robot_driver import (
    JointCommand,
    LatencyTracker,
    RobotDriver,
    SensorRates,
)
from sim2real.deploy.hil.schedule import VELOCITY_CYCLE, CommandSchedule
from sim2real.deploy.hil.sim_robot import SimRobot
from sim2real.deploy.hil.statistics import summarize
from sim2real.sim.assets import asset_path
from sim2real.sim.robot import RobotModel

NAMES = ("a", "b", "c")
GO2 = RobotModel.from_mujoco(mujoco.MjModel.from_xml_path(str(asset_path("go2"))))


def joint_message(stamp_ns: int = 5) -> SensorMessage:
    fields = {
        "position": np.array([0.1, 0.2, 0.3]),
        "velocity": np.zeros(3),
        "effort": np.ones(3),
    }
    return SensorMessage("joint_states", stamp_ns, fields, NAMES)


def imu_message(stamp_ns: int = 5) -> SensorMessage:
    fields = {
        "orientation": np.array([1.0, 0, 0, 0]),
        "angular_velocity": np.zeros(3),
        "linear_acceleration": np.array([0, 0, 9.81]),
    }
    return SensorMessage("imu", stamp_ns, fields)


# -- fault schedules ------------------------------------------------------------------------


def test_every_shipped_schedule_loads_sorted():
    files = shipped_fault_files()
    assert {f.stem for f in files} >= {"standard", "panda-all", "go2-all"}
    for path in files:
        schedule = FaultSchedule.from_yaml(path.stem)
        times = [f.at for f in schedule.faults]
        assert times == sorted(times) and times


def test_schedule_round_trips_through_its_dict():
    schedule = FaultSchedule.from_yaml("panda-all")
    assert FaultSchedule.from_dict(schedule.to_dict()) == schedule


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"kind": "boom", "at": 1}, "kind 'boom' is not one of"),
        ({"kind": "dropout", "at": 1}, "missing fields \\['topic'\\]"),
        ({"kind": "dropout", "at": 1, "topic": "joint_states", "foo": 1}, "unknown fields"),
        ({"kind": "dropout", "at": -1, "topic": "imu"}, "at must be finite and >= 0"),
        ({"kind": "dropout", "at": 1, "topic": "lidar"}, "topic must be one of"),
        (
            {"kind": "nonfinite", "at": 1, "topic": "imu", "field": "position"},
            "field must be one of",
        ),
        (
            {"kind": "nonfinite", "at": 1, "topic": "imu", "field": "orientation", "value": 3},
            "value must be one of",
        ),
        ({"kind": "imu_spike", "at": 1, "value": [1, 2]}, "must be 3 finite numbers"),
        ({"kind": "push", "at": 1}, "exactly one of velocity or force"),
    ],
)
def test_bad_faults_are_named(entry, message):
    with pytest.raises(ValueError, match=message):
        FaultSchedule.from_dict({"faults": [entry]}, "my.yaml")


def test_unknown_schedule_name_lists_the_shipped_ones():
    with pytest.raises(FileNotFoundError, match="standard"):
        FaultSchedule.from_yaml("no-such-schedule")


def test_check_robot_refuses_unknown_joints_and_a_missing_imu():
    schedule = FaultSchedule((Fault("missing_joint", 1.0, joint="z"),))
    with pytest.raises(ValueError, match="unknown joint 'z'"):
        schedule.check_robot(NAMES, has_imu=True)
    schedule = FaultSchedule((Fault("dropout", 1.0, topic="imu"),))
    with pytest.raises(ValueError, match="has no IMU"):
        schedule.check_robot(NAMES, has_imu=False)


# -- fault injection ------------------------------------------------------------------------


def test_no_fault_passes_messages_through_unchanged():
    injector = FaultInjector(FaultSchedule())
    message = joint_message()
    assert injector.sensor(message, 1.0) is message


def test_dropout_drops_only_its_topic_and_only_while_active():
    injector = FaultInjector(
        FaultSchedule((Fault("dropout", 1.0, duration=0.5, topic="joint_states"),))
    )
    assert injector.sensor(joint_message(), 0.99) is not None
    assert injector.sensor(joint_message(), 1.0) is None
    assert injector.sensor(imu_message(), 1.2) is not None
    assert injector.sensor(joint_message(), 1.5) is not None


def test_frozen_repeats_the_last_message_before_the_fault_stamp_included():
    injector = FaultInjector(FaultSchedule((Fault("frozen", 1.0, duration=0.5, topic="imu"),)))
    before = imu_message(stamp_ns=100)
    injector.sensor(before, 0.9)
    later = imu_message(stamp_ns=200)
    later.fields["angular_velocity"][:] = 5.0
    frozen = injector.sensor(later, 1.1)
    assert frozen.stamp_ns == 100
    np.testing.assert_array_equal(frozen.fields["angular_velocity"], 0.0)


@pytest.mark.parametrize(("value", "expected"), [("nan", math.nan), ("-inf", -math.inf)])
def test_nonfinite_hits_one_joint_or_all(value, expected):
    one = Fault("nonfinite", 0.0, topic="joint_states", field="velocity", joint="b", value=value)
    out = FaultInjector(FaultSchedule((one,))).sensor(joint_message(), 0.0)
    np.testing.assert_array_equal(out.fields["velocity"], [0.0, expected, 0.0])
    every = Fault("nonfinite", 0.0, topic="joint_states", field="position", value=value)
    out = FaultInjector(FaultSchedule((every,))).sensor(joint_message(), 0.0)
    np.testing.assert_array_equal(out.fields["position"], [expected] * 3)


def test_missing_and_renamed_joints_change_names_and_arrays():
    missing = FaultInjector(FaultSchedule((Fault("missing_joint", 0.0, joint="b"),)))
    out = missing.sensor(joint_message(), 0.0)
    assert out.names == ("a", "c")
    np.testing.assert_array_equal(out.fields["position"], [0.1, 0.3])
    renamed = FaultInjector(FaultSchedule((Fault("renamed_joint", 0.0, joint="c", to="c2"),)))
    assert renamed.sensor(joint_message(), 0.0).names == ("a", "b", "c2")


def test_imu_spike_adds_its_value_and_leaves_the_original_alone():
    spike = Fault("imu_spike", 0.0, field="angular_velocity", value=(0.0, 0.0, 50.0))
    message = imu_message()
    out = FaultInjector(FaultSchedule((spike,))).sensor(message, 0.0)
    np.testing.assert_array_equal(out.fields["angular_velocity"], [0, 0, 50.0])
    np.testing.assert_array_equal(message.fields["angular_velocity"], 0.0)


def test_command_delay_and_pushes_fire_on_time_pushes_once():
    schedule = FaultSchedule(
        (
            Fault("command_delay", 1.0, duration=1.0, delay_s=0.03),
            Fault("push", 2.0, velocity=(1.0, 0.0, 0.0)),
        )
    )
    injector = FaultInjector(schedule)
    assert injector.command_delay(0.5) == 0.0
    assert injector.command_delay(1.5) == 0.03
    assert injector.due_pushes(1.9) == []
    assert len(injector.due_pushes(2.1)) == 1
    assert injector.due_pushes(2.2) == []


# -- the robot driver -------------------------------------------------------------------------


def point_driver(schedule: FaultSchedule | None = None, rates: SensorRates | None = None):
    robot = SimRobot(RobotProfile.nominal("point"))
    published = []
    driver = RobotDriver(
        robot,
        FaultInjector(schedule or FaultSchedule()),
        rates or SensorRates(50.0, 50.0, 10.0),
        lambda kind, payload, stamp: published.append((kind, stamp)),
    )
    return driver, published


def test_driver_publishes_at_its_rates_and_counts_from_the_first_command():
    driver, published = point_driver()
    driver.step(100)  # 1 s at 100 Hz physics: 50 joint states, 10 ground truths, no IMU
    kinds = [kind for kind, _ in published]
    assert kinds.count("joint_states") == 50
    assert kinds.count("ground_truth") == 10
    assert "imu" not in kinds
    assert driver.counts == {}  # nothing counted before the first command
    driver.command(JointCommand(np.zeros(2)))
    driver.step(10)
    assert driver.counts["joint_states"] == 5
    assert driver.t0_ns == 100 * driver.step_ns


def test_driver_holds_commands_back_during_a_command_delay_fault():
    delay = FaultSchedule((Fault("command_delay", 0.0, duration=10.0, delay_s=0.05),))
    driver, _ = point_driver(delay)
    driver.command(JointCommand(np.zeros(2)))  # t0: the fault starts now
    driver.command(JointCommand(np.array([0.1, -0.1])))
    driver.step(4)
    np.testing.assert_array_equal(driver.robot.data.ctrl, driver.robot.robot.default_joint_pos)
    driver.step(2)  # 5 steps of 10 ms: due
    np.testing.assert_allclose(driver.robot.data.ctrl, [0.1, -0.1])


def test_driver_counts_commands_the_robot_refuses():
    driver, _ = point_driver()
    driver.command(JointCommand(np.array([math.nan, 0.0])))
    assert driver.commands_refused == 1


def test_latency_tracker_pairs_in_either_order():
    tracker = LatencyTracker()
    tracker.published(stamp_ns=7, wall_ns=1_000_000)
    tracker.command(wall_ns=1_400_000)
    tracker.input_stamp(7)
    tracker.published(stamp_ns=8, wall_ns=2_000_000)
    tracker.input_stamp(8)
    tracker.command(wall_ns=2_900_000)
    tracker.input_stamp(99)  # a state it never published
    tracker.command(wall_ns=3_000_000)
    np.testing.assert_allclose(tracker.latencies_s, [0.4e-3, 0.9e-3])
    assert tracker.unmatched == 1


def test_latency_tracker_pairs_in_order_and_recovers_from_a_lost_message():
    """Real time (wall stamps): ticks every 20 ms, each state published 1 ms before."""
    ms = 1_000_000
    tracker = LatencyTracker(wall_stamps=True)
    for k in range(8):
        tracker.published(stamp_ns=k, wall_ns=(20 * k - 1) * ms)
    # input stamps two ticks behind their commands: still tick k with command k
    tracker.command(wall_ns=2 * ms)
    tracker.command(wall_ns=22 * ms)
    tracker.input_stamp(0, tick_ns=0)
    tracker.input_stamp(1, tick_ns=20 * ms)
    # tick 2's input stamp is lost: its command is dropped, tick 3 pairs with its own
    tracker.command(wall_ns=42 * ms)
    tracker.input_stamp(3, tick_ns=60 * ms)
    tracker.command(wall_ns=61 * ms)
    # tick 4's command is lost: once tick 5's input is in, tick 4's input is dropped
    tracker.input_stamp(4, tick_ns=80 * ms)
    tracker.input_stamp(5, tick_ns=100 * ms)
    tracker.command(wall_ns=103 * ms)
    np.testing.assert_allclose(tracker.latencies_s, [3e-3, 3e-3, 2e-3, 4e-3])
    np.testing.assert_allclose(tracker.tick_to_command_s, [2e-3, 2e-3, 1e-3, 3e-3])
    np.testing.assert_allclose(tracker.state_age_s, [1e-3] * 4)
    assert tracker.unmatched == 2


def test_sensor_rates_are_positive():
    with pytest.raises(ValueError, match="imu_hz"):
        SensorRates(imu_hz=0.0)


# -- schedules and the report -----------------------------------------------------------------


def test_velocity_schedule_stands_through_the_soft_start_then_cycles():
    schedule = CommandSchedule.default("go2-flat", duration_s=20.0, start_s=3.0)
    np.testing.assert_array_equal(schedule.at(1.0), [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(schedule.at(3.5), VELOCITY_CYCLE[0])
    np.testing.assert_array_equal(schedule.at(7.5), VELOCITY_CYCLE[1])
    planar = np.linalg.norm(schedule.values[:, :2], axis=1)
    assert np.all((planar == 0) | (planar >= 0.2))


def test_target_schedule_draws_in_the_task_box_and_is_seeded():
    a = CommandSchedule.default("arm-reach", duration_s=10.0, seed=3)
    b = CommandSchedule.default("arm-reach", duration_s=10.0, seed=3)
    np.testing.assert_array_equal(a.values, b.values)
    assert a.kind == "target" and a.values.shape == (4, 3)
    assert np.all((a.values[:, 0] >= 0.3) & (a.values[:, 0] <= 0.6))


def test_schedule_times_must_start_at_zero_and_increase():
    with pytest.raises(ValueError, match="start at 0"):
        CommandSchedule("velocity", [1.0, 2.0], np.zeros((2, 3)))


def test_tilt_of_upright_and_upside_down():
    quats = np.array([[1.0, 0, 0, 0], [0.0, 1.0, 0, 0], [np.cos(0.25), np.sin(0.25), 0, 0]])
    np.testing.assert_allclose(tilt(quats), [0.0, np.pi, 0.5])


def test_state_timeline_reads_the_events():
    log = HilLog(
        events=[
            Event(0, "inactive", "standup", "activated"),
            Event(10**9, "standup", "running", ""),
        ]
    )
    timeline = StateTimeline(log, t0_ns=0)
    states = timeline.at(np.array([-0.5, 0.5, 1.5]))
    assert list(states) == ["inactive", "standup", "running"]


def synthetic_log() -> HilLog:
    """Two seconds of a go2 run: running at 0.5 s, a fault at 1.0 s, tilt over at 1.5 s."""
    ticks = np.arange(0, 2_000_000_001, 20_000_000, dtype=np.int64)
    samples = np.arange(0, 2_000_000_001, 10_000_000, dtype=np.int64)
    quat = np.tile([1.0, 0.0, 0.0, 0.0], (samples.size, 1))
    quat[samples >= 1_500_000_000] = [np.cos(0.6), np.sin(0.6), 0.0, 0.0]  # 1.2 rad
    lin_vel = np.zeros((samples.size, 3))
    lin_vel[:, 0] = 0.4
    targets = np.tile(GO2.default_joint_pos, (ticks.size, 1))
    targets[3, 0] = np.nan
    targets[4, 2] = GO2.joint_limits[2, 1] + 0.1
    return HilLog(
        command_targets=targets,
        tick_ns=ticks,
        tick_input_ns=ticks - 300_000,  # states 0.3 ms old at the tick
        tick_receipt_ns=ticks,
        events=[
            Event(0, "inactive", "standup", "activated"),
            Event(200_000_000, "standup", "running", "soft start complete"),
            Event(1_040_000_000, "running", "damping", "joint state is stale"),
            Event(1_300_000_000, "damping", "standup", "reset"),
        ],
        base_ns=samples,
        base_pos=np.zeros((samples.size, 3)),
        base_quat=quat,
        twist_ns=samples,
        base_lin_vel=lin_vel,
        base_ang_vel=np.zeros((samples.size, 3)),
    )


def test_report_tracking_falls_reactions_and_limits_from_a_synthetic_log(go2_contract):
    schedule = CommandSchedule("velocity", [0.0], [[0.5, 0.0, 0.0]])
    faults = FaultSchedule(
        (Fault("dropout", 1.0, duration=0.2, topic="joint_states"), Fault("reset", 1.3))
    )
    stats = {"mode": "lockstep", "commands_received": 101, "published": {}}
    report = hil_report(synthetic_log(), go2_contract, schedule, faults, stats, 2.0)
    assert report["tracking"]["samples"] == 4  # 1.00 .. 1.03 s: from 1 s on, damping at 1.04 s
    assert report["falls"] == {"count": 1, "t_s": [1.5]}
    reaction = report["faults"][0]["reaction"]
    assert reaction["damping_after_s"] == pytest.approx(0.04)
    assert reaction["damping_after_periods"] == pytest.approx(2.0)
    assert report["faults"][1]["reaction"] is None
    assert [e["to"] for e in report["safety_events"]] == [
        "standup",
        "running",
        "damping",
        "standup",
    ]
    assert report["limits"] == {
        "commands": 101,
        "nonfinite_commands": 1,
        "commands_outside_limits": 1,
    }
    assert report["messages"]["commands_dropped"] == 0


def test_a_reaction_stamped_one_period_early_counts_to_the_nanosecond(go2_contract):
    log = synthetic_log()  # the e-stop's event stamped a hair before the previous boundary
    log.events[2] = Event(979_999_999, "running", "damping", "e-stop service")
    faults = FaultSchedule((Fault("estop", 1.0),))
    schedule = CommandSchedule("velocity", [0.0], [[0.5, 0.0, 0.0]])
    report = hil_report(log, go2_contract, schedule, faults, {"mode": "lockstep"}, 2.0)
    assert report["faults"][0]["reaction"]["damping_after_s"] == 0.0
    log.events.append(Event(2_000_000_001, "damping", "inactive", "deactivated"))
    report = hil_report(log, go2_contract, schedule, faults, {"mode": "lockstep"}, 2.0)
    assert report["safety_events"][-1]["reason"] == "deactivated"  # at the run's end


def test_report_counts_velocity_tracking_after_the_transient(go2_contract):
    log = synthetic_log()
    log.events = log.events[:2]  # running from 0.2 s on
    schedule = CommandSchedule("velocity", [0.0], [[0.5, 0.0, 0.0]])
    report = hil_report(log, go2_contract, schedule, FaultSchedule(), {"mode": "lockstep"}, 2.0)
    tracking = report["tracking"]
    assert tracking["samples"] == 101  # 1.0 s .. 2.0 s at 100 Hz
    assert tracking["lin_vel_error"] == pytest.approx(0.1)
    assert tracking["yaw_rate_error"] == 0.0


def test_loop_figures_leave_out_the_ticks_after_the_run(go2_contract):
    log = synthetic_log()  # two ticks after the run's 2 s, on the last state (robot stopped)
    log.tick_ns = np.append(log.tick_ns, [2_020_000_000, 2_047_000_000])
    log.tick_input_ns = np.append(log.tick_input_ns, [1_999_700_000] * 2)
    schedule = CommandSchedule("velocity", [0.0], [[0.5, 0.0, 0.0]])
    report = hil_report(log, go2_contract, schedule, FaultSchedule(), {"mode": "realtime"}, 2.0)
    loop = report["loop"]
    assert loop["ticks"] == 101  # 0 .. 2.0 s
    assert loop["period_error"]["max_ms"] == pytest.approx(0.0, abs=1e-6)
    assert loop["input_period_error"]["max_ms"] == pytest.approx(0.0, abs=1e-6)


def test_report_needs_a_tick(go2_contract):
    with pytest.raises(ValueError, match="no policy tick"):
        hil_report(HilLog(), go2_contract, CommandSchedule("velocity", [0], [[0, 0, 0]]),
                   FaultSchedule(), {}, 1.0)  # fmt: skip


def test_summarize_reports_milliseconds():
    summary = summarize([0.001, 0.002, 0.003])
    assert summary["count"] == 3
    assert summary["p50_ms"] == pytest.approx(2.0)
    assert summarize([])["p99_ms"] is None


@pytest.fixture(scope="module")
def go2_contract() -> SimpleNamespace:
    """What the report reads of a go2 policy's contract."""
    return SimpleNamespace(
        task="go2-flat", control_period_s=0.02, joint_pos_limits=GO2.joint_limits.tolist()
    )
