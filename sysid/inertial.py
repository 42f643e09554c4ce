"""The links' inertial parameters (mass, centre of mass, inertia) from logged efforts.

On a fixed-base robot (an arm), the torque each joint's drive applies is the links'
rigid-body dynamics plus the joint's own terms::

    τ = Y(q, q̇, q̈) π + a ⊙ q̈ + b ⊙ q̇ + f ⊙ sign(q̇)

``Y`` (J, 10 L) is Pinocchio's joint-torque regressor (``computeJointTorqueRegressor``; the
model read from the robot's MJCF, DESIGN contract 1); ``π`` (10 L,) holds the 10 inertial
parameters of every moving link in Pinocchio's ``toDynamicParameters`` order: mass ``m``
(kg), first moments ``m·c`` (kg·m, ``c`` the centre of mass in the link's joint frame),
inertia about the frame's origin ``Ixx, Ixy, Iyy, Ixz, Iyz, Izz`` (kg·m²). Pinocchio merges
bodies without a joint into their parent (the Panda's hand and fingers into link 7).
``a``, ``b``, ``f`` are the armature, damping and friction loss per joint: *known* here, the
trajectory fit's (``trajectory_fit``), and subtracted from the logged effort, so what is
left is linear in ``π``.

**Base parameters.** Most of ``π`` never shows in the torques on its own: a point mass at
joint ``j``'s origin acts alike whether it belongs to link ``j`` or to its parent, link 1
turns about the vertical, so gravity never sees its mass, and so on. Stacking ``Y`` over
the samples gives a (rows, P) matrix of rank B < P; a QR decomposition with column pivoting
(columns scaled to unit norm, rank where ``|R_ii| > rtol · |R_00|``) picks B independent
columns ``π_b`` and writes the others as their combinations, ``Y_d = Y_b K``, so that
``Y π = Y_b β`` with the base parameters ``β = π_b + K π_d``: what the torques determine.
Least squares gives ``β``, each named after its independent column (``panda_link4.mcx``)
with the others it groups.

**Masses and centres of mass.** Of all ``π`` reproducing ``β``, the one closest to the
MJCF's (``nominal + E⁺ (β − E nominal)``, ``E`` the (B, P) reduction) is reported. A link's
mass (or one coordinate of its centre of mass) is *determined* by the data when its unit
vector lies in the row space of ``E`` (the projector's diagonal entry is 1); otherwise it
stays at the value closest to the MJCF's and says nothing about the robot. In a chain of
revolute joints no single link mass is determined (the point mass above); the sums and
first moments the base parameters hold are.

**Signals.** Positions, velocities and the corrected efforts pass through one zero-phase
low-pass filter (``motor.LowPass``; the relation is linear, so filtering both sides keeps
it); ``q̈`` is the forward difference of the filtered ``q̇`` (a sample's effort acts over the
step to the next sample). Samples slower than ``min_speed`` (friction loss there is not a
clean ``sign(q̇)``) and saturated ones are left out, per joint.

**MuJoCo's implicit step.** The trajectory fit replays the log in MuJoCo at the log's step
``dt``, whose implicit integrator applies the velocity gains (the drive's ``K_d`` and the
damping) to the *next* velocity: the torque acting over a step is the logged effort minus
``(K_d + b) Δq̇``. The trajectory fit's armature is MuJoCo's in that sense (on a real robot,
the real armature minus ``K_d dt``), so ``identify`` always passes that gain
(``implicit_gain``) and the split between armature and link inertia stays consistent.

**Uncertainty.** A moving-block bootstrap (blocks of ``block_s``, ``bootstrap`` refits):
95 % intervals (2.5th and 97.5th percentiles) of ``β`` and of the masses and centres of
mass recovered from each refit.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pinocchio as pin
from scipy.linalg import qr

from sim2real.sim.assets import asset_path
from sim2real.sysid.motor import LowPass, unsaturated
from sim2real.sysid.robot_log import AlignedLog

#: Pinocchio's ``toDynamicParameters`` order.
PARAMETER_NAMES = ("m", "mcx", "mcy", "mcz", "Ixx", "Ixy", "Iyy", "Ixz", "Iyz", "Izz")
JOINT_TERMS = ("armature", "damping", "frictionloss")
#: A base parameter is *significant* when it carries at least this share of some joint's
#: rms inertial torque (``InertialFit.contribution``).
SIGNIFICANT_CONTRIBUTION = 0.05


#: Usable samples (after ``stride``) a joint needs.
MIN_SAMPLES = 50


class PoorExcitationError(ValueError):
    """A joint of the log moves too little (or too saturated) for the inertial fit."""


class LinkModel:
    """A packaged robot's links in Pinocchio, base fixed, rows in the log's joint order.

    Args:
        robot: a packaged fixed-base robot (``panda``).
        joint_names: the log's joints (J,): every joint of the model, in any order.

    Raises:
        ValueError: a floating-base robot, a joint of the log that is not in the model, or
            one of the model's that is not in the log (the regressor needs every joint's
            motion).
    """

    def __init__(self, robot: str, joint_names: Sequence[str]):
        model = pin.buildModelFromMJCF(str(asset_path(robot)))
        if model.joints[1].shortname() == "JointModelFreeFlyer":
            raise ValueError(f"the inertial fit needs a fixed-base robot (an arm), not {robot}")
        names = tuple(model.names[i] for i in range(1, model.njoints))
        unknown = [name for name in joint_names if name not in names]
        missing = [name for name in names if name not in joint_names]
        if unknown or missing:
            raise ValueError(
                f"the log's joints do not match {robot}'s: not in the model {unknown}, "
                f"not in the log {missing}"
            )
        model.armature[:] = 0.0  # the joints' terms are handled apart from the links
        self.model, self.data = model, model.createData()
        self.link_names = tuple(_link_name(model, i) for i in range(1, model.njoints))
        self.rows = np.array([model.idx_vs[model.getJointId(name)] for name in joint_names])
        self.nominal = np.concatenate(
            [model.inertias[i].toDynamicParameters() for i in range(1, model.njoints)]
        )

    def regressor(self, q: np.ndarray, qd: np.ndarray, qdd: np.ndarray) -> np.ndarray:
        """(N, J, P) joint-torque regressors of N samples; arguments (N, J) in log order."""
        full = np.zeros((3, self.model.nv))
        out = np.empty((len(q), len(self.rows), len(self.nominal)))
        for k in range(len(q)):
            full[:, self.rows] = q[k], qd[k], qdd[k]
            y = pin.computeJointTorqueRegressor(self.model, self.data, *full)
            out[k] = y[self.rows]
        return out

    def torques(self, parameters: np.ndarray, q, qd, qdd) -> np.ndarray:
        """(N, J) inverse dynamics (Pinocchio's ``rnea``) with ``parameters`` (P,) as π."""
        model = self.model.copy()
        for i, values in enumerate(parameters.reshape(-1, 10), start=1):
            model.inertias[i] = pin.Inertia.FromDynamicParameters(values)
        data = model.createData()
        full = np.zeros((3, model.nv))
        out = np.empty(np.shape(q))
        for k in range(len(q)):
            full[:, self.rows] = q[k], qd[k], qdd[k]
            out[k] = pin.rnea(model, data, *full)[self.rows]
        return out


def _link_name(model: pin.Model, joint: int) -> str:
    """The body a joint moves (the first body frame attached to it)."""
    for frame in model.frames:
        if frame.parentJoint == joint and frame.type == pin.FrameType.BODY:
            return frame.name
    return model.names[joint]


@dataclass(frozen=True)
class BaseParameters:
    """The base-parameter reduction ``β = E π`` of a stacked regressor.

    Attributes:
        combination: ``E`` (B, P): identity on the independent columns, ``K`` on the rest.
        independent: (B,) the column of ``π`` each base parameter is named after.
    """

    combination: np.ndarray
    independent: np.ndarray

    def of(self, parameters: np.ndarray) -> np.ndarray:
        """(..., B) base parameters of inertial parameters (..., P)."""
        return parameters @ self.combination.T

    def closest(self, beta: np.ndarray, prior: np.ndarray) -> np.ndarray:
        """(..., P): the π closest to ``prior`` (P,) whose base parameters are ``beta``."""
        return prior + (beta - self.of(prior)) @ np.linalg.pinv(self.combination).T

    def determined(self) -> np.ndarray:
        """(P,) bool: parameters the base parameters fix on their own (row space of E)."""
        projector = np.linalg.pinv(self.combination) @ self.combination
        return np.abs(np.diag(projector) - 1.0) < 1e-6

    def labels(self, parameter_names: Sequence[str]) -> list[str]:
        """One name per base parameter: its independent column, ``+ k·other`` for the rest."""
        labels = []
        for row, column in zip(self.combination, self.independent, strict=True):
            terms = [parameter_names[column]]
            for other in np.flatnonzero(np.abs(row) > 1e-9):
                if other != column:
                    terms.append(f"{row[other]:+.4g}·{parameter_names[other]}")
            labels.append(" ".join(terms))
        return labels


def reduce_regressor(regressor: np.ndarray, rtol: float = 1e-7) -> BaseParameters:
    """The base parameters of a stacked regressor (rows, P); see the module docstring.

    Columns are scaled to unit norm first (π mixes kg, kg·m and kg·m²), so the rank does not
    depend on units; columns below ``rtol`` of the largest norm (zero but for round-off)
    are dependent with no weight.
    """
    norms = np.linalg.norm(regressor, axis=0)
    norms[norms < rtol * norms.max()] = 0.0  # round-off of a structurally zero column
    scaled = regressor / np.where(norms > 0, norms, 1.0)
    _, r, pivots = qr(scaled, mode="economic", pivoting=True)
    diagonal = np.abs(np.diag(r))
    rank = int(np.sum(diagonal > rtol * diagonal[0]))
    independent, dependent = pivots[:rank], pivots[rank:]
    k_scaled = np.linalg.solve(r[:rank, :rank], r[:rank, rank:])
    # back to physical units: Y_d = Y_b K with K = D_b⁻¹ K_scaled D_d (D the column norms)
    safe = np.where(norms > 0, norms, 1.0)
    k = k_scaled / safe[independent, None] * np.where(norms[dependent] > 0, safe[dependent], 0.0)
    combination = np.zeros((rank, regressor.shape[1]))
    combination[np.arange(rank), independent] = 1.0
    combination[:, dependent] = k
    order = np.argsort(independent)  # base parameters in π's order, for legibility
    return BaseParameters(combination[order], independent[order])


@dataclass(frozen=True)
class InertialFit:
    """Identified base parameters and link masses and centres of mass, 95 % intervals.

    Attributes:
        link_names: the L moving links (Pinocchio's, merged fixed bodies included).
        base: the reduction; ``labels`` (B,) its parameters' names.
        beta: (B,) identified base parameters (kg, kg·m, kg·m², as their columns);
            ``beta_interval``: (B, 2) bootstrap 95 % intervals.
        nominal: (P,) the MJCF's π; ``parameters``: (P,) the π closest to it with ``beta``.
        masses: (L,) kg; ``coms``: (L, 3) centres of mass in the link frames, m; with
            ``masses_interval`` (L, 2) and ``coms_interval`` (L, 3, 2).
        mass_determined: (L,) bool; ``com_determined``: (L, 3) bool: fixed by the data
            (otherwise the value closest to the MJCF's).
        column_rms: (J, B) rms of each base parameter's regressor column per joint (its
            torque per unit of the parameter), N·m per unit; ``effort_rms``: (J,) rms of the
            logged effort, N·m; ``residual_rms``: (J,) rms torque residual, N·m; all over
            the used samples.
        samples: (J,) samples used per joint; ``seconds``: wall time of the fit.
    """

    link_names: tuple[str, ...]
    base: BaseParameters
    labels: tuple[str, ...]
    beta: np.ndarray
    beta_interval: np.ndarray
    nominal: np.ndarray
    parameters: np.ndarray
    masses: np.ndarray
    masses_interval: np.ndarray
    coms: np.ndarray
    coms_interval: np.ndarray
    mass_determined: np.ndarray
    com_determined: np.ndarray
    column_rms: np.ndarray
    effort_rms: np.ndarray
    residual_rms: np.ndarray
    samples: np.ndarray
    seconds: float

    def contribution(self, beta: np.ndarray | None = None) -> np.ndarray:
        """(B,) the largest share of a joint's rms logged effort each base parameter makes.

        ``beta``: (B,) values to rate (default: the identified ones).
        """
        beta = self.beta if beta is None else beta
        return (np.abs(beta) * self.column_rms / self.effort_rms[:, None]).max(axis=0)

    def significant(self, beta: np.ndarray | None = None) -> np.ndarray:
        """(B,) bool: a contribution of at least ``SIGNIFICANT_CONTRIBUTION``."""
        return self.contribution(beta) >= SIGNIFICANT_CONTRIBUTION


def fit_inertial(
    log: AlignedLog,
    robot: str,
    joint_terms: Mapping[str, np.ndarray],
    implicit_gain: np.ndarray | None = None,
    cutoff_hz: float = 8.0,
    min_speed: float = 0.3,
    stride: int = 4,
    bootstrap: int = 200,
    block_s: float = 2.0,
    seed: int = 0,
) -> InertialFit:
    """Identify the links' base parameters from a fixed-base log; see the module docstring.

    Args:
        log: the log on a regular grid (the physics step the trajectory fit replays on),
            with efforts.
        robot: the packaged robot.
        joint_terms: ``armature`` (kg·m²), ``damping`` (N·m·s/rad), ``frictionloss`` (N·m),
            each (J,) in the log's joint order.
        implicit_gain: (J,) or (N, J) velocity gain of MuJoCo's implicit step (applied
            ``K_d`` plus damping), N·m·s/rad; None: no correction.
        cutoff_hz: the low-pass filter's cutoff, Hz.
        min_speed: samples with |q̇| below this are left out (per joint), rad/s.
        stride: every ``stride``-th sample is used (the filtered signals are smooth).
        bootstrap: bootstrap refits.
        block_s: bootstrap block length, s.
        seed: the bootstrap's seed.

    Raises:
        ValueError: no efforts, joint terms missing or of the wrong shape, the log's joints
            not the model's; ``PoorExcitationError`` (a ValueError) for a joint that hardly moves.
    """
    start = time.perf_counter()
    if log.effort is None:
        raise ValueError("the inertial fit needs logged efforts (joint_states.effort)")
    joints = len(log.joint_names)
    terms = {}
    for name in JOINT_TERMS:
        if name not in joint_terms:
            raise ValueError(f"joint_terms lacks {name!r} (needs {list(JOINT_TERMS)})")
        terms[name] = np.asarray(joint_terms[name], dtype=float)
        if terms[name].shape != (joints,):
            raise ValueError(
                f"joint_terms[{name!r}] has shape {terms[name].shape}, not ({joints},)"
            )
    links = LinkModel(robot, log.joint_names)

    # the torque acting over each step (MuJoCo's implicit velocity gains moved to the left)
    # less the friction loss, before filtering: the filter smooths its steps at reversals
    # as it smooths the logged effort's
    lowpass = LowPass(cutoff_hz, log.dt)
    qd_all = lowpass(log.qd)
    q, qd, qdd = lowpass(log.q[:-1]), qd_all[:-1], np.diff(qd_all, axis=0) / log.dt
    effort = log.effort[:-1] - terms["frictionloss"] * np.sign(qd)
    if implicit_gain is not None:
        gain = np.broadcast_to(implicit_gain, log.qd.shape)[:-1]
        effort = effort - gain * np.diff(log.qd, axis=0)
    inertial_torque = lowpass(effort) - terms["armature"] * qdd - terms["damping"] * qd
    keep = lowpass.valid(unsaturated(log.effort[:-1])) & (np.abs(qd) >= min_speed)
    rows = np.arange(0, len(q), stride)
    keep, target = keep[rows], inertial_torque[rows]
    samples = keep.sum(axis=0)
    for j in np.flatnonzero(samples < MIN_SAMPLES):
        raise PoorExcitationError(
            f"joint {log.joint_names[j]} has {samples[j]} usable samples (faster than "
            f"{min_speed:g} rad/s, drive not saturated), {MIN_SAMPLES} needed: excite it more"
        )

    regressor = links.regressor(q[rows], qd[rows], qdd[rows])  # (R, J, P)
    base = reduce_regressor(regressor[keep])
    design = regressor[:, :, base.independent]  # Y_b, the independent columns: (R, J, B)
    # ordinary least squares for each joint's noise level, then weighted by it
    residual = target - design @ _solve(design, target, keep)
    sigma = np.sqrt((np.where(keep, residual, 0.0) ** 2).sum(axis=0) / samples)
    design, target = design / sigma[:, None], target / sigma
    beta = _solve(design, target, keep)
    residual = np.where(keep, target - design @ beta, 0.0) * sigma
    block = max(1, int(round(block_s / (log.dt * stride))))
    draws = _block_bootstrap(design, target, keep, block, bootstrap, np.random.default_rng(seed))

    def rms(values):
        return np.sqrt((np.where(keep[..., None], values, 0.0) ** 2).sum(axis=0) / samples[:, None])

    parameters = base.closest(beta, links.nominal)
    masses, coms = _masses_and_coms(parameters)
    draw_masses, draw_coms = _masses_and_coms(base.closest(draws, links.nominal))
    determined = base.determined().reshape(-1, 10)
    names = [f"{link}.{p}" for link in links.link_names for p in PARAMETER_NAMES]
    return InertialFit(
        link_names=links.link_names,
        base=base,
        labels=tuple(base.labels(names)),
        beta=beta,
        beta_interval=_percentiles(draws),
        nominal=links.nominal,
        parameters=parameters,
        masses=masses,
        masses_interval=_percentiles(draw_masses),
        coms=coms,
        coms_interval=_percentiles(draw_coms),
        mass_determined=determined[:, 0],
        com_determined=determined[:, :1] & determined[:, 1:4],
        column_rms=rms(design * sigma[:, None]),
        effort_rms=rms(log.effort[:-1][rows][..., None])[:, 0],
        residual_rms=rms(residual[..., None])[:, 0],
        samples=samples,
        seconds=time.perf_counter() - start,
    )


def _solve(design: np.ndarray, target: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """(B,) least squares over the kept (sample, joint) rows, columns scaled to unit norm."""
    a, b = design[keep], target[keep]
    scale = np.linalg.norm(a, axis=0)
    solution, *_ = np.linalg.lstsq(a / scale, b, rcond=None)
    return solution / scale


def _block_bootstrap(
    design: np.ndarray,
    target: np.ndarray,
    keep: np.ndarray,
    block: int,
    draws: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """(draws, B) refits on moving-block resamples of the samples (blocks of ``block``).

    Blocks start on a grid of a tenth of a block, so that each block's normal equations
    are a difference of cumulative sums and a refit costs one (B, B) solve.
    """
    step = max(1, block // 10)
    chunks, per_block = len(target) // step, max(1, block // step)
    a = np.where(keep[..., None], design, 0.0)[: chunks * step].reshape(chunks, -1, design.shape[2])
    b = np.where(keep, target, 0.0)[: chunks * step].reshape(chunks, -1)
    gram = np.cumsum(np.einsum("nrb,nrc->nbc", a, a), axis=0)
    moment = np.cumsum(np.einsum("nrb,nr->nb", a, b), axis=0)
    gram = np.concatenate([np.zeros_like(gram[:1]), gram])
    moment = np.concatenate([np.zeros_like(moment[:1]), moment])
    block_gram, block_moment = (
        gram[per_block:] - gram[:-per_block],
        moment[per_block:] - moment[:-per_block],
    )
    picks = rng.integers(0, len(block_gram), size=(draws, -(-chunks // per_block)))
    g, m = block_gram[picks].sum(axis=1), block_moment[picks].sum(axis=1)
    scale = np.sqrt(np.diagonal(g, axis1=1, axis2=2))
    scaled = g / scale[:, :, None] / scale[:, None, :]
    return np.linalg.solve(scaled, (m / scale)[..., None])[..., 0] / scale


def _masses_and_coms(parameters: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Masses (..., L) and centres of mass (..., L, 3) of inertial parameters (..., P)."""
    per_link = parameters.reshape(*parameters.shape[:-1], -1, 10)
    masses = per_link[..., 0]
    safe = np.where(np.abs(masses) > 1e-9, masses, 1.0)
    return masses, per_link[..., 1:4] / safe[..., None]


def _percentiles(draws: np.ndarray) -> np.ndarray:
    """(..., 2): the 2.5th and 97.5th percentiles over the draws (axis 0)."""
    return np.moveaxis(np.percentile(draws, [2.5, 97.5], axis=0), 0, -1)
