"""Does an exported policy fit this robot? The checks ``PolicyRuntime.configure`` makes.

DESIGN contract 4: a deployment that does not match the robot (a missing joint, another
order, another control period) refuses to start, with an error naming the contract field
and the joints concerned. The observation layout is checked against the task's own terms
by ``sim2real.deploy.observation_builder``, with the same error.

Plain Python: no onnx, onnxruntime or MuJoCo needed to import it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sim2real.export.contract import PolicyContract

#: Relative tolerance on the control period: only float rounding (0.02 vs 1 / 50).
PERIOD_RTOL = 1e-6


class ContractMismatch(ValueError):  # noqa: N818 (reads as what it is: "contract mismatch")
    """The policy's contract does not fit the robot (or this sim2real): refuse to start.

    Attributes:
        field: the contract field at fault (``joint_names``, ``control_period_s``,
            ``observation_terms[2].scale``), also named in the message.
        joints: the joints concerned, if any.
    """

    def __init__(self, field: str, problem: str, joints: Sequence[str] = ()):
        self.field = field
        self.joints = tuple(joints)
        super().__init__(f"policy contract field '{field}': {problem}")


def check_robot(
    contract: PolicyContract,
    joint_names: Sequence[str],
    control_period: float | None = None,
    task: str | None = None,
) -> None:
    """Refuse a policy that does not fit the robot.

    Args:
        contract: the loaded policy's contract.
        joint_names: the robot's joints, in the robot's order: exactly the policy's joints
            in the policy's order (joint *states* may still arrive in any order; they are
            matched by name every tick).
        control_period: the robot's control loop period, s, if it has a fixed one.
        task: the task the robot is set up for, if the caller wants it checked.

    Raises:
        ContractMismatch: naming the field (``joint_names``, ``control_period_s``,
            ``task``) and the joints.
    """
    check_joint_names(contract.joint_names, joint_names)
    if control_period is not None:
        expected = contract.control_period_s
        if not math.isclose(control_period, expected, rel_tol=PERIOD_RTOL):
            raise ContractMismatch(
                "control_period_s",
                f"the policy was trained to act every {expected:g} s ({1 / expected:g} Hz), "
                f"the robot's loop runs every {control_period:g} s",
            )
    if task is not None and contract.task != task:
        raise ContractMismatch("task", f"the policy was trained on {contract.task!r}, not {task!r}")


def check_joint_names(policy: Sequence[str], robot: Sequence[str]) -> None:
    """The robot's joint list equals the policy's: same names, same order; else the mismatch.

    Raises:
        ContractMismatch: field ``joint_names``; the message and ``joints`` name the
            joints the robot lacks, those the policy does not drive, or those out of order.
    """
    policy, robot = list(policy), list(robot)
    duplicates = sorted({name for name in robot if robot.count(name) > 1})
    if duplicates:
        raise ContractMismatch(
            "joint_names", f"the robot's joint list names {duplicates} twice", duplicates
        )
    missing = [name for name in policy if name not in robot]
    unknown = [name for name in robot if name not in policy]
    if missing or unknown:
        problems = []
        if missing:
            problems.append(f"the robot has no joints {missing}")
        if unknown:
            problems.append(f"the policy does not drive the robot's joints {unknown}")
        raise ContractMismatch(
            "joint_names", "; ".join(problems) + " (a renamed joint shows as both)",
            missing + unknown,
        )  # fmt: skip
    moved = [p for p, r in zip(policy, robot, strict=True) if p != r]
    if moved:
        raise ContractMismatch(
            "joint_names",
            f"joints {moved} are in another order: policy order {policy}, robot order {robot}",
            moved,
        )
