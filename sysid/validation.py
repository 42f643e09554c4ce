"""Identified values against a HIL robot profile's hidden truth (validation, benchmarks)."""

from __future__ import annotations

import numpy as np

from sim2real.deploy.hil.profile import RobotProfile
from sim2real.sysid.identify import Identification
from sim2real.sysid.inertial import InertialFit


def profile_truth(profile: RobotProfile) -> dict:
    """The profile's true values by sysid parameter, actuator order.

    ``delay_s`` is the command path's latency plus the sensor path's (a log cannot tell
    them apart), in whole physics steps.
    """
    truth = dict(profile.resolve())
    latency_steps = profile.command_latency_steps + profile.sensor_latency_steps
    truth["delay_s"] = latency_steps * profile.physics_dt
    truth["link_mass_scale"] = profile.link_mass_scale
    return truth


def relative_errors(identification: Identification, truth: dict) -> dict[str, float]:
    """Largest |identified / true − 1| per parameter over the joints.

    ``delay_steps``: the delay's error in physics steps.
    """
    errors = {
        name: float(np.max(np.abs(values / truth[name] - 1.0)))
        for name, values in identification.values.items()
    }
    if identification.link_mass_scale is not None:
        errors["link_mass_scale"] = abs(
            identification.link_mass_scale / truth["link_mass_scale"] - 1
        )
    step = identification.delay_half_width_s
    errors["delay_steps"] = abs(identification.delay_s - truth["delay_s"]) / step
    return errors


def true_inertial(fit: InertialFit, link_mass_scale: float) -> dict[str, np.ndarray]:
    """The truth of a HIL profile's links: its ``link_mass_scale`` on the MJCF's values.

    The profile scales every link's mass and its inertia about the centre of mass alike,
    the centres of mass unchanged, so all 10 parameters of every link scale with it
    (``m``, ``m·c``, and the inertia about the frame's origin). Returns ``parameters``
    (P,), ``beta`` (B,), ``masses`` (L,), ``coms`` (L, 3).
    """
    parameters = link_mass_scale * fit.nominal
    per_link = parameters.reshape(-1, 10)
    return {
        "parameters": parameters,
        "beta": fit.base.of(parameters),
        "masses": per_link[:, 0],
        "coms": per_link[:, 1:4] / per_link[:, :1],
    }


def inertial_errors(fit: InertialFit, link_mass_scale: float) -> dict[str, float | int]:
    """Largest |identified / true − 1| of the significant base parameters and masses.

    ``significant_beta`` over the significant base parameters, ``determined_mass`` over
    the link masses the data determine (NaN where there are none), with their counts.

    Significant: a contribution of the *true* value of at least
    ``inertial.SIGNIFICANT_CONTRIBUTION`` of a joint's rms effort (``InertialFit.significant``).
    """
    truth = true_inertial(fit, link_mass_scale)
    significant = fit.significant(truth["beta"])
    beta_errors = np.abs(fit.beta / truth["beta"] - 1.0)[significant]
    mass_errors = np.abs(fit.masses / truth["masses"] - 1.0)[fit.mass_determined]
    return {
        "base_parameters": len(fit.beta),
        "significant_base_parameters": int(significant.sum()),
        "significant_beta": float(beta_errors.max()) if beta_errors.size else float("nan"),
        "determined_masses": int(fit.mass_determined.sum()),
        "determined_mass": float(mass_errors.max()) if mass_errors.size else float("nan"),
    }
