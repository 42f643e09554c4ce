"""Crash-safe rosbag2 recording in MCAP storage, on the pure-python ``rosbags`` library.

``sim2real hil --record BAG`` hands this module the raw CDR bytes its rclpy subscriptions
receive (``create_subscription(..., raw=True)``) and they go into the bag as they are (by
default decoded once to validate them, see :class:`BagWriter`; nothing is re-serialized). The
result is a plain rosbag2 directory (``metadata.yaml`` + ``<name>_<i>.mcap`` files, the layout
of a split ``ros2 bag record -s mcap``) that ``rosbags.rosbag2.Reader`` and :func:`read_bag`
open.

Crash safety. The bag is written in *segments* of ``segment_s`` seconds (wall clock). A
segment is built by ``rosbags``' own MCAP writer in ``<bag>/.staging/`` and, once complete,
moved into the bag with ``os.replace``; only then is ``metadata.yaml`` rewritten (atomically:
temp file + ``os.replace``) to list it. ``metadata.yaml`` only ever names complete files, so at
any instant, a ``SIGKILL`` included, the directory is a valid bag holding every closed segment.
Alongside, each message of the open segment is appended to a journal
``<name>_<i>.mcap.part`` (an unchunked, unindexed MCAP record stream, one ``write`` call per
message) that readers ignore; after a crash :func:`recover` salvages its complete records
into a closed segment. Reading never recovers implicitly, so reading has no side effects.

Example:
    >>> with BagWriter("run1", segment_s=1.0) as bag:  # doctest: +SKIP
    ...     bag.add_topic("/joint_states", "sensor_msgs/msg/JointState")
    ...     bag.write("/joint_states", time.time_ns(), cdr_bytes)
    >>> for m in read_bag("run1", ["/joint_states"]):  # doctest: +SKIP
    ...     print(m.timestamp_ns, m.msg.position)
"""

from __future__ import annotations

import difflib
import functools
import heapq
import operator
import os
import shutil
import struct
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import yaml
from rosbags.interfaces import Connection
from rosbags.rosbag2 import Reader, ReaderError, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore
from rosbags.typesys.store import Typestore

try:  # POSIX: an advisory lock keeps recover() off a bag that a live writer holds
    import fcntl
except ImportError:  # pragma: no cover - not a ROS 2 Jazzy platform
    fcntl = None  # type: ignore[assignment]

__all__ = ["BagMessage", "BagWriter", "bag_topics", "read_bag", "recover"]

_METADATA = "metadata.yaml"
_JOURNAL_SUFFIX = ".mcap.part"
_STAGING = ".staging"
_LOCK = ".lock"
_MCAP_MAGIC = b"\x89MCAP0\r\n"
_OP_HEADER, _OP_SCHEMA, _OP_CHANNEL, _OP_MESSAGE = 0x01, 0x03, 0x04, 0x05
_RECORD_HEAD = struct.Struct("<BQ")  # opcode, record length
_MESSAGE_HEAD = struct.Struct("<BQHIQQ")  # opcode, length, channel, sequence, log, publish time
_ROS_DISTRO = "jazzy"


@functools.lru_cache(maxsize=1)
def _typestore() -> Typestore:
    """The ROS 2 Jazzy typestore of ``rosbags`` (message definitions, CDR codecs)."""
    return get_typestore(Stores.ROS2_JAZZY)


@dataclass(frozen=True)
class _Topic:
    """One topic of a bag, with what a connection needs."""

    name: str
    msgtype: str
    msgdef: str
    rihs01: str
    channel_id: int  # 1-based, stable over the bag's segments


def _make_topic(name: str, msgtype: str, channel_id: int) -> _Topic:
    """Resolve ``msgtype`` in the Jazzy typestore; ValueError naming it when unknown."""
    store = _typestore()
    if msgtype not in store.fielddefs:
        parts = msgtype.split("/")
        if len(parts) == 2 and f"{parts[0]}/msg/{parts[1]}" in store.fielddefs:
            msgtype = f"{parts[0]}/msg/{parts[1]}"  # "sensor_msgs/JointState" shorthand
        else:
            near = difflib.get_close_matches(msgtype, list(store.fielddefs), n=3)
            hint = f"; did you mean {', '.join(near)}?" if near else ""
            msg = (
                f"unknown message type {msgtype!r} for topic {name!r}: not in the ROS 2 Jazzy "
                f"typestore of rosbags (expected e.g. 'sensor_msgs/msg/JointState'){hint}"
            )
            raise ValueError(msg)
    msgdef, _ = store.generate_msgdef(msgtype, ros_version=2)
    return _Topic(name, msgtype, msgdef, store.hash_rihs01(msgtype), channel_id)


def _deserialize(store: Typestore, data: bytes | memoryview, msgtype: str) -> tuple[object, int]:
    """Decode CDR (encapsulation header included) leniently about trailing bytes.

    Returns:
        The message and the number of bytes it spans, header included.
    """
    if len(data) < 4 or bytes(data[:2]) not in {b"\x00\x00", b"\x00\x01"}:
        msg = "not CDR: missing or unsupported encapsulation header"
        raise ValueError(msg)
    msgdef = store.get_msgdef(msgtype)
    func = msgdef.deserialize_cdr_le if data[1] else msgdef.deserialize_cdr_be
    try:
        message, pos = func(memoryview(data)[4:], 0, msgdef.cls, store)
    except (struct.error, UnicodeDecodeError, ValueError, IndexError, TypeError) as err:
        msg = f"CDR does not decode as {msgtype}: {err}"
        raise ValueError(msg) from err
    if pos + 4 > len(data):
        msg = f"CDR too short for {msgtype}: {len(data)} bytes, needs {pos + 4}"
        raise ValueError(msg)
    return message, pos + 4


# --- journal: an unchunked MCAP record stream, salvageable up to a torn tail -----------------


def _mcap_string(text: str) -> bytes:
    data = text.encode()
    return struct.pack("<I", len(data)) + data


def _record(opcode: int, payload: bytes) -> bytes:
    return _RECORD_HEAD.pack(opcode, len(payload)) + payload


def _journal_header() -> bytes:
    return _MCAP_MAGIC + _record(
        _OP_HEADER, _mcap_string("ros2") + _mcap_string("sim2real.deploy.hil.bag")
    )


def _journal_topic(topic: _Topic) -> bytes:
    """Schema + channel records; the schema id is the channel id (one schema per channel)."""
    schema = struct.pack("<H", topic.channel_id) + b"".join(
        _mcap_string(s) for s in (topic.msgtype, "ros2msg", topic.msgdef)
    )
    channel = (
        struct.pack("<HH", topic.channel_id, topic.channel_id)
        + _mcap_string(topic.name)
        + _mcap_string("cdr")
        + struct.pack("<I", 0)  # empty metadata map
    )
    return _record(_OP_SCHEMA, schema) + _record(_OP_CHANNEL, channel)


def _parse_journal(path: Path) -> tuple[dict[int, tuple[str, str]], list[tuple[int, int, bytes]]]:
    """Complete records of a journal, up to the first torn or foreign one.

    Returns:
        ``{channel id: (topic, msgtype)}`` and ``[(channel id, timestamp ns, cdr)]``.
    """
    data = path.read_bytes()
    channels: dict[int, tuple[str, str]] = {}
    schemas: dict[int, str] = {}
    messages: list[tuple[int, int, bytes]] = []
    if not data.startswith(_MCAP_MAGIC):
        return channels, messages
    pos = len(_MCAP_MAGIC)
    view = memoryview(data)

    def string(off: int) -> tuple[str, int]:
        (n,) = struct.unpack_from("<I", data, off)
        return bytes(view[off + 4 : off + 4 + n]).decode(), off + 4 + n

    while pos + _RECORD_HEAD.size <= len(data):
        opcode, length = _RECORD_HEAD.unpack_from(data, pos)
        body = pos + _RECORD_HEAD.size
        if body + length > len(data):
            break  # torn tail: the crash cut this record
        try:
            if opcode == _OP_MESSAGE:
                cid, _seq, log_time, _pub = struct.unpack_from("<HIQQ", data, body)
                if cid in channels:
                    messages.append((cid, log_time, bytes(view[body + 22 : body + length])))
            elif opcode == _OP_SCHEMA:
                (sid,) = struct.unpack_from("<H", data, body)
                schemas[sid], _ = string(body + 2)
            elif opcode == _OP_CHANNEL:
                cid, sid = struct.unpack_from("<HH", data, body)
                topic, _ = string(body + 4)
                channels[cid] = (topic, schemas[sid])
        except (struct.error, UnicodeDecodeError, KeyError):
            break  # garbage: keep what came before
        pos = body + length
    return channels, messages


# --- segments ---------------------------------------------------------------------------------


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _segment_index(path: Path) -> int:
    """``i`` of ``<name>_<i>.mcap`` or ``<name>_<i>.mcap.part``; -1 for other names."""
    name = path.name.removesuffix(".part").removesuffix(".mcap")
    tail = name.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else -1


@dataclass
class _Segment:
    """One MCAP file of the bag, built in the staging folder, optionally journaled."""

    bag: Path
    stem: str
    journal: bool
    opened: float = field(default_factory=time.monotonic)
    counts: dict[str, int] = field(default_factory=dict)
    t_min: int = 2**64
    t_max: int = -1

    def __post_init__(self) -> None:
        staging = self.bag / _STAGING / self.stem
        if staging.exists():
            shutil.rmtree(staging)
        self._writer = Writer(staging, version=9, storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
        self._connections: dict[str, Connection] = {}
        self._journal = None
        if self.journal:
            self._journal = (self.bag / f"{self.stem}{_JOURNAL_SUFFIX}").open("xb", buffering=0)
            self._append(_journal_header())

    def _append(self, data: bytes) -> None:
        """Append to the journal in as few ``write`` calls as the kernel allows."""
        assert self._journal is not None
        view = memoryview(data)
        while view:
            view = view[self._journal.write(view) :]

    def add_topic(self, topic: _Topic) -> None:
        self._connections[topic.name] = self._writer.add_connection(
            topic.name, topic.msgtype, msgdef=topic.msgdef, rihs01=topic.rihs01
        )
        self.counts[topic.name] = 0
        if self._journal is not None:
            self._append(_journal_topic(topic))

    def write(self, topic: _Topic, timestamp_ns: int, cdr: bytes) -> None:
        n = self.counts[topic.name]
        if self._journal is not None:
            seq = n & 0xFFFFFFFF
            head = _MESSAGE_HEAD.pack(
                _OP_MESSAGE, 22 + len(cdr), topic.channel_id, seq, timestamp_ns, timestamp_ns
            )
            self._append(head + cdr)
        self._writer.write(self._connections[topic.name], timestamp_ns, cdr)
        self.counts[topic.name] = n + 1
        self.t_min = min(self.t_min, timestamp_ns)
        self.t_max = max(self.t_max, timestamp_ns)

    @property
    def message_count(self) -> int:
        return sum(self.counts.values())

    def finish(self) -> dict:
        """Complete the MCAP file and move it into the bag; returns its ``files`` entry."""
        self._writer.close()
        staging = self.bag / _STAGING / self.stem
        built = staging / f"{self.stem}.mcap"
        _fsync_file(built)
        os.replace(built, self.bag / built.name)
        shutil.rmtree(staging, ignore_errors=True)
        count = self.message_count
        return {
            "path": built.name,
            "starting_time": {"nanoseconds_since_epoch": self.t_min if count else 0},
            "duration": {"nanoseconds": self.t_max - self.t_min if count else 0},
            "message_count": count,
        }

    def close_journal(self, *, remove: bool) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None
            if remove:
                (self.bag / f"{self.stem}{_JOURNAL_SUFFIX}").unlink(missing_ok=True)

    def abort(self) -> None:
        """Drop the staged file after a failure (the journal stays for :func:`recover`)."""
        self._writer.abort()
        self.close_journal(remove=False)
        shutil.rmtree(self.bag / _STAGING / self.stem, ignore_errors=True)


# --- metadata.yaml ----------------------------------------------------------------------------


def _write_metadata(
    bag: Path, topics: list[tuple[str, str, str, int]], files: list[dict], custom: dict[str, str]
) -> None:
    """Atomically (re)write ``metadata.yaml``; topics are ``(name, msgtype, rihs01, count)``."""
    files = sorted(files, key=lambda f: _segment_index(Path(f["path"])))
    with_messages = [f for f in files if f["message_count"]]
    start = min((f["starting_time"]["nanoseconds_since_epoch"] for f in with_messages), default=0)
    end = max(
        (
            f["starting_time"]["nanoseconds_since_epoch"] + f["duration"]["nanoseconds"]
            for f in with_messages
        ),
        default=0,
    )
    info = {
        "version": 9,
        "storage_identifier": "mcap",
        "relative_file_paths": [f["path"] for f in files],
        "duration": {"nanoseconds": end - start},
        "starting_time": {"nanoseconds_since_epoch": start},
        "message_count": sum(f["message_count"] for f in files),
        "topics_with_message_count": [
            {
                "topic_metadata": {
                    "name": name,
                    "type": msgtype,
                    "serialization_format": "cdr",
                    "offered_qos_profiles": [],
                    "type_description_hash": rihs01,
                },
                "message_count": count,
            }
            for name, msgtype, rihs01, count in topics
        ],
        "compression_format": "",
        "compression_mode": "",
        "files": files,
        "custom_data": custom,
        "ros_distro": _ROS_DISTRO,
    }
    text = yaml.safe_dump({"rosbag2_bagfile_information": info}, sort_keys=False)
    tmp = bag / f"{_METADATA}.tmp"
    with tmp.open("w", encoding="utf8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, bag / _METADATA)


def _bag_dir(path: str | os.PathLike) -> Path:
    """``path`` as a rosbag2 directory, or a clear error naming it."""
    bag = Path(path)
    if not bag.exists():
        msg = f"no bag at {str(bag)!r}: the path does not exist"
        raise FileNotFoundError(msg)
    if not bag.is_dir():
        msg = f"{str(bag)!r} is not a rosbag2 directory (expected a folder with {_METADATA})"
        raise ValueError(msg)
    if not (bag / _METADATA).is_file():
        msg = f"{str(bag)!r} is not a rosbag2 directory: it has no {_METADATA}"
        raise FileNotFoundError(msg)
    return bag


class _BagLock:
    """Exclusive advisory lock on ``<bag>/.lock``; the kernel drops it when its holder dies."""

    def __init__(self, bag: Path) -> None:
        self.path = bag / _LOCK
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(self._fd)
                msg = f"bag {str(bag)!r} is being written by a live BagWriter"
                raise RuntimeError(msg) from None

    def release(self) -> None:
        self.path.unlink(missing_ok=True)
        os.close(self._fd)


# --- writing ----------------------------------------------------------------------------------


class BagWriter:
    """Crash-safe rosbag2 (MCAP) writer; a context manager.

    Messages go in as raw CDR bytes, exactly what ``rclpy.serialization.serialize_message``
    gives or a ``raw=True`` subscription receives. Every ``segment_s`` seconds (checked on
    :meth:`write`) the current MCAP file is closed and ``metadata.yaml`` atomically rewritten,
    so a crash loses at most the open segment, and even that one :func:`recover` salvages.
    With ``check_cdr`` each message is decoded once on the way in: bytes that are not the
    declared type raise, and slack past the message's end (``serialize_message`` leaves up to
    8 bytes of it for some types, which ``rosbags``' strict ``deserialize_cdr`` rejects) is
    dropped; a ``raw=True`` subscription delivers exact payloads, so nothing else changes.
    A bag with no :meth:`write` for a while keeps its last messages in the open segment: call
    :meth:`flush` on a timer if those must become readable without a recovery. Thread-safe.

    Args:
        path: Bag directory to create; it may exist only as an empty folder.
        segment_s: Wall-clock length of one MCAP segment [s]; ``math.inf`` never rotates.
        check_cdr: Decode each message on :meth:`write` (about 5-30 us each) to validate it
            and trim trailing slack; False stores the bytes exactly as given.

    Raises:
        FileExistsError: ``path`` exists and is not an empty folder.
        ValueError: ``segment_s`` is not positive.
    """

    def __init__(self, path: str | Path, *, segment_s: float = 1.0, check_cdr: bool = True) -> None:
        path = Path(path)
        if not (segment_s > 0):  # also catches NaN
            msg = f"segment_s must be > 0 s, got {segment_s!r}"
            raise ValueError(msg)
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            msg = f"bag path {str(path)!r} exists and is not an empty folder; not overwriting"
            raise FileExistsError(msg)
        path.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._segment_s = float(segment_s)
        self._check_cdr = bool(check_cdr)
        self._name = path.resolve().name or "bag"
        self._lock = threading.Lock()
        self._file_lock = _BagLock(path)
        self._topics: dict[str, _Topic] = {}
        self._counts: dict[str, int] = {}  # everything written
        self._closed_counts: dict[str, int] = {}  # what metadata.yaml lists
        self._files: list[dict] = []
        self._segment: _Segment | None = None
        self._next_index = 0
        self._closed = False
        self._custom = {
            "recorder": "sim2real.deploy.hil.bag",
            "segment_s": repr(self._segment_s),
        }
        self._write_metadata()

    @property
    def path(self) -> Path:
        """The bag directory."""
        return self._path

    @property
    def message_counts(self) -> dict[str, int]:
        """Messages written per topic so far, the open segment included."""
        with self._lock:
            return dict(self._counts)

    def add_topic(self, topic: str, msgtype: str) -> None:
        """Declare a topic before writing to it; declaring it again with its type is a no-op.

        Args:
            topic: Topic name, e.g. ``"/joint_states"``.
            msgtype: ROS 2 type name, e.g. ``"sensor_msgs/msg/JointState"``.

        Raises:
            ValueError: Unknown ``msgtype``, or ``topic`` already declared with another type.
        """
        if not isinstance(topic, str) or not topic:
            msg = f"topic must be a non-empty string, got {topic!r}"
            raise ValueError(msg)
        with self._lock:
            self._check_open()
            new = _make_topic(topic, msgtype, len(self._topics) + 1)
            if (old := self._topics.get(topic)) is not None:
                if old.msgtype != new.msgtype:
                    msg = (
                        f"topic {topic!r} is already in bag {str(self._path)!r} as "
                        f"{old.msgtype!r}, cannot add it again as {new.msgtype!r}"
                    )
                    raise ValueError(msg)
                return
            self._topics[topic] = new
            self._counts[topic] = 0
            self._closed_counts[topic] = 0
            if self._segment is not None:
                self._segment.add_topic(new)
            self._write_metadata()

    def write(self, topic: str, timestamp_ns: int, cdr: bytes) -> None:
        """Append one serialized message.

        Args:
            topic: A topic declared with :meth:`add_topic`.
            timestamp_ns: Receive time [ns] (e.g. ``time.time_ns()``); need not be monotonic.
            cdr: The message as CDR bytes, encapsulation header included.

        Raises:
            KeyError: ``topic`` was not declared.
            ValueError: ``timestamp_ns`` is not an int in [0, 2**64), or (``check_cdr``)
                ``cdr`` does not decode as the topic's type.
        """
        with self._lock:
            self._check_open()
            entry = self._topics.get(topic)
            if entry is None:
                msg = (
                    f"topic {topic!r} was not added to bag {str(self._path)!r} "
                    f"(known: {sorted(self._topics)}); call add_topic first"
                )
                raise KeyError(msg)
            timestamp_ns = operator.index(timestamp_ns)
            if not 0 <= timestamp_ns < 2**64:
                msg = f"timestamp_ns must be in [0, 2**64) ns, got {timestamp_ns}"
                raise ValueError(msg)
            cdr = bytes(cdr)
            if self._check_cdr:
                try:
                    _, end = _deserialize(_typestore(), cdr, entry.msgtype)
                except ValueError as err:
                    msg = f"message for topic {topic!r} in bag {str(self._path)!r}: {err}"
                    raise ValueError(msg) from err
                if len(cdr) - end > 3:  # more than CDR's end padding: slack to drop
                    cdr = cdr[:end]
            if self._segment is None:
                self._open_segment()
            assert self._segment is not None
            self._segment.write(entry, timestamp_ns, cdr)
            self._counts[topic] += 1
            if time.monotonic() - self._segment.opened >= self._segment_s:
                self._close_segment()

    def flush(self) -> None:
        """Close the open segment now, so everything written so far is in the readable bag."""
        with self._lock:
            self._check_open()
            if self._segment is not None:
                self._close_segment()

    def close(self) -> None:
        """Close the open segment and release the bag; calling it again is a no-op."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                if self._segment is not None:
                    self._close_segment()
            finally:
                shutil.rmtree(self._path / _STAGING, ignore_errors=True)
                self._file_lock.release()

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()  # also on an exception: keep what was recorded

    def _check_open(self) -> None:
        if self._closed:
            msg = f"BagWriter for {str(self._path)!r} is closed"
            raise RuntimeError(msg)

    def _open_segment(self) -> None:
        stem = f"{self._name}_{self._next_index}"
        self._next_index += 1
        segment = _Segment(self._path, stem, journal=True)
        for entry in self._topics.values():
            segment.add_topic(entry)
        self._segment = segment

    def _close_segment(self) -> None:
        segment, self._segment = self._segment, None
        assert segment is not None
        try:
            info = segment.finish()
        except BaseException:
            segment.abort()
            raise
        self._files.append(info)
        for name, n in segment.counts.items():
            self._closed_counts[name] += n
        self._write_metadata()
        segment.close_journal(remove=True)

    def _write_metadata(self) -> None:
        topics = [
            (t.name, t.msgtype, t.rihs01, self._closed_counts[t.name])
            for t in self._topics.values()
        ]
        _write_metadata(self._path, topics, self._files, self._custom)


# --- recovery ---------------------------------------------------------------------------------


def recover(path: str | os.PathLike) -> int:
    """Salvage the unfinished segment(s) a crashed :class:`BagWriter` left in a bag.

    Each journal ``*.mcap.part`` is parsed up to its first torn record, rewritten as a closed
    MCAP segment and added to ``metadata.yaml``; journals whose segment the bag already lists
    are just removed. Idempotent; a bag without journals is left as it is. Not called by
    :func:`read_bag`: call it once on a bag whose recorder died.

    Args:
        path: The bag directory.

    Returns:
        The number of messages recovered.

    Raises:
        FileNotFoundError: ``path`` is not a bag directory.
        RuntimeError: A live :class:`BagWriter` is still writing the bag.
    """
    bag = _bag_dir(path)
    lock = _BagLock(bag)
    try:
        info = yaml.safe_load((bag / _METADATA).read_text())["rosbag2_bagfile_information"]
        topics = {
            t["topic_metadata"]["name"]: [
                t["topic_metadata"]["type"],
                t["topic_metadata"].get("type_description_hash", ""),
                t["message_count"],
            ]
            for t in info["topics_with_message_count"]
        }
        files: list[dict] = list(info.get("files") or [])
        listed = {f["path"] for f in files}
        custom = info.get("custom_data") or {}
        recovered = 0
        for journal in sorted(bag.glob(f"*{_JOURNAL_SUFFIX}"), key=_segment_index):
            stem = journal.name[: -len(_JOURNAL_SUFFIX)]
            if f"{stem}.mcap" not in listed:
                channels, messages = _parse_journal(journal)
                if messages:
                    segment = _Segment(bag, stem, journal=False)
                    entries = {}
                    for cid, (name, msgtype) in channels.items():
                        entries[cid] = _make_topic(name, msgtype, cid)
                        segment.add_topic(entries[cid])
                    for cid, timestamp_ns, cdr in messages:
                        segment.write(entries[cid], timestamp_ns, cdr)
                    files.append(segment.finish())
                    for entry in entries.values():
                        row = topics.setdefault(entry.name, [entry.msgtype, entry.rihs01, 0])
                        row[2] += segment.counts[entry.name]
                    _write_metadata(
                        bag, [(name, *row) for name, row in topics.items()], files, custom
                    )
                    recovered += len(messages)
            journal.unlink()
        shutil.rmtree(bag / _STAGING, ignore_errors=True)
    finally:
        lock.release()
    return recovered


# --- reading ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BagMessage:
    """One message read back from a bag.

    Attributes:
        topic: Topic name.
        msgtype: ROS 2 type name, e.g. ``"sensor_msgs/msg/JointState"``.
        timestamp_ns: Record (receive) time [ns].
        msg: The deserialized message, a ``rosbags`` typestore dataclass.
    """

    topic: str
    msgtype: str
    timestamp_ns: int
    msg: object


def bag_topics(path: str | os.PathLike) -> dict[str, tuple[str, int]]:
    """Topics of a bag (closed segments only, see :func:`recover`).

    Args:
        path: The bag directory.

    Returns:
        ``{topic: (msgtype, message count)}``.

    Raises:
        FileNotFoundError: ``path`` is not a bag directory.
        ValueError: The bag cannot be read.
    """
    bag = _bag_dir(path)
    try:
        with Reader(bag) as reader:
            return {name: (t.msgtype or "", t.msgcount) for name, t in reader.topics.items()}
    except ReaderError as err:
        msg = f"cannot read bag {str(bag)!r}: {err}"
        raise ValueError(msg) from err


def read_bag(path: str | os.PathLike, topics: Sequence[str] | None = None) -> Iterator[BagMessage]:
    """Deserialized messages of a bag in timestamp order, across its segments.

    Side-effect free: an unfinished segment left by a crash is not read (see :func:`recover`).
    Arguments are checked on the call, the bag is read lazily on iteration.

    Args:
        path: The bag directory.
        topics: Topics to read; all when None.

    Returns:
        An iterator of :class:`BagMessage`.

    Raises:
        FileNotFoundError: ``path`` is not a bag directory.
        ValueError: A topic asked for is not in the bag, or its type is unknown.
    """
    bag = _bag_dir(path)
    available = bag_topics(bag)
    if isinstance(topics, str):
        topics = [topics]
    wanted = set(available) if topics is None else set(topics)
    if missing := sorted(wanted - set(available)):
        msg = f"topic(s) {missing} not in bag {str(bag)!r}; it has {sorted(available)}"
        raise ValueError(msg)
    store = _typestore()
    if unknown := sorted({available[t][0] for t in wanted} - set(store.fielddefs)):
        msg = f"bag {str(bag)!r} has message types the Jazzy typestore lacks: {unknown}"
        raise ValueError(msg)
    return _messages(bag, wanted, store)


def _messages(bag: Path, wanted: set[str], store: Typestore) -> Iterator[BagMessage]:
    with Reader(bag) as reader:
        storages = getattr(reader.storage, "storages", None)
        if storages is None or reader.compression_mode == "message":
            # not the segment layout this module writes: rosbags' own per-file order
            conns = [c for c in reader.connections if c.topic in wanted]
            streams = [reader.messages(conns)] if conns else []
        else:  # one time-ordered stream per MCAP file, merged over the files
            streams = []
            for storage in storages:
                conns = [c for c in storage.connections if c.topic in wanted]
                if conns:
                    streams.append(storage.messages(conns))
        for conn, timestamp_ns, data in heapq.merge(*streams, key=operator.itemgetter(1)):
            message, _ = _deserialize(store, data, conn.msgtype)
            yield BagMessage(conn.topic, conn.msgtype, timestamp_ns, message)
