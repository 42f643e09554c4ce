"""The links' inertial parameters (``sysid.inertial``).

The base-parameter reduction on synthetic data from Pinocchio's own inverse dynamics, the
errors, and the validation on a simulated panda-hidden log
(``conftest.panda_identification``).
"""

from __future__ import annotations

import numpy as np
import pytest

from sim2real.sysid.inertial import LinkModel, PoorExcitationError, fit_inertial, reduce_regressor
from sim2real.sysid.report import write_report
from sim2real.sysid.robot_log import AlignedLog
from sim2real.sysid.validation import inertial_errors, profile_truth, true_inertial

PANDA = tuple(f"panda_joint{i}" for i in range(1, 8))
#: The Panda's base parameters (7 revolute joints, the first vertical): 43 of 70.
PANDA_BASE_PARAMETERS = 43
DT = 0.002


def motion(seconds: float = 12.0, joints: int = 7, seed: int = 0):
    """Smooth joint motion (t, q, qd) whose velocities never cross zero (friction exact)."""
    rng = np.random.default_rng(seed)
    t = np.arange(0.0, seconds, DT)
    speed, amplitude = rng.uniform(0.3, 0.5, joints), rng.uniform(0.1, 0.25, joints)
    omega = 2 * np.pi * rng.uniform(0.3, 1.2, joints)
    q = speed * t[:, None] + amplitude / omega * np.sin(omega * t[:, None]) - 1.0
    qd = speed + amplitude * np.cos(omega * t[:, None])
    return t, q, qd


def synthetic_log(links: LinkModel, parameters: np.ndarray, terms: dict) -> AlignedLog:
    """A log whose efforts are ``rnea`` with ``parameters`` plus the joint terms, exactly.

    Each effort acts over the step to the next sample, as the fit assumes: its
    acceleration is the forward difference of the velocities.
    """
    t, q, qd = motion()
    qdd = np.diff(qd, axis=0, append=qd[-1:] + (qd[-1:] - qd[-2:-1])) / DT
    effort = links.torques(parameters, q, qd, qdd) + (
        terms["armature"] * qdd + terms["damping"] * qd + terms["frictionloss"] * np.sign(qd)
    )
    return AlignedLog(PANDA, t, q, qd, effort, q.copy(), None, None)


TERMS = {
    "armature": np.full(7, 0.1),
    "damping": np.linspace(0.05, 0.2, 7),
    "frictionloss": np.linspace(0.2, 0.8, 7),
}


def test_reduction_reproduces_the_torques_of_every_parameter_vector():
    links = LinkModel("panda", PANDA)
    _, q, qd = motion(seconds=1.0)
    qdd = np.gradient(qd, DT, axis=0)
    rows = slice(0, None, 10)
    regressor = links.regressor(q[rows], qd[rows], qdd[rows])
    base = reduce_regressor(regressor.reshape(-1, regressor.shape[2]))
    assert base.combination.shape == (PANDA_BASE_PARAMETERS, 70)
    assert np.linalg.matrix_rank(regressor.reshape(-1, 70)) == PANDA_BASE_PARAMETERS
    rng = np.random.default_rng(1)
    for parameters in (links.nominal, links.nominal * rng.uniform(0.5, 1.5, 70)):
        torques = links.torques(parameters, q[rows], qd[rows], qdd[rows])
        from_beta = regressor[:, :, base.independent] @ base.of(parameters)
        np.testing.assert_allclose(from_beta, torques, atol=1e-9 * np.abs(torques).max())
        # and the π closest to any prior with these β has the same torques
        closest = base.closest(base.of(parameters), links.nominal * 0.7)
        np.testing.assert_allclose(base.of(closest), base.of(parameters), atol=1e-9)
    determined = base.determined().reshape(7, 10)
    assert not determined[:, 0].any()  # no single link mass in a revolute chain
    assert not determined[0].any()  # link 1 turns about the vertical: only its Izz shows,
    assert "panda_link1.Izz" in " ".join(base.labels(_names(links)))  # grouped with link 2's


def _names(links: LinkModel) -> list[str]:
    return [f"{link}.{p}" for link in links.link_names for p in ("m", "mcx", "mcy", "mcz",
            "Ixx", "Ixy", "Iyy", "Ixz", "Iyz", "Izz")]  # fmt: skip


def test_noise_free_synthetic_log_gives_the_true_base_parameters():
    links = LinkModel("panda", PANDA)
    truth = links.nominal * np.random.default_rng(2).uniform(0.8, 1.2, 70)
    fit = fit_inertial(synthetic_log(links, truth, TERMS), "panda", TERMS, bootstrap=20)
    true_beta = fit.base.of(truth)
    significant = fit.significant(true_beta)
    assert significant.sum() >= 10
    np.testing.assert_allclose(fit.beta[significant], true_beta[significant], rtol=5e-3)
    assert np.all(fit.residual_rms < 5e-3 * fit.effort_rms)
    # the joint terms matter: a wrong armature leaves a residual and moves β
    wrong = {**TERMS, "armature": TERMS["armature"] * 1.5}
    off = fit_inertial(synthetic_log(links, truth, TERMS), "panda", wrong, bootstrap=20)
    assert np.abs(off.beta / true_beta - 1)[significant].max() > 5e-2


def test_bad_logs_are_named():
    links = LinkModel("panda", PANDA)
    log = synthetic_log(links, links.nominal, TERMS)
    no_effort = AlignedLog(PANDA, log.t, log.q, log.qd, None, log.targets, None, None)
    with pytest.raises(ValueError, match="needs logged efforts"):
        fit_inertial(no_effort, "panda", TERMS)
    renamed = (*PANDA[:6], "wrist")
    other = AlignedLog(renamed, log.t, log.q, log.qd, log.effort, log.targets, None, None)
    with pytest.raises(
        ValueError, match=r"not in the model \['wrist'\].*not in the log \['panda_joint7'\]"
    ):
        fit_inertial(other, "panda", TERMS)
    with pytest.raises(ValueError, match="lacks 'damping'"):
        fit_inertial(log, "panda", {"armature": TERMS["armature"]})
    with pytest.raises(ValueError, match=r"joint_terms\['armature'\] has shape \(3,\)"):
        fit_inertial(log, "panda", {**TERMS, "armature": np.zeros(3)})
    still = AlignedLog(PANDA, log.t, log.q, np.zeros_like(log.qd), log.effort, log.targets,
                       None, None)  # fmt: skip
    with pytest.raises(PoorExcitationError, match="panda_joint1 has 0 usable samples"):
        fit_inertial(still, "panda", TERMS)
    with pytest.raises(ValueError, match="needs a fixed-base robot \\(an arm\\), not go2"):
        LinkModel("go2", PANDA)


def test_panda_hidden_base_parameters_within_ten_percent(panda_identification):
    profile, identification = panda_identification
    fit = identification.inertial
    assert fit is not None and len(fit.beta) == PANDA_BASE_PARAMETERS
    errors = inertial_errors(fit, profile.link_mass_scale)
    assert errors["significant_base_parameters"] >= 8, errors
    assert errors["significant_beta"] <= 0.10, errors
    assert errors["determined_masses"] == 0  # none in a revolute chain (documented)
    truth = true_inertial(fit, profile.link_mass_scale)
    significant = fit.significant(truth["beta"])
    low, high = fit.beta_interval[significant].T
    assert np.all(low <= fit.beta[significant]) and np.all(fit.beta[significant] <= high)
    assert np.all(high > low)
    # the MJCF's values are 8 % off: the identified ones beat them where they matter
    nominal = fit.base.of(fit.nominal)[significant]
    true_beta = truth["beta"][significant]
    assert np.abs(fit.beta[significant] - true_beta).sum() < np.abs(nominal - true_beta).sum()


def test_table_and_report_show_the_links(panda_identification, tmp_path):
    profile, identification = panda_identification
    rows = [r for r in identification.table() if r["parameter"] == "base_parameter"]
    assert len(rows) == PANDA_BASE_PARAMETERS
    assert all(r["low"] <= r["value"] <= r["high"] for r in rows)
    page = write_report(identification, tmp_path, profile_truth(profile)).read_text()
    assert "Links: masses and centres of mass" in page
    assert "panda_link4" in page and "base_parameter" in page
    assert page.count("<tr>") >= len(identification.table()) + 7 + 2  # both tables
