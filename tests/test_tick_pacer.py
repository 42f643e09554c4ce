"""``TickPacer`` (sim2real_ros.tick_pacer): policy ticks paced by the joint states, no ROS.

``drive`` plays what ``policy_node`` does with the pacer: each joint state goes to
``on_state``, and a timer, armed after every tick and every firing at the pacer's
``timer_ns`` (one period after activation before the first tick), goes to
``on_timer``. Times are integer ns; the control period is 20 ms (50 Hz).
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

try:
    from sim2real_ros.tick_pacer import TickPacer
except ImportError:  # not pip-installed: the pure module still imports from the sources
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "deploy/ros2_ws/src/sim2real_ros"))
    from sim2real_ros.tick_pacer import TickPacer

MS = 1_000_000
PERIOD = 20 * MS


def drive(
    pacer: TickPacer, arrivals, end_ns: int, timer_lateness=(0,)
) -> list[tuple[int, str, int, int | None]]:
    """Feed ``arrivals`` (ns, sorted) and the node's watchdog timer until ``end_ns``.

    The timer fires late by ``timer_lateness`` (ns, cycled) after its armed time. Returns
    one ``(time, source, tolerance of the decision, due slot it served)`` per tick; a
    timer firing at the same instant as a state goes first (rclpy's executor order).
    """
    ticks = []
    lateness = itertools.cycle(timer_lateness)
    timer_ns = pacer.period_ns + next(lateness)  # activation at 0

    def arm(now: int) -> int:
        fire = pacer.timer_ns()
        return (now + pacer.period_ns if fire is None else max(fire, now + 1)) + next(lateness)

    def offer(now: int, source: str) -> bool:
        due = pacer.due_ns
        ticked = pacer.on_timer(now) if source == "timer" else pacer.on_state(now)
        if ticked:  # an arrival updates the tolerance before the decision
            ticks.append((now, source, pacer.tolerance_ns, due))
        return ticked

    for arrival in [*arrivals, end_ns]:
        while timer_ns <= min(arrival, end_ns):
            now = timer_ns
            offer(now, "timer")
            timer_ns = arm(now)
        if arrival < end_ns and offer(arrival, "state"):
            timer_ns = arm(arrival)
    return ticks


def grid(rate_hz: float, end_ns: int, start_ns: int = 0) -> list[int]:
    """Arrivals at ``rate_hz`` from ``start_ns`` up to ``end_ns``."""
    return [round(t) for t in np.arange(start_ns, end_ns, 1e9 / rate_hz)]


def periods(ticks) -> np.ndarray:
    return np.diff([t for t, *_ in ticks])


def test_regular_states_tick_every_period_on_the_same_state():
    pacer = TickPacer(PERIOD)
    arrivals = grid(500.0, 2_000 * MS, start_ns=300_000)
    ticks = drive(pacer, arrivals, 2_000 * MS)
    assert {source for _, source, *_ in ticks} == {"state"}
    assert np.all(periods(ticks) == PERIOD)  # every 10th state, no drift
    assert len(ticks) == 100
    assert pacer.tolerance_ns == MS  # half the 2 ms state period
    summary = pacer.summary()
    assert summary["watchdog_ticks"] == summary["reanchors"] == 0
    assert summary["state_period_s"] == pytest.approx(0.002)


def test_jitter_under_half_a_state_period_keeps_the_grid():
    rng = np.random.default_rng(0)
    exact = np.array(grid(500.0, 4_000 * MS, start_ns=MS))
    arrivals = np.sort(exact + rng.integers(-400_000, 400_000, exact.size))
    pacer = TickPacer(PERIOD)
    ticks = drive(pacer, arrivals.tolist(), 4_000 * MS)
    assert pacer.reanchors == pacer.watchdog_ticks == 0
    # the first tick fixes the phase: every tick is on the state of the same phase
    phase = np.searchsorted(exact, [t - 400_000 for t, *_ in ticks]) % 10
    assert np.all(phase == phase[0])
    assert np.abs(periods(ticks) - PERIOD).max() <= 800_000


@pytest.mark.parametrize("offset", [0, 3 * MS, 7 * MS])
def test_states_slower_than_four_per_period_cap_the_tolerance(offset):
    """100 Hz: every other state, whatever the phase of the first one to the timer."""
    pacer = TickPacer(PERIOD)
    ticks = drive(pacer, grid(100.0, 1_000 * MS, start_ns=offset), 1_000 * MS)
    state_ticks = [t for t, source, *_ in ticks if source == "state"]
    assert len(state_ticks) >= len(ticks) - 1  # the timer ticks once if no state came first
    assert np.all(np.diff(state_ticks) == PERIOD)
    assert pacer.tolerance_ns == PERIOD // 8
    assert pacer.grace_ns == PERIOD // 2 - PERIOD // 8  # the cap: before the next window


@pytest.mark.parametrize("rate_hz", [100.0, 500.0])
def test_after_a_gap_the_states_take_the_slots_back_whatever_the_phase(rate_hz):
    """A gap moves the grid to the timer's phase; the states take over again at once.

    (A watchdog that kept its phase and held the states off locked a node to the timer.)
    """
    state_period = round(1e9 / rate_hz)
    for gap_end in range(450 * MS, 450 * MS + state_period, state_period // 20):
        arrivals = grid(rate_hz, 400 * MS, start_ns=MS)
        arrivals += [t + gap_end - 400 * MS for t in grid(rate_hz, 600 * MS, start_ns=MS)]
        pacer = TickPacer(PERIOD)
        ticks = drive(pacer, arrivals, 1_000 * MS)
        after = [source for t, source, *_ in ticks if gap_end + 2 * PERIOD < t < arrivals[-1]]
        assert len(after) > 5 and after == ["state"] * len(after), gap_end


def test_a_state_early_by_more_than_the_tolerance_costs_its_slot_only():
    """An early state misses the window; the watchdog takes that slot, states the next."""
    arrivals = np.array(grid(100.0, 1_000 * MS, start_ns=MS))
    arrivals[4::10] -= 3 * MS  # every 5th tick's state 3 ms early (tolerance 2.5 ms)
    pacer = TickPacer(PERIOD)
    ticks = drive(pacer, arrivals.tolist(), 1_000 * MS)
    sources = "".join(source[0] for _, source, *_ in ticks)
    assert "tt" not in sources and pacer.watchdog_ticks == 10  # one slot each
    assert pacer.reanchors == 0 and len(ticks) == 50  # the grid holds: no tick lost
    assert np.all(periods(ticks) >= PERIOD // 2)


def test_a_rate_that_does_not_divide_the_period_ticks_on_the_first_state_of_each_slot():
    pacer = TickPacer(PERIOD)
    state_period = 1e9 / 300.0  # 6.67 states per period
    ticks = drive(pacer, grid(300.0, 2_000 * MS), 2_000 * MS)
    assert pacer.watchdog_ticks == 0 and len(ticks) == 100  # no drift
    assert np.abs(periods(ticks) - PERIOD).max() <= state_period


def test_a_late_state_is_followed_by_the_next_slot_on_time():
    """The grid holds, as a timer catches up: one long period, then one as much shorter."""
    arrivals = grid(500.0, 1_000 * MS)
    arrivals[250] += 5 * MS  # the robot stalls 5 ms at the slot, then catches up
    arrivals[251] += 3 * MS
    pacer = TickPacer(PERIOD)
    ticks = drive(pacer, arrivals, 1_000 * MS)
    error = periods(ticks) - PERIOD
    assert sorted(error[error != 0]) == [-5 * MS, 5 * MS]
    assert pacer.reanchors == pacer.watchdog_ticks == 0 and len(ticks) == 50


def test_only_a_tick_more_than_a_period_late_moves_the_grid():
    pacer = TickPacer(PERIOD)
    assert pacer.on_state(0)
    assert pacer.on_state(35 * MS) and pacer.due_ns == 40 * MS  # 15 ms late: kept
    assert not pacer.on_state(40 * MS)  # due, but within half a period of the last tick
    assert pacer.on_state(45 * MS) and pacer.due_ns == 60 * MS
    assert pacer.on_state(90 * MS) and pacer.due_ns == 110 * MS  # 30 ms late: re-anchored
    assert pacer.reanchors == 1


def test_the_watchdog_ticks_every_period_when_the_states_stop_and_hands_back():
    arrivals = grid(500.0, 400 * MS) + grid(500.0, 1_000 * MS, start_ns=600 * MS)
    pacer = TickPacer(PERIOD)
    ticks = drive(pacer, arrivals, 1_000 * MS)
    last_state = max(t for t, source, *_ in ticks if source == "state" and t < 400 * MS)
    watchdog = [t for t, source, *_ in ticks if source == "timer"]
    # the first watchdog tick a grace after the missed slot, then one per period
    assert pacer.grace_ns == 6 * MS  # half a state period past the slot, and P / 4
    assert watchdog[0] == last_state + PERIOD + 6 * MS
    assert np.all(np.diff(watchdog) == PERIOD)
    assert watchdog[-1] < 600 * MS + PERIOD
    resumed = [t for t, source, *_ in ticks if source == "state" and t >= 600 * MS]
    assert resumed and resumed[0] - watchdog[-1] >= PERIOD - pacer.grace_ns - MS
    assert np.all(periods(ticks) >= PERIOD - pacer.grace_ns - MS) and pacer.reanchors == 0


def test_no_state_at_all_the_timer_ticks_every_period():
    pacer = TickPacer(PERIOD)
    ticks = drive(pacer, [], 1_000 * MS)
    assert [source for _, source, *_ in ticks] == ["timer"] * len(ticks)
    # one period after activation, then a grace later (no grid yet), then every period
    assert ticks[0][0] == PERIOD and ticks[1][0] == 2 * PERIOD + pacer.grace_ns
    assert np.all(periods(ticks[1:]) == PERIOD) and pacer.reanchors == 0


def test_a_late_timer_keeps_the_grid_in_a_dropout():
    pacer = TickPacer(PERIOD)
    ticks = drive(pacer, [], 1_000 * MS, timer_lateness=[0, 2 * MS, 0, MS, 2 * MS])
    times = np.array([t for t, *_ in ticks[1:]])
    drift = times - times[0] - PERIOD * np.arange(times.size)
    assert np.ptp(drift) <= 2 * MS  # each tick late by its own lateness only


def test_a_timer_and_a_state_at_the_same_instant_tick_once():
    pacer = TickPacer(PERIOD)
    assert pacer.on_state(0)
    now = pacer.timer_ns()
    assert pacer.on_timer(now)
    assert not pacer.on_state(now) and not pacer.on_timer(now)
    assert pacer.state_ticks == pacer.watchdog_ticks == 1


def test_restart_forgets_the_schedule_and_keeps_the_counts():
    pacer = TickPacer(PERIOD)
    assert pacer.on_state(0) and not pacer.on_state(MS)
    pacer.restart()
    assert pacer.timer_ns() is None and pacer.state_period_ns is None
    assert pacer.on_state(2 * MS)  # the first state after activation ticks at once
    assert pacer.state_ticks == 2


def test_a_period_that_is_not_positive_is_refused():
    with pytest.raises(ValueError, match="period_ns"):
        TickPacer(0)


@settings(max_examples=300, deadline=None)
@given(
    gaps=st.lists(
        st.one_of(
            st.integers(0, 3 * MS),  # bursts and a 500 Hz-ish stream
            st.integers(0, 12 * MS),
            st.integers(30 * MS, 200 * MS),  # dropouts
        ),
        min_size=1,
        max_size=300,
    ),
    start=st.integers(0, 50 * MS),
    timer_lateness=st.lists(st.integers(0, 4 * MS), min_size=1, max_size=8),
)
def test_any_arrivals_never_tick_one_slot_twice_and_the_watchdog_covers_gaps(
    gaps, start, timer_lateness
):
    arrivals = (start + np.cumsum(gaps)).tolist()
    end = arrivals[-1] + 200 * MS
    pacer = TickPacer(PERIOD)
    ticks = drive(pacer, arrivals, end, timer_lateness)
    times = [t for t, *_ in ticks]
    # never two ticks within half a period; a tick never before its slot's window
    assert np.all(np.diff(times) >= PERIOD // 2)
    for time, source, tolerance, due in ticks:
        assert due is None or time >= due - tolerance, (time, source)
        assert PERIOD // 40 <= tolerance <= PERIOD // 8
    # each tick serves its own slot, a period after the previous one's (or more: re-anchored)
    served = [due for *_, due in ticks[1:]]
    assert all(b - a >= PERIOD for a, b in zip(served[:-1], served[1:], strict=True))
    # no gap without a tick longer than a period, the watchdog's grace and the tolerance
    # (together at most P / 2) and the timer's lateness: the watchdog covers
    edges = [0, *times, end]
    assert max(np.diff(edges)) <= PERIOD + PERIOD // 2 + max(timer_lateness)
    # after the last state, the watchdog ticks every period, on the grid: a late firing
    # delays that tick only
    tail = np.array([t for t, source, *_ in ticks if source == "timer" and t > arrivals[-1]])
    assert tail.size >= 5
    drift = tail[1:] - tail[1] - PERIOD * np.arange(tail.size - 1)
    assert np.ptp(drift) <= max(timer_lateness)
    assert pacer.state_ticks + pacer.watchdog_ticks == len(ticks)
