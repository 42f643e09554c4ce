"""Real-time scheduling for a node's process: SCHED_FIFO on every thread, as a driver loop has.

A node's latency is made of its threads' wake-ups: the executor's, and the DDS threads'
that receive and deliver a message. On a shared machine each of them waits behind other
processes' work unless the whole process runs on a real-time policy; a real-time main
thread alone does not help the messages. ``use_fifo_scheduling`` therefore moves every
thread the process has (``/proc/self/task``: the executor and the DDS threads, once the
node exists), and threads started later inherit the policy from their creator (the
simulated robot's physics thread).

Needs CAP_SYS_NICE or an ``rtprio`` limit (``ulimit -r``) at least ``priority``; without
it the process keeps its scheduling and the caller is told why. The kernel's real-time
throttling (``/proc/sys/kernel/sched_rt_runtime_us``, 95 % by default) still leaves the
rest of the machine some time should a real-time thread spin.
"""

from __future__ import annotations

import contextlib
import os

#: What ``scheduling`` reports for a process left on the default policy.
NORMAL = "normal"


def use_fifo_scheduling(priority: int) -> str:
    """Put every thread of this process on SCHED_FIFO at ``priority``.

    Args:
        priority: 1 (lowest) to 99.

    Returns:
        ``"SCHED_FIFO <priority>"`` when done; else ``"normal (<why not>)"``, and the
        process keeps its scheduling (the first thread refused is the main thread).

    Raises:
        ValueError: ``priority`` is outside 1..99.
    """
    if not 1 <= priority <= 99:
        raise ValueError(f"a SCHED_FIFO priority is 1..99, got {priority}")
    try:
        param = os.sched_param(priority)
        os.sched_setscheduler(0, os.SCHED_FIFO, param)
        for tid in os.listdir("/proc/self/task"):
            with contextlib.suppress(ProcessLookupError):  # the thread has exited since
                os.sched_setscheduler(int(tid), os.SCHED_FIFO, param)
    except (OSError, AttributeError) as error:  # AttributeError: not Linux
        return f"{NORMAL} ({type(error).__name__}: {error})"
    return f"SCHED_FIFO {priority}"


def node_scheduling(priority: int, logger) -> str:
    """A node's ``realtime_priority`` parameter applied: ``use_fifo_scheduling`` unless 0.

    Args:
        priority: 0 (normal scheduling: nothing changes) or 1..99.
        logger: the node's logger; a refusal is a warning on it.

    Returns:
        What the process got, as ``use_fifo_scheduling`` says it (``"normal"`` for 0).
    """
    if not priority:
        return NORMAL
    scheduling = use_fifo_scheduling(priority)
    if scheduling.startswith(NORMAL):
        logger.warning(f"realtime_priority {priority} refused, keeping {scheduling}")
    return scheduling
