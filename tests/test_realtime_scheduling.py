"""``use_fifo_scheduling`` (sim2real_ros.realtime): every thread of a node's process on FIFO.

The granted case runs in a child process, so this test process keeps its scheduling.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "deploy/ros2_ws/src/sim2real_ros"
sys.path.append(str(PACKAGE))  # the pure module imports from the sources if not installed
from sim2real_ros import realtime  # noqa: E402

#: A process with a thread started before and one started after the call reports its
#: result and every thread's (policy, priority).
CHILD = """
import json, os, threading
from sim2real_ros.realtime import use_fifo_scheduling
stop = threading.Event()
threading.Thread(target=stop.wait).start()
result = use_fifo_scheduling(7)
threading.Thread(target=stop.wait).start()
threads = {
    tid: [os.sched_getscheduler(int(tid)), os.sched_getparam(int(tid)).sched_priority]
    for tid in os.listdir("/proc/self/task")
}
stop.set()
print(json.dumps({"result": result, "threads": threads}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SCHED_FIFO and /proc: Linux")
def test_every_thread_moves_or_none_does():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(PACKAGE), *sys.path]))
    out = subprocess.run(
        [sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True
    )
    child = json.loads(out.stdout)
    policies = list(child["threads"].values())
    assert len(policies) == 3  # main, the thread from before, the thread from after
    if child["result"] == "SCHED_FIFO 7":
        assert policies == [[os.SCHED_FIFO, 7]] * 3
    else:  # no privilege here: said why, and nothing moved
        assert child["result"].startswith("normal (PermissionError")
        assert all(policy == os.SCHED_OTHER for policy, _ in policies)


def test_a_refusal_is_reported_not_raised(monkeypatch):
    def refuse(*_):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(realtime.os, "sched_setscheduler", refuse)
    assert (
        realtime.use_fifo_scheduling(40)
        == "normal (PermissionError: [Errno 1] Operation not permitted)"
    )


@pytest.mark.parametrize("priority", [0, 100, -1])
def test_priority_outside_1_to_99_is_refused(priority):
    with pytest.raises(ValueError, match="1..99"):
        realtime.use_fifo_scheduling(priority)


class RecordingLogger:
    def __init__(self):
        self.warnings: list[str] = []

    def warning(self, message: str) -> None:
        self.warnings.append(message)


def test_a_node_warns_when_refused_and_changes_nothing_at_priority_0(monkeypatch):
    calls = []
    monkeypatch.setattr(realtime, "use_fifo_scheduling", lambda p: calls.append(p) or "normal (x)")
    logger = RecordingLogger()
    assert realtime.node_scheduling(0, logger) == "normal" and calls == []
    assert realtime.node_scheduling(40, logger) == "normal (x)" and calls == [40]
    assert logger.warnings == ["realtime_priority 40 refused, keeping normal (x)"]
