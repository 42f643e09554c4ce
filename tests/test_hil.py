"""HIL end to end: ``sim2real hil`` runs sim_robot_node and policy_node as real processes.

Lockstep runs (sim time advances as fast as the policy keeps up) of the committed policies
(``pretrained/``), exported once per module, against the shipped robot profiles, with the
shipped fault schedules. Each run is a few seconds of wall time; the report is the thing
under test, read back from the recorded bag. The go2 walk over the whole command cycle is
in the slow suite. Timing figures are not asserted: ``benchmarks/hil_timing.py``.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="the `ros` extra (ROS 2 Jazzy wheels)")
pytest.importorskip("sim2real_ros", reason="the sim2real_ros package (`make` installs it)")

from rosbags.rosbag2 import Reader  # noqa: E402
from sim2real_ros.hil_session import HilConfig, run_hil  # noqa: E402

from sim2real.deploy.hil.faults import FaultSchedule  # noqa: E402
from sim2real.deploy.hil.hil_log import HilLog  # noqa: E402
from sim2real.deploy.hil.profile import RobotProfile, load_profile  # noqa: E402
from sim2real.deploy.hil.sim_robot import SimRobot  # noqa: E402
from sim2real.export.exporter import export_checkpoint  # noqa: E402
from sim2real.sysid.identify import identify, robot_facts  # noqa: E402
from sim2real.sysid.motor import fit_motor  # noqa: E402
from sim2real.sysid.robot_log import RobotLog  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PERIOD = 0.02
WATCHDOG_S = 0.05  # the deploy default (SafetyConfig.max_joint_state_age_s)


@pytest.fixture(scope="module")
def arm_policy(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("arm") / "arm.onnx"
    export_checkpoint(REPO / "pretrained/arm-reach/model_70.pt", path)
    return path


@pytest.fixture(scope="module")
def go2_policy(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("go2") / "go2.onnx"
    export_checkpoint(REPO / "pretrained/go2-flat/model_550.pt", path)
    return path


def run(tmp_path: Path, task: str, policy: Path, **overrides) -> dict:
    config = dict(
        task=task, policy=policy, out_dir=tmp_path / "hil", record=tmp_path / "bag",
        state_rate_hz=100.0, standup_s=0.5, fade_s=0.3,
    )  # fmt: skip
    config.update(overrides)
    return run_hil(HilConfig(**config))


def assert_commands_inside_limits(report: dict) -> None:
    limits = report["limits"]
    assert limits["commands"] > 0
    assert limits["nonfinite_commands"] == 0
    assert limits["commands_outside_limits"] == 0


def test_arm_reaches_its_targets_in_lockstep_and_the_bag_is_complete(tmp_path, arm_policy):
    report = run(tmp_path, "arm-reach", arm_policy, duration_s=6.0)
    assert report["mode"] == "lockstep"
    assert report["tracking"]["ee_error"] < 0.03  # the policy's sim figure: 1.98 cm
    assert [e["to"] for e in report["safety_events"]] == ["standup", "running", "damping"]
    assert report["safety_events"][-1]["reason"] == "deactivated"
    assert_commands_inside_limits(report)
    messages = report["messages"]
    assert messages["commands_dropped"] == 0
    assert messages["lockstep_timeouts"] == 0
    assert messages["topics"]["joint_states"]["dropped"] == 0
    assert report["loop"]["ticks"] == pytest.approx(6.0 / PERIOD, abs=2)
    latency = report["latency"]["state_to_command"]
    assert latency["count"] >= 0.95 * report["loop"]["ticks"]  # all but the last few
    assert json.loads((tmp_path / "hil" / "hil_report.json").read_text()) == report

    with Reader(tmp_path / "bag") as reader:  # plain rosbags reads every topic
        topics = {c.topic: c.msgcount for c in reader.connections}
    for topic in ("/joint_states", "/forward_position_controller/commands", "/clock",
                  "/policy_node/gains", "/policy_node/input_stamp", "/policy_node/events",
                  "/target_point", "/sim/ee_position"):  # fmt: skip
        assert topics.get(topic, 0) > 0, topic
    log = HilLog.from_bag(tmp_path / "bag")
    assert log.joint_names[0] == "panda_joint1"
    assert log.joint_effort.shape == log.joint_pos.shape  # efforts logged, for sysid

    robot_log = RobotLog.from_bag(tmp_path / "bag")  # sysid reads the bag
    assert robot_log.targets.shape == (report["loop"]["ticks"], 7)
    profile = load_profile("panda")
    nominal = SimRobot(RobotProfile.nominal("panda")).robot
    fit = fit_motor(robot_log.aligned(0.01), nominal.kp, nominal.kd)
    np.testing.assert_allclose(fit.kp_scale, profile.resolve()["kp_scale"], rtol=0.05)


def test_every_arm_fault_gets_its_reaction(tmp_path, arm_policy):
    faults = FaultSchedule.from_yaml("panda-all")
    report = run(tmp_path, "arm-reach", arm_policy, faults="panda-all", duration_s=19.0)
    assert_commands_inside_limits(report)
    by_kind = {}
    for entry in report["faults"]:
        by_kind.setdefault(entry["kind"], []).append(entry)
    assert len(report["faults"]) == len(faults.faults)

    watchdog = WATCHDOG_S + 3 * PERIOD
    for entry in by_kind["dropout"] + by_kind["frozen"]:
        assert entry["reaction"]["damping_after_s"] <= watchdog + 1e-9, entry
    for kind in ("nonfinite", "missing_joint", "renamed_joint", "estop"):
        for entry in by_kind[kind]:
            assert entry["reaction"]["damping_after_periods"] <= 3 + 1e-9, entry
    for kind in ("command_delay", "push"):  # the policy rides these out
        assert by_kind[kind][0]["reaction"] is None, kind

    events = report["safety_events"]
    estop = next(e for e in events if e["reason"] == "e-stop service")
    # the reset is stamped with the policy's clock, one period before the robot's time
    reset_at = by_kind["reset"][-1]["t_s"] - PERIOD - 1e-9
    during = [e for e in events if estop["t_s"] < e["t_s"] < reset_at]
    assert during == []  # DAMPING holds until the reset
    after = [e["to"] for e in events if e["t_s"] >= reset_at]
    assert after[:2] == ["standup", "running"]
    reasons = " ".join(e["reason"] for e in events)
    for expected in ("stale", "not finite", "efforts not finite", "missing joints"):
        assert expected in reasons


def test_go2_rides_out_a_push_and_damps_on_every_imu_fault(tmp_path, go2_policy):
    report = run(
        tmp_path, "go2-flat", go2_policy, faults="go2-all", duration_s=8.0,
        standup_s=1.0, fade_s=0.5,
    )  # fmt: skip
    assert_commands_inside_limits(report)
    assert report["falls"]["count"] == 0
    entries = {entry["kind"]: entry for entry in report["faults"]}
    assert entries["push"]["reaction"] is None
    assert entries["imu_spike"]["reaction"]["damping_after_periods"] <= 3 + 1e-9
    assert entries["dropout"]["reaction"]["damping_after_s"] <= WATCHDOG_S + 3 * PERIOD + 1e-9
    assert entries["nonfinite"]["reaction"]["damping_after_periods"] <= 3 + 1e-9
    tracking = report["tracking"]  # 0.5 m/s forward, before the spike at 5 s
    assert tracking["samples"] > 50
    assert tracking["lin_vel_error"] < 0.3

    # the loop's first half: sysid reads the walking robot's bag (motor model only)
    identification = identify(RobotLog.from_bag(tmp_path / "bag"), robot_facts("go2"), "go2")
    truth = load_profile("go2").resolve()
    np.testing.assert_allclose(identification.values["kp_scale"], truth["kp_scale"], rtol=0.05)


@pytest.mark.slow
def test_go2_stands_up_and_walks_the_command_cycle(tmp_path, go2_policy):
    report = run(tmp_path, "go2-flat", go2_policy, duration_s=31.0, standup_s=2.0, fade_s=1.0)
    assert report["falls"]["count"] == 0
    assert [e["to"] for e in report["safety_events"]][:2] == ["standup", "running"]
    assert report["tracking"]["lin_vel_error"] < 0.3
    assert report["tracking"]["yaw_rate_error"] < 0.3
    assert_commands_inside_limits(report)


def test_killing_the_recorder_leaves_a_readable_bag_and_no_nodes(tmp_path, arm_policy):
    bag = tmp_path / "bag"
    command = [
        sys.executable, "-m", "sim2real", "hil", "arm-reach", "--policy", str(arm_policy),
        "--duration", "60", "--state-rate", "100", "--record", str(bag),
        "-o", str(tmp_path / "hil"),
    ]  # fmt: skip
    hil = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not list(bag.glob("*.mcap")) or len(list(bag.glob("*.mcap"))) < 2:
            assert hil.poll() is None, "sim2real hil exited early"
            assert time.monotonic() < deadline, "no bag segment within 60 s"
            time.sleep(0.2)
    finally:
        hil.send_signal(signal.SIGKILL)
        hil.wait(10)
    with Reader(bag) as reader:  # opens as it is, no repair
        counts = {c.topic: c.msgcount for c in reader.connections}
        assert counts.get("/joint_states", 0) > 0
        assert sum(1 for _ in reader.messages()) == sum(counts.values())
    # the nodes got SIGTERM from the kernel when their parent died; they shut down
    pattern = str(tmp_path / "hil")

    def nodes_left() -> str:
        found = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True)
        return found.stdout.strip()

    deadline = time.monotonic() + 20
    while nodes_left() and time.monotonic() < deadline:
        time.sleep(0.2)
    left = nodes_left()
    subprocess.run(["pkill", "-9", "-f", pattern], check=False)  # never leave one behind
    assert left == ""
