"""``identify``: a robot log in, identified parameters with uncertainty out, and as ranges.

Two stages (``sim2real sysid fit``):

1. the motor model from the logged efforts, any log (``motor.fit_motor``): Kp and Kd scale
   per joint and the command delay;
2. where the robot's base is fixed (an arm, or a legged robot on a stand: ``stand``),
   trajectory matching (``trajectory_fit``): damping, armature and friction loss per joint
   and the links' mass scale;
3. on an arm (not a legged robot on a stand: there the joint terms' errors carry into the
   link parameters, 13 % on the Go2), the links' inertial parameters from the efforts,
   the joint terms of stage 2 subtracted (``inertial.fit_inertial``): base parameters,
   link masses and centres of mass with bootstrap intervals (reported; the ranges keep
   the mass scale of stage 2).

A walking robot's log stops after stage 1; the terms it cannot identify keep the
training defaults.

``Identification.ranges(task)`` writes them in the randomization schema (DESIGN contract 5):
the task's default randomization file, with every identified term replaced by a range
centred on the identified value, ``RANGE_SIGMAS`` × its 95 % half-width on each side, and
at least ``MIN_RELATIVE_HALF_WIDTH`` of the value (identification is never exact, and the
real robot drifts); a term identified as impossible at some joint (a gain scale ≤ 0, a
negative damping) keeps the task's default. The delay becomes ``action_delay`` in whole
control steps, the nearest steps around the identified delay ± one physics step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sim2real.randomization import config as rconfig
from sim2real.sim.robot import RobotModel
from sim2real.sysid.inertial import InertialFit, PoorExcitationError, fit_inertial
from sim2real.sysid.motor import MotorFit, fit_motor
from sim2real.sysid.robot_log import RobotLog
from sim2real.sysid.trajectory_fit import Replay, TrajectoryFit, fit_trajectories

RANGE_SIGMAS = 1.0
MIN_RELATIVE_HALF_WIDTH = 0.05
#: Identified parameter -> (randomization term, operation).
TERMS = {
    "kp_scale": ("kp_scale", "scale"),
    "kd_scale": ("kd_scale", "scale"),
    "damping": ("joint_damping", "set"),
    "armature": ("joint_armature", "set"),
    "frictionloss": ("joint_friction", "set"),
}
Z95 = 1.96


@dataclass(frozen=True)
class Identification:
    """What a log told about a robot.

    Attributes:
        robot: the packaged robot; ``joint_names`` its joints (actuator order).
        values: parameter → (J,) identified values (``kp_scale``, ``kd_scale`` always;
            ``damping``, ``armature``, ``frictionloss`` with a fixed base).
        half_widths: parameter → (J,) 95 % confidence half-widths.
        delay_s: command delay (command to motion, sensor path included), s;
            ``delay_half_width_s``: its resolution (one grid step).
        link_mass_scale, link_mass_scale_half_width: with a fixed base, else None.
        motor: the motor fit; ``trajectory``: the trajectory fit or None; ``inertial``:
            the links' inertial fit or None (an arm only).
        log_seconds: the log's length, s.
        notes: what could not be identified from this log, and why.
    """

    robot: str
    joint_names: tuple[str, ...]
    values: dict[str, np.ndarray]
    half_widths: dict[str, np.ndarray]
    delay_s: float
    delay_half_width_s: float
    link_mass_scale: float | None
    link_mass_scale_half_width: float | None
    motor: MotorFit
    trajectory: TrajectoryFit | None
    inertial: InertialFit | None
    log_seconds: float
    notes: tuple[str, ...] = ()

    def table(self) -> list[dict]:
        """One row per joint and parameter: value and 95 % interval."""
        rows = []
        for name, values in self.values.items():
            for joint, value, half in zip(
                self.joint_names, values, self.half_widths[name], strict=True
            ):
                rows.append(
                    {"parameter": name, "joint": joint, "value": float(value),
                     "low": float(value - half), "high": float(value + half)}
                )  # fmt: skip
        rows.append(
            {"parameter": "delay_s", "joint": "*", "value": self.delay_s,
             "low": self.delay_s - self.delay_half_width_s,
             "high": self.delay_s + self.delay_half_width_s}
        )  # fmt: skip
        if self.link_mass_scale is not None:
            half = self.link_mass_scale_half_width
            rows.append(
                {"parameter": "link_mass_scale", "joint": "*", "value": self.link_mass_scale,
                 "low": self.link_mass_scale - half, "high": self.link_mass_scale + half}
            )  # fmt: skip
        if self.inertial is not None:
            fit = self.inertial
            for label, value, (low, high) in zip(
                fit.labels, fit.beta, fit.beta_interval, strict=True
            ):
                rows.append(
                    {"parameter": "base_parameter", "joint": label, "value": float(value),
                     "low": float(low), "high": float(high)}
                )  # fmt: skip
            for k, link in enumerate(fit.link_names):
                if fit.mass_determined[k]:
                    low, high = fit.masses_interval[k]
                    rows.append(
                        {"parameter": "link_mass", "joint": link, "value": float(fit.masses[k]),
                         "low": float(low), "high": float(high)}
                    )  # fmt: skip
        return rows

    def ranges(self, task: str, control_period_s: float) -> rconfig.RandomizationConfig:
        """The task's default randomization with the identified terms replaced."""
        config = rconfig.default_config(task)
        config.task = task
        for name, values in self.values.items():
            if unphysical_joints(name, values, self.joint_names):
                continue  # the log does not determine it (a note says so): the default stays
            term, operation = TERMS[name]
            half = np.maximum(
                RANGE_SIGMAS * self.half_widths[name], MIN_RELATIVE_HALF_WIDTH * np.abs(values)
            )
            low = np.maximum(values - half, 0.0)
            config.terms[term] = rconfig.TermConfig(
                mode="reset",
                distribution="uniform",
                operation=operation,
                range={
                    joint: (round(float(lo), 6), round(float(hi), 6))
                    for joint, lo, hi in zip(self.joint_names, low, values + half, strict=True)
                },
            )
        if self.link_mass_scale is not None:
            scale = self.link_mass_scale
            half = max(self.link_mass_scale_half_width, MIN_RELATIVE_HALF_WIDTH * scale)
            config.terms["link_mass"] = rconfig.TermConfig(
                mode="reset", distribution="uniform", operation="scale",
                range=(round(scale - half, 6), round(scale + half, 6)),
            )  # fmt: skip
        low = math.floor((self.delay_s - self.delay_half_width_s) / control_period_s)
        high = math.ceil((self.delay_s + self.delay_half_width_s) / control_period_s)
        config.terms["action_delay"] = rconfig.TermConfig(
            mode="reset", distribution="uniform", operation="set",
            range=(float(max(low, 0)), float(max(high, 0))),
        )  # fmt: skip
        return rconfig.validate(config)


def unphysical_joints(name: str, values: np.ndarray, joint_names) -> dict[str, float]:
    """Joints whose identified ``name`` is impossible: a gain scale ≤ 0, a negative term."""
    bad = values <= 0 if name in ("kp_scale", "kd_scale") else values < 0
    rows = zip(joint_names, values, bad, strict=True)
    return {joint: round(float(v), 4) for joint, v, b in rows if b}


def robot_facts(robot: str, stand: bool = False) -> RobotModel:
    """A packaged robot's nominal facts (on a stand: its base fixed)."""
    from sim2real.deploy.hil.profile import RobotProfile
    from sim2real.deploy.hil.sim_robot import SimRobot

    return SimRobot(RobotProfile.from_dict({"robot": robot, "stand": stand})).robot


def identify(
    log: RobotLog,
    robot: RobotModel,
    robot_name: str,
    stand: bool = False,
    physics_dt: float | None = None,
    chunks: int = 20,
) -> Identification:
    """Identify ``robot`` from ``log``; see the module docstring.

    Args:
        log: the robot's log, with efforts.
        robot: the robot's nominal facts (``RobotModel`` of its MJCF).
        robot_name: the packaged robot (``panda``, ``go2``).
        stand: a legged robot's log recorded on a stand (its base fixed).
        physics_dt: the grid for the fits, s (the robot's control-loop step; default: the
            median interval of the logged joint states).
        chunks: trajectory-matching windows.

    Raises:
        ValueError: the log lacks efforts or the robot's joints (named).

    The inertial fit's velocity gain for MuJoCo's implicit step is the drive's applied
    ``K_d`` (the motor fit's scale × the commanded gain) plus the identified damping:
    the trajectory fit's armature is MuJoCo's at this step (``inertial``'s docstring).
    """
    log = log.select(robot.joint_names)
    dt = physics_dt or float(np.median(np.diff(log.t)))
    aligned = log.aligned(dt)
    motor = fit_motor(aligned, robot.kp, robot.kd)
    values = {"kp_scale": motor.kp_scale, "kd_scale": motor.kd_scale}
    half_widths = {"kp_scale": Z95 * motor.kp_scale_std, "kd_scale": Z95 * motor.kd_scale_std}
    trajectory = inertial = None
    if stand or not robot.floating_base:
        trajectory = fit_trajectories(
            Replay(aligned, robot_name, motor, stand=stand, chunks=chunks)
        )
        for name in ("damping", "armature", "frictionloss"):
            values[name] = getattr(trajectory, name)
            half_widths[name] = np.asarray(trajectory.half_widths[name])
    notes = []
    if not (robot.floating_base or stand):  # an arm
        kd = robot.kd if aligned.command_kd is None else aligned.command_kd
        try:
            inertial = fit_inertial(
                aligned, robot_name, values, implicit_gain=motor.kd_scale * kd + trajectory.damping
            )
        except PoorExcitationError as error:
            notes.append(f"links' inertial parameters not identified: {error}")
    for name, values_of_joints in values.items():
        joints = unphysical_joints(name, values_of_joints, robot.joint_names)
        if joints:
            notes.append(
                f"{name} came out unphysical at {joints}: the log does not determine it "
                "(a drive saturating much of the time, too little motion); the ranges keep "
                "the task's default for it"
            )
    return Identification(
        robot=robot_name,
        joint_names=tuple(robot.joint_names),
        values=values,
        half_widths=half_widths,
        delay_s=(motor.delay_steps + 1) * dt,
        delay_half_width_s=dt,
        link_mass_scale=None if trajectory is None else trajectory.link_mass_scale,
        link_mass_scale_half_width=(
            None if trajectory is None else float(trajectory.half_widths["link_mass_scale"])
        ),
        motor=motor,
        trajectory=trajectory,
        inertial=inertial,
        log_seconds=log.duration,
        notes=tuple(notes),
    )
