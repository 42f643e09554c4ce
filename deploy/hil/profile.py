"""Robot profiles: the hidden physical parameters of a simulated "real" robot (HIL).

A profile stands in for the real robot's unknown dynamics. The policy and the deploy side
never see it: they believe the MJCF's nominal values (``RobotModel``); the HIL sim robot
(``sim2real.deploy.hil.sim_robot.SimRobot``) runs with the profile's values instead, and
system identification is checked against them (``RobotProfile.resolve``).

YAML layout (every section optional except ``robot``; omitted values are nominal)::

    robot: go2                # go2 | panda | point (sim2real.sim.assets.ROBOTS)
    stand: false              # true: the floating base is fixed in the air, legs free
    physics_rate_hz: 500      # PD loop and physics step rate; replaces the MJCF timestep
    latency:
      command_s: 0.01         # a joint command takes effect this long after it arrives
      sensor_s: 0.002         # what is published at t was measured at t - sensor_s
    masses:
      base_add_kg: 0.5        # added to the floating base (a payload); may be negative
      link_scale: 1.05        # every other body with mass, inertia scaled alike
    ground_friction: 0.8      # sliding friction of every contact (null: the MJCF's)
    joints:                   # per joint, by name; "default" covers every joint not named
      default: {kp_scale: 0.9, frictionloss: 0.2}
      FL_calf_joint: {damping: 0.3}
    noise: {joint_pos_std: 0.001, joint_vel_std: 0.02, gyro_std: 0.01, gyro_bias: [0.01, 0, 0]}
    seed: 0                   # the noise RNG's seed

Per-joint fields (``JointParams``): ``kp_scale``, ``kd_scale`` (the true PD gains are these
times the gains the deploy side commands, nominally the MJCF's), ``effort_scale`` (effort
limit = scale x the actuator's ``forcerange``: motor strength), and the absolute
``damping`` (N·m·s/rad), ``armature`` (kg·m²) and ``frictionloss`` (N·m); null or absent
keeps the MJCF's value. Noise fields (``SensorNoise``): ``joint_pos_std`` (rad),
``joint_vel_std`` (rad/s), ``effort_std`` (N·m), ``gyro_std`` (rad/s), ``gyro_bias``
(3 values, rad/s, IMU frame), ``accel_std`` (m/s²), ``orientation_std`` (rad).

Decisions:

- **A named joint replaces ``default`` as a whole.** ``FL_calf_joint: {damping: 0.3}`` above
  gives that joint damping 0.3 and *nominal* everything else (not kp_scale 0.9): each entry
  is the complete truth of its joints, read without merging rules. ``resolve`` shows the
  outcome per joint.
- **Latencies are whole physics steps.** Each latency is rounded to the nearest multiple of
  the physics step (half up): ``command_latency_steps = floor(command_s * rate + 0.5)``;
  at 500 Hz 0.01 s is 5 steps, 0.003 s is 2. The simulated robot cannot be late by a
  fraction of the step it integrates over, and sysid's check ("the delay within one physics
  step") is stated in the same unit.
- **Masses** follow the training randomization (``sim2real.randomization.terms``): a body's
  inertia is scaled with its mass, and derived constants are recomputed (``mj_setConst``).
  ``base_add_kg`` needs a floating base; ``link_scale`` covers every body with mass except
  the floating base (all of them on a fixed-base arm).
- **A stand** (``stand: true``) fixes the floating base in the air, legs free: for system
  identification, where the legs must swing without touching anything. ``SimRobot`` then
  removes the base's free joint and holds the base at its home pose raised by
  ``STAND_HEIGHT_M``; the actuated joints, the IMU (upright and still) and every hidden
  value stay as they are (``base_add_kg`` then changes nothing the joints feel). Only a
  floating-base robot can stand on one.
- **Ground friction** is written into every geom that can collide (the floor and the robot's
  collision geoms), so every contact gets it whatever MuJoCo's priority/max rule picks. A
  robot without contacts (panda, point) refuses it.
- **Validation happens at construction**, against the robot's nominal MJCF (joint names,
  floating base, contacts): a profile that exists is one ``SimRobot`` can run. Errors are
  ``ValueError`` naming the key and, from YAML, the file.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from functools import cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

import mujoco
import numpy as np
import yaml

from sim2real.sim.assets import ROBOTS, asset_path
from sim2real.sim.robot import RobotModel

#: The key of ``RobotProfile.joints`` that applies to every joint not named.
DEFAULT_JOINT = "default"
PROFILES_DIR = Path(str(resources.files(__package__).joinpath("profiles")))

TOP_LEVEL_KEYS = (
    "robot",
    "stand",
    "physics_rate_hz",
    "latency",
    "masses",
    "ground_friction",
    "joints",
    "noise",
    "seed",
)
LATENCY_KEYS = {"command_s": "command_latency_s", "sensor_s": "sensor_latency_s"}
MASS_KEYS = {"base_add_kg": "base_mass_add_kg", "link_scale": "link_mass_scale"}
#: How far above its home pose a stand holds the floating base, m: the Go2's feet then
#: clear the floor by about 0.2 m in any leg pose.
STAND_HEIGHT_M = 0.3


# ------------------------------------------------------------------------ value checks


def _number(value: Any, name: str, *, minimum: float | None = 0.0, strict: bool = False) -> float:
    """``value`` as a finite float, checked against ``minimum`` (None: any sign).

    Raises:
        ValueError: naming ``name`` when the value is not a real number, not finite, or
            below the minimum (``strict``: not above it).
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if minimum is not None and (value <= minimum if strict else value < minimum):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {minimum:g}, got {value:g}")
    return value


def _optional(value: Any, name: str) -> float | None:
    """None, or a finite float >= 0."""
    return None if value is None else _number(value, name)


# ------------------------------------------------------------------------- dataclasses


@dataclass(frozen=True)
class JointParams:
    """One joint's hidden values; None means the MJCF's nominal value.

    Attributes:
        kp_scale: true Kp = kp_scale x commanded Kp (nominally the MJCF's ``kp``).
        kd_scale: true Kd = kd_scale x commanded Kd (nominally the MJCF's ``kv``).
        damping: ``dof_damping``, N·m·s/rad (absolute).
        armature: ``dof_armature``, kg·m² (absolute).
        frictionloss: ``dof_frictionloss``, N·m (absolute).
        effort_scale: effort limit = effort_scale x the actuator's ``forcerange``.
    """

    kp_scale: float = 1.0
    kd_scale: float = 1.0
    damping: float | None = None
    armature: float | None = None
    frictionloss: float | None = None
    effort_scale: float = 1.0

    def __post_init__(self):
        for name in ("kp_scale", "kd_scale", "effort_scale"):
            object.__setattr__(self, name, _number(getattr(self, name), name))
        for name in ("damping", "armature", "frictionloss"):
            object.__setattr__(self, name, _optional(getattr(self, name), name))


JOINT_FIELDS = tuple(f.name for f in fields(JointParams))


@dataclass(frozen=True)
class SensorNoise:
    """Per-sample sensor noise (zero-mean Gaussian, independent per axis) and the gyro bias.

    Attributes:
        joint_pos_std: joint position, rad.
        joint_vel_std: joint velocity, rad/s.
        effort_std: joint effort, N·m.
        gyro_std: angular velocity, rad/s.
        gyro_bias: (3,) constant angular velocity bias, rad/s, IMU frame.
        accel_std: linear acceleration, m/s².
        orientation_std: orientation: a random rotation whose rotation vector has this
            std per axis (IMU frame), rad.
    """

    joint_pos_std: float = 0.0
    joint_vel_std: float = 0.0
    effort_std: float = 0.0
    gyro_std: float = 0.0
    gyro_bias: tuple[float, float, float] = (0.0, 0.0, 0.0)
    accel_std: float = 0.0
    orientation_std: float = 0.0

    def __post_init__(self):
        for f in fields(self):
            if f.name != "gyro_bias":
                object.__setattr__(self, f.name, _number(getattr(self, f.name), f.name))
        bias = self.gyro_bias
        if isinstance(bias, (str, bytes, Mapping)) or np.ndim(bias) != 1 or len(bias) != 3:
            raise ValueError(f"gyro_bias must be 3 numbers (x, y, z rad/s), got {bias!r}")
        bias = tuple(_number(b, f"gyro_bias[{i}]", minimum=None) for i, b in enumerate(bias))
        object.__setattr__(self, "gyro_bias", bias)


NOISE_FIELDS = tuple(f.name for f in fields(SensorNoise))


@dataclass(frozen=True)
class RobotProfile:
    """The hidden physical parameters of one simulated robot (see the module docstring).

    Attributes:
        robot: the packaged robot, one of ``sim2real.sim.assets.ROBOTS``.
        physics_rate_hz: PD loop and physics step rate, Hz (replaces the MJCF timestep).
        command_latency_s: a joint command takes effect this long after it arrives, s.
        sensor_latency_s: what is published at t was measured at t - latency, s.
        base_mass_add_kg: mass added to the floating base, kg (may be negative).
        link_mass_scale: scale of every other body's mass (and inertia).
        ground_friction: sliding friction of every contact; None: the MJCF's.
        joints: joint name (or ``"default"``) -> its values; a read-only mapping.
        noise: the sensor noise.
        seed: seed of the noise RNG.
        stand: the floating base is fixed in the air, legs free: for system
            identification (``STAND_HEIGHT_M`` above its home pose; floating base only).
    """

    robot: str
    physics_rate_hz: float = 500.0
    command_latency_s: float = 0.0
    sensor_latency_s: float = 0.0
    base_mass_add_kg: float = 0.0
    link_mass_scale: float = 1.0
    ground_friction: float | None = None
    joints: Mapping[str, JointParams] = field(default_factory=dict)
    noise: SensorNoise = field(default_factory=SensorNoise)
    seed: int = 0
    stand: bool = False

    def __post_init__(self):
        if self.robot not in ROBOTS:
            raise ValueError(f"robot: unknown robot {self.robot!r}; known: {', '.join(ROBOTS)}")
        number = {
            "physics_rate_hz": dict(minimum=0.0, strict=True),
            "command_latency_s": {},
            "sensor_latency_s": {},
            "base_mass_add_kg": dict(minimum=None),
            "link_mass_scale": dict(minimum=0.0, strict=True),
        }
        for name, limits in number.items():
            object.__setattr__(self, name, _number(getattr(self, name), name, **limits))
        object.__setattr__(
            self, "ground_friction", _optional(self.ground_friction, "ground_friction")
        )
        if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        object.__setattr__(self, "seed", int(self.seed))
        if not isinstance(self.noise, SensorNoise):
            raise ValueError(f"noise must be a SensorNoise, got {self.noise!r}")
        facts = _facts(self.robot)
        joints = dict(self.joints)
        for name, params in joints.items():
            if name != DEFAULT_JOINT and name not in facts.joint_names:
                raise ValueError(
                    f"joints: unknown joint {name!r} for robot {self.robot!r}; its joints: "
                    f"{', '.join(facts.joint_names)} (or {DEFAULT_JOINT!r} for all others)"
                )
            if not isinstance(params, JointParams):
                raise ValueError(f"joints.{name} must be a JointParams, got {params!r}")
        object.__setattr__(self, "joints", MappingProxyType(joints))
        if self.base_mass_add_kg != 0.0:
            if not facts.floating_base:
                raise ValueError(
                    f"masses.base_add_kg: robot {self.robot!r} has a fixed base (floating "
                    f"base only), got {self.base_mass_add_kg:g}"
                )
            if facts.base_mass + self.base_mass_add_kg <= 0.0:
                raise ValueError(
                    f"masses.base_add_kg: the base mass {facts.base_mass:g} kg plus "
                    f"{self.base_mass_add_kg:g} kg must stay > 0"
                )
        if not isinstance(self.stand, bool):
            raise ValueError(f"stand must be true or false, got {self.stand!r}")
        if self.stand and not facts.floating_base:
            raise ValueError(
                f"stand: robot {self.robot!r} has a fixed base; a stand holds a floating base"
            )
        if self.ground_friction is not None and not facts.has_contacts:
            raise ValueError(
                f"ground_friction: robot {self.robot!r} has no contacts; leave it null"
            )

    # ----------------------------------------------------------------- derived values

    @property
    def physics_dt(self) -> float:
        """The physics step, s (1 / physics_rate_hz)."""
        return 1.0 / self.physics_rate_hz

    @property
    def command_latency_steps(self) -> int:
        """The command latency in whole physics steps (rounded to nearest, half up)."""
        return _steps(self.command_latency_s, self.physics_rate_hz)

    @property
    def sensor_latency_steps(self) -> int:
        """The sensor latency in whole physics steps (rounded to nearest, half up)."""
        return _steps(self.sensor_latency_s, self.physics_rate_hz)

    def joint(self, name: str) -> JointParams:
        """The values of joint ``name``: its own entry, else ``default``, else nominal."""
        return self.joints.get(name, self.joints.get(DEFAULT_JOINT, _NOMINAL_JOINT))

    def resolve(self, model: mujoco.MjModel | None = None) -> dict[str, np.ndarray]:
        """Per-joint TRUE values in actuator order: sysid's ground truth.

        Args:
            model: the robot's *nominal* model, as compiled from its MJCF (not a model the
                profile was already applied to); None: the packaged asset.

        Returns:
            (J,) arrays: ``kp`` (N·m/rad) and ``kd`` (N·m·s/rad), the true gains at the
            nominal command; ``kp_scale``, ``kd_scale``; ``damping`` (N·m·s/rad),
            ``armature`` (kg·m²), ``frictionloss`` (N·m), ``effort_limit`` (N·m).
        """
        model = _nominal_model(self.robot) if model is None else model
        robot = RobotModel.from_mujoco(model)
        if robot.name != self.robot:
            raise ValueError(f"resolve: model {robot.name!r} is not robot {self.robot!r}")
        params = [self.joint(name) for name in robot.joint_names]
        dofs = robot.dof_adr

        def per_joint(name: str, nominal: np.ndarray) -> np.ndarray:
            values = [getattr(p, name) for p in params]
            return np.array([n if v is None else v for v, n in zip(values, nominal, strict=True)])

        kp_scale = np.array([p.kp_scale for p in params])
        kd_scale = np.array([p.kd_scale for p in params])
        return {
            "kp": robot.kp * kp_scale,
            "kd": robot.kd * kd_scale,
            "kp_scale": kp_scale,
            "kd_scale": kd_scale,
            "damping": per_joint("damping", model.dof_damping[dofs]),
            "armature": per_joint("armature", model.dof_armature[dofs]),
            "frictionloss": per_joint("frictionloss", model.dof_frictionloss[dofs]),
            "effort_limit": robot.effort_limits * np.array([p.effort_scale for p in params]),
        }

    # ------------------------------------------------------------------------- I/O

    @classmethod
    def nominal(cls, robot: str) -> RobotProfile:
        """Every value the MJCF's (its timestep included), no noise, no latency."""
        if robot not in ROBOTS:
            raise ValueError(f"robot: unknown robot {robot!r}; known: {', '.join(ROBOTS)}")
        return cls(robot=robot, physics_rate_hz=1.0 / _nominal_model(robot).opt.timestep)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "<dict>") -> RobotProfile:
        """Build from the YAML layout (module docstring); ``source`` names it in errors.

        Raises:
            ValueError: ``"{source}: {key}: ..."`` for an unknown key, joint or field, a
                value of the wrong type or out of range, or an unknown robot.
        """
        try:
            return cls._from_dict(data)
        except ValueError as error:
            raise ValueError(f"{source}: {error}") from None

    @classmethod
    def _from_dict(cls, data: Mapping[str, Any]) -> RobotProfile:
        data = _mapping(data, "profile")
        _known(data, TOP_LEVEL_KEYS, "")
        if "robot" not in data:
            raise ValueError(f"robot: missing (one of {', '.join(ROBOTS)})")
        robot = data["robot"]
        if robot not in ROBOTS:
            raise ValueError(f"robot: unknown robot {robot!r}; known: {', '.join(ROBOTS)}")
        kwargs: dict[str, Any] = {"robot": robot}
        if "stand" in data:
            kwargs["stand"] = data["stand"]
        if "physics_rate_hz" in data:
            kwargs["physics_rate_hz"] = _number(
                data["physics_rate_hz"], "physics_rate_hz", strict=True
            )
        latency = _mapping(data.get("latency") or {}, "latency")
        _known(latency, tuple(LATENCY_KEYS), "latency")
        for key, value in latency.items():
            kwargs[LATENCY_KEYS[key]] = _number(value, f"latency.{key}")
        masses = _mapping(data.get("masses") or {}, "masses")
        _known(masses, tuple(MASS_KEYS), "masses")
        if "base_add_kg" in masses:
            kwargs["base_mass_add_kg"] = _number(
                masses["base_add_kg"], "masses.base_add_kg", minimum=None
            )
        if "link_scale" in masses:
            kwargs["link_mass_scale"] = _number(
                masses["link_scale"], "masses.link_scale", strict=True
            )
        kwargs["ground_friction"] = _optional(data.get("ground_friction"), "ground_friction")
        joints = {}
        for name, entry in _mapping(data.get("joints") or {}, "joints").items():
            entry = _mapping(entry if entry is not None else {}, f"joints.{name}")
            _known(entry, JOINT_FIELDS, f"joints.{name}")
            try:
                joints[str(name)] = JointParams(**entry)
            except ValueError as error:
                raise ValueError(f"joints.{name}.{error}") from None
        kwargs["joints"] = joints
        noise = _mapping(data.get("noise") or {}, "noise")
        _known(noise, NOISE_FIELDS, "noise")
        try:
            kwargs["noise"] = SensorNoise(**noise)
        except ValueError as error:
            raise ValueError(f"noise.{error}") from None
        if "seed" in data:
            kwargs["seed"] = data["seed"]
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """The YAML layout, every section written; joint entries list non-default fields."""
        joints = {}
        for name, params in self.joints.items():
            joints[name] = {
                f.name: getattr(params, f.name)
                for f in fields(JointParams)
                if getattr(params, f.name) != f.default
            }
        noise = {f.name: getattr(self.noise, f.name) for f in fields(SensorNoise)}
        noise["gyro_bias"] = list(self.noise.gyro_bias)
        return {
            "robot": self.robot,
            "stand": self.stand,
            "physics_rate_hz": self.physics_rate_hz,
            "latency": {"command_s": self.command_latency_s, "sensor_s": self.sensor_latency_s},
            "masses": {"base_add_kg": self.base_mass_add_kg, "link_scale": self.link_mass_scale},
            "ground_friction": self.ground_friction,
            "joints": joints,
            "noise": noise,
            "seed": self.seed,
        }

    @classmethod
    def from_yaml(cls, path: str | Path) -> RobotProfile:
        """Read a profile file (see the module docstring for the layout)."""
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as error:
            raise ValueError(f"{path}: not valid YAML: {error}") from None
        return cls.from_dict(data if data is not None else {}, source=str(path))

    def to_yaml(self, path: str | Path) -> None:
        """Write the profile; ``from_yaml`` reads back an equal profile."""
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))


_NOMINAL_JOINT = JointParams()


def profile_path(name: str) -> Path:
    """Path of a shipped profile, e.g. ``profile_path("go2-hidden")``.

    Raises:
        ValueError: listing the shipped names when ``name`` is not one of them.
    """
    path = PROFILES_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(
            f"unknown robot profile {name!r}; shipped profiles: {', '.join(available_profiles())}"
        )
    return path


def available_profiles() -> tuple[str, ...]:
    """Names of the shipped profiles (``deploy/hil/profiles/*.yaml``), sorted."""
    return tuple(sorted(p.stem for p in PROFILES_DIR.glob("*.yaml")))


def load_profile(name_or_path: str | Path) -> RobotProfile:
    """A shipped profile by name (``"go2-hidden"``) or a profile file by path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        return RobotProfile.from_yaml(path)
    return RobotProfile.from_yaml(profile_path(str(name_or_path)))


# ----------------------------------------------------------------------------- helpers


def _steps(latency_s: float, rate_hz: float) -> int:
    return int(math.floor(latency_s * rate_hz + 0.5))


def _mapping(value: Any, name: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{name} must be a mapping, got {value!r}")
    return value


def _known(data: Mapping[str, Any], allowed: tuple[str, ...], section: str) -> None:
    """Refuse keys of ``data`` (the YAML ``section``; "" for the top level) not allowed."""
    for key in data:
        if key not in allowed:
            if not section:
                raise ValueError(f"unknown top-level key {key!r}; allowed: {', '.join(allowed)}")
            raise ValueError(
                f"{section}: unknown key {key!r} ({section}.{key}); allowed: {', '.join(allowed)}"
            )


@cache
def _nominal_model(robot: str) -> mujoco.MjModel:
    """The packaged robot's compiled model, shared: read it, never write it."""
    return mujoco.MjModel.from_xml_path(str(asset_path(robot)))


@dataclass(frozen=True)
class _Facts:
    joint_names: tuple[str, ...]
    floating_base: bool
    base_mass: float
    has_contacts: bool


@cache
def _facts(robot: str) -> _Facts:
    """What validation needs to know about a packaged robot."""
    model = _nominal_model(robot)
    facts = RobotModel.from_mujoco(model)
    return _Facts(
        joint_names=facts.joint_names,
        floating_base=facts.floating_base,
        base_mass=float(model.body_mass[model.jnt_bodyid[0]]) if facts.floating_base else 0.0,
        has_contacts=has_contacts(model),
    )


def has_contacts(model: mujoco.MjModel) -> bool:
    """Whether any pair of geoms can collide (contacts enabled, contype/conaffinity match)."""
    if model.opt.disableflags & mujoco.mjtDisableBit.mjDSBL_CONTACT:
        return False
    contype, conaffinity = model.geom_contype, model.geom_conaffinity
    return bool(np.any((contype[:, None] & conaffinity[None, :]) != 0))
