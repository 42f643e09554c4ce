"""Crash-safe rosbag2 (MCAP) recording of the HIL: round trips, segments, SIGKILL, recovery."""

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("rosbags", reason="the `ros` extra (rosbags)")
from rosbags.rosbag2 import Reader  # noqa: E402
from rosbags.typesys import Stores, get_typestore  # noqa: E402

from sim2real.deploy.hil.bag import (  # noqa: E402
    BagMessage,
    BagWriter,
    bag_topics,
    read_bag,
    recover,
)

TYPESTORE = get_typestore(Stores.ROS2_JAZZY)
REPO = Path(__file__).resolve().parents[1]
F64_ARRAY = "std_msgs/msg/Float64MultiArray"


def f64_array_cdr(*values: float) -> bytes:
    """A Float64MultiArray as CDR, serialized by rosbags (no rclpy needed)."""
    layout = TYPESTORE.types["std_msgs/msg/MultiArrayLayout"](dim=[], data_offset=0)
    msg = TYPESTORE.types[F64_ARRAY](layout=layout, data=np.array(values, dtype=np.float64))
    return bytes(TYPESTORE.serialize_cdr(msg, F64_ARRAY))


def plain_read(bag: Path) -> list[tuple[str, int, object]]:
    """Every message through rosbags alone: Reader + strict typestore.deserialize_cdr."""
    with Reader(bag) as reader:
        return [
            (conn.topic, t, TYPESTORE.deserialize_cdr(data, conn.msgtype))
            for conn, t, data in reader.messages()
        ]


def metadata(bag: Path) -> dict:
    return yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]


# --- round trip ---------------------------------------------------------------------------------


def rclpy_messages():
    """JointState, Imu, Float64MultiArray, TimeReference built and serialized with rclpy."""
    serialization = pytest.importorskip("rclpy.serialization", reason="ROS 2 Jazzy rclpy")
    sensor_msgs = pytest.importorskip("sensor_msgs.msg")
    std_msgs = pytest.importorskip("std_msgs.msg")

    js = sensor_msgs.JointState()
    js.header.stamp.sec, js.header.stamp.nanosec, js.header.frame_id = 12, 345, "base"
    js.name = ["hip", "knee", "ankle"]
    js.position = [0.1, -0.2, 0.3]
    js.velocity = [1.5, 2.5, -3.5]  # effort left empty: rmw_serialize pads such messages
    imu = sensor_msgs.Imu()
    imu.header.frame_id = "imu_link"
    imu.orientation.x, imu.orientation.w = 0.6, 0.8
    imu.angular_velocity.z = -0.25
    imu.linear_acceleration.z = 9.81
    imu.orientation_covariance = np.arange(9, dtype=np.float64)
    arr = std_msgs.Float64MultiArray()
    dim = std_msgs.MultiArrayDimension()
    dim.label, dim.size, dim.stride = "joints", 4, 4
    arr.layout.dim = [dim]
    arr.data = [0.5, -1.0, 2.0, 1e-9]
    ref = sensor_msgs.TimeReference()
    ref.header.stamp.sec = 7
    ref.time_ref.sec, ref.time_ref.nanosec = 1_700_000_000, 999_999_999
    ref.source = "sim_robot"
    return [
        ("/joint_states", "sensor_msgs/msg/JointState", js),
        ("/imu", "sensor_msgs/msg/Imu", imu),
        ("/policy/action", F64_ARRAY, arr),
        ("/sim/time_reference", "sensor_msgs/msg/TimeReference", ref),
    ], serialization.serialize_message


def assert_same(topic: str, got, want) -> None:
    """A rosbags message equals the rclpy message it was serialized from."""
    if topic == "/joint_states":
        assert (got.header.stamp.sec, got.header.stamp.nanosec) == (12, 345)
        assert got.header.frame_id == "base"
        assert list(got.name) == list(want.name)
        np.testing.assert_array_equal(got.position, want.position)
        np.testing.assert_array_equal(got.velocity, want.velocity)
        assert len(got.effort) == 0
    elif topic == "/imu":
        assert got.header.frame_id == "imu_link"
        assert (got.orientation.x, got.orientation.w) == (0.6, 0.8)
        assert (got.angular_velocity.z, got.linear_acceleration.z) == (-0.25, 9.81)
        np.testing.assert_array_equal(got.orientation_covariance, want.orientation_covariance)
    elif topic == "/policy/action":
        assert [(d.label, d.size, d.stride) for d in got.layout.dim] == [("joints", 4, 4)]
        np.testing.assert_array_equal(got.data, want.data)
    else:
        assert got.header.stamp.sec == 7
        assert (got.time_ref.sec, got.time_ref.nanosec) == (1_700_000_000, 999_999_999)
        assert got.source == "sim_robot"


def test_round_trip_of_rclpy_messages(tmp_path):
    msgs, serialize = rclpy_messages()
    bag = tmp_path / "run"
    with BagWriter(bag) as writer:
        for topic, msgtype, _ in msgs:
            writer.add_topic(topic, msgtype)
        for k in range(3):
            for j, (topic, _, msg) in enumerate(msgs):
                writer.write(topic, 1_000_000_000 + 1000 * k + j, serialize(msg))
        assert writer.message_counts == {topic: 3 for topic, _, _ in msgs}
    assert bag_topics(bag) == {topic: (msgtype, 3) for topic, msgtype, _ in msgs}

    want = {topic: msg for topic, _, msg in msgs}
    read = list(read_bag(bag))
    assert len(read) == 12
    assert [m.timestamp_ns for m in read] == sorted(m.timestamp_ns for m in read)
    for m in read:
        assert isinstance(m, BagMessage)
        assert m.msgtype == dict((t, ty) for t, ty, _ in msgs)[m.topic]
        assert_same(m.topic, m.msg, want[m.topic])

    plain = plain_read(bag)  # strict: no trailing bytes beyond CDR padding in the bag
    assert len(plain) == 12
    for topic, _, msg in plain:
        assert_same(topic, msg, want[topic])

    only = list(read_bag(bag, ["/imu", "/sim/time_reference"]))
    assert {m.topic for m in only} == {"/imu", "/sim/time_reference"} and len(only) == 6


def test_check_cdr_trims_serialize_message_slack_only(tmp_path):
    msgs, serialize = rclpy_messages()
    topic, msgtype, js = msgs[0]
    raw = serialize(js)  # may carry junk past the message end (rmw_serialize's size estimate)
    exact = len(TYPESTORE.serialize_cdr(_decode_lenient(raw, msgtype), msgtype))
    for check in (True, False):
        bag = tmp_path / f"check_{check}"
        with BagWriter(bag, check_cdr=check) as writer:
            writer.add_topic(topic, msgtype)
            writer.write(topic, 5, raw)
            writer.write(topic, 6, raw)
        with Reader(bag) as reader:
            stored = [bytes(data) for _, _, data in reader.messages()]
        if check:
            assert all(len(s) - exact <= 3 and raw.startswith(s) for s in stored)
        else:
            assert stored == [raw, raw]  # verbatim
        [m1, m2] = read_bag(bag)  # lenient about slack either way
        assert_same(topic, m1.msg, js)
        assert m2.timestamp_ns == 6


def _decode_lenient(raw: bytes, msgtype: str):
    msgdef = TYPESTORE.get_msgdef(msgtype)
    return msgdef.deserialize_cdr_le(memoryview(raw)[4:], 0, msgdef.cls, TYPESTORE)[0]


# --- segments -----------------------------------------------------------------------------------


def test_segments_rotate_and_metadata_counts_match(tmp_path):
    bag = tmp_path / "seg"
    writer = BagWriter(bag, segment_s=0.03)
    writer.add_topic("/a", F64_ARRAY)
    writer.add_topic("/b", "sensor_msgs/TimeReference")  # pkg/Type shorthand
    assert bag_topics(bag) == {  # readable from the start, before any message
        "/a": (F64_ARRAY, 0),
        "/b": ("sensor_msgs/msg/TimeReference", 0),
    }
    ref = TYPESTORE.types["sensor_msgs/msg/TimeReference"]
    header = TYPESTORE.types["std_msgs/msg/Header"]
    stamp = TYPESTORE.types["builtin_interfaces/msg/Time"]
    ref_cdr = bytes(
        TYPESTORE.serialize_cdr(
            ref(header(stamp(1, 2), "x"), stamp(3, 4), "src"), "sensor_msgs/msg/TimeReference"
        )
    )
    t0 = time.monotonic()
    n = 0
    while time.monotonic() - t0 < 0.25 or n < 40:
        writer.write("/a", 1000 + n, f64_array_cdr(n))
        if n % 3 == 0:
            writer.write("/b", 1000 + n, ref_cdr)
        n += 1
        time.sleep(0.002)
    closed = sum(f["message_count"] for f in metadata(bag)["files"])
    assert 0 < closed <= sum(writer.message_counts.values())
    assert len(plain_read(bag)) == closed  # the bag reads while being written
    writer.close()
    writer.close()  # idempotent

    files = sorted(bag.glob("*.mcap"))
    assert len(files) >= 3
    assert sorted(p.name for p in bag.iterdir()) == sorted(
        [*(p.name for p in files), "metadata.yaml"]
    )
    meta = metadata(bag)
    assert meta["relative_file_paths"] == [f["path"] for f in meta["files"]]
    assert sorted(meta["relative_file_paths"]) == [p.name for p in files]
    counts = writer.message_counts
    assert counts == {"/a": n, "/b": (n + 2) // 3}
    assert meta["message_count"] == sum(counts.values())
    assert {
        t["topic_metadata"]["name"]: t["message_count"] for t in meta["topics_with_message_count"]
    } == counts
    for info in meta["files"]:  # per-file entries agree with the MCAP files themselves
        with Reader(bag / info["path"]) as reader:
            assert reader.message_count == info["message_count"] > 0
            assert reader.start_time == info["starting_time"]["nanoseconds_since_epoch"]
    values = [m.msg.data[0] for m in read_bag(bag, ["/a"])]
    assert values == list(range(n))
    assert sum(1 for _ in read_bag(bag, ["/b"])) == counts["/b"]


def test_read_bag_merges_segments_in_timestamp_order(tmp_path):
    bag = tmp_path / "order"
    with BagWriter(bag, segment_s=60.0) as writer:
        writer.add_topic("/x", F64_ARRAY)
        for t in (500, 300, 700):
            writer.write("/x", t, f64_array_cdr(t))
        writer.flush()
        writer.flush()  # nothing open: no empty segment
        for t in (100, 600):
            writer.write("/x", t, f64_array_cdr(t))
    assert len(list(bag.glob("*.mcap"))) == 2
    assert [m.timestamp_ns for m in read_bag(bag)] == [100, 300, 500, 600, 700]
    assert [m.msg.data[0] for m in read_bag(bag)] == [100, 300, 500, 600, 700]


# --- crash safety -------------------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from rosbags.typesys import Stores, get_typestore
    from sim2real.deploy.hil.bag import BagWriter

    ts = get_typestore(Stores.ROS2_JAZZY)
    F64 = "std_msgs/msg/Float64MultiArray"
    layout = ts.types["std_msgs/msg/MultiArrayLayout"](dim=[], data_offset=0)

    def cdr(i):
        msg = ts.types[F64](layout=layout, data=np.array([float(i), -float(i)]))
        return bytes(ts.serialize_cdr(msg, F64))

    bag, mode = sys.argv[1], sys.argv[2]
    writer = BagWriter(bag, segment_s=0.2 if mode == "loop" else 60.0)
    writer.add_topic("/seq", F64)
    i = 0
    if mode == "loop":  # record until killed
        while True:
            writer.write("/seq", time.time_ns(), cdr(i))
            i += 1
            if i % 50 == 0:
                print("written", i, flush=True)
            time.sleep(0.001)
    for _ in range(2):  # two closed segments of 20, then 37 in the open one; then hang
        for _ in range(20):
            writer.write("/seq", time.time_ns(), cdr(i))
            i += 1
        writer.flush()
    for _ in range(37):
        writer.write("/seq", time.time_ns(), cdr(i))
        i += 1
    print("READY", i, flush=True)
    time.sleep(120)
    """
)


def start_child(tmp_path: Path, mode: str) -> tuple[subprocess.Popen, Path, Path]:
    bag, log = tmp_path / "crash", tmp_path / f"{mode}.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(bag), mode],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
    return proc, bag, log


def wait_for(condition, proc: subprocess.Popen, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            pytest.fail(f"recorder never got there (rc={proc.returncode}):\n{log.read_text()}")
        time.sleep(0.01)


def kill(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=10) == -signal.SIGKILL


def seq_values(bag: Path) -> list[float]:
    values = [m.msg.data for m in read_bag(bag)]
    assert all(v[1] == -v[0] for v in values)  # every message intact
    return [float(v[0]) for v in values]


def test_sigkill_mid_run_leaves_a_readable_bag(tmp_path):
    proc, bag, log = start_child(tmp_path, "loop")
    try:

        def two_segments_and_more() -> bool:
            try:
                listed = metadata(bag)["relative_file_paths"]
            except (OSError, TypeError, KeyError):
                return False
            return len(listed) >= 2 and any(bag.glob("*.mcap.part"))

        wait_for(two_segments_and_more, proc, log)
        kill(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "written" in log.read_text()

    closed = metadata(bag)
    assert len(closed["relative_file_paths"]) >= 2
    plain = plain_read(bag)  # rosbags alone, no recovery
    assert len(plain) == closed["message_count"] > 0
    values = [float(msg.data[0]) for _, _, msg in plain]
    assert values == list(range(len(values)))  # the closed segments, complete and in order
    assert all(msg.data[1] == -msg.data[0] for _, _, msg in plain)

    recovered = recover(bag)
    assert recovered >= 0
    after = seq_values(bag)
    assert after == list(range(len(values) + recovered))
    assert bag_topics(bag) == {"/seq": (F64_ARRAY, len(after))}
    assert not list(bag.glob("*.mcap.part")) and not (bag / ".staging").exists()
    assert len(plain_read(bag)) == len(after)
    assert recover(bag) == 0  # idempotent


def test_sigkill_then_recover_salvages_the_open_segment(tmp_path):
    proc, bag, log = start_child(tmp_path, "hang")
    try:
        wait_for(lambda: "READY" in log.read_text(), proc, log)
        kill(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert log.read_text().split() == ["READY", "77"]
    assert [p.name for p in sorted(bag.glob("*.mcap*"))] == [
        "crash_0.mcap",
        "crash_1.mcap",
        "crash_2.mcap.part",
    ]
    assert len(plain_read(bag)) == 40
    assert seq_values(bag) == list(range(40))  # reading does not recover
    assert recover(bag) == 37
    assert seq_values(bag) == list(range(77))
    assert metadata(bag)["message_count"] == 77
    assert [p.name for p in sorted(bag.glob("*.mcap*"))] == [
        "crash_0.mcap",
        "crash_1.mcap",
        "crash_2.mcap",
    ]
    assert len(plain_read(bag)) == 77


def test_recover_stops_at_a_torn_record_and_skips_listed_journals(tmp_path):
    bag = tmp_path / "live"
    writer = BagWriter(bag, segment_s=60.0)
    writer.add_topic("/seq", F64_ARRAY)
    for i in range(10):
        writer.write("/seq", i, f64_array_cdr(i, -i))
    writer.flush()
    for i in range(10, 15):
        writer.write("/seq", i, f64_array_cdr(i, -i))
    with pytest.raises(RuntimeError, match="live BagWriter"):
        recover(bag)  # a writer still holds the bag

    crashed = tmp_path / "crashed"  # the directory as a crash at this instant leaves it
    shutil.copytree(bag, crashed)
    [journal] = crashed.glob("*.mcap.part")
    os.truncate(journal, journal.stat().st_size - 3)  # the kill cut the last record
    assert recover(crashed) == 4
    assert seq_values(crashed) == list(range(14))

    stale = tmp_path / "stale.part"  # crash after the metadata update, before the unlink
    shutil.copy(next(bag.glob("*.mcap.part")), stale)
    writer.close()
    shutil.copy(stale, bag / "live_1.mcap.part")
    assert recover(bag) == 0
    assert seq_values(bag) == list(range(15))
    assert not list(bag.glob("*.mcap.part"))


# --- errors -------------------------------------------------------------------------------------


def test_bad_input_errors(tmp_path):
    bag = tmp_path / "bad"
    with BagWriter(bag) as writer:
        with pytest.raises(ValueError, match="sensor_msgs/msg/NoSuchType"):
            writer.add_topic("/x", "sensor_msgs/msg/NoSuchType")
        writer.add_topic("/x", F64_ARRAY)
        writer.add_topic("/x", F64_ARRAY)  # again with its type: fine
        with pytest.raises(ValueError, match="already in bag"):
            writer.add_topic("/x", "sensor_msgs/msg/JointState")
        with pytest.raises(KeyError, match="/nope"):
            writer.write("/nope", 1, f64_array_cdr(1.0))
        with pytest.raises(ValueError, match="timestamp_ns"):
            writer.write("/x", -1, f64_array_cdr(1.0))
        with pytest.raises(ValueError, match="/x"):
            writer.write("/x", 1, b"\x00\x01\x00\x00\x01")  # not a Float64MultiArray
        writer.write("/x", 1, f64_array_cdr(1.0))
    with pytest.raises(RuntimeError, match="closed"):
        writer.write("/x", 2, f64_array_cdr(2.0))

    with pytest.raises(FileExistsError, match=str(bag)):
        BagWriter(bag)
    with pytest.raises(ValueError, match="segment_s"):
        BagWriter(tmp_path / "other", segment_s=0)
    (tmp_path / "empty").mkdir()
    BagWriter(tmp_path / "empty").close()  # an empty folder is fine

    with pytest.raises(ValueError, match=r"\['/missing'\].*'/x'"):
        read_bag(bag, ["/x", "/missing"])  # raised on the call, not on iteration
    missing = tmp_path / "no_such_bag"
    for call in (read_bag, bag_topics, recover):
        with pytest.raises(FileNotFoundError, match="no_such_bag"):
            call(missing)
    (tmp_path / "not_a_bag").mkdir()
    with pytest.raises(FileNotFoundError, match="not_a_bag.*metadata.yaml"):
        bag_topics(tmp_path / "not_a_bag")
    (tmp_path / "file.mcap").write_bytes(b"")
    with pytest.raises(ValueError, match="file.mcap"):
        read_bag(tmp_path / "file.mcap")
