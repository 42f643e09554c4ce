"""Curricula promote and demote on synthetic performance; state round-trips; ADR writes config."""

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from sim2real.randomization.curriculum import (
    ADRTerm,
    AutomaticDomainRandomization,
    CommandCurriculum,
    Curriculum,
)
from sim2real.sim.tasks.go2_flat import Go2Flat

EPISODE_S = 20.0


def episodes(per_second, n=10, term="track_lin_vel_xy_exp", weight=1.0):
    """``infos["episode"]`` of n envs whose tracking term summed ``per_second × weight``/s."""
    return {
        "env_ids": np.arange(n),
        "length": np.full(n, 1000),
        term: np.full(n, per_second * weight * EPISODE_S),
        "return": np.zeros(n),
    }


def commands(**kwargs):
    defaults = dict(
        initial=((-0.5, 0.5), (-0.2, 0.2), (0.0, 0.0)),
        limits=((-1.0, 1.0), (-0.5, 0.5), (-1.0, 1.0)),
        step=(0.1, 0.1, 0.0),
        min_episodes=10,
    )
    return CommandCurriculum(**{**defaults, **kwargs})


# --- command curriculum ---------------------------------------------------------------


def test_command_curriculum_widens_above_threshold_only():
    cur = commands()
    assert cur.ranges == ((-0.5, 0.5), (-0.2, 0.2), (0.0, 0.0))
    assert not cur.update(episodes(0.79), EPISODE_S)
    assert not cur.update(episodes(0.8), EPISODE_S)  # must exceed, as in legged_gym
    assert cur.level == 0
    assert cur.update(episodes(0.81), EPISODE_S)
    np.testing.assert_allclose(cur.ranges, ((-0.6, 0.6), (-0.3, 0.3), (0.0, 0.0)))


def test_command_curriculum_stops_at_limits():
    cur = commands()
    changes = sum(cur.update(episodes(0.95), EPISODE_S) for _ in range(20))
    assert changes == 5  # vx needs 5 steps of 0.1; vy reaches 0.5 after 3 and stays
    assert cur.ranges == ((-1.0, 1.0), (-0.5, 0.5), (0.0, 0.0))
    assert not cur.update(episodes(1.0), EPISODE_S)


def test_command_curriculum_waits_for_min_episodes_and_normalizes_by_weight():
    cur = commands(reward_terms={"track_lin_vel_xy_exp": 2.0}, min_episodes=25)
    assert not cur.update(episodes(0.9, n=10, weight=2.0), EPISODE_S)
    assert not cur.update(episodes(0.9, n=10, weight=2.0), EPISODE_S)
    assert cur.level == 0
    assert cur.update(episodes(0.9, n=10, weight=2.0), EPISODE_S)
    assert cur.metrics()["curriculum/command_tracking"] == pytest.approx(0.9)
    # unnormalized sums that would pass at weight 1 fail at weight 2
    assert not cur.update(episodes(0.5, n=30, weight=1.5), EPISODE_S)


def test_command_curriculum_every_tracking_term_must_pass():
    cur = commands(reward_terms={"track_lin_vel_xy_exp": 1.0, "track_ang_vel_z_exp": 0.5})
    stats = {**episodes(0.9), "track_ang_vel_z_exp": np.full(10, 0.5 * 0.5 * EPISODE_S)}
    assert not cur.update(stats, EPISODE_S)
    stats["track_ang_vel_z_exp"] = np.full(10, 0.9 * 0.5 * EPISODE_S)
    assert cur.update(stats, EPISODE_S)
    with pytest.raises(KeyError, match="track_ang_vel_z_exp"):
        cur.update(episodes(0.9), EPISODE_S)


def test_command_curriculum_ignores_empty_and_checks_input():
    cur = commands()
    empty = {"env_ids": np.zeros(0, int), "track_lin_vel_xy_exp": np.zeros(0)}
    assert not cur.update(empty, EPISODE_S)
    with pytest.raises(ValueError):
        cur.update(episodes(0.9), 0.0)
    with pytest.raises(ValueError, match="outside limits"):
        commands(initial=((-2.0, 0.5), (0, 0), (0, 0)))
    with pytest.raises(ValueError, match="one entry per command"):
        commands(step=(0.1,))


def test_command_curriculum_from_go2_task():
    cur = CommandCurriculum.from_task(Go2Flat(), reward_terms=("track_ang_vel_z_exp",))
    assert cur.limits == tuple(tuple(map(float, r)) for r in Go2Flat.command_ranges)
    assert cur.reward_terms == {"track_ang_vel_z_exp": 0.5}
    with pytest.raises(KeyError):
        CommandCurriculum.from_task(Go2Flat(), reward_terms=("nope",))


def test_command_curriculum_state_round_trips(tmp_path):
    cur = commands()
    torch.save(cur.state_dict(), tmp_path / "fresh.pt")  # nothing measured yet: a None
    assert torch.load(tmp_path / "fresh.pt", weights_only=True) == cur.state_dict()
    cur.update(episodes(0.9), EPISODE_S)
    cur.update(episodes(0.9, n=3), EPISODE_S)  # 3 episodes pending in the counters
    state = cur.state_dict()
    path = tmp_path / "ckpt.pt"
    torch.save({"curriculum": state}, path)
    loaded = torch.load(path, weights_only=True)["curriculum"]
    assert loaded == state
    fresh = commands()
    fresh.load_state_dict(loaded)
    assert fresh.state_dict() == state
    assert fresh.ranges == cur.ranges
    # the pending counters came along: 7 more episodes decide, in both
    assert fresh.update(episodes(0.9, n=7), EPISODE_S) == cur.update(episodes(0.9, n=7), EPISODE_S)
    assert fresh.state_dict() == cur.state_dict()


def test_command_curriculum_metrics_are_floats():
    cur = commands()
    assert isinstance(cur, Curriculum)
    assert "curriculum/command_tracking" not in cur.metrics()  # nothing measured yet
    cur.update(episodes(0.9), EPISODE_S)
    metrics = cur.metrics()
    assert metrics["curriculum/command_vx_max"] == pytest.approx(0.6)
    assert metrics["curriculum/command_vx_min"] == pytest.approx(-0.6)
    assert metrics["curriculum/command_level"] == 1.0
    assert all(type(v) is float for v in metrics.values())


# --- ADR ------------------------------------------------------------------------------


def adr(**kwargs):
    terms = {
        "friction": ADRTerm(nominal=(0.8, 1.0), bounds=(0.5, 1.25), step=0.1),
        "mass": ADRTerm(nominal=(0.0, 0.0), bounds=(-1.0, 1.0), step=0.5),
    }
    defaults = dict(terms=terms, t_low=0.2, t_high=0.8, buffer_size=3, p_boundary=1.0)
    return AutomaticDomainRandomization(**{**defaults, **kwargs})


def evaluate(a, term, side, performance, env_id=0):
    """One episode of ``env_id`` at (term, side), reported after the reset that ends it."""
    rng = np.random.default_rng(0)
    while a.assign([env_id], rng).get(env_id) != (term, side):
        pass
    a.assign([env_id], rng)
    return a.report(env_id, performance)


def test_adr_starts_at_nominal():
    assert adr().ranges == {"friction": (0.8, 1.0), "mass": (0.0, 0.0)}


def test_adr_expands_a_boundary_after_m_high_reports():
    a = adr()
    assert not evaluate(a, "friction", "high", 0.9)
    assert not evaluate(a, "friction", "high", 0.9)
    assert a.ranges["friction"] == (0.8, 1.0)
    assert evaluate(a, "friction", "high", 0.9)
    assert a.ranges["friction"] == (0.8, 1.1)  # only that side moved
    assert a.ranges["mass"] == (0.0, 0.0)
    for _ in range(3):
        evaluate(a, "friction", "low", 0.85)
    assert a.ranges["friction"] == pytest.approx((0.7, 1.1))


def test_adr_shrinks_after_m_low_reports_and_holds_in_between():
    a = adr()
    for _ in range(6):
        evaluate(a, "mass", "low", 1.0)
    assert a.ranges["mass"] == (-1.0, 0.0)
    for _ in range(3):
        evaluate(a, "mass", "low", 0.5)  # between t_low and t_high: no change
    assert a.ranges["mass"] == (-1.0, 0.0)
    for _ in range(3):
        evaluate(a, "mass", "low", 0.1)
    assert a.ranges["mass"] == (-0.5, 0.0)


def test_adr_never_crosses_bounds_or_inverts():
    a = adr()
    for _ in range(60):  # 20 decisions each way
        evaluate(a, "friction", "high", 1.0)
        evaluate(a, "friction", "low", 1.0)
    assert a.ranges["friction"] == pytest.approx((0.5, 1.25))  # clipped at the hard bounds
    assert a.ranges["friction"][1] == 1.25
    changed = [evaluate(a, "friction", side, 1.0) for side in ("low", "high") for _ in range(3)]
    assert not any(changed)
    for _ in range(60):
        evaluate(a, "friction", "high", 0.0)
        evaluate(a, "friction", "low", 0.0)
        evaluate(a, "mass", "high", 0.0)
        evaluate(a, "mass", "low", 0.0)
        for low, high in a.ranges.values():
            assert low <= high
    assert a.ranges == {"friction": (0.8, 1.0), "mass": (0.0, 0.0)}  # back to nominal, exactly


def test_adr_ignores_reports_of_envs_without_a_boundary():
    a = adr(p_boundary=0.0)
    rng = np.random.default_rng(0)
    assert a.assign(range(8), rng) == {}
    a.assign(range(8), rng)
    for _ in range(10):
        assert not a.report_many(range(8), np.ones(8))
    assert a.state_dict()["buffers"] == {b: [] for b in a.state_dict()["buffers"]}
    b = adr()
    b.assign([0], rng)
    assert not b.report(0, 1.0)  # its episode is still running: nothing closed it yet
    assert not b.report(5, 1.0)  # never assigned
    assert all(not v for v in b.state_dict()["buffers"].values())


def test_adr_reports_each_episode_once():
    a = adr(buffer_size=2)
    evaluate(a, "friction", "high", 1.0, env_id=3)
    assert not a.report(3, 1.0)  # the same episode again
    assert a.ranges["friction"] == (0.8, 1.0)


def test_adr_drops_reports_whose_boundary_moved_meanwhile():
    a = adr()
    rng = np.random.default_rng(0)
    pins = a.assign(range(64), rng)
    stale = [e for e, b in pins.items() if b == ("mass", "high")]
    assert stale
    for _ in range(3):
        evaluate(a, "mass", "high", 1.0, env_id=1000)
    assert a.ranges["mass"] == (0.0, 0.5)
    a.assign(stale, rng)
    a.report_many(stale, np.zeros(len(stale)))  # measured at 0.0, not at 0.5
    assert a.state_dict()["buffers"]["mass:high"] == []


def test_adr_assign_with_the_vecenv_order_feeds_the_buffers():
    """Reset (assign) first, then report from the statistics of the ended episodes."""
    a = adr(p_boundary=0.5, buffer_size=4)
    rng = np.random.default_rng(1)
    a.assign(range(16), rng)
    for _ in range(40):
        ended = rng.choice(16, size=4, replace=False)
        a.assign(ended, rng)
        a.report_many(ended, np.ones(4))
    low, high = a.ranges["friction"]
    assert low < 0.8 or high > 1.0
    assert a.metrics()["curriculum/adr_boundary_envs"] > 0


def test_adr_assign_is_deterministic_by_seed_and_respects_p():
    def run(seed):
        a = adr(p_boundary=0.3)
        rng = np.random.default_rng(seed)
        return [a.assign(range(100), rng) for _ in range(5)]

    assert run(7) == run(7)
    assert run(7) != run(8)
    picked = sum(len(p) for p in run(7))
    assert 100 < picked < 200  # about 0.3 of 500
    sides = {b for p in run(7) for b in p.values()}
    assert sides == {(t, s) for t in ("friction", "mass") for s in ("low", "high")}


def test_adr_state_round_trips_through_torch(tmp_path):
    a = adr()
    for _ in range(4):
        evaluate(a, "friction", "high", 0.9)
    evaluate(a, "mass", "low", 0.5)
    state = a.state_dict()
    path = tmp_path / "ckpt.pt"
    torch.save({"adr": state}, path)
    loaded = torch.load(path, weights_only=True)["adr"]
    assert loaded == state
    fresh = adr()
    fresh.load_state_dict(loaded)
    assert fresh.state_dict() == state
    assert fresh.ranges == a.ranges
    # the buffered report came along: two more decide, in both
    for cur in (a, fresh):
        evaluate(cur, "friction", "high", 0.9)
        evaluate(cur, "friction", "high", 0.9)
    assert fresh.ranges == a.ranges == {"friction": (0.8, 1.2), "mass": (0.0, 0.0)}
    with pytest.raises(KeyError):
        adr(terms={"friction": a.terms["friction"]}).load_state_dict(state)


def test_adr_metrics_are_floats():
    a = adr()
    assert isinstance(a, Curriculum)
    metrics = a.metrics()
    assert metrics["curriculum/adr_friction_low"] == 0.8
    assert metrics["curriculum/adr_mass_high"] == 0.0
    assert all(type(v) is float for v in metrics.values())


@dataclasses.dataclass(frozen=True)
class FrozenTerm:
    range: tuple
    enabled: bool = True


def test_adr_write_to_updates_a_config_like_object():
    a = adr(
        terms={
            "friction": ADRTerm(nominal=(0.8, 1.0), bounds=(0.5, 1.25), step=0.1),
            "mass": ADRTerm(nominal=(0.0, 0.0), bounds=(-1.0, 1.0), step=0.5),
            "damping/FL_hip": ADRTerm(nominal=(1.0, 1.0), bounds=(0.0, 2.0), step=0.5),
        }
    )
    for _ in range(3):
        evaluate(a, "friction", "low", 1.0)
        evaluate(a, "damping/FL_hip", "high", 1.0)
    config = SimpleNamespace(
        terms={
            "friction": SimpleNamespace(range=(0.0, 9.0)),
            "mass": FrozenTerm(range=(5.0, 5.0)),
            "damping": SimpleNamespace(range={"FL_hip": (0.0, 0.0), "FR_hip": (0.3, 0.4)}),
        }
    )
    a.write_to(config)
    assert config.terms["friction"].range == pytest.approx((0.7, 1.0))
    assert config.terms["mass"] == FrozenTerm(range=(0.0, 0.0))
    assert config.terms["damping"].range == {"FL_hip": (1.0, 1.5), "FR_hip": (0.3, 0.4)}
    with pytest.raises(TypeError, match="per-name"):
        adr(terms={"damping": a.terms["mass"]}).write_to(config)
    with pytest.raises(KeyError):
        adr(terms={"absent": a.terms["mass"]}).write_to(config)


def test_adr_checks_its_arguments():
    with pytest.raises(ValueError, match="outside bounds"):
        ADRTerm(nominal=(0.0, 2.0), bounds=(0.0, 1.0), step=0.1)
    with pytest.raises(ValueError, match="step"):
        ADRTerm(nominal=(0.0, 0.0), bounds=(0.0, 1.0), step=0.0)
    with pytest.raises(ValueError, match="t_low < t_high"):
        adr(t_low=0.9, t_high=0.1)
    with pytest.raises(ValueError, match="not finite"):
        evaluate(adr(), "mass", "low", float("nan"))
