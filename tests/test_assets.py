"""The packaged MJCF assets: MuJoCo and Pinocchio read the same facts from the same file.

Pinocchio 4 facts these tests rely on (checked against pin 4.1's MJCF parser):

- ``pinocchio.buildModelFromMJCF(path)`` parses only the first ``<body>`` of ``<worldbody>``;
  joints keep their MJCF names, joint 0 is ``"universe"`` and a ``<freejoint>`` becomes a
  ``JointModelFreeFlyer`` (nq 7, nv 6) named like the MJCF free joint.
- Bodies without joints are merged into their parent joint's inertia (``model.inertias``), as
  ``<name>_fixed`` frames; a fixed-base root body (Panda's link0) goes into
  ``model.inertias[0]`` (the universe), so ``pinocchio.computeTotalMass`` (which skips the
  universe) is not MuJoCo's total mass: sum all of ``model.inertias`` instead.
- An MJCF ``slide`` joint becomes a prismatic joint (``JointModelPX``/``PY``/``PZ``, or
  ``JointModelPrismaticUnaligned``), a ``hinge`` a revolute one (``JointModelR*``). Several
  joints in one body become one ``JointModelComposite``, so assets give each joint a body.
- Position limits come from the joint ``range``; effort limits come from the joint
  ``actuatorfrcrange`` (into ``lowerEffortLimit``/``upperEffortLimit``/``effortLimit``), NOT
  from the actuator's ``forcerange``, so every asset writes its effort limit in both places.
"""

from __future__ import annotations

from functools import cache

import mujoco
import numpy as np
import pinocchio
import pytest

from sim2real.sim.assets import ROBOTS, asset_path
from sim2real.sim.robot import RobotModel

# Facts sheets (shared/robots/<robot>.md, from example-robot-data 6.0.0):
# joint -> (lower, upper, effort). Go2's legs repeat per leg; thighs differ front/rear.
# The point mass is no real robot: its facts are the design values in point.xml's header.
_GO2_KINDS = {
    "hip": (-1.0472, 1.0472, 23.7),
    "thigh_front": (-1.5708, 3.4907, 23.7),
    "thigh_rear": (-0.5236, 4.5379, 23.7),
    "calf": (-2.7227, -0.83776, 45.43),
}
FACT_JOINTS = {
    "go2": {
        f"{leg}_{part}_joint": _GO2_KINDS[
            part if part != "thigh" else ("thigh_front" if leg[0] == "F" else "thigh_rear")
        ]
        for leg in ("FL", "FR", "RL", "RR")
        for part in ("hip", "thigh", "calf")
    },
    "panda": {
        "panda_joint1": (-2.8973, 2.8973, 87.0),
        "panda_joint2": (-1.7628, 1.7628, 87.0),
        "panda_joint3": (-2.8973, 2.8973, 87.0),
        "panda_joint4": (-3.0718, -0.0698, 87.0),
        "panda_joint5": (-2.8973, 2.8973, 12.0),
        "panda_joint6": (-0.0175, 3.7525, 12.0),
        "panda_joint7": (-2.8973, 2.8973, 12.0),
    },
    "point": {"x": (-0.5, 0.5, 50.0), "y": (-0.5, 0.5, 50.0)},
}

# Total masses from the facts sheets. No asset leaves a mass out (Go2 keeps its rotors
# and feet, Panda its hand and both fingers as fixed bodies), so the only gap is the sheets'
# rounding to grams: 1e-3 kg (e.g. Panda sums to 17.451901 kg, the sheet says 17.452).
# Point: a 1 kg ball on a 0.01 kg carriage.
# Joint velocity limits, rad/s (m/s for the point), in actuator order: the facts sheets'
# "velocity" column (Go2 hip/thigh 30.1, calf 15.70; Panda 2.175 and 2.61); the point's
# 2 m/s is point.xml's design value.
FACT_VELOCITY_LIMITS = {
    "go2": [30.1, 30.1, 15.70] * 4,
    "panda": [2.175] * 4 + [2.61] * 3,
    "point": [2.0, 2.0],
}

FACT_TOTAL_MASS = {"go2": 16.085, "panda": 17.452, "point": 1.01}
FACT_MASS_TOL = 1e-3


@cache
def mj_model(robot: str) -> mujoco.MjModel:
    return mujoco.MjModel.from_xml_path(str(asset_path(robot)))


@cache
def pin_model(robot: str) -> pinocchio.Model:
    return pinocchio.buildModelFromMJCF(str(asset_path(robot)))


# Axis joints: the one-DoF joints every asset actuates, hinge (revolute) or slide (prismatic).
# As ints: ``np.int32 in (mjtJoint, ...)`` is False, since mjtJoint == np.int32 is False.
AXIS_JOINTS = (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE))


def mj_axis_joints(model: mujoco.MjModel) -> list[int]:
    return [j for j in range(model.njnt) if model.jnt_type[j] in AXIS_JOINTS]


def pin_axis_joints(model: pinocchio.Model) -> list[int]:
    # Joint 0 is the universe (reported as JointModelRX); revolute joints are JointModelR*,
    # prismatic ones JointModelP*.
    return [
        j
        for j in range(1, model.njoints)
        if model.joints[j].nq == 1
        and model.joints[j].shortname().startswith(("JointModelR", "JointModelP"))
    ]


@pytest.mark.parametrize("robot", ROBOTS)
def test_same_axis_joints_in_same_order(robot):
    mj, pin = mj_model(robot), pin_model(robot)
    mj_names = [mj.joint(j).name for j in mj_axis_joints(mj)]
    pin_names = [pin.names[j] for j in pin_axis_joints(pin)]
    assert mj_names == pin_names
    assert mj_names == list(FACT_JOINTS[robot])
    # Besides the axis joints there is at most one free joint, the floating base, in both models.
    mj_other = [mj.joint(j).name for j in range(mj.njnt) if j not in mj_axis_joints(mj)]
    pin_other = [pin.names[j] for j in range(1, pin.njoints) if j not in pin_axis_joints(pin)]
    assert mj_other == pin_other
    assert len(mj_other) <= 1
    if mj_other:
        assert mj.jnt_type[0] == mujoco.mjtJoint.mjJNT_FREE
        assert pin.joints[1].shortname() == "JointModelFreeFlyer"
    assert mj.nv == pin.nv


@pytest.mark.parametrize("robot", ROBOTS)
def test_same_position_limits(robot):
    mj, pin = mj_model(robot), pin_model(robot)
    for jm, jp in zip(mj_axis_joints(mj), pin_axis_joints(pin), strict=True):
        name = mj.joint(jm).name
        lower, upper, _ = FACT_JOINTS[robot][name]
        assert mj.jnt_limited[jm], name
        iq = pin.joints[jp].idx_q
        np.testing.assert_allclose(mj.jnt_range[jm], [lower, upper], rtol=0, atol=1e-12)
        np.testing.assert_allclose(
            [pin.lowerPositionLimit[iq], pin.upperPositionLimit[iq]], [lower, upper], atol=1e-12
        )


@pytest.mark.parametrize("robot", ROBOTS)
def test_same_effort_limits(robot):
    # MuJoCo's actuator forcerange (the project's convention), MuJoCo's joint
    # actuatorfrcrange (what Pinocchio parses) and Pinocchio's effort limits must all equal
    # the facts sheet's effort limit, symmetric.
    mj, pin = mj_model(robot), pin_model(robot)
    actuator_of = {mj.actuator_trnid[a, 0]: a for a in range(mj.nu)}
    for jm, jp in zip(mj_axis_joints(mj), pin_axis_joints(pin), strict=True):
        name = mj.joint(jm).name
        effort = FACT_JOINTS[robot][name][2]
        a = actuator_of[jm]
        assert mj.actuator_forcelimited[a], name
        np.testing.assert_allclose(mj.actuator_forcerange[a], [-effort, effort], atol=1e-12)
        assert mj.jnt_actfrclimited[jm], f"{name}: joint actuatorfrcrange missing"
        np.testing.assert_allclose(mj.jnt_actfrcrange[jm], [-effort, effort], atol=1e-12)
        iv = pin.joints[jp].idx_v
        np.testing.assert_allclose(
            [pin.lowerEffortLimit[iv], pin.upperEffortLimit[iv], pin.effortLimit[iv]],
            [-effort, effort, effort],
            atol=1e-12,
        )


@pytest.mark.parametrize("robot", ROBOTS)
def test_velocity_limits_from_the_asset(robot):
    robot_model = RobotModel.from_mujoco(mj_model(robot))
    assert list(robot_model.velocity_limits) == FACT_VELOCITY_LIMITS[robot]


@pytest.mark.parametrize(
    ("custom", "match"),
    [
        ("", "no joint velocity limits"),
        ('<numeric name="velocity_limits" data="1 2"/>', "has 2 values, expected one per"),
        ('<numeric name="velocity_limits" data="0"/>', "must be finite and > 0"),
    ],
)
def test_velocity_limits_missing_or_malformed_are_refused(custom, match):
    xml = f"""<mujoco model="one">
      <worldbody><body><joint name="j" range="-1 1"/><geom size="0.1" mass="1"/></body></worldbody>
      <custom>{custom}</custom>
      <actuator><position name="j" joint="j" kp="5" kv="0.5" forcerange="-2 2"/></actuator>
      <keyframe><key name="home" qpos="0" ctrl="0"/></keyframe>
    </mujoco>"""
    with pytest.raises(ValueError, match=match):
        RobotModel.from_mujoco(mujoco.MjModel.from_xml_string(xml))


@pytest.mark.parametrize("robot", ROBOTS)
def test_same_total_mass(robot):
    mj, pin = mj_model(robot), pin_model(robot)
    mj_total = mujoco.mj_getTotalmass(mj)
    pin_total = sum(inertia.mass for inertia in pin.inertias)  # includes the universe's share
    assert pin_total == pytest.approx(mj_total, rel=1e-9)
    assert mj.body_subtreemass[0] == pytest.approx(mj_total, rel=1e-9)


@pytest.mark.parametrize("robot", ROBOTS)
def test_same_subtree_mass_per_joint(robot):
    mj, pin = mj_model(robot), pin_model(robot)
    for jm, jp in zip(mj_axis_joints(mj), pin_axis_joints(pin), strict=True):
        pin_subtree = sum(pin.inertias[k].mass for k in pin.subtrees[jp])
        mj_subtree = mj.body_subtreemass[mj.jnt_bodyid[jm]]
        assert pin_subtree == pytest.approx(mj_subtree, rel=1e-9), mj.joint(jm).name


@pytest.mark.parametrize("robot", ROBOTS)
def test_total_mass_matches_facts(robot):
    total = mujoco.mj_getTotalmass(mj_model(robot))
    assert abs(total - FACT_TOTAL_MASS[robot]) <= FACT_MASS_TOL


@pytest.mark.parametrize("robot", ROBOTS)
def test_one_position_actuator_per_axis_joint_named_like_it(robot):
    mj = mj_model(robot)
    joints = mj_axis_joints(mj)
    assert mj.nu == len(joints)
    for a in range(mj.nu):
        assert mj.actuator_trntype[a] == mujoco.mjtTrn.mjTRN_JOINT
        joint = mj.actuator_trnid[a, 0]
        assert joint == joints[a]  # actuators in joint order
        assert mj.actuator(a).name == mj.joint(joint).name
        # MJCF <position kp kv>: gain kp, bias [0, -kp, -kv], no activation dynamics.
        assert mj.actuator_dyntype[a] == mujoco.mjtDyn.mjDYN_NONE
        assert mj.actuator_gaintype[a] == mujoco.mjtGain.mjGAIN_FIXED
        assert mj.actuator_biastype[a] == mujoco.mjtBias.mjBIAS_AFFINE
        kp, bias = mj.actuator_gainprm[a, 0], mj.actuator_biasprm[a, :3]
        assert kp > 0
        assert bias[0] == 0
        assert bias[1] == -kp
        assert bias[2] <= 0  # -kv
        assert not mj.actuator_ctrllimited[a]


@pytest.mark.parametrize("robot", ROBOTS)
def test_home_keyframe(robot):
    mj = mj_model(robot)
    key = mj.key("home")  # raises KeyError if missing
    qpos, ctrl = mj.key_qpos[key.id], mj.key_ctrl[key.id]
    joint_home = np.array([qpos[mj.jnt_qposadr[mj.actuator_trnid[a, 0]]] for a in range(mj.nu)])
    np.testing.assert_array_equal(ctrl, joint_home)
    for j in mj_axis_joints(mj):
        lower, upper = mj.jnt_range[j]
        assert lower <= qpos[mj.jnt_qposadr[j]] <= upper, mj.joint(j).name
    # Pinocchio reads the keyframe too; axis-joint entries keep MuJoCo's values.
    pin = pin_model(robot)
    pin_home = pin.referenceConfigurations["home"]
    for jm, jp in zip(mj_axis_joints(mj), pin_axis_joints(pin), strict=True):
        assert pin_home[pin.joints[jp].idx_q] == qpos[mj.jnt_qposadr[jm]]


@pytest.mark.parametrize("robot", ROBOTS)
def test_joint_sensors_named_after_joints(robot):
    mj = mj_model(robot)
    for j in mj_axis_joints(mj):
        name = mj.joint(j).name
        pos, vel = mj.sensor(f"{name}_pos"), mj.sensor(f"{name}_vel")
        assert mj.sensor_type[pos.id] == mujoco.mjtSensor.mjSENS_JOINTPOS
        assert mj.sensor_type[vel.id] == mujoco.mjtSensor.mjSENS_JOINTVEL
        assert mj.sensor_objid[pos.id] == j
        assert mj.sensor_objid[vel.id] == j


@pytest.mark.parametrize(("robot", "dofs"), [("panda", 7), ("point", 2)])
def test_end_effector_site(robot, dofs):
    mj, pin = mj_model(robot), pin_model(robot)
    assert mj.nq == mj.nv == dofs
    data = mujoco.MjData(mj)
    mujoco.mj_resetDataKeyframe(mj, data, mj.key("home").id)
    mujoco.mj_forward(mj, data)
    ee = mj.sensor("ee_pos")
    assert mj.sensor_type[ee.id] == mujoco.mjtSensor.mjSENS_FRAMEPOS
    np.testing.assert_allclose(
        data.sensordata[ee.adr[0] : ee.adr[0] + 3], data.site("ee_site").xpos
    )
    # Pinocchio turns the site into an operational frame at the same place, at home and at
    # a random pose within the limits (fixed base: both models share the joint order).
    pdata = pin.createData()
    pinocchio.framesForwardKinematics(pin, pdata, pin.referenceConfigurations["home"])
    np.testing.assert_allclose(
        pdata.oMf[pin.getFrameId("ee_site")].translation, data.site("ee_site").xpos, atol=1e-9
    )
    data.qpos[:] = np.random.default_rng(0).uniform(*mj.jnt_range.T)
    mujoco.mj_forward(mj, data)
    pinocchio.framesForwardKinematics(pin, pdata, data.qpos.copy())
    np.testing.assert_allclose(
        pdata.oMf[pin.getFrameId("ee_site")].translation, data.site("ee_site").xpos, atol=1e-9
    )
