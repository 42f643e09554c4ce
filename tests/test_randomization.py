"""Randomization terms against the model: exactly the intended fields, envs and ranges.

Each term is bound alone to an env built with randomization off and drawn for a subset
of envs; then every MjModel field the batch can hold per env is compared with a fresh
compile of the same model: the shared model is never written, untouched envs keep their
nominal values, and the selected envs differ only where the term writes (plus the
``mj_setConst`` constants derived from masses, inertias, CoM and armature).
"""

from collections.abc import Callable
from dataclasses import dataclass

import mujoco
import mujoco.batch
import numpy as np
import pytest

from sim2real.randomization.config import RandomizationConfig, TermConfig
from sim2real.randomization.distributions import sample
from sim2real.randomization.randomizer import Randomizer
from sim2real.randomization.terms import (
    TERMS,
    SimHandles,
    dampratio_to_restitution,
    restitution_to_dampratio,
)
from sim2real.sim.observations import ObservationGroup, quat_rotate_inverse
from sim2real.sim.tasks import make_env
from sim2real.sim.tasks.go2_flat import CRITIC_OBS

N = 6
SELECTED = np.array([1, 4])
# what mj_setConst derives from masses, inertias, CoM and armature
DERIVED = {
    "body_subtreemass",
    "body_invweight0",
    "dof_invweight0",
    "dof_M0",
    "actuator_acc0",
    "cam_poscom0",
    "light_poscom0",
    "bvh_aabb",  # body bounding boxes live in the inertial frame: they follow the CoM
    "dof_length",  # rotational dof length scales, from the bodies' extent about the CoM
}


def term(mode="reset", distribution="uniform", operation="scale", range=(0.9, 1.1), **kw):
    return TermConfig(mode, distribution, operation, range, **kw)


def bare_env(task="go2-flat", n=N):
    return make_env(task, n, seed=0, nthread=1, randomization="off")


def bind(env, terms, seed=0):
    return Randomizer(RandomizationConfig(terms=terms), SimHandles.from_env(env), seed)


def same(actual, nominal, what=""):
    """Equal values, the nominal broadcast over the env rows."""
    nominal = np.asarray(nominal)
    np.testing.assert_array_equal(actual, np.broadcast_to(nominal, actual.shape), err_msg=what)


def field(model, name):
    if name.startswith("opt."):
        return np.asarray(getattr(model.opt, name[4:]))
    return np.asarray(getattr(model, name))


# ------------------------------------------------------------- one term, every field


@dataclass
class Case:
    """A term, its config, and a check returning ``{field: mask of entries it may change}``."""

    name: str
    config: TermConfig
    check: Callable
    task: str = "go2-flat"


class View:
    """The selected envs' per-env values of a field, and its nominal value."""

    def __init__(self, env, fresh):
        self.env, self.fresh = env, fresh

    def __call__(self, name):
        return self.env.backend.expanded(name)[SELECTED], field(self.fresh, name)

    def mask(self, name):
        return np.zeros(field(self.fresh, name).shape, dtype=bool)


def feet(env):
    return env.task.foot_geoms


def base(env):
    return int(env.backend.model.jnt_bodyid[0]) if env.robot.floating_base else None


def check_ground_friction(env, view, before):
    friction, nominal = view("geom_friction")
    values = friction[:, feet(env), 0]
    assert ((values >= 0.4) & (values <= 1.25)).all()
    assert (values == values[:, :1]).all()  # one draw per env, every foot
    mask = view.mask("geom_friction")
    mask[feet(env), 0] = True
    return {"geom_friction": mask}


def check_foot_friction(env, view, before):
    friction, _ = view("geom_friction")
    fl, fr, rl, rr = feet(env)
    assert ((friction[:, fl, 0] >= 0.2) & (friction[:, fl, 0] <= 0.3)).all()
    assert ((friction[:, [rl, rr], 0] >= 1.5) & (friction[:, [rl, rr], 0] <= 1.6)).all()
    assert friction[0, rl, 0] != friction[0, rr, 0]  # one draw per foot
    mask = view.mask("geom_friction")
    mask[[fl, rl, rr], 0] = True  # FR is not named: it keeps its nominal friction
    return {"geom_friction": mask}


def check_restitution(env, view, before):
    solref, nominal = view("geom_solref")
    zeta = solref[:, feet(env), 1]
    e = dampratio_to_restitution(zeta)
    assert ((e >= 0.05 - 1e-12) & (e <= 0.2 + 1e-12)).all()
    assert (zeta == zeta[:, :1]).all()
    same(solref[:, feet(env), 0], nominal[feet(env), 0])
    mask = view.mask("geom_solref")
    mask[feet(env), 1] = True
    return {"geom_solref": mask}


def check_base_mass(env, view, before):
    mass, nominal = view("body_mass")
    added = mass[:, base(env)] - nominal[base(env)]
    assert ((added >= 1.0) & (added <= 3.0)).all()
    inertia, nominal_inertia = view("body_inertia")
    ratio = mass[:, base(env)] / nominal[base(env)]
    np.testing.assert_allclose(inertia[:, base(env)], ratio[:, None] * nominal_inertia[base(env)])
    masks = {"body_mass": view.mask("body_mass"), "body_inertia": view.mask("body_inertia")}
    masks["body_mass"][base(env)] = True
    masks["body_inertia"][base(env)] = True
    return masks


def check_link_mass(env, view, before):
    mass, nominal = view("body_mass")
    links = np.flatnonzero(nominal > 0)
    links = links[links != base(env)] if base(env) is not None else links
    ratio = mass[:, links] / nominal[links]
    assert ((ratio >= 0.9) & (ratio <= 1.1)).all()
    assert len(np.unique(ratio)) == ratio.size  # one draw per link and env
    inertia, nominal_inertia = view("body_inertia")
    np.testing.assert_allclose(inertia[:, links], ratio[..., None] * nominal_inertia[links])
    masks = {"body_mass": view.mask("body_mass"), "body_inertia": view.mask("body_inertia")}
    masks["body_mass"][links] = True
    masks["body_inertia"][links] = True
    return masks


def check_base_com(env, view, before):
    ipos, nominal = view("body_ipos")
    offset = ipos[:, base(env)] - nominal[base(env)]
    assert (np.abs(offset) <= [0.03, 0.02, 0.01]).all()
    mask = view.mask("body_ipos")
    mask[base(env)] = True
    return {"body_ipos": mask}


def _check_dof(name, low, high, scale=True, joints=None):
    def check(env, view, before):
        values, nominal = view(name)
        dofs = env.robot.dof_adr if joints is None else env.robot.dof_adr[joints]
        drawn = values[:, dofs] / nominal[dofs] if scale else values[:, dofs]
        assert ((drawn >= low) & (drawn <= high)).all(), drawn
        mask = view.mask(name)
        mask[dofs] = True
        return {name: mask}

    return check


def check_damping_per_joint(env, view, before):
    damping, _ = view("dof_damping")
    names = env.robot.joint_names
    hip = env.robot.dof_adr[names.index("FL_hip_joint")]
    calves = env.robot.dof_adr[[i for i, n in enumerate(names) if n.endswith("_calf_joint")]]
    assert ((damping[:, hip] >= 0.2) & (damping[:, hip] <= 0.3)).all()
    assert ((damping[:, calves] >= 0.4) & (damping[:, calves] <= 0.5)).all()
    mask = view.mask("dof_damping")
    mask[hip] = mask[calves] = True
    return {"dof_damping": mask}


def check_motor_strength(env, view, before):
    forcerange, nominal = view("actuator_forcerange")
    ratio = forcerange[:, :, 1] / nominal[:, 1]
    assert ((ratio >= 0.9) & (ratio <= 1.1)).all()
    np.testing.assert_array_equal(forcerange[:, :, 0], -forcerange[:, :, 1])
    return {"actuator_forcerange": np.ones_like(nominal, dtype=bool)}


def check_kp(env, view, before):
    gain, nominal_gain = view("actuator_gainprm")
    bias, _ = view("actuator_biasprm")
    ratio = gain[:, :, 0] / nominal_gain[:, 0]
    assert ((ratio >= 0.9) & (ratio <= 1.1)).all()
    np.testing.assert_array_equal(bias[:, :, 1], -gain[:, :, 0])
    gain_mask, bias_mask = view.mask("actuator_gainprm"), view.mask("actuator_biasprm")
    gain_mask[:, 0] = bias_mask[:, 1] = True
    return {"actuator_gainprm": gain_mask, "actuator_biasprm": bias_mask}


def check_kd(env, view, before):
    bias, nominal = view("actuator_biasprm")
    ratio = bias[:, :, 2] / nominal[:, 2]
    assert ((ratio >= 0.9) & (ratio <= 1.1)).all()
    mask = view.mask("actuator_biasprm")
    mask[:, 2] = True
    return {"actuator_biasprm": mask}


def check_gravity_tilt(env, view, before):
    gravity, nominal = view("opt.gravity")
    np.testing.assert_allclose(np.linalg.norm(gravity, axis=1), np.linalg.norm(nominal))
    tilt = np.arccos(gravity @ nominal / (np.linalg.norm(nominal) ** 2))
    assert (tilt > 0).all() and (tilt <= np.sqrt(2) * 0.02 + 1e-9).all()
    return {"opt.gravity": np.ones(3, dtype=bool)}


STATE = {
    "qpos": lambda env: env.backend.qpos,
    "qvel": lambda env: env.backend.qvel,
    "xfrc_applied": lambda env: env.backend.xfrc_applied,
    "joint_offset": lambda env: env.joint_offset,
    "delay": lambda env: env.action_delay.delay,
}


def _state_check(key, check_rows):
    """A check of a term that writes no model field: only ``key`` of the selected envs."""

    def check(env, view, before):
        for name, get in STATE.items():
            now = get(env)
            others = np.delete(np.arange(env.num_envs), SELECTED)
            np.testing.assert_array_equal(now[others], before[name][others], err_msg=name)
            if name != key:
                np.testing.assert_array_equal(now, before[name], err_msg=name)
        check_rows(env, get_state(env, key)[SELECTED], before[key][SELECTED])
        return {}

    return check


def get_state(env, key):
    return STATE[key](env)


def rows_joint_offset(env, now, before):
    assert (np.abs(now) <= 0.02).all() and (now != 0).all()


def rows_delay(env, now, before):
    assert set(now.tolist()) <= {0, 1, 2}


def rows_push(env, now, before):
    change = now - before
    assert ((change[:, 0] >= 0.5) & (change[:, 0] <= 1.0)).all()
    assert ((change[:, 1] >= -1.0) & (change[:, 1] <= -0.5)).all()
    np.testing.assert_array_equal(change[:, 2:], 0.0)


def rows_force(env, now, before):
    force = now[:, base(env)]
    magnitude = np.linalg.norm(force[:, :3], axis=1)
    assert ((magnitude >= 5.0) & (magnitude <= 15.0)).all()
    np.testing.assert_array_equal(force[:, 2:], 0.0)  # planar, no torque
    now[:, base(env)] = 0.0
    np.testing.assert_array_equal(now, 0.0)  # only the base


def _sensor_check(attribute, check_rows):
    def check(env, view, before):
        for name, get in STATE.items():
            np.testing.assert_array_equal(get(env), before[name], err_msg=name)
        sensors = view.randomizer.sim.sensors
        values = getattr(sensors, attribute)
        others = np.delete(np.arange(env.num_envs), SELECTED)
        ideal = getattr(type(sensors)(env.num_envs, env.num_actions), attribute)
        np.testing.assert_array_equal(values[others], ideal[others])
        check_rows(values[SELECTED])
        return {}

    return check


CASES = [
    Case("ground_friction", term(operation="set", range=(0.4, 1.25)), check_ground_friction),
    Case(
        "foot_friction",
        term(operation="set", range={"FL_foot": (0.2, 0.3), "R?_foot": (1.5, 1.6)}),
        check_foot_friction,
    ),
    Case("restitution", term(operation="set", range=(0.05, 0.2)), check_restitution),
    Case("base_mass", term(operation="add", range=(1.0, 3.0)), check_base_mass),
    Case("link_mass", term(), check_link_mass),
    Case("link_mass", term(), check_link_mass, task="arm-reach"),
    Case(
        "base_com",
        term(operation="add", range={"x": (-0.03, 0.03), "y": (-0.02, 0.02), "z": (-0.01, 0.01)}),
        check_base_com,
    ),
    Case("joint_damping", term(range=(0.5, 1.5)), _check_dof("dof_damping", 0.5, 1.5)),
    Case(
        "joint_damping",  # what sysid writes: identified values per joint
        term(operation="set", range={"FL_hip_joint": (0.2, 0.3), "*_calf_joint": (0.4, 0.5)}),
        check_damping_per_joint,
    ),
    Case("joint_armature", term(range=(0.8, 1.2)), _check_dof("dof_armature", 0.8, 1.2)),
    Case("joint_friction", term(range=(0.5, 1.5)), _check_dof("dof_frictionloss", 0.5, 1.5)),
    Case(
        "joint_friction",
        term(operation="set", range=(0.0, 0.3)),
        _check_dof("dof_frictionloss", 0.0, 0.3, scale=False),
        task="arm-reach",
    ),
    Case("motor_strength", term(), check_motor_strength),
    Case("kp_scale", term(), check_kp),
    Case("kp_scale", term(), check_kp, task="arm-reach"),
    Case("kd_scale", term(), check_kd),
    Case("gravity_tilt", term(operation="add", range=(-0.02, 0.02)), check_gravity_tilt),
    Case(
        "joint_offset",
        term(operation="add", range=(-0.02, 0.02)),
        _state_check("joint_offset", rows_joint_offset),
    ),
    Case(
        "action_delay",
        term(operation="set", range=(0, 2)),
        _state_check("delay", rows_delay),
    ),
    Case(
        "push",
        term(operation="add", range={"x": (0.5, 1.0), "y": (-1.0, -0.5)}),
        _state_check("qvel", rows_push),
    ),
    Case(
        "external_force",
        term(operation="set", range=(5.0, 15.0)),
        _state_check("xfrc_applied", rows_force),
    ),
    Case(
        "imu_gyro_bias",
        term(operation="add", range=(-0.1, 0.1)),
        _sensor_check("gyro_bias", lambda b: np.testing.assert_array_less(np.abs(b), 0.1)),
    ),
    Case(
        "imu_tilt",
        term(operation="add", range=(-0.05, 0.05)),
        _sensor_check(
            "tilt", lambda q: np.testing.assert_array_less(1 - q[:, 0], 1 - np.cos(0.05))
        ),
    ),
    Case(
        "encoder_offset",
        term(operation="add", range=(-0.01, 0.01)),
        _sensor_check("encoder_offset", lambda o: np.testing.assert_array_less(np.abs(o), 0.01)),
    ),
]


def test_every_term_has_a_case():
    assert {c.name for c in CASES} | {"observation_noise"} == set(TERMS)


@pytest.mark.parametrize("case", CASES, ids=[f"{c.task}:{c.name}" for c in CASES])
def test_term_writes_exactly_its_fields_for_exactly_the_selected_envs(case):
    env = bare_env(case.task)
    fresh = env.task.build_model()
    before = {name: get(env).copy() for name, get in STATE.items()}
    randomizer = bind(env, {case.name: case.config})
    randomizer.reset(SELECTED)
    view = View(env, fresh)
    view.randomizer = randomizer
    masks = case.check(env, view, before)

    derived_ok = TERMS[case.name].set_const
    others = np.delete(np.arange(N), SELECTED)
    for name in sorted(mujoco.batch.MODEL_FIELDS):
        nominal = field(fresh, name)
        # the model every env shares is never written
        np.testing.assert_array_equal(field(env.backend.model, name), nominal, err_msg=name)
        per_env = env.backend.expanded(name)
        if per_env is None:
            assert name not in masks, f"{name} was never made per-env"
            continue
        same(per_env[others], nominal, name)
        selected = per_env[SELECTED]
        if name in masks:
            mask = masks[name]
            same(selected[:, ~mask], nominal[~mask], name)
            assert (selected[:, mask] != nominal[mask]).all(), f"{name}: not every entry drawn"
        elif name in DERIVED and derived_ok:
            assert np.isfinite(selected).all()
        else:
            same(selected, nominal, name)


# ------------------------------------------------------------------- distributions


def test_sample_moments():
    rng = np.random.default_rng(0)
    n = 200_000
    u = sample("uniform", 2.0, 5.0, (n,), rng)
    assert u.min() >= 2.0 and u.max() <= 5.0
    assert abs(u.mean() - 3.5) < 5 * np.sqrt(9 / 12 / n)
    assert abs(u.var() / (9 / 12) - 1) < 0.02
    log = np.log(sample("log_uniform", 0.5, 2.0, (n,), rng))
    assert log.min() >= np.log(0.5) - 1e-12 and log.max() <= np.log(2.0) + 1e-12
    assert abs(log.mean()) < 5 * np.sqrt(np.log(4) ** 2 / 12 / n)
    assert abs(log.var() / (np.log(4) ** 2 / 12) - 1) < 0.02
    g = sample("gaussian", 1.0, 0.1, (n,), rng)
    assert abs(g.mean() - 1.0) < 5 * 0.1 / np.sqrt(n)
    assert abs(g.std() / 0.1 - 1) < 0.01


def test_reset_draws_have_their_moments_and_envs_are_independent():
    env = bare_env(n=4)
    randomizer = bind(
        env,
        {
            "kp_scale": term(distribution="gaussian", range=(1.0, 0.05)),
            "joint_damping": term(distribution="log_uniform", range=(0.5, 2.0)),
            "ground_friction": term(operation="set", range=(0.4, 1.25)),
        },
    )
    everyone = np.arange(4)
    kp, damping, friction = [], [], []
    dofs, foot = env.robot.dof_adr, env.task.foot_geoms[0]
    for _ in range(1000):
        randomizer.reset(everyone)
        kp.append(env.actuators.kp / env.robot.kp)
        damping.append(env.backend.model_field("dof_damping")[:, dofs] / 0.1)
        friction.append(env.backend.model_field("geom_friction")[:, foot, 0].copy())
    kp, damping, friction = np.array(kp), np.log(np.array(damping)), np.array(friction)
    t = kp.size
    assert abs(kp.mean() - 1.0) < 5 * 0.05 / np.sqrt(t)
    assert abs(kp.std() / 0.05 - 1) < 0.03
    assert abs(damping.mean()) < 5 * np.sqrt(np.log(4) ** 2 / 12 / t)
    assert abs(damping.var() / (np.log(4) ** 2 / 12) - 1) < 0.05
    assert abs(friction.mean() - 0.825) < 5 * np.sqrt(0.85**2 / 12 / friction.size)
    # independent across envs (and across joints): correlations ~ N(0, 1/T)
    bound = 4.5 / np.sqrt(len(friction))
    for series in (friction, kp[:, :, 0], kp[:, 0, :], damping[:, :, 3]):
        corr = np.corrcoef(series.T)
        assert np.abs(corr[~np.eye(len(corr), dtype=bool)]).max() < bound


def test_ranges_are_read_at_draw_time_and_pins_fix_one_draw():
    """A curriculum (ADR) changes ``config.terms[name].range`` while the env runs."""
    env = make_env("go2-flat", 4, nthread=1, randomization=RandomizationConfig(
        terms={"ground_friction": term(operation="set", range=(0.4, 0.5))}))  # fmt: skip
    friction = env.backend.model_field("geom_friction")[:, env.task.foot_geoms[0], 0]
    assert ((friction >= 0.4) & (friction <= 0.5)).all()
    env.randomization.terms["ground_friction"].range = (1.5, 2.0)
    env.reset()
    friction = env.backend.model_field("geom_friction")[:, env.task.foot_geoms[0], 0]
    assert ((friction >= 1.5) & (friction <= 2.0)).all()
    env.randomizer.pin([2], "ground_friction", 0.123)
    env.reset()
    friction = env.backend.model_field("geom_friction")[:, env.task.foot_geoms[0], 0]
    assert friction[2] == 0.123 and (friction[[0, 1, 3]] >= 1.5).all()
    env.reset()  # a pin holds for one draw
    assert env.backend.model_field("geom_friction")[2, env.task.foot_geoms[0], 0] >= 1.5


# ------------------------------------------------------------------- restitution


@pytest.mark.parametrize("e", [0.0, 0.1, 0.2, 0.3])
def test_restitution_maps_to_a_dampratio_that_bounces_by_e(e):
    zeta = float(restitution_to_dampratio(e))
    assert dampratio_to_restitution(zeta) == pytest.approx(e, abs=1e-12)
    xml = f"""
    <mujoco><option timestep="0.005" integrator="implicitfast" cone="pyramidal"/>
      <worldbody><geom type="plane" size="1 1 .1"/>
        <body pos="0 0 0.5"><freejoint/>
          <geom type="sphere" size="0.022" mass="1" priority="1" solref="0.02 {zeta}"/>
        </body>
      </worldbody>
    </mujoco>"""
    model = mujoco.MjModel.from_xml_string(xml)
    data = mujoco.MjData(model)
    v_in = v_out = None
    for _ in range(400):
        v = data.qvel[2]
        mujoco.mj_step(model, data)
        if data.ncon and v_in is None:
            v_in = v
        if v_in is not None and not data.ncon:
            v_out = data.qvel[2]
            break
    bounce = 0.0 if v_out is None else -v_out / v_in
    assert bounce == pytest.approx(e, abs=0.07)


# ------------------------------------------------------------------- sensing path


def sensing_env(**terms):
    return make_env(
        "go2-flat", N, seed=3, nthread=1, randomization=RandomizationConfig(terms=terms)
    )


def test_policy_sees_gyro_bias_and_encoder_offset_critic_the_truth():
    env = sensing_env(
        imu_gyro_bias=term(operation="add", range=(-0.1, 0.1)),
        encoder_offset=term(operation="add", range=(-0.05, 0.05)),
    )
    zeros = np.zeros((N, 12), np.float32)
    result = env.step(zeros)
    policy, critic = result.obs["policy"], result.obs["critic"]
    sensors = env.randomizer.sim.sensors
    # policy layout: ang vel (3, ×0.25), gravity (3), command (3), joint pos (12), ...
    np.testing.assert_allclose(policy[:, :3] - critic[:, :3], 0.25 * sensors.gyro_bias, atol=1e-6)
    np.testing.assert_allclose(policy[:, 9:21] - critic[:, 9:21], sensors.encoder_offset, atol=1e-6)
    np.testing.assert_array_equal(policy[:, 3:9], critic[:, 3:9])
    np.testing.assert_array_equal(policy[:, 21:], critic[:, 21:45])
    # the critic is computed from the true state
    truth = ObservationGroup(CRITIC_OBS)(
        env.task.robot_state() | {"last_action": zeros, "previous_action": zeros}
    )
    np.testing.assert_array_equal(critic, truth)


def test_policy_sees_imu_misalignment():
    env = sensing_env(imu_tilt=term(operation="add", range=(-0.05, 0.05)))
    result = env.step(np.zeros((N, 12), np.float32))
    policy, critic = result.obs["policy"], result.obs["critic"]
    tilt = env.randomizer.sim.sensors.tilt
    np.testing.assert_allclose(
        policy[:, 3:6], quat_rotate_inverse(tilt, critic[:, 3:6].astype(float)), atol=1e-6
    )
    np.testing.assert_allclose(
        policy[:, :3], quat_rotate_inverse(tilt, critic[:, :3].astype(float)), atol=1e-6
    )
    assert not np.array_equal(policy[:, 3:6], critic[:, 3:6])


def test_observation_noise_only_on_the_named_policy_terms():
    env = sensing_env(
        observation_noise=term(mode="step", operation="add", range={"joint_vel": (-1.5, 1.5)})
    )
    diffs = []
    for _ in range(20):
        result = env.step(np.zeros((N, 12), np.float32))
        policy, critic = result.obs["policy"], result.obs["critic"]
        np.testing.assert_array_equal(policy[:, :21], critic[:, :21])
        np.testing.assert_array_equal(policy[:, 33:], critic[:, 33:45])
        diffs.append((policy[:, 21:33] - critic[:, 21:33]) / 0.05)  # joint_vel scale 0.05
    diffs = np.array(diffs)
    assert np.abs(diffs).max() <= 1.5 + 1e-4
    assert abs(diffs.std() - 1.5 / np.sqrt(3)) < 0.1  # fresh uniform noise every step


# ------------------------------------------------------------------- timing, disturbances


def test_action_delay_draws_cover_0_to_k_and_delay_the_targets():
    env = make_env("go2-flat", 64, nthread=1, randomization=RandomizationConfig(
        terms={"action_delay": term(operation="set", range=(0, 2))}))  # fmt: skip
    assert set(env.action_delay.delay.tolist()) == {0, 1, 2}


def test_joint_offset_shifts_the_pd_targets():
    env = make_env("go2-flat", N, nthread=1, randomization=RandomizationConfig(
        terms={"joint_offset": term(operation="add", range=(-0.02, 0.02))}))  # fmt: skip
    assert (env.joint_offset != 0).all()
    env.step(np.zeros((N, 12), np.float32))
    np.testing.assert_allclose(env.backend.ctrl, env.robot.default_joint_pos + env.joint_offset)


def test_pushes_fire_at_the_scheduled_steps_only():
    env = bare_env()
    push = term(mode="interval", operation="add", range={"x": (1.0, 1.0), "y": (-0.5, -0.5)},
                interval_s=(0.1, 0.1))  # fmt: skip
    randomizer = bind(env, {"push": push})  # 0.1 s = every 5 control steps
    randomizer.reset(np.arange(N))
    pushed = []
    for call in range(1, 18):
        if call == 8:
            randomizer.reset(np.array([1]))  # env 1's timer restarts
        before = env.backend.qvel.copy()
        randomizer.pre_physics()
        change = env.backend.qvel - before
        envs = np.flatnonzero(change.any(axis=1))
        np.testing.assert_allclose(
            change[envs, :2], np.tile([1.0, -0.5], (len(envs), 1)), atol=1e-12
        )
        np.testing.assert_array_equal(change[:, 2:], 0.0)
        pushed.append((call, envs.tolist()))
    everyone = list(range(N))
    not_1 = [e for e in everyone if e != 1]
    expected = [(5, everyone), (10, not_1), (12, [1]), (15, not_1), (17, [1])]
    assert [p for p in pushed if p[1]] == expected


def test_pushed_env_matches_an_unpushed_one_until_the_first_push():
    push = term(mode="interval", operation="add", range=(0.5, 0.5), interval_s=(0.1, 0.1))
    pushed = make_env("go2-flat", 4, seed=5, nthread=1,
                      randomization=RandomizationConfig(terms={"push": push}))  # fmt: skip
    plain = make_env("go2-flat", 4, seed=5, nthread=1, randomization="off")
    zeros = np.zeros((4, 12), np.float32)
    for step in range(1, 8):
        a, b = pushed.step(zeros), plain.step(zeros)
        same = np.array_equal(a.obs["critic"], b.obs["critic"])
        assert same == (step < 5), step  # the task's own draws do not depend on randomization


def test_external_force_is_held_for_its_duration_then_removed():
    env = bare_env()
    force = term(mode="interval", operation="set", range=(10.0, 10.0), interval_s=(0.2, 0.2),
                 params={"duration_s": (0.05, 0.05)})  # fmt: skip
    randomizer = bind(env, {"external_force": force})
    randomizer.reset(np.arange(N))
    body = randomizer.sim.base_body
    active = []
    for _ in range(25):
        randomizer.pre_physics()
        f = env.backend.xfrc_applied[:, body]
        magnitude = np.linalg.norm(f[:, :3], axis=1)
        assert np.allclose(magnitude, 10.0) or np.allclose(magnitude, 0.0)
        np.testing.assert_array_equal(f[:, 2:], 0.0)  # planar, no torque
        active.append(bool(magnitude[0] > 0))
    # drawn at steps 10 and 20, held ceil(0.05 / 0.02) = 3 control steps each
    assert [i + 1 for i, a in enumerate(active) if a] == [10, 11, 12, 20, 21, 22]
    randomizer.reset(np.arange(N))
    np.testing.assert_array_equal(env.backend.xfrc_applied, 0.0)


# ------------------------------------------------------------------- the shipped defaults


@pytest.mark.parametrize("task", ["go2-flat", "arm-reach"])
def test_default_randomization_runs_and_changes_the_envs(task):
    env = make_env(task, 8, seed=0, nthread=1)
    rng = np.random.default_rng(0)
    for _ in range(30):
        result = env.step(rng.uniform(-1, 1, (8, env.num_actions)).astype(np.float32))
        assert all(np.isfinite(o).all() for o in result.obs.values())
    kp = env.actuators.kp
    assert len(np.unique(kp[:, 0])) == 8  # every env its own draw
    assert not np.array_equal(
        result.obs["policy"], result.obs["critic"][:, : env.obs_sizes["policy"]]
    )


def test_per_name_ranges_in_any_order_reach_the_right_joints():
    env = bare_env()
    kp = term(operation="set", range={"*_calf_joint": (30.0, 30.0), "FL_hip_joint": (5.0, 5.0)})
    randomizer = bind(env, {"kp_scale": kp})
    randomizer.reset(np.arange(N))
    expected = env.robot.kp.copy()
    names = env.robot.joint_names
    expected[[i for i, n in enumerate(names) if n.endswith("_calf_joint")]] = 30.0
    expected[names.index("FL_hip_joint")] = 5.0
    np.testing.assert_array_equal(env.actuators.kp, np.tile(expected, (N, 1)))
    # a curriculum replaces the mapping: the next draw follows it
    randomizer.config.terms["kp_scale"].range = {"FR_*": (7.0, 7.0)}
    randomizer.reset(np.arange(N))
    expected = env.robot.kp.copy()
    expected[[i for i, n in enumerate(names) if n.startswith("FR_")]] = 7.0
    np.testing.assert_array_equal(env.actuators.kp, np.tile(expected, (N, 1)))


def test_adr_pins_boundaries_through_a_reset_hook():
    """The wiring README.md shows: ADR writes ranges, a reset hook pins boundary envs."""
    from sim2real.randomization.curriculum import ADRTerm, AutomaticDomainRandomization

    env = make_env("go2-flat", 16, seed=0, nthread=1)
    adr = AutomaticDomainRandomization(
        {"ground_friction": ADRTerm(nominal=(0.8, 1.0), bounds=(0.2, 2.0), step=0.05)},
        t_low=0.5,
        t_high=0.8,
        p_boundary=0.5,
    )
    adr.write_to(env.randomization)
    pinned = {}

    def pin_boundaries(env_ids, randomizer):
        for env_id, (name, side) in adr.assign(env_ids, randomizer.rng).items():
            term_name, _, key = name.partition("/")
            value = adr.boundary_value(name, side)
            randomizer.pin([env_id], term_name, value, key or None)
            pinned[env_id] = value

    env.randomizer.reset_hooks.append(pin_boundaries)
    env.reset()
    friction = env.backend.model_field("geom_friction")[:, env.task.foot_geoms[0], 0]
    assert pinned and all(friction[e] == v for e, v in pinned.items())
    assert ((friction >= 0.8) & (friction <= 1.0)).all()
