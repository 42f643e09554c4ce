"""System identification against known truth: HIL profiles with hidden parameters.

Prints one JSON object. For each case (``panda-hidden``: the arm; ``go2-stand-hidden``:
the quadruped on a stand), ``sim2real sysid excite``'s path records ``--seconds`` of a
multi-sine excitation through the deploy safety controller on the simulated robot
(noise, sensor and command latency included), then ``identify`` fits it: Kp and Kd scale
per joint and the delay from the efforts, damping, armature and friction loss per joint
and the links' mass scale by trajectory matching, and the links' base inertial parameters
from the efforts (``sysid.inertial``). Figures per case:

- ``errors``: the largest |identified / true − 1| over the joints, per parameter, and the
  delay's error in physics steps (targets: 10 %, one step);
- ``within_target``: whether every figure meets its target;
- ``fit_seconds``: wall time of the identification (target ≤ 180 s), and
  ``excite_seconds`` of the simulated excitation;
- ``inertial`` (the arm only): the base parameters (count, how many are significant: at
  least 5 % of a joint's rms effort), the largest |identified / true − 1| over the significant ones
  (``significant_beta``, target 10 %) and over the link masses the data determine
  (``determined_mass``: NaN, none are in a revolute chain), and the fit's wall time.

    .venv/bin/python benchmarks/sysid_accuracy.py > /tmp/sysid_accuracy.json   # ~1 min
    .venv/bin/python benchmarks/sysid_accuracy.py --quick                       # 20 s logs
"""

from __future__ import annotations

import argparse
import json
import os
import time

from machine import describe_machine

from sim2real.deploy.hil.profile import load_profile
from sim2real.deploy.hil.sim_robot import SimRobot
from sim2real.sysid.excitation import excitation_targets, run_excitation
from sim2real.sysid.identify import identify, robot_facts
from sim2real.sysid.validation import inertial_errors, profile_truth, relative_errors

CASES = ("panda-hidden", "go2-stand-hidden")
TARGET_RELATIVE = 0.10
TARGET_DELAY_STEPS = 1.0


def run_case(name: str, seconds: float) -> dict:
    profile = load_profile(name)
    start = time.perf_counter()
    t, targets = excitation_targets(SimRobot(profile).robot, duration_s=seconds)
    log = run_excitation(profile, t, targets)
    excited = time.perf_counter()
    facts = robot_facts(profile.robot, profile.stand)
    identification = identify(log, facts, profile.robot, stand=profile.stand)
    fitted = time.perf_counter()
    errors = relative_errors(identification, profile_truth(profile))
    within = all(
        error <= (TARGET_DELAY_STEPS if key == "delay_steps" else TARGET_RELATIVE)
        for key, error in errors.items()
    )
    trajectory = identification.trajectory
    inertial = None  # an arm only (sysid.identify)
    if identification.inertial is not None:
        inertial = inertial_errors(identification.inertial, profile.link_mass_scale)
        inertial["fit_seconds"] = identification.inertial.seconds
        within = within and inertial["significant_beta"] <= TARGET_RELATIVE
    return {
        "profile": name,
        "log_seconds": log.duration,
        "joints": len(identification.joint_names),
        "errors": errors,
        "within_target": within,
        "excite_seconds": excited - start,
        "fit_seconds": fitted - excited,
        "trajectory_evaluations": trajectory.evaluations,
        "effort_rms_before": float(trajectory.effort_rms_before.mean()),
        "effort_rms_after": float(trajectory.effort_rms_after.mean()),
        "delay_s": identification.delay_s,
        "inertial": inertial,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="log length per case, s")
    parser.add_argument("--quick", action="store_true", help="20 s logs")
    args = parser.parse_args()
    seconds = 20.0 if args.quick else args.seconds
    load_before = os.getloadavg()
    cases = [run_case(name, seconds) for name in CASES]
    print(
        json.dumps(
            {
                "benchmark": "sysid_accuracy",
                "cases": cases,
                "targets": {
                    "relative": TARGET_RELATIVE,
                    "delay_steps": TARGET_DELAY_STEPS,
                    "fit_seconds": 180.0,
                },  # fmt: skip
                "loadavg": {"before": load_before, "after": os.getloadavg()},
                "machine": describe_machine(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
