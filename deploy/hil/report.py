"""The JSON report of a HIL run, computed from its log (``HilLog``) and the robot's statistics.

Times are s after the policy's first tick (``t0``). Sections:

- ``tracking``: velocity tasks: mean |v_cmd,xy − v_xy| (m/s) and |yaw_cmd − yaw rate|
  (rad/s) from the true base twist, while the runtime is RUNNING and at least
  ``TRANSIENT_S`` after each command change; reach tasks: the mean distance of the true
  end effector to the target over the last ``REACH_FINAL_S`` of each target (while
  RUNNING), and per target. The arm's base is the world origin, so base-frame targets and
  world-frame end-effector positions compare directly.
- ``falls``: floating base: times the base tilted beyond ``FALL_TILT_RAD`` while the
  policy was in control (STANDUP or RUNNING; a collapse in DAMPING is the damping doing
  its job, not a fall).
- ``safety_events``: every runtime state change with its reason; ``faults``: the schedule,
  each (but resets) with its ``reaction`` (the first change into DAMPING from one control
  period before its start, to ``REACTION_WINDOW_S`` after its end: an e-stop called at a
  period boundary in lockstep is stamped with the policy's clock, which still reads the
  previous boundary; the delay counts from the start, at least 0).
- ``loop``: the policy's tick periods over the run (its clock: sim time in lockstep, the
  wall clock in real time; not the ticks after ``duration_s``, while the robot is being
  stopped, on stale states) as |period − nominal|; the same on the robot's clock,
  ``input_period_error``: from the header stamps of the joint states consecutive ticks
  used; and the commands' inter-arrival times at the robot (wall clock); ``latency``:
  state-to-command, measured by the robot (wall clock: from the publication of the joint
  state a command was computed from to the command's arrival), and in real time its two
  parts, ``state_age_at_tick`` (the wait for the policy's tick, up to one joint-state
  period when its timer paces it, plus the state's transport) and ``tick_to_command``
  (the tick's work and the command's transport).
- ``messages``: sensor messages the robot published vs those recorded, per topic, and
  commands the policy sent vs those the robot received, both from the first command to
  the robot's stop (``robot_stats["stop_requested_ns"]``, wall clock); lockstep
  time-outs or late physics steps.
- ``limits``: commands with a non-finite target or one outside the joint limits (both
  must be 0).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from sim2real.deploy.hil.faults import FaultSchedule
from sim2real.deploy.hil.hil_log import HilLog
from sim2real.deploy.hil.schedule import CommandSchedule
from sim2real.deploy.hil.statistics import summarize
from sim2real.export.contract import PolicyContract

TRANSIENT_S = 1.0
REACH_FINAL_S = 1.0
FALL_TILT_RAD = 1.0
REACTION_WINDOW_S = 0.5
#: Float seconds from ns stamps land either side of a boundary that an event sits on
#: exactly (a reaction window's start, the run's end: the deactivation).
STAMP_TOLERANCE_S = 1e-6
NS = 1e-9
#: Robot topics whose published and recorded counts are compared.
ROBOT_TOPICS = ("joint_states", "imu")


def hil_report(
    log: HilLog,
    contract: PolicyContract,
    schedule: CommandSchedule,
    faults: FaultSchedule,
    robot_stats: Mapping,
    duration_s: float,
) -> dict:
    """The report; see the module docstring.

    Args:
        log: the run's log.
        contract: the policy's contract (period, joints, limits).
        schedule: the task commands that were sent.
        faults: the fault schedule that ran.
        robot_stats: ``sim_robot_node``'s statistics.
        duration_s: the run's length after the first tick, s.

    Raises:
        ValueError: the log has no policy tick (the policy never ran).
    """
    if log.tick_ns.size == 0:
        raise ValueError("the log has no policy tick (/policy_node/input_stamp): no report")
    t0 = int(log.tick_ns[0])
    timeline = StateTimeline(log, t0)
    period = contract.control_period_s
    in_run = (log.tick_ns - t0) * NS <= duration_s + STAMP_TOLERANCE_S
    tick_ns, tick_input_ns = log.tick_ns[in_run], log.tick_input_ns[in_run]
    report = {
        "task": contract.task,
        "duration_s": duration_s,
        "mode": robot_stats.get("mode"),
        "control_period_s": period,
        "tracking": _tracking(log, t0, timeline, schedule, duration_s),
        "safety_events": [
            {"t_s": (e.stamp_ns - t0) * NS, "from": e.source, "to": e.target, "reason": e.reason}
            for e in log.events
            if (e.stamp_ns - t0) * NS <= duration_s + STAMP_TOLERANCE_S
        ],
        "faults": _faults(faults, timeline, period),
        "loop": {
            "clock": "sim" if robot_stats.get("mode") == "lockstep" else "wall",
            "ticks": int(tick_ns.size),
            "period_error": summarize(np.abs(np.diff(tick_ns) * NS - period)),
            "input_period_error": summarize(np.abs(np.diff(tick_input_ns) * NS - period)),
            "command_interarrival": robot_stats.get("command_interarrival"),
        },
        "latency": {
            "state_to_command": robot_stats.get("state_to_command_latency"),
            "state_age_at_tick": robot_stats.get("state_age_at_tick"),
            "tick_to_command": robot_stats.get("tick_to_command"),
            "unmatched": robot_stats.get("latency_unmatched"),
        },
        "messages": _messages(log, robot_stats),
        "limits": _limits(log, contract),
        "robot": {
            k: robot_stats.get(k)
            for k in (
                "physics_rate_hz",
                "sim_time_s",
                "wall_time_s",
                "real_time_factor",
                "step_lateness",
            )
        },
    }
    if log.base_ns.size:
        report["falls"] = _falls(log, t0, timeline)
    return report


class StateTimeline:
    """The runtime's state at any time, from its state changes (``inactive`` before any)."""

    def __init__(self, log: HilLog, t0_ns: int):
        self.times = np.array([(e.stamp_ns - t0_ns) * NS for e in log.events])
        self.states = ["inactive"] + [e.target for e in log.events]

    def at(self, t: np.ndarray) -> np.ndarray:
        """(T,) state names at times ``t`` (s after t0)."""
        index = np.searchsorted(self.times, t, side="right")
        return np.asarray(self.states, dtype=object)[index]


def _tracking(
    log: HilLog, t0: int, timeline: StateTimeline, schedule: CommandSchedule, duration_s: float
) -> dict:
    if schedule.kind == "velocity":
        t = (log.twist_ns - t0) * NS
        since_change = t - schedule.times[schedule.index(t)]
        counted = (
            (t >= 0) & (t <= duration_s) & (timeline.at(t) == "running")
            & (since_change >= TRANSIENT_S)
        )  # fmt: skip
        command = schedule.at(t[counted])
        lin = np.linalg.norm(command[:, :2] - log.base_lin_vel[counted, :2], axis=1)
        yaw = np.abs(command[:, 2] - log.base_ang_vel[counted, 2])
        return {
            "kind": "velocity",
            "samples": int(counted.sum()),
            "lin_vel_error": float(lin.mean()) if lin.size else None,
            "yaw_rate_error": float(yaw.mean()) if yaw.size else None,
        }
    t = (log.ee_ns - t0) * NS
    running = timeline.at(t) == "running"
    per_target = []
    for start, end, target in zip(
        schedule.times, schedule.segment_ends(duration_s), schedule.values, strict=True
    ):
        window = running & (t >= max(start, end - REACH_FINAL_S)) & (t < end)
        distance = np.linalg.norm(log.ee_pos[window] - target, axis=1)
        per_target.append(
            {
                "t_s": float(start),
                "target": target.tolist(),
                "ee_error": float(distance.mean()) if distance.size else None,
            }
        )
    errors = [p["ee_error"] for p in per_target if p["ee_error"] is not None]
    return {
        "kind": "target",
        "ee_error": float(np.mean(errors)) if errors else None,
        "targets": per_target,
    }


def tilt(quat_wxyz: np.ndarray) -> np.ndarray:
    """(T,) angle between the base's z axis and the world's, rad."""
    x, y = quat_wxyz[:, 1], quat_wxyz[:, 2]
    return np.arccos(np.clip(1.0 - 2.0 * (x * x + y * y), -1.0, 1.0))


def _falls(log: HilLog, t0: int, timeline: StateTimeline) -> dict:
    t = (log.base_ns - t0) * NS
    down = tilt(log.base_quat) > FALL_TILT_RAD
    starts = np.flatnonzero(down[1:] & ~down[:-1]) + 1
    in_control = np.isin(timeline.at(t[starts]), ["standup", "running"])
    times = t[starts][in_control]
    return {"count": int(times.size), "t_s": times.tolist()}


def _faults(faults: FaultSchedule, timeline: StateTimeline, period: float) -> list[dict]:
    entries = []
    into_damping = [
        (t, timeline.states[i + 1])
        for i, t in enumerate(timeline.times)
        if timeline.states[i + 1] == "damping"
    ]
    for fault in faults.faults:
        reaction = None
        for t, _ in into_damping if fault.kind != "reset" else ():
            if fault.at - period - STAMP_TOLERANCE_S <= t <= fault.end + REACTION_WINDOW_S:
                delay = max(0.0, t - fault.at)
                reaction = {"damping_after_s": delay, "damping_after_periods": delay / period}
                break
        entries.append(
            {"t_s": fault.at, "kind": fault.kind, "fault": fault.describe(), "reaction": reaction}
        )
    return entries


def _messages(log: HilLog, robot_stats: Mapping) -> dict:
    published = robot_stats.get("published", {})
    first = robot_stats.get("first_command_stamp_ns") or 0
    last = robot_stats.get("last_stamp_ns") or np.iinfo(np.int64).max
    topics = {}
    for name in ROBOT_TOPICS:
        if published.get(name):
            stamps = log.sensor_ns.get(name, np.zeros(0, np.int64))
            recorded = int(((stamps >= first) & (stamps <= last)).sum())
            topics[name] = {
                "published": published[name],
                "recorded": recorded,
                "dropped": max(0, published[name] - recorded),
            }
    received = robot_stats.get("commands_received", 0)
    stopped = robot_stats.get("stop_requested_ns") or np.iinfo(np.int64).max
    sent = int((log.tick_receipt_ns < stopped).sum())
    messages = {
        "topics": topics,
        "commands_sent": sent,
        "commands_received_by_robot": received,
        "commands_dropped": max(0, sent - received),
        "commands_refused_by_robot": robot_stats.get("commands_refused", 0),
    }
    for key in ("lockstep_timeouts", "late_steps"):
        if key in robot_stats:
            messages[key] = robot_stats[key]
    return messages


def _limits(log: HilLog, contract: PolicyContract) -> dict:
    targets = log.command_targets
    low, high = np.asarray(contract.joint_pos_limits, dtype=np.float64).T
    finite = np.isfinite(targets).all(axis=1)
    inside = ((targets >= low - 1e-9) & (targets <= high + 1e-9)).all(axis=1)
    return {
        "commands": int(targets.shape[0]),
        "nonfinite_commands": int((~finite).sum()),
        "commands_outside_limits": int((finite & ~inside).sum()),
    }
