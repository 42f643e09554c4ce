"""The randomization terms: what each one writes, per env, and how it may be drawn.

A term is a small kernel ``write(sim, env_ids, entries, values, params, rng)`` that puts
already-drawn values into the simulation for a subset of envs, plus a ``TermSpec`` that
states what it acts on (its *entries*: joints, feet, links, axes), its nominal values
(read from ``backend.model``, which per-env expansion never changes), and which modes,
distributions and operations make sense for it. The randomizer
(``sim2real.randomization.randomizer``) draws ``value = operation(nominal, draw)`` from
the YAML config and calls the kernel; the ranges are data (DESIGN contract 5).

Terms (units SI; "entries" are the names a per-name range may use):

======================  ==========  =================================================
term                    entries     writes
======================  ==========  =================================================
``ground_friction``     (one)       sliding friction of every foot geom, one draw per env
``foot_friction``       feet        sliding friction of each foot geom
``restitution``         (one)       foot-ground restitution e, as the feet's solref
                                    damping ratio (see below), one draw per env
``base_mass``           (one)       base mass, kg; base inertia scaled with it
``link_mass``           links       mass of every other body with mass, inertia with it
``base_com``            x, y, z     base centre of mass (``body_ipos``), m
``joint_damping``       joints      ``dof_damping``, N·m·s/rad
``joint_armature``      joints      ``dof_armature``, kg·m²
``joint_friction``      joints      ``dof_frictionloss``, N·m
``motor_strength``      joints      actuator effort limit, N·m
``kp_scale``            joints      PD proportional gain, N·m/rad
``kd_scale``            joints      PD derivative gain, N·m·s/rad
``joint_offset``        joints      actuator zero offset δ, rad: the PD holds q = q* + δ
``gravity_tilt``        x, y        gravity direction tilted by these angles, rad
``action_delay``        (one)       action delay, whole control steps 0..max
``observation_noise``   obs terms   per-step noise added to a policy obs term (raw units)
``imu_gyro_bias``       x, y, z     gyro bias, rad/s (policy observations only)
``imu_tilt``            x, y        IMU misalignment angles, rad (policy observations only)
``encoder_offset``      joints      joint encoder offset, rad (policy observations only)
``push``                x, y        base linear velocity change (world frame), m/s
``external_force``      (one)       force on the base, N, random direction, held a while
======================  ==========  =================================================

Modelling decisions:

- **Restitution.** MuJoCo has no restitution coefficient: a contact is a damped spring
  with ``solref = (timeconst, dampratio)``. A half-period of an underdamped oscillator
  returns the velocity scaled by ``e = exp(-π ζ / sqrt(1 - ζ²))``, so a restitution ``e``
  is written as the damping ratio ``ζ(e) = -ln e / sqrt(π² + ln² e)`` (``e = 0`` gives
  ζ = 1, critically damped; the nominal ζ >= 1 is e = 0), keeping the time constant.
  The feet have ``priority="1"``, so their solref (and friction) decides their contacts
  with the ground. MuJoCo's soft-contact impedance makes the measured bounce somewhat
  lower than ``e`` (tests drop a ball: within 0.1 for e <= 0.5).
- **Joint offset (calibration error).** A per-env offset δ is added to the joint
  position targets by the env (``TaskEnv.joint_offset``), after the action delay: the
  PD law becomes ``kp (q* + δ - q) - kd q̇``. Writing ``biasprm[..., 0] = kp δ`` would do
  the same, but would have to be rewritten whenever ``kp_scale`` draws a new kp; the
  target offset is independent of the gains. The encoder's side of a calibration error
  is ``encoder_offset``: a pure zero error ε of a joint is ``joint_offset = ε`` together
  with ``encoder_offset = -ε``; the two terms are drawn independently by default.
- **Masses.** Changing a body's mass scales its inertia by the same ratio (the body keeps
  its shape and density distribution). Mass, inertia, CoM and armature are
  ``mj_setConst`` inputs: the randomizer calls ``backend.set_const`` for the envs it
  changed, so derived constants (``body_subtreemass``, ``dof_invweight0``, ...) follow.
- **Disturbances.** ``push`` adds (or sets) the base's world-frame x/y velocity, Isaac
  Lab's ``push_by_setting_velocity``; ``external_force`` applies a force of the drawn
  magnitude at the base's centre of mass (``xfrc_applied``) in a uniformly random
  direction (horizontal when ``params.planar``), held for U(``params.duration_s``)
  seconds rounded up to whole control steps (from the step it is drawn in); a reset
  removes it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sim2real.randomization.distributions import DISTRIBUTIONS, OPERATIONS
from sim2real.randomization.sensors import SensorModel, tilt_quat
from sim2real.sim.actuation import ActionDelay, PDActuators
from sim2real.sim.backends.base import SimBackend
from sim2real.sim.robot import RobotModel

MODES = ("startup", "reset", "interval", "step")
XYZ = ("x", "y", "z")
XY = ("x", "y")
MIN_MASS = 1e-6  # kg; the lower clip of every randomized mass


@dataclass
class SimHandles:
    """Everything a term may write, for one env engine.

    Attributes:
        backend: the batched simulator (``model`` is the nominal, unexpanded model).
        robot: the robot's facts (joints in actuator order).
        actuators: per-env PD gains and effort limits.
        action_delay: the per-env action-delay buffer.
        joint_offset: (N, J) rad, added by the env to every joint position target.
        sensors: the policy's sensor model.
        feet: geom names of the task's feet (empty: no foot terms).
        policy_terms: names of the policy observation terms.
        step_dt: control period, s.
        task_name: for messages.
        foot_geoms: derived: geom ids of ``feet``.
        base_body: derived: the floating base's body id, None for a fixed base.
        link_bodies: derived: ids of the other bodies with mass (``link_names``).
        force_steps_left: external-force state, control steps per env.
    """

    backend: SimBackend
    robot: RobotModel
    actuators: PDActuators
    action_delay: ActionDelay
    joint_offset: np.ndarray
    sensors: SensorModel
    feet: tuple[str, ...]
    policy_terms: tuple[str, ...]
    step_dt: float
    task_name: str
    foot_geoms: np.ndarray = field(init=False)
    base_body: int | None = field(init=False)
    link_bodies: np.ndarray = field(init=False)
    link_names: tuple[str, ...] = field(init=False)
    force_steps_left: np.ndarray = field(init=False)

    @classmethod
    def from_env(cls, env: Any) -> SimHandles:
        """The handles of a ``TaskEnv`` (duck-typed), with a fresh ideal sensor model."""
        return cls(
            backend=env.backend,
            robot=env.robot,
            actuators=env.actuators,
            action_delay=env.action_delay,
            joint_offset=env.joint_offset,
            sensors=SensorModel(env.num_envs, env.num_actions),
            feet=tuple(env.task.feet),
            policy_terms=tuple(t.name for t in env.task.observations.get("policy", ())),
            step_dt=env.step_dt,
            task_name=env.task.name,
        )

    def __post_init__(self):
        model = self.backend.model
        self.foot_geoms = np.array([model.geom(f).id for f in self.feet], dtype=np.int64)
        self.base_body = int(model.jnt_bodyid[0]) if self.robot.floating_base else None
        links = [b for b in range(1, model.nbody) if model.body_mass[b] > 0 and b != self.base_body]
        self.link_bodies = np.array(links, dtype=np.int64)
        self.link_names = tuple(model.body(b).name for b in links)
        # external_force: control steps its force still acts (0: remove it, < 0: none)
        self.force_steps_left = np.full(self.backend.num_envs, -1, dtype=np.int64)


Nominal = Callable[[SimHandles, np.ndarray], np.ndarray]
Write = Callable[[SimHandles, np.ndarray, np.ndarray, np.ndarray, Mapping[str, Any], Any], None]


@dataclass(frozen=True)
class TermSpec:
    """What a term acts on and how it may be drawn.

    Attributes:
        name: the term's key in the YAML ``terms:`` mapping.
        summary: one line: what it writes, with units.
        entries: the names a per-name range may use, for one env engine.
        per_name: whether ``range`` may be a per-name mapping (else only ``[a, b]``).
        shared: one draw per env, applied to every entry (e.g. ground friction).
        modes: allowed modes.
        operations: allowed operations.
        distributions: allowed distributions.
        integer: draws are whole numbers (uniform over ``low..high`` inclusive).
        bounds: the value after the operation is clipped to these (physical validity).
        params: term-specific parameters and their defaults.
        requires: ``"feet"`` or ``"base"`` (floating base) when the term needs one.
        set_const: whether writing it requires ``backend.set_const``.
        state_nominal: the nominal values depend on the simulation state (push: the
            current velocity); otherwise they are read once from the model.
        nominal: the nominal values, ``(E,)`` or ``(len(env_ids), E)``; None: no draw
            path through the randomizer's generic engine (observation noise).
        write: the kernel.
    """

    name: str
    summary: str
    entries: Callable[[SimHandles], tuple[str, ...]]
    per_name: bool
    modes: tuple[str, ...]
    operations: tuple[str, ...]
    nominal: Nominal | None
    write: Write | None
    distributions: tuple[str, ...] = DISTRIBUTIONS
    shared: bool = False
    integer: bool = False
    bounds: tuple[float, float] = (-np.inf, np.inf)
    params: Mapping[str, Any] = field(default_factory=dict)
    requires: str = ""
    set_const: bool = False
    state_nominal: bool = False


# ----------------------------------------------------------------------------- helpers


def _rows(env_ids: np.ndarray) -> np.ndarray:
    return np.asarray(env_ids)[:, None]


def _joints(sim: SimHandles) -> tuple[str, ...]:
    return sim.robot.joint_names


def _feet(sim: SimHandles) -> tuple[str, ...]:
    return sim.feet


def _links(sim: SimHandles) -> tuple[str, ...]:
    return sim.link_names


def _one(sim: SimHandles) -> tuple[str, ...]:
    return ("value",)


def _xyz(sim: SimHandles) -> tuple[str, ...]:
    return XYZ


def _xy(sim: SimHandles) -> tuple[str, ...]:
    return XY


def _policy_terms(sim: SimHandles) -> tuple[str, ...]:
    return sim.policy_terms


def _zeros(size: int) -> Nominal:
    def nominal(sim: SimHandles, env_ids: np.ndarray) -> np.ndarray:
        return np.zeros(size)

    return nominal


def _zeros_per_joint(sim: SimHandles, env_ids: np.ndarray) -> np.ndarray:
    return np.zeros(sim.robot.num_joints)


# ---------------------------------------------------------------------- contact terms


def restitution_to_dampratio(e: np.ndarray) -> np.ndarray:
    """Solref damping ratio whose contact returns velocity × ``e`` (0 <= e < 1)."""
    e = np.asarray(e, dtype=np.float64)
    log_e = np.log(np.maximum(e, 1e-300))
    return np.where(e > 0.0, -log_e / np.sqrt(np.pi**2 + log_e**2), 1.0)


def dampratio_to_restitution(zeta: np.ndarray) -> np.ndarray:
    """Restitution of a contact with solref damping ratio ``zeta`` (0 when ζ >= 1)."""
    zeta = np.asarray(zeta, dtype=np.float64)
    under = np.minimum(zeta, 1.0 - 1e-12)
    return np.where(zeta < 1.0, np.exp(-np.pi * under / np.sqrt(1.0 - under**2)), 0.0)


def _foot_friction_nominal(sim: SimHandles, env_ids: np.ndarray) -> np.ndarray:
    return sim.backend.model.geom_friction[sim.foot_geoms, 0]


def _write_foot_friction(sim, env_ids, entries, values, params, rng) -> None:
    friction = sim.backend.model_field("geom_friction")
    friction[_rows(env_ids), sim.foot_geoms[entries][None, :], 0] = values


def _restitution_nominal(sim: SimHandles, env_ids: np.ndarray) -> np.ndarray:
    solref = sim.backend.model.geom_solref[sim.foot_geoms]
    if np.any(solref[:, 0] <= 0):
        raise ValueError(
            "restitution: the feet use direct solref (-stiffness, -damping); the term "
            "writes the damping ratio of the standard (timeconst, dampratio) form"
        )
    return dampratio_to_restitution(solref[:, 1])


def _write_restitution(sim, env_ids, entries, values, params, rng) -> None:
    solref = sim.backend.model_field("geom_solref")
    solref[_rows(env_ids), sim.foot_geoms[entries][None, :], 1] = restitution_to_dampratio(values)


# ----------------------------------------------------------------------- mass terms


def _set_masses(sim: SimHandles, env_ids: np.ndarray, bodies: np.ndarray, mass: np.ndarray):
    """Write masses (n, B) and scale the bodies' inertias by mass / nominal mass."""
    nominal = sim.backend.model.body_mass[bodies]
    sim.backend.model_field("body_mass")[_rows(env_ids), bodies[None, :]] = mass
    inertia = sim.backend.model.body_inertia[bodies] * (mass / nominal)[..., None]
    sim.backend.model_field("body_inertia")[_rows(env_ids), bodies[None, :]] = inertia


def _base_mass_nominal(sim: SimHandles, env_ids: np.ndarray) -> np.ndarray:
    return sim.backend.model.body_mass[[sim.base_body]]


def _write_base_mass(sim, env_ids, entries, values, params, rng) -> None:
    _set_masses(sim, env_ids, np.array([sim.base_body]), values)


def _link_mass_nominal(sim: SimHandles, env_ids: np.ndarray) -> np.ndarray:
    return sim.backend.model.body_mass[sim.link_bodies]


def _write_link_mass(sim, env_ids, entries, values, params, rng) -> None:
    _set_masses(sim, env_ids, sim.link_bodies[entries], values)


def _base_com_nominal(sim: SimHandles, env_ids: np.ndarray) -> np.ndarray:
    return sim.backend.model.body_ipos[sim.base_body]


def _write_base_com(sim, env_ids, entries, values, params, rng) -> None:
    sim.backend.model_field("body_ipos")[_rows(env_ids), sim.base_body, entries[None, :]] = values


# ---------------------------------------------------------------------- joint terms


def _dof_nominal(field_name: str) -> Nominal:
    def nominal(sim: SimHandles, env_ids: np.ndarray) -> np.ndarray:
        return getattr(sim.backend.model, field_name)[sim.robot.dof_adr]

    return nominal


def _write_dof(field_name: str) -> Write:
    def write(sim, env_ids, entries, values, params, rng) -> None:
        target = sim.backend.model_field(field_name)
        target[_rows(env_ids), sim.robot.dof_adr[entries][None, :]] = values

    return write


def _gain_write(getter: str, setter: str) -> Write:
    """Write entries of a (N, J) PDActuators quantity through its setter."""

    def write(sim, env_ids, entries, values, params, rng) -> None:
        if not np.array_equal(entries, np.arange(sim.robot.num_joints)):  # some, or reordered
            current = getattr(sim.actuators, getter)[env_ids]
            current[:, entries] = values
            values = current
        getattr(sim.actuators, setter)(env_ids, values)

    return write


def _kp_nominal(sim: SimHandles, env_ids: np.ndarray) -> np.ndarray:
    return sim.robot.kp


def _kd_nominal(sim: SimHandles, env_ids: np.ndarray) -> np.ndarray:
    return sim.robot.kd


def _effort_nominal(sim: SimHandles, env_ids: np.ndarray) -> np.ndarray:
    return sim.backend.model.actuator_forcerange[:, 1]


def _write_joint_offset(sim, env_ids, entries, values, params, rng) -> None:
    sim.joint_offset[_rows(env_ids), entries[None, :]] = values


# ------------------------------------------------------------------- gravity, delay


def _write_gravity_tilt(sim, env_ids, entries, values, params, rng) -> None:
    angles = np.zeros((len(env_ids), 2))
    angles[:, entries] = values
    # rotate the nominal gravity by R_y(ay) R_x(ax)
    g = np.asarray(sim.backend.model.opt.gravity, dtype=np.float64)
    ax, ay = angles[:, 0], angles[:, 1]
    cx, sx, cy, sy = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay)
    x1, y1, z1 = g[0], cx * g[1] - sx * g[2], sx * g[1] + cx * g[2]
    tilted = np.stack([cy * x1 + sy * z1, y1, -sy * x1 + cy * z1], axis=1)
    sim.backend.model_field("opt.gravity")[env_ids] = tilted


def _write_action_delay(sim, env_ids, entries, values, params, rng) -> None:
    sim.action_delay.set_delay(env_ids, values[:, 0].astype(np.int64))


# ---------------------------------------------------------------------- sensor terms


def _write_gyro_bias(sim, env_ids, entries, values, params, rng) -> None:
    sim.sensors.gyro_bias[_rows(env_ids), entries[None, :]] = values


def _write_imu_tilt(sim, env_ids, entries, values, params, rng) -> None:
    angles = np.zeros((len(env_ids), 2))
    angles[:, entries] = values
    sim.sensors.tilt[env_ids] = tilt_quat(angles)


def _write_encoder_offset(sim, env_ids, entries, values, params, rng) -> None:
    sim.sensors.encoder_offset[_rows(env_ids), entries[None, :]] = values


# ---------------------------------------------------------------------- disturbances


def _push_nominal(sim: SimHandles, env_ids: np.ndarray) -> np.ndarray:
    return sim.backend.qvel[env_ids, 0:2]


def _write_push(sim, env_ids, entries, values, params, rng) -> None:
    sim.backend.qvel[_rows(env_ids), entries[None, :]] = values


def _write_external_force(sim, env_ids, entries, values, params, rng) -> None:
    n = len(env_ids)
    if params["planar"]:
        angle = rng.uniform(0.0, 2.0 * np.pi, n)
        direction = np.stack([np.cos(angle), np.sin(angle), np.zeros(n)], axis=1)
    else:
        direction = rng.normal(size=(n, 3))
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    low, high = params["duration_s"]
    steps = np.ceil(rng.uniform(low, high, n) / sim.step_dt - 1e-9)
    sim.force_steps_left[env_ids] = np.maximum(1, steps).astype(np.int64)
    sim.backend.xfrc_applied[env_ids, sim.base_body, 0:3] = values[:, :1] * direction
    sim.backend.xfrc_applied[env_ids, sim.base_body, 3:6] = 0.0


def expire_forces(sim: SimHandles) -> None:
    """Before a control step's physics, after the draws: remove forces whose time is over.

    A force drawn with duration d acts during ``ceil(d / step_dt)`` control steps (at
    least one), starting with the step it was drawn in.
    """
    if sim.base_body is None:
        return
    over = np.flatnonzero(sim.force_steps_left == 0)
    if len(over):
        sim.backend.xfrc_applied[over, sim.base_body] = 0.0
    np.maximum(sim.force_steps_left - 1, -1, out=sim.force_steps_left)


def clear_forces(sim: SimHandles, env_ids: np.ndarray) -> None:
    """At reset: no external force on the base of ``env_ids``."""
    if sim.base_body is None:
        return
    sim.backend.xfrc_applied[env_ids, sim.base_body] = 0.0
    sim.force_steps_left[env_ids] = -1


# ---------------------------------------------------------------------------- table

_EVENT = ("startup", "reset", "interval")
_ALL_OPS = OPERATIONS
_NONNEG = (0.0, np.inf)


def _spec(**kwargs: Any) -> TermSpec:
    return TermSpec(**kwargs)


TERMS: dict[str, TermSpec] = {
    spec.name: spec
    for spec in (
        _spec(
            name="ground_friction",
            summary="sliding friction of every foot contact, one draw per env",
            entries=_feet,
            per_name=False,
            shared=True,
            modes=_EVENT,
            operations=_ALL_OPS,
            bounds=_NONNEG,
            requires="feet",
            nominal=_foot_friction_nominal,
            write=_write_foot_friction,
        ),
        _spec(
            name="foot_friction",
            summary="sliding friction of each foot contact, one draw per foot",
            entries=_feet,
            per_name=True,
            modes=_EVENT,
            operations=_ALL_OPS,
            bounds=_NONNEG,
            requires="feet",
            nominal=_foot_friction_nominal,
            write=_write_foot_friction,
        ),
        _spec(
            name="restitution",
            summary="foot-ground restitution e (0: no bounce), as the feet's solref dampratio",
            entries=_feet,
            per_name=False,
            shared=True,
            modes=_EVENT,
            operations=_ALL_OPS,
            bounds=(0.0, 0.99),
            requires="feet",
            nominal=_restitution_nominal,
            write=_write_restitution,
        ),
        _spec(
            name="base_mass",
            summary="base mass, kg (inertia scaled with it)",
            entries=_one,
            per_name=False,
            modes=_EVENT,
            operations=_ALL_OPS,
            bounds=(MIN_MASS, np.inf),
            requires="base",
            set_const=True,
            nominal=_base_mass_nominal,
            write=_write_base_mass,
        ),
        _spec(
            name="link_mass",
            summary="mass of each other body with mass, kg (inertia scaled with it)",
            entries=_links,
            per_name=True,
            modes=_EVENT,
            operations=_ALL_OPS,
            bounds=(MIN_MASS, np.inf),
            set_const=True,
            nominal=_link_mass_nominal,
            write=_write_link_mass,
        ),
        _spec(
            name="base_com",
            summary="base centre of mass in the base frame (body_ipos), m",
            entries=_xyz,
            per_name=True,
            modes=_EVENT,
            operations=_ALL_OPS,
            requires="base",
            set_const=True,
            nominal=_base_com_nominal,
            write=_write_base_com,
        ),
        _spec(
            name="joint_damping",
            summary="joint viscous damping (dof_damping), N·m·s/rad",
            entries=_joints,
            per_name=True,
            modes=_EVENT,
            operations=_ALL_OPS,
            bounds=_NONNEG,
            nominal=_dof_nominal("dof_damping"),
            write=_write_dof("dof_damping"),
        ),
        _spec(
            name="joint_armature",
            summary="joint armature, reflected rotor inertia (dof_armature), kg·m²",
            entries=_joints,
            per_name=True,
            modes=_EVENT,
            operations=_ALL_OPS,
            bounds=_NONNEG,
            set_const=True,
            nominal=_dof_nominal("dof_armature"),
            write=_write_dof("dof_armature"),
        ),
        _spec(
            name="joint_friction",
            summary="joint dry friction (dof_frictionloss), N·m",
            entries=_joints,
            per_name=True,
            modes=_EVENT,
            operations=_ALL_OPS,
            bounds=_NONNEG,
            nominal=_dof_nominal("dof_frictionloss"),
            write=_write_dof("dof_frictionloss"),
        ),
        _spec(
            name="motor_strength",
            summary="actuator effort limit (forcerange), N·m",
            entries=_joints,
            per_name=True,
            modes=_EVENT,
            operations=_ALL_OPS,
            bounds=_NONNEG,
            nominal=_effort_nominal,
            write=_gain_write("effort_limit", "set_effort_limit"),
        ),
        _spec(
            name="kp_scale",
            summary="PD proportional gain kp, N·m/rad",
            entries=_joints,
            per_name=True,
            modes=_EVENT,
            operations=_ALL_OPS,
            bounds=_NONNEG,
            nominal=_kp_nominal,
            write=_gain_write("kp", "set_kp"),
        ),
        _spec(
            name="kd_scale",
            summary="PD derivative gain kd, N·m·s/rad",
            entries=_joints,
            per_name=True,
            modes=_EVENT,
            operations=_ALL_OPS,
            bounds=_NONNEG,
            nominal=_kd_nominal,
            write=_gain_write("kd", "set_kd"),
        ),
        _spec(
            name="joint_offset",
            summary="actuator zero offset δ added to the joint targets, rad",
            entries=_joints,
            per_name=True,
            modes=_EVENT,
            operations=("add", "set"),
            nominal=_zeros_per_joint,
            write=_write_joint_offset,
        ),
        _spec(
            name="gravity_tilt",
            summary="gravity direction tilted about x then y, rad",
            entries=_xy,
            per_name=True,
            modes=_EVENT,
            operations=("add", "set"),
            nominal=_zeros(2),
            write=_write_gravity_tilt,
        ),
        _spec(
            name="action_delay",
            summary="action delay, whole control steps in 0..task.max_action_delay",
            entries=_one,
            per_name=False,
            modes=_EVENT,
            operations=("set",),
            distributions=("uniform",),
            integer=True,
            bounds=(0, np.inf),
            nominal=_zeros(1),
            write=_write_action_delay,
        ),
        _spec(
            name="observation_noise",
            summary="noise added to a policy observation term every step, raw units",
            entries=_policy_terms,
            per_name=True,
            modes=("step",),
            operations=("add",),
            distributions=("uniform", "gaussian"),
            nominal=None,
            write=None,
        ),
        _spec(
            name="imu_gyro_bias",
            summary="gyro bias in the IMU frame, rad/s (policy observations only)",
            entries=_xyz,
            per_name=True,
            modes=_EVENT,
            operations=("add", "set"),
            requires="base",
            nominal=_zeros(3),
            write=_write_gyro_bias,
        ),
        _spec(
            name="imu_tilt",
            summary="IMU misalignment about x then y, rad (policy observations only)",
            entries=_xy,
            per_name=True,
            modes=_EVENT,
            operations=("add", "set"),
            requires="base",
            nominal=_zeros(2),
            write=_write_imu_tilt,
        ),
        _spec(
            name="encoder_offset",
            summary="joint encoder offset, rad (policy observations only)",
            entries=_joints,
            per_name=True,
            modes=_EVENT,
            operations=("add", "set"),
            nominal=_zeros_per_joint,
            write=_write_encoder_offset,
        ),
        _spec(
            name="push",
            summary="base velocity change in the world frame (x, y), m/s",
            entries=_xy,
            per_name=True,
            modes=_EVENT,
            operations=("add", "set"),
            requires="base",
            state_nominal=True,
            nominal=_push_nominal,
            write=_write_push,
        ),
        _spec(
            name="external_force",
            summary="force on the base CoM, N, random direction, held params.duration_s",
            entries=_one,
            per_name=False,
            modes=_EVENT,
            operations=("set",),
            bounds=_NONNEG,
            requires="base",
            params={"duration_s": (0.5, 1.0), "planar": True},
            nominal=_zeros(1),
            write=_write_external_force,
        ),
    )
}
