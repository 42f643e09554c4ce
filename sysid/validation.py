"""Identified values against a HIL robot profile's hidden truth (validation, benchmarks)."""

from __future__ import annotations

import numpy as np

from sim2real.deploy.hil.profile import RobotProfile
from sim2real.sysid.identify import Identification


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
