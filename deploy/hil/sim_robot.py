"""One MuJoCo robot behaving like a real one behind its driver: the core of ``sim_robot_node``.

``SimRobot`` runs a packaged robot with a ``RobotProfile``'s hidden parameters and exposes
what a real robot driver exposes: joint states and IMU readings (from the MJCF's sensors,
with the profile's noise, bias and sensor latency), and joint position commands with
optional gains (through the command latency), tracked by PD at the physics rate within the
profile's effort limits. No ROS here: the node translates messages and time.

Timeline (k counts physics steps since ``reset``, sim time ``t = k · physics_dt``):

- **Commands.** ``command()`` at step k is due at step ``k + command_latency_steps``; a
  command due at step k sets ``ctrl`` (and the gains) for the physics step that starts at k.
  With latency 0 a command sent between two ``step()`` calls drives the very next step. Of
  several commands due at the same step, the last one wins.
- **PD.** MuJoCo's ``position`` actuators evaluate ``clip(kp (q* - q) - kd q̇, ±limit)`` inside
  every physics step, with ``kp``/``kd`` in ``actuator_gainprm``/``biasprm`` (as training,
  ``sim2real.sim.actuation``). Gains are per command, in NOMINAL units (what the deploy side
  believes): the applied gains are the command's (default: the MJCF's) times the profile's
  ``kp_scale``/``kd_scale``. A command without gains means the nominal gains; gains are not
  sticky.
- **Sensors are current.** After every physics step the model is brought forward at the new
  state with the command in effect (``mj_forward``; each step then only integrates, so the
  cost stays one ``mj_step``): at time t, positions, velocities, the IMU, and the effort
  ``actuator_force`` (the torque the motors apply from t on) all belong to the state at t.
  The sensor path publishes at t the measurement of step ``k - sensor_latency_steps``
  (before that many steps have passed: the one of step 0), stamped t: as on a real robot,
  the latency is hidden.
- **Noise** is drawn per reading (two reads at the same t differ), from a generator seeded
  with ``profile.seed`` at every ``reset`` so a run replays exactly. Orientation noise is a
  rotation in the IMU frame whose rotation vector has ``orientation_std`` per axis; the gyro
  bias is constant.
- **Exactness.** With a nominal profile at the MJCF's timestep the trajectory is bitwise the
  one of a plain ``data.ctrl = q*; mj_step`` loop (tests check it).

The IMU is the MJCF's ``imu_quat`` (framequat), ``imu_gyro`` and ``imu_acc`` sensors (a go2
has them; an arm does not: ``imu_sample`` returns None). Joint readings are the
``<joint>_pos``/``<joint>_vel`` sensors (asset convention), read by precomputed
``sensordata`` addresses.

**On a stand** (``profile.stand``) the model is the packaged MJCF edited with ``MjSpec``:
the floating base's free joint is removed and the base body is placed at the home
keyframe's base pose raised by ``STAND_HEIGHT_M`` (the keyframe loses the 7 base
coordinates). The legs swing freely in the air; ``robot`` has the same actuated joints
(``floating_base`` False: nothing the deploy side reads changes), the IMU reads upright and
still, ``ground_truth`` reports the fixed base pose with zero velocities, and ``push`` /
``apply_force`` on the base are refused as on any fixed base.
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass

import mujoco
import numpy as np
from numpy.typing import ArrayLike

from sim2real.deploy.hil.profile import STAND_HEIGHT_M, RobotProfile
from sim2real.sim.assets import asset_path
from sim2real.sim.robot import HOME_KEYFRAME, RobotModel

IMU_SENSORS = ("imu_quat", "imu_gyro", "imu_acc")
_Command = tuple[int, np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class JointSample:
    """One joint-state reading, arrays (J,) in actuator order.

    Attributes:
        stamp: sim time of publication, s.
        position: rad (m for a slide joint).
        velocity: rad/s (m/s).
        effort: N·m (N): the torque the motors apply.
    """

    stamp: float
    position: np.ndarray
    velocity: np.ndarray
    effort: np.ndarray


@dataclass(frozen=True)
class ImuSample:
    """One IMU reading.

    Attributes:
        stamp: sim time of publication, s.
        quat: (4,) wxyz, the IMU frame's orientation in the world frame.
        ang_vel: (3,) angular velocity, rad/s, IMU frame.
        lin_acc: (3,) specific force (gravity included: +9.81 up at rest), m/s², IMU frame.
    """

    stamp: float
    quat: np.ndarray
    ang_vel: np.ndarray
    lin_acc: np.ndarray


class SimRobot:
    """A packaged robot with a profile's hidden parameters, driven like real hardware.

    Not thread-safe: call it from one thread (the node's executor).

    Args:
        profile: the hidden parameters (its ``robot`` picks the MJCF).

    Attributes:
        profile: the profile.
        model: the MjModel with the profile applied (timestep, gains, limits, dof fields,
            masses, friction).
        data: its MjData.
        robot: the NOMINAL facts, read before the profile was applied: what the policy and
            the deploy side believe.
        true_params: ``profile.resolve(nominal model)``: the per-joint truth.
        joint_names: the J joints, actuator order.
        physics_dt: the physics step, s.
        command_latency_steps: command latency, physics steps.
        sensor_latency_steps: sensor latency, physics steps.
        has_imu: whether the model has the ``imu_*`` sensors.
    """

    def __init__(self, profile: RobotProfile):
        self.profile = profile
        model, stand_base = _load_model(profile)
        self.robot = RobotModel.from_mujoco(model)
        self.true_params = profile.resolve(model)
        base = int(model.jnt_bodyid[0]) if self.robot.floating_base else stand_base
        _apply_profile(model, self.robot, profile, self.true_params, base)
        self.model = model
        self.data = mujoco.MjData(model)
        self.joint_names = self.robot.joint_names
        self.physics_dt = float(model.opt.timestep)
        self.command_latency_steps = profile.command_latency_steps
        self.sensor_latency_steps = profile.sensor_latency_steps
        num = self.robot.num_joints
        self._num_joints = num

        # sensordata addresses of the readings, in the layout of one measurement row:
        # [position J | velocity J | effort J | imu quat 4 | gyro 3 | acc 3]
        names = [f"{j}_pos" for j in self.joint_names] + [f"{j}_vel" for j in self.joint_names]
        self.has_imu = all(_sensor_id(model, s) is not None for s in IMU_SENSORS)
        imu_names = list(IMU_SENSORS) if self.has_imu else []
        self._joint_adr = _sensor_addresses(model, names, profile.robot)
        self._imu_adr = _sensor_addresses(model, imu_names, profile.robot)
        has_ee = _sensor_id(model, "ee_pos") is not None
        self._ee_adr = _sensor_addresses(model, ["ee_pos"], profile.robot) if has_ee else None
        width = 3 * num + len(self._imu_adr)
        latency = self.sensor_latency_steps
        self._ring = np.zeros((latency + 1, width)) if latency else None
        self._live = np.zeros(width)

        # gains in actuator fields (views into the model), the profile's scales, and the
        # true gains of a command without gains (nominal x scale)
        self._kp_field = model.actuator_gainprm[:, 0]
        self._bias = model.actuator_biasprm
        self._kp_scale = self.true_params["kp_scale"]
        self._kd_scale = self.true_params["kd_scale"]
        self._default_gains = (self.true_params["kp"], self.true_params["kd"])

        # the floating base (pushes, forces), and the base a stand holds (ground truth)
        self._base_body = int(model.jnt_bodyid[0]) if self.robot.floating_base else None
        self._stand_base = stand_base
        self._integrate = _integrator(model)
        # pending commands, oldest first: (due step, targets, true kp, true kd)
        self._commands: collections.deque[_Command] = collections.deque()
        self._rng = np.random.default_rng(profile.seed)
        self._noise = profile.noise
        self._gyro_bias = np.array(profile.noise.gyro_bias)
        self._step = 0
        self._dirty = False
        self._force_steps = 0
        self.reset()

    # ------------------------------------------------------------------------ state

    @property
    def time(self) -> float:
        """Sim time since ``reset``, s."""
        return float(self.data.time)

    @property
    def num_joints(self) -> int:
        """J."""
        return self._num_joints

    def reset(self) -> None:
        """Back to the home keyframe at time 0, as after construction.

        Targets are the home ctrl at the nominal command gains (times the profile's scales);
        the latency buffers and any applied force are cleared; the noise RNG is reseeded.
        """
        model, data = self.model, self.data
        mujoco.mj_resetDataKeyframe(model, data, self.robot.home_key)
        data.ctrl[:] = self.robot.default_joint_pos
        self._set_gains(*self._default_gains)
        self._commands.clear()
        data.xfrc_applied[:] = 0.0
        self._force_steps = 0
        self._step = 0
        self._rng = np.random.default_rng(self.profile.seed)
        mujoco.mj_forward(model, data)
        self._dirty = False
        if self._ring is not None:
            self._measure(self._ring[0])
            self._ring[1:] = self._ring[0]

    # --------------------------------------------------------------------- commands

    def command(
        self, targets: ArrayLike, kp: ArrayLike | None = None, kd: ArrayLike | None = None
    ) -> None:
        """A joint command arriving now; it takes effect ``command_latency_steps`` later.

        Args:
            targets: (J,) position targets, actuator order, rad (m).
            kp: gains in NOMINAL units, (J,) or a scalar; None: the MJCF's kp. The applied
                gain is this times the profile's ``kp_scale``.
            kd: likewise for the derivative gain (e.g. ``kp=0, kd=1``: pure damping).

        Raises:
            ValueError: wrong shape, non-finite values or negative gains; the robot keeps
                its previous command, as a driver refusing a message.
        """
        num = self._num_joints
        targets = np.array(targets, dtype=np.float64)
        if targets.shape != (num,):
            raise ValueError(f"targets must have shape ({num},), got {targets.shape}")
        if not np.all(np.isfinite(targets)):
            raise ValueError(f"targets must be finite, got {targets}")
        kp_true = self._gain(kp, "kp", self._kp_scale, self._default_gains[0])
        kd_true = self._gain(kd, "kd", self._kd_scale, self._default_gains[1])
        due = self._step + self.command_latency_steps
        if self._commands and self._commands[-1][0] == due:
            self._commands.pop()  # same due step: the later command wins
        self._commands.append((due, targets, kp_true, kd_true))

    def _gain(self, gain, name, scale, nominal) -> np.ndarray:
        if gain is None:
            return nominal
        num = self._num_joints
        try:
            gain = np.broadcast_to(np.asarray(gain, dtype=np.float64), (num,))
        except ValueError:
            raise ValueError(
                f"{name} must be a scalar or have shape ({num},), got {np.shape(gain)}"
            ) from None
        if not np.all(np.isfinite(gain) & (gain >= 0)):
            raise ValueError(f"{name} must be finite and >= 0, got {gain}")
        return gain * scale

    def _apply_due(self) -> None:
        """Apply every command due at the current step (the last one wins)."""
        commands, step = self._commands, self._step
        entry = None
        while commands and commands[0][0] <= step:
            entry = commands.popleft()
        if entry is not None:
            self.data.ctrl[:] = entry[1]
            self._set_gains(entry[2], entry[3])
            self._dirty = True

    def _set_gains(self, kp: np.ndarray, kd: np.ndarray) -> None:
        """Write true gains into the position actuators: [kp], bias [0, -kp, -kd]."""
        self._kp_field[:] = kp
        self._bias[:, 1] = -kp
        self._bias[:, 2] = -kd

    # ------------------------------------------------------------------------ physics

    def step(self, n: int = 1) -> None:
        """Advance ``n`` physics steps (commands due, PD, effort limits, sensor record)."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        model, data = self.model, self.data
        commands, ring = self._commands, self._ring
        for _ in range(n):
            if commands and commands[0][0] <= self._step:
                self._apply_due()  # a command that arrived since the last step
            if self._dirty:
                mujoco.mj_forward(model, data)
                self._dirty = False
            self._integrate(model, data)
            self._step += 1
            if self._force_steps:
                self._force_steps -= 1
                if not self._force_steps:
                    data.xfrc_applied[:] = 0.0
            if commands and commands[0][0] <= self._step:
                self._apply_due()
            # what mj_step does around its mj_forward, here at the end of the step
            mujoco.mj_checkPos(model, data)
            mujoco.mj_checkVel(model, data)
            mujoco.mj_forward(model, data)
            mujoco.mj_checkAcc(model, data)
            self._dirty = False
            if ring is not None:
                self._measure(ring[self._step % len(ring)])

    def push(self, velocity: ArrayLike) -> None:
        """Add a world-frame linear velocity change (3,), m/s, to the floating base."""
        base = self._require_base("push")
        velocity = _vector3(velocity, "velocity")
        adr = self.model.jnt_dofadr[self.model.body_jntadr[base]]
        self.data.qvel[adr : adr + 3] += velocity
        mujoco.mj_forward(self.model, self.data)

    def apply_force(self, force: ArrayLike, duration_s: float, body: str | None = None) -> None:
        """Apply a world-frame force (3,), N, at a body's centre of mass for a while.

        ``body`` is a body name; ``None``: the floating base (``ValueError`` on a fixed
        base). The force acts from now for ``round(duration_s / physics_dt)`` physics steps
        (at least one for a positive duration) and replaces any force still acting.
        """
        if body is None:
            target = self._require_base("apply_force")
        else:
            target = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, body)
            if target < 0:
                raise ValueError(f"apply_force: robot {self.profile.robot!r} has no body {body!r}")
        force = _vector3(force, "force")
        if not (math.isfinite(duration_s) and duration_s >= 0):
            raise ValueError(f"duration_s must be finite and >= 0, got {duration_s}")
        steps = int(math.floor(duration_s / self.physics_dt + 0.5))
        steps = max(steps, 1) if duration_s > 0 else 0
        self.data.xfrc_applied[:] = 0.0
        if steps:
            self.data.xfrc_applied[target, :3] = force
        self._force_steps = steps
        mujoco.mj_forward(self.model, self.data)

    @property
    def force_steps_left(self) -> int:
        """Physics steps the current ``apply_force`` force still acts (0: none)."""
        return self._force_steps

    def _require_base(self, what: str) -> int:
        if self._base_body is None:
            stand = " (on a stand)" if self._stand_base is not None else ""
            raise ValueError(f"{what}: robot {self.profile.robot!r} has a fixed base{stand}")
        return self._base_body

    # ------------------------------------------------------------------------ sensors

    def _measure(self, out: np.ndarray) -> None:
        """The noise-free measurement of the current state into one row ``out``."""
        num, sensordata = self._num_joints, self.data.sensordata
        np.take(sensordata, self._joint_adr, out=out[: 2 * num])
        out[2 * num : 3 * num] = self.data.actuator_force
        if self.has_imu:
            np.take(sensordata, self._imu_adr, out=out[3 * num :])

    def _measurement(self) -> np.ndarray:
        """The measurement the sensor path publishes now (``sensor_latency_steps`` old)."""
        if self._ring is None:
            self._measure(self._live)
            return self._live
        return self._ring[(self._step - self.sensor_latency_steps) % len(self._ring)]

    def joint_sample(self) -> JointSample:
        """The joint states published now: the delayed measurement plus noise."""
        row, num, noise = self._measurement(), self._num_joints, self._noise
        return JointSample(
            stamp=self.time,
            position=self._noisy(row[:num], noise.joint_pos_std),
            velocity=self._noisy(row[num : 2 * num], noise.joint_vel_std),
            effort=self._noisy(row[2 * num : 3 * num], noise.effort_std),
        )

    def imu_sample(self) -> ImuSample | None:
        """The IMU reading published now, None for a robot without the ``imu_*`` sensors."""
        if not self.has_imu:
            return None
        row, noise = self._measurement()[3 * self._num_joints :], self._noise
        quat = row[:4].copy()
        if noise.orientation_std:
            rotvec = self._rng.standard_normal(3)
            rotvec *= noise.orientation_std
            mujoco.mju_quatIntegrate(quat, rotvec, 1.0)  # quat ⊗ exp(rotvec / 2), IMU frame
        ang_vel = self._noisy(row[4:7], noise.gyro_std)
        ang_vel += self._gyro_bias
        return ImuSample(
            stamp=self.time,
            quat=quat,
            ang_vel=ang_vel,
            lin_acc=self._noisy(row[7:10], noise.accel_std),
        )

    def _noisy(self, truth: np.ndarray, std: float) -> np.ndarray:
        """A new array: ``truth`` plus N(0, std²) per element (exact truth for std 0)."""
        if not std:
            return truth.copy()
        out = self._rng.standard_normal(truth.shape[0])
        out *= std
        out += truth
        return out

    def ground_truth(self) -> dict[str, np.ndarray | float]:
        """The noise-free current state.

        Returns:
            ``joint_pos``, ``joint_vel`` (J,); for a floating base (on a stand too: fixed
            pose, zero velocities) ``base_pos`` (3,) m, ``base_quat`` (4,) wxyz,
            ``base_lin_vel`` and ``base_ang_vel`` (3,) in the base frame (m/s, rad/s),
            ``tilt`` (rad, angle between the base z and world z); where the model has an
            ``ee_pos`` sensor, ``ee_pos`` (3,) m, world frame.
        """
        data, robot = self.data, self.robot
        truth: dict[str, np.ndarray | float] = {
            "joint_pos": data.qpos[robot.qpos_adr].copy(),
            "joint_vel": data.qvel[robot.dof_adr].copy(),
        }
        if self._base_body is not None:
            jnt = self.model.body_jntadr[self._base_body]
            qadr, vadr = self.model.jnt_qposadr[jnt], self.model.jnt_dofadr[jnt]
            rot = data.xmat[self._base_body].reshape(3, 3)
            truth["base_pos"] = data.qpos[qadr : qadr + 3].copy()
            truth["base_quat"] = data.qpos[qadr + 3 : qadr + 7].copy()
            truth["base_lin_vel"] = rot.T @ data.qvel[vadr : vadr + 3]  # world -> base
            truth["base_ang_vel"] = data.qvel[vadr + 3 : vadr + 6].copy()  # base frame
            truth["tilt"] = float(np.arccos(np.clip(rot[2, 2], -1.0, 1.0)))
        elif self._stand_base is not None:
            base = self._stand_base
            rot = data.xmat[base].reshape(3, 3)
            truth["base_pos"] = data.xpos[base].copy()
            truth["base_quat"] = data.xquat[base].copy()
            truth["base_lin_vel"] = np.zeros(3)
            truth["base_ang_vel"] = np.zeros(3)
            truth["tilt"] = float(np.arccos(np.clip(rot[2, 2], -1.0, 1.0)))
        if self._ee_adr is not None:
            truth["ee_pos"] = data.sensordata[self._ee_adr].copy()
        return truth


# ---------------------------------------------------------------------------- helpers


def _load_model(profile: RobotProfile) -> tuple[mujoco.MjModel, int | None]:
    """The robot's nominal model and, on a stand, the id of the base body it holds.

    On a stand (see the module docstring): the MJCF through ``MjSpec`` with the base's free
    joint deleted, the base body at its home keyframe pose + ``STAND_HEIGHT_M`` in z, and the
    keyframes' base coordinates dropped.
    """
    path = str(asset_path(profile.robot))
    if not profile.stand:
        return mujoco.MjModel.from_xml_path(path), None
    spec = mujoco.MjSpec.from_file(path)
    free = next(j for j in spec.joints if j.type == mujoco.mjtJoint.mjJNT_FREE)
    base = free.parent
    home = np.array(spec.key(HOME_KEYFRAME).qpos)
    spec.delete(free)
    base.pos = home[:3] + [0.0, 0.0, STAND_HEIGHT_M]
    base.quat = home[3:7]
    for key in spec.keys:  # the free joint's 7 qpos (and 6 qvel) are gone
        if len(key.qpos):
            key.qpos = np.array(key.qpos)[7:]
        if len(key.qvel):
            key.qvel = np.array(key.qvel)[6:]
    model = spec.compile()
    return model, int(model.body(base.name).id)


def _apply_profile(
    model: mujoco.MjModel,
    robot: RobotModel,
    profile: RobotProfile,
    truth: dict[str, np.ndarray],
    base: int | None,
) -> None:
    """Write the profile's values into the nominal ``model`` (in place).

    ``base`` is the floating base body (a stand's fixed one included), None for an arm.
    """
    model.opt.timestep = profile.physics_dt
    dofs = robot.dof_adr
    model.dof_damping[dofs] = truth["damping"]
    model.dof_frictionloss[dofs] = truth["frictionloss"]
    set_const = not np.array_equal(model.dof_armature[dofs], truth["armature"])
    model.dof_armature[dofs] = truth["armature"]
    # effort limits: the actuator's forcerange and, where the joint has one, the joint's
    # actuatorfrcrange (which clamps the sum of the joint's actuator forces)
    effort_scale = np.array([profile.joint(name).effort_scale for name in robot.joint_names])
    model.actuator_forcerange[:] *= effort_scale[:, None]
    joints = model.actuator_trnid[:, 0]
    model.jnt_actfrcrange[joints] *= effort_scale[:, None]
    # masses, inertia scaled with them (sim2real.randomization.terms)
    if profile.link_mass_scale != 1.0:
        links = [b for b in range(1, model.nbody) if model.body_mass[b] > 0 and b != base]
        model.body_mass[links] *= profile.link_mass_scale
        model.body_inertia[links] *= profile.link_mass_scale
        set_const = True
    if base is not None and profile.base_mass_add_kg != 0.0:
        mass = model.body_mass[base]
        model.body_inertia[base] *= (mass + profile.base_mass_add_kg) / mass
        model.body_mass[base] = mass + profile.base_mass_add_kg
        set_const = True
    if profile.ground_friction is not None:
        collides = (model.geom_contype != 0) | (model.geom_conaffinity != 0)
        model.geom_friction[collides, 0] = profile.ground_friction
    if set_const:
        data = mujoco.MjData(model)
        mujoco.mj_setConst(model, data)


def _integrator(model: mujoco.MjModel):
    """The integration half of ``mj_step`` for the model's integrator."""
    integrator = model.opt.integrator
    if integrator == mujoco.mjtIntegrator.mjINT_EULER:
        return mujoco.mj_Euler
    if integrator == mujoco.mjtIntegrator.mjINT_RK4:
        return lambda model, data: mujoco.mj_RungeKutta(model, data, 4)
    return mujoco.mj_implicit  # mjINT_IMPLICIT and mjINT_IMPLICITFAST


def _sensor_id(model: mujoco.MjModel, name: str) -> int | None:
    sensor = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SENSOR, name)
    return None if sensor < 0 else sensor


def _sensor_addresses(model: mujoco.MjModel, names: list[str], robot: str) -> np.ndarray:
    """The ``sensordata`` indices of the named sensors, concatenated."""
    indices = []
    for name in names:
        sensor = _sensor_id(model, name)
        if sensor is None:
            raise ValueError(f"robot {robot!r} has no sensor named {name!r}")
        adr, dim = model.sensor_adr[sensor], model.sensor_dim[sensor]
        indices.extend(range(adr, adr + dim))
    return np.array(indices, dtype=np.intp)


def _vector3(value: ArrayLike, name: str) -> np.ndarray:
    vector = np.array(value, dtype=np.float64)
    if vector.shape != (3,) or not np.all(np.isfinite(vector)):
        raise ValueError(f"{name} must be 3 finite numbers, got {value!r}")
    return vector
