"""Joint damping, armature, friction loss and the links' mass scale by trajectory matching.

The robot's own MuJoCo model (its MJCF; on a stand for a legged robot), with the gain
scales and the delay of the motor fit (``motor.fit_motor``), replays stretches of the log:
each of ``chunks`` windows of ``chunk_s`` starts from the logged joint state and is driven
by the logged commands, and the simulated positions, velocities and drive torques are
compared with the logged ones. Least squares (``scipy.optimize.least_squares``, trust
region with bounds) moves the parameters until they agree:

- per joint: ``damping`` (N·m·s/rad), ``armature`` (kg·m²), ``frictionloss`` (N·m);
- one ``link_mass_scale`` for every moving body (mass and inertia together).

Every evaluation is one batched ``mujoco.rollout`` call over all windows — and, for the
finite-difference Jacobian, over all perturbed models at once — on ``threads`` threads.
The simulator integrates exactly as training does (MuJoCo's implicit-in-velocity step,
friction loss as a soft constraint), so the identified values mean what they will mean
in training. The first ``skip_s`` of each window (the transient from a measured, noisy
initial state) is not compared.

Residuals are scaled by ``RESIDUAL_SCALES`` (1 mrad, 0.02 rad/s, 0.5 N·m: typical sensor
resolution), and the uncertainty of every value is ``mujoco.sysid.calculate_intervals`` at
the optimum (95 % confidence half-widths from the Jacobian and the residual variance).

Timing (tested): a joint sample at step ``k`` shows the state after step ``k − 1``, and
its effort is the torque of step ``k``; the command of step ``k`` is the one held
``delay_steps`` (the motor fit's) grid steps earlier.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import mujoco
import numpy as np
from mujoco import rollout
from mujoco.sysid import calculate_intervals
from scipy.optimize import least_squares

from sim2real.deploy.hil.profile import RobotProfile
from sim2real.deploy.hil.sim_robot import SimRobot
from sim2real.sysid.motor import MotorFit
from sim2real.sysid.robot_log import AlignedLog

JOINT_PARAMETERS = ("damping", "armature", "frictionloss")
MODEL_FIELDS = {
    "damping": "dof_damping",
    "armature": "dof_armature",
    "frictionloss": "dof_frictionloss",
}
RESIDUAL_SCALES = {"position": 1e-3, "velocity": 2e-2, "effort": 0.5}
BOUNDS = {
    "damping": (1e-4, 20.0),
    "armature": (1e-4, 5.0),
    "frictionloss": (0.0, 20.0),
    "link_mass_scale": (0.5, 2.0),
}


@dataclass(frozen=True)
class TrajectoryFit:
    """Identified joint parameters and mass scale, with 95 % confidence half-widths.

    Attributes:
        damping, armature, frictionloss: (J,) values; ``half_widths[name]`` (J,) too.
        link_mass_scale: the moving bodies' mass (and inertia) over the MJCF's.
        half_widths: name → 95 % confidence half-width (``link_mass_scale``: a float).
        effort_rms_before, effort_rms_after: (J,) rms drive-torque mismatch of the MJCF's
            model and of the identified one over the compared windows, N·m.
        windows: the replayed windows, as (start index, length) in the log's grid.
        evaluations: residual evaluations; ``seconds``: wall time of the fit.
        curves: the first window's drive torques, for plots: ``t`` (L,) s from its start,
            ``measured``, ``nominal`` (the MJCF's model), ``identified``, each (L, J), N·m.
    """

    damping: np.ndarray
    armature: np.ndarray
    frictionloss: np.ndarray
    link_mass_scale: float
    half_widths: dict[str, np.ndarray | float]
    effort_rms_before: np.ndarray
    effort_rms_after: np.ndarray
    windows: list[tuple[int, int]]
    evaluations: int
    seconds: float
    curves: dict[str, np.ndarray]


class Replay:
    """Batched replays of log windows for candidate parameter vectors.

    Args:
        log: the log on the physics-step grid, with efforts.
        robot: the packaged robot; ``stand``: held on a stand (legged robots).
        motor: the motor fit (gain scales, delay).
        chunks, chunk_s, skip_s: number and length of the windows, and the part of each
            not compared, s.
        threads: rollout threads.
    """

    def __init__(
        self,
        log: AlignedLog,
        robot: str,
        motor: MotorFit,
        stand: bool = False,
        chunks: int = 20,
        chunk_s: float = 1.5,
        skip_s: float = 0.1,
        threads: int = 2,
    ):
        if log.effort is None:
            raise ValueError("trajectory matching needs logged efforts (joint_states.effort)")
        profile = RobotProfile.from_dict(
            {"robot": robot, "physics_rate_hz": 1.0 / log.dt, "stand": stand}
        )
        sim = SimRobot(profile)
        self.facts = sim.robot
        if tuple(log.joint_names) != tuple(self.facts.joint_names):
            raise ValueError(
                f"the log's joints {list(log.joint_names)} are not {robot}'s "
                f"{list(self.facts.joint_names)} in actuator order (use RobotLog.select)"
            )
        model = copy.copy(sim.model)
        self.kp = motor.kp_scale * self.facts.kp
        self.kd = motor.kd_scale * self.facts.kd
        model.actuator_gainprm[:, 0] = self.kp
        model.actuator_biasprm[:, 1] = -self.kp
        model.actuator_biasprm[:, 2] = -self.kd
        self.model, self.limit = model, model.actuator_forcerange[:, 1].copy()
        self.moving = np.flatnonzero(
            (model.body_mass > 0) & (model.body_weldid != 0) & (np.arange(model.nbody) > 0)
        )
        self.nominal_mass = model.body_mass.copy()
        self.nominal_inertia = model.body_inertia.copy()
        self.dofs = self.facts.dof_adr
        length, skip = round(chunk_s / log.dt), round(skip_s / log.dt)
        delay = motor.delay_steps
        held = np.concatenate(
            [np.repeat(log.targets[:1], delay, 0), log.targets[: len(log.t) - delay]]
        )
        first = round(2.0 / log.dt)  # after the soft start
        last = len(log.t) - length - 2
        if last <= first:
            raise ValueError(f"the log is too short for {chunks} windows of {chunk_s} s")
        starts = np.linspace(first, last, chunks).astype(int)
        self.windows = [(int(s), length) for s in starts]
        self.dt = log.dt
        self.skip = skip
        self.controls = np.stack([held[s : s + length] for s in starts])
        self.next_controls = np.stack([held[s + 1 : s + length + 1] for s in starts])
        self.measured = {
            name: np.stack([values[s + 1 : s + length + 1] for s in starts])
            for name, values in (("position", log.q), ("velocity", log.qd), ("effort", log.effort))
        }
        self.initial = np.stack([self._initial_state(log, s) for s in starts])
        self.datas = [mujoco.MjData(model) for _ in range(threads)]

    def _initial_state(self, log: AlignedLog, start: int) -> np.ndarray:
        data = mujoco.MjData(self.model)
        data.qpos[:] = self.model.qpos0 if self.model.nkey == 0 else self.model.key_qpos[0]
        data.qpos[self.facts.qpos_adr] = log.q[start]
        data.qvel[self.dofs] = log.qd[start]
        spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
        state = np.zeros(mujoco.mj_stateSize(self.model, spec))
        mujoco.mj_getState(self.model, data, state, spec)
        return state

    @property
    def size(self) -> int:
        """Parameters: three per joint, then the mass scale."""
        return 3 * len(self.dofs) + 1

    def nominal_vector(self) -> np.ndarray:
        """The MJCF's values (friction loss at least 1e-3 N·m, off its bound)."""
        joint = [getattr(self.model, MODEL_FIELDS[name])[self.dofs] for name in JOINT_PARAMETERS]
        joint[2] = np.maximum(joint[2], 1e-3)
        return np.concatenate([*joint, [1.0]])

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds of the parameter vector."""
        joints = len(self.dofs)
        names = [*np.repeat(JOINT_PARAMETERS, joints), "link_mass_scale"]
        return np.array([BOUNDS[n][0] for n in names]), np.array([BOUNDS[n][1] for n in names])

    def model_for(self, x: np.ndarray) -> mujoco.MjModel:
        """A model with the parameters ``x``."""
        model = copy.copy(self.model)
        joints = len(self.dofs)
        for k, name in enumerate(JOINT_PARAMETERS):
            getattr(model, MODEL_FIELDS[name])[self.dofs] = x[k * joints : (k + 1) * joints]
        model.body_mass[self.moving] = self.nominal_mass[self.moving] * x[-1]
        model.body_inertia[self.moving] = self.nominal_inertia[self.moving] * x[-1]
        mujoco.mj_setConst(model, mujoco.MjData(model))
        return model

    def predictions(self, xs: list[np.ndarray]) -> dict[str, np.ndarray]:
        """Simulated position, velocity, effort per candidate: each (C, W, L, J)."""
        chunks = len(self.windows)
        models = [self.model_for(x) for x in xs for _ in range(chunks)]
        state, _ = rollout.rollout(
            models, self.datas, np.tile(self.initial, (len(xs), 1)),
            np.tile(self.controls, (len(xs), 1, 1)),
        )  # fmt: skip
        state = state.reshape(len(xs), chunks, self.controls.shape[1], -1)
        nq = self.model.nq
        q = state[..., 1 + self.facts.qpos_adr]
        qd = state[..., 1 + nq + self.dofs]
        effort = np.clip(self.kp * (self.next_controls - q) - self.kd * qd, -self.limit, self.limit)
        return {"position": q, "velocity": qd, "effort": effort}

    def residuals(self, xs: list[np.ndarray]) -> np.ndarray:
        """(C, R) scaled residuals of each candidate."""
        predicted = self.predictions(xs)
        parts = [
            ((predicted[name] - self.measured[name]) / scale)[:, :, self.skip :].reshape(
                len(xs), -1
            )
            for name, scale in RESIDUAL_SCALES.items()
        ]
        return np.concatenate(parts, axis=1)

    def effort_rms(self, x: np.ndarray) -> np.ndarray:
        """(J,) rms drive-torque mismatch of the parameters ``x``, N·m."""
        error = self.predictions([x])["effort"][0] - self.measured["effort"]
        return np.sqrt((error[:, self.skip :] ** 2).mean(axis=(0, 1)))


def fit_trajectories(replay: Replay, max_evaluations: int = 30) -> TrajectoryFit:
    """Least-squares trajectory matching from the MJCF's values; see the module docstring."""
    start = time.perf_counter()
    x0 = replay.nominal_vector()
    low, high = replay.bounds()
    x0 = np.clip(x0, low + 1e-9, high - 1e-9)
    evaluations = 0

    def residual(x):
        nonlocal evaluations
        evaluations += 1
        return replay.residuals([x])[0]

    def jacobian(x):
        nonlocal evaluations
        step = np.maximum(1e-3, 1e-2 * np.abs(x))
        step = np.where(x + step > high, -step, step)
        columns = replay.residuals([x, *(x + np.diag(step))])
        evaluations += len(x) + 1
        return ((columns[1:] - columns[0]) / step[:, None]).T

    result = least_squares(
        residual, x0, jac=jacobian, bounds=(low, high), x_scale="jac", max_nfev=max_evaluations
    )
    _, half = calculate_intervals([result.fun], result.jac)
    joints = len(replay.dofs)
    x = result.x

    def split(values):
        return {
            name: values[k * joints : (k + 1) * joints] for k, name in enumerate(JOINT_PARAMETERS)
        }

    values, widths = split(x), split(np.asarray(half))
    widths["link_mass_scale"] = float(half[-1])
    efforts = replay.predictions([x0, x])["effort"][:, 0]
    length = replay.controls.shape[1]
    curves = {
        "t": np.arange(1, length + 1) * replay.dt,
        "measured": replay.measured["effort"][0],
        "nominal": efforts[0],
        "identified": efforts[1],
    }
    return TrajectoryFit(
        damping=values["damping"],
        armature=values["armature"],
        frictionloss=values["frictionloss"],
        link_mass_scale=float(x[-1]),
        half_widths=widths,
        effort_rms_before=replay.effort_rms(x0),
        effort_rms_after=replay.effort_rms(x),
        windows=replay.windows,
        evaluations=evaluations,
        seconds=time.perf_counter() - start,
        curves=curves,
    )
