"""The deploy safety core, stage by stage, with hand-made cases and injected faults."""

import logging
import re

import mujoco
import numpy as np
import pytest

from sim2real.deploy.controller import Mode, SafetyController
from sim2real.deploy.limits import RobotLimits
from sim2real.deploy.robot_state import (
    Fault,
    ImuReading,
    JointState,
    Measurement,
    RobotState,
    to_policy_order,
)
from sim2real.deploy.safety import (
    InputValidation,
    PositionLimit,
    RateLimit,
    SafetyChain,
    SafetyConfig,
    TiltDetection,
    TorqueBound,
    VelocityAwareLimit,
    Watchdog,
)
from sim2real.deploy.state_machine import SoftStart, State, StateMachine
from sim2real.sim.assets import asset_path
from sim2real.sim.robot import RobotModel

UPRIGHT = (1.0, 0.0, 0.0, 0.0)


def robot_limits(robot: str, **kwargs) -> RobotLimits:
    model = RobotModel.from_mujoco(mujoco.MjModel.from_xml_path(str(asset_path(robot))))
    return RobotLimits.from_robot_model(model, control_period=0.02, **kwargs)


GO2 = robot_limits("go2")


@pytest.fixture
def go2() -> RobotLimits:
    return GO2


def two_joints(**overrides) -> RobotLimits:
    """Round numbers for hand computations: τ/Kp = 0.5 rad, Kd/Kp = 0.1 s, 0.04 rad/tick."""
    values = dict(
        joint_names=("a", "b"),
        position_limits=[[-1.0, 1.0], [0.0, 2.0]],
        velocity_limits=[4.0, 4.0],
        effort_limits=[5.0, 5.0],
        kp=[10.0, 10.0],
        kd=[1.0, 1.0],
        default_joint_pos=[0.0, 1.0],
        control_period=0.01,
    )
    return RobotLimits(**{**values, **overrides})


def tilted(angle: float) -> tuple[float, ...]:
    """Quaternion (w, x, y, z) of a rotation by ``angle`` about the x axis."""
    return (np.cos(angle / 2), np.sin(angle / 2), 0.0, 0.0)


def robot_state(limits, q, qd=None, stamp=0.0, quat=UPRIGHT, imu_stamp=None, names=None):
    qd = np.zeros(len(q)) if qd is None else qd
    names = limits.joint_names if names is None else names
    imu_stamp = stamp if imu_stamp is None else imu_stamp
    return RobotState(JointState(names, q, qd, stamp), ImuReading(quat, (0.0, 0.0, 0.0), imu_stamp))


def measurement(q, qd) -> Measurement:
    return Measurement(np.asarray(q, float), np.asarray(qd, float), joint_stamp=0.0)


def pd_torque(limits, target, q, qd):
    return limits.kp * (target - q) - limits.kd * qd


# --- limits and robot state ----------------------------------------------------------------


def test_limits_from_the_go2_and_panda_assets(go2):
    assert go2.joint_names[:3] == ("FL_hip_joint", "FL_thigh_joint", "FL_calf_joint")
    assert go2.position_limits.shape == (12, 2) and go2.control_period == 0.02
    np.testing.assert_array_equal(go2.velocity_limits, [30.1, 30.1, 15.7] * 4)  # the asset's
    assert not go2.kp.flags.writeable
    panda = robot_limits("panda")
    assert panda.num_joints == 7
    np.testing.assert_array_equal(panda.velocity_limits, [2.175] * 4 + [2.61] * 3)
    np.testing.assert_array_equal(robot_limits("panda", velocity_limits=2.0).velocity_limits, 2.0)
    np.testing.assert_array_equal(panda.effort_limits, [87] * 4 + [12] * 3)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"position_limits": [[1.0, -1.0], [0.0, 2.0]]}, r"lower < upper; not so for \['a'\]"),
        ({"kp": [10.0, 0.0]}, r"kp must be > 0; not so for \['b'\]"),
        ({"kd": [1.0]}, r"kd has shape \(1,\)"),
        ({"effort_limits": [5.0, np.nan]}, "effort_limits is not finite"),
        ({"joint_names": ("a", "a")}, "unique"),
        ({"control_period": 0.0}, "control_period"),
    ],
)
def test_limits_refuse_bad_values(override, message):
    with pytest.raises(ValueError, match=message):
        two_joints(**override)


def test_joint_state_maps_names_to_policy_order():
    joints = JointState(["b", "gripper", "a"], [2.0, 9.0, 1.0], [20.0, 90.0, 10.0], 0.0)
    q, qd = to_policy_order(joints, ("a", "b"))
    np.testing.assert_array_equal(q, [1.0, 2.0])
    np.testing.assert_array_equal(qd, [10.0, 20.0])


@pytest.mark.parametrize(
    ("names", "position", "message"),
    [
        (["a"], [0.0], r"missing joints \['b'\] \(names present the policy does not use: \[\]\)"),
        (["a", "B"], [0.0, 0.0], r"missing joints \['b'\] .*: \['B'\]\)"),  # renamed
        (["a", "a", "b"], [0.0, 0.0, 0.0], r"duplicate joint names .*\['a'\]"),
        (["a", "b"], [0.0], r"joint positions has shape \(1,\), expected \(2,\)"),
        (["a", "b"], [[0.0, 0.0]], "joint positions has shape"),
        (["a", "b"], ["x", "y"], "joint positions is not numeric"),
    ],
)
def test_joint_state_faults_name_the_joints(names, position, message):
    joints = JointState(names, position, np.zeros(len(names)), 0.0)
    with pytest.raises(Fault, match=message):
        to_policy_order(joints, ("a", "b"))


# --- checks --------------------------------------------------------------------------------


def test_input_validation_accepts_a_plausible_state(go2):
    q = go2.upper - 0.01
    q[0] = go2.upper[0] + 0.09  # within the 0.1 rad measurement tolerance
    state = RobotState(
        JointState(go2.joint_names[::-1], q[::-1], np.full(12, 14.9)[::-1], 1.0),
        ImuReading((2.0 * 0.96, 0.0, 0.0, 0.0), (1.0, 2.0, 3.0), 1.0, lin_acc=(0, 0, 9.8)),
        command=(0.5, 0.0, 0.1),
    )
    m = InputValidation(go2, SafetyConfig(quat_norm_tolerance=1.0)).validate(state)
    np.testing.assert_array_equal(m.joint_pos, q)
    np.testing.assert_array_equal(m.imu_quat, UPRIGHT)  # normalized
    np.testing.assert_array_equal(m.command, (0.5, 0.0, 0.1))
    assert m.joint_stamp == 1.0 and m.imu_stamp == 1.0


def _replace_joint(limits, field, value):
    q, qd = limits.default_joint_pos.copy(), np.zeros(limits.num_joints)
    (q if field == "q" else qd)[2] = value
    return robot_state(limits, q, qd)


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (lambda L: _replace_joint(L, "q", np.nan), r"positions not finite at \['FL_calf_joint'\]"),
        (lambda L: _replace_joint(L, "qd", -np.inf), r"velocities not finite at \['FL_calf"),
        (lambda L: _replace_joint(L, "q", 1e9), r"position out of physical range: {'FL_calf"),
        (lambda L: _replace_joint(L, "q", L.upper[2] + 0.11), "position out of physical range"),
        (
            lambda L: _replace_joint(L, "qd", 1.5 * L.velocity_limits[2] + 0.1),
            "velocity out of physical range",
        ),
        (lambda L: robot_state(L, L.default_joint_pos, stamp=np.nan), "joint state stamp is nan"),
        (lambda L: robot_state(L, L.default_joint_pos, quat=(np.nan, 0, 0, 1)), "quaternion not"),
        (lambda L: robot_state(L, L.default_joint_pos, quat=(0, 0, 0, 0)), "norm 0"),
        (lambda L: robot_state(L, L.default_joint_pos, quat=(1, 0, 0)), r"shape \(3,\)"),
        (lambda L: RobotState(robot_state(L, L.default_joint_pos).joints), "no IMU reading"),
        (
            lambda L: RobotState(
                robot_state(L, L.default_joint_pos).joints,
                ImuReading(UPRIGHT, (0.0, 31.0, 0.0), 0.0),
            ),
            "angular velocity",
        ),
        (
            lambda L: RobotState(robot_state(L, L.default_joint_pos).joints, None, (np.nan,)),
            "no IMU reading",
        ),
    ],
)
def test_input_validation_faults(go2, fault, message):
    with pytest.raises(Fault, match=message):
        InputValidation(go2, SafetyConfig(velocity_tolerance=1.5)).validate(fault(go2))


def test_input_validation_without_imu_ignores_it_and_checks_the_command(go2):
    validation = InputValidation(go2, SafetyConfig(use_imu=False))
    joints = robot_state(go2, go2.default_joint_pos).joints
    assert validation.validate(RobotState(joints)).imu_quat is None
    with pytest.raises(Fault, match="command not finite"):
        validation.validate(RobotState(joints, command=(0.0, np.inf, 0.0)))


@pytest.mark.parametrize(
    ("now", "joint_stamp", "imu_stamp", "message"),
    [
        (1.0, 0.9375, 0.9375, None),  # exactly the maximum age
        (1.0, 1.0625, 1.0, None),  # a little ahead: clock jitter
        (1.0, 0.9, 1.0, r"joint state is stale: 0.1 s old > 0.0625 s"),
        (1.0, 1.0, 0.93, "IMU is stale"),
        (1.0, 1.2, 1.0, "joint state stamp is 0.2 s in the future"),
    ],
)
def test_watchdog(now, joint_stamp, imu_stamp, message):
    m = Measurement(np.zeros(2), np.zeros(2), joint_stamp, imu_stamp=imu_stamp)
    watchdog = Watchdog(SafetyConfig(max_joint_state_age_s=0.0625, max_imu_age_s=0.0625))
    if message is None:
        watchdog.check(now, m)
    else:
        with pytest.raises(Fault, match=message):
            watchdog.check(now, m)


@pytest.mark.parametrize(
    ("angle", "falls"), [(0.0, False), (0.99, False), (1.01, True), (3.1, True)]
)
def test_tilt_detection(angle, falls):
    for quat in (tilted(angle), tilted(-angle)):
        m = Measurement(np.zeros(2), np.zeros(2), 0.0, imu_quat=np.array(quat))
        if falls:
            with pytest.raises(Fault, match="fall"):
                TiltDetection(1.0).check(0.0, m)
        else:
            TiltDetection(1.0).check(0.0, m)


# --- target bounds -------------------------------------------------------------------------


def test_torque_bound_against_a_hand_computation():
    limits = two_joints()
    m = measurement([0.2, 1.0], [-1.0, 3.0])
    low, high = TorqueBound(limits).bounds(m, np.zeros(2))
    # q + (Kd q̇ ± τ) / Kp = 0.2 + (−1 ± 5) / 10 and 1.0 + (3 ± 5) / 10
    np.testing.assert_allclose(low, [-0.4, 0.8])
    np.testing.assert_allclose(high, [0.6, 1.8])
    np.testing.assert_allclose(pd_torque(limits, low, m.joint_pos, m.joint_vel), [-5.0, -5.0])
    np.testing.assert_allclose(pd_torque(limits, high, m.joint_pos, m.joint_vel), [5.0, 5.0])


def test_rate_position_and_velocity_aware_bounds_by_hand():
    limits = two_joints()
    config = SafetyConfig(position_margin_rad=0.05, velocity_horizon_s=0.02)
    m = measurement([0.0, 1.0], [10.0, -200.0])
    low, high = RateLimit(limits, config).bounds(m, np.array([0.3, 1.0]))
    np.testing.assert_allclose(low, [0.26, 0.96])  # 4 rad/s × 0.01 s = 0.04 rad per tick
    np.testing.assert_allclose(high, [0.34, 1.04])
    low, high = RateLimit(limits, SafetyConfig(rate_limit_rad_s=1.0)).bounds(m, np.zeros(2))
    np.testing.assert_allclose(high, [0.01, 0.01])
    low, high = PositionLimit(limits, config).bounds(m, np.zeros(2))
    np.testing.assert_allclose(low, [-0.95, 0.05])
    np.testing.assert_allclose(high, [0.95, 1.95])
    velocity_aware = VelocityAwareLimit(PositionLimit(limits, config), config.velocity_horizon_s)
    low, high = velocity_aware.bounds(m, np.zeros(2))
    # joint a moves up at 10 rad/s: 0.2 rad short of its upper margin; joint b moves down at
    # 200 rad/s: 4 rad of travel, more than the range, so its low bound is the upper margin
    np.testing.assert_allclose(low, [-0.95, 1.95])
    np.testing.assert_allclose(high, [0.75, 1.95])


@pytest.mark.parametrize(
    "field", ["position_margin_rad", "max_joint_state_age_s", "standup_s", "rate_limit_rad_s"]
)
@pytest.mark.parametrize("value", [-0.1, np.nan, np.inf, "1"])
def test_safety_config_refuses_bad_numbers(field, value):
    with pytest.raises(ValueError, match=f"SafetyConfig.{field} must be a number >= 0"):
        SafetyConfig(**{field: value})


def test_position_margin_must_fit_the_range():
    with pytest.raises(ValueError, match=r"margin wider than half the range of joints \['a'\]"):
        PositionLimit(two_joints(position_limits=[[0.0, 0.05], [0.0, 2.0]]), SafetyConfig())


def chain_filter(desired, q, qd, reference, **config):
    chain = SafetyChain(two_joints(), SafetyConfig(use_imu=False, **config))
    m = measurement(q, qd)
    return chain.filter(m, np.asarray(desired, float), np.asarray(reference, float))


def test_chain_keeps_every_bound_when_they_intersect():
    target = chain_filter(desired=[5.0, -5.0], q=[0.5, 1.0], qd=[0.0, 0.0], reference=[0.5, 1.0])
    np.testing.assert_allclose(target, [0.54, 0.96])  # the rate limit binds


def test_chain_priority_torque_bound_over_rate_limit():
    # the joint was pushed 1 rad from the previous target: holding the target (rate limit)
    # would ask 10 N·m > 5; the target follows to the torque bound instead
    target = chain_filter(desired=[0.0, 1.0], q=[-0.9, 1.0], qd=[0.0, 0.0], reference=[0.0, 1.0])
    np.testing.assert_allclose(target, [-0.4, 1.0])
    assert abs(pd_torque(two_joints(), target, [-0.9, 1.0], [0.0, 0.0])[0]) == pytest.approx(5.0)


def test_chain_velocity_aware_limit_binds_when_the_torque_bound_allows_it():
    # moving up at 4 rad/s from 0.9: 0.08 rad of travel in 0.02 s, so at most 0.95 − 0.08
    target = chain_filter(desired=[0.95, 1.0], q=[0.9, 1.0], qd=[4.0, 0.0], reference=[0.9, 1.0])
    np.testing.assert_allclose(target, [0.87, 1.0])


def test_chain_priority_torque_bound_over_velocity_aware_limit():
    # at 7 rad/s from 0.7 the velocity-aware limit asks for at most 0.95 − 0.14 = 0.81, but
    # braking harder than the effort limit is impossible: the torque bound allows ≥ 0.9
    q, qd = [0.7, 1.0], [7.0, 0.0]
    target = chain_filter(desired=[0.0, 1.0], q=q, qd=qd, reference=q, rate_limit_rad_s=1e3)
    np.testing.assert_allclose(target, [0.9, 1.0])
    assert pd_torque(two_joints(), target, q, qd)[0] == pytest.approx(-5.0)


def test_chain_priority_position_limit_over_torque_bound():
    # just outside the upper limit (within the measurement tolerance) and moving outwards:
    # every target inside the limits asks more than the effort limit; the limit wins and the
    # actuator saturates pulling the joint back
    q, qd = [1.09, 1.0], [4.0, 0.0]
    target = chain_filter(desired=[2.0, 1.0], q=q, qd=qd, reference=q)
    np.testing.assert_allclose(target, [0.95, 1.0])
    assert pd_torque(two_joints(), target, q, qd)[0] == pytest.approx(-5.4)  # 10·(−0.14) − 4


# --- state machine and soft start ----------------------------------------------------------


def test_state_machine_transitions_and_reasons(caplog):
    machine = StateMachine()
    with caplog.at_level(logging.INFO, logger="sim2real.deploy.state_machine"):
        assert not machine.reset(0.0)  # nothing to reset
        assert machine.activate(1.0)
        assert not machine.activate(1.5)
        assert machine.standup_complete(2.0)
        assert machine.fault(3.0, "joint state is stale")
        assert not machine.fault(3.1, "still stale")  # latched, no new transition
        assert not machine.activate(3.2)
        assert machine.reset(4.0)
    assert [(t.time, t.source, t.target, t.reason) for t in machine.transitions] == [
        (1.0, State.INACTIVE, State.STANDUP, "activated"),
        (2.0, State.STANDUP, State.RUNNING, "soft start complete"),
        (3.0, State.RUNNING, State.DAMPING, "joint state is stale"),
        (4.0, State.DAMPING, State.STANDUP, "reset"),
    ]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["3.000 s: RUNNING -> DAMPING: joint state is stale"]


def test_inactive_ignores_faults_but_latches_an_estop():
    machine = StateMachine()
    assert not machine.fault(0.0, "NaN") and machine.state is State.INACTIVE
    assert machine.estop(1.0) and machine.state is State.DAMPING
    assert not machine.activate(2.0) and machine.state is State.DAMPING


def test_soft_start_timing():
    soft_start = SoftStart(10.0, np.array([1.0]), np.array([0.0]), ramp_s=2.0, fade_s=1.0)
    policy = np.array([4.0])
    for now, expected, weight in [
        (9.0, 1.0, 0.0),
        (10.0, 1.0, 0.0),
        (11.0, 0.5, 0.0),
        (12.0, 0.0, 0.0),
        (12.25, 1.0, 0.25),  # 0.75 × default 0 + 0.25 × policy 4
        (13.0, 4.0, 1.0),
        (20.0, 4.0, 1.0),
    ]:
        assert soft_start.policy_weight(now) == weight
        np.testing.assert_allclose(soft_start.targets(now, policy), [expected])
        assert soft_start.complete(now) == (now >= 13.0)
    instant = SoftStart(0.0, np.array([1.0]), np.array([0.0]), ramp_s=0.0, fade_s=0.0)
    np.testing.assert_array_equal(instant.targets(0.0, policy), policy)


# --- the controller ------------------------------------------------------------------------


def wide_open(**overrides) -> RobotLimits:
    """Two joints whose torque and rate bounds never bind in the soft-start tests."""
    return two_joints(effort_limits=[1e6, 1e6], velocity_limits=[1e3, 1e3], **overrides)


def run(controller, limits, times, q, policy=None, **state):
    return [controller.tick(t, robot_state(limits, q, stamp=t, **state), policy) for t in times]


def test_controller_soft_start_ramp_then_policy_fade_then_running():
    limits = wide_open()
    config = SafetyConfig(standup_s=1.0, fade_s=0.5, use_imu=False)
    controller = SafetyController(limits, config)
    q = np.array([0.5, 1.5])  # default (0, 1)
    policy = np.array([0.2, 0.6])
    [inactive] = run(controller, limits, [0.0], q)
    assert inactive.mode is Mode.PASSIVE and inactive.state is State.INACTIVE
    np.testing.assert_array_equal(inactive.kp, 0.0)
    assert controller.activate(0.0)
    commands = run(controller, limits, [0.1, 0.6, 1.1, 1.35, 1.6, 1.7], q, policy)
    targets = [c.targets for c in commands]
    np.testing.assert_allclose(targets[0], q)  # the ramp starts at the measured pose at 0.1 s
    np.testing.assert_allclose(targets[1], [0.25, 1.25])  # halfway
    np.testing.assert_allclose(targets[2], [0.0, 1.0])  # ramp done, fade starts
    np.testing.assert_allclose(targets[3], [0.1, 0.8])  # half faded in
    np.testing.assert_allclose(targets[4], policy)
    assert [c.state for c in commands] == [State.STANDUP] * 4 + [State.RUNNING] * 2
    assert controller.transitions[-1][1:] == (State.STANDUP, State.RUNNING, "soft start complete")
    assert all(c.mode is Mode.POSITION for c in commands)
    np.testing.assert_array_equal(commands[0].kp, limits.kp)


def test_controller_rate_limit_per_tick_from_the_measured_pose():
    limits = two_joints(effort_limits=[1e6, 1e6])
    config = SafetyConfig(standup_s=0.0, fade_s=0.0, use_imu=False)
    controller = SafetyController(limits, config)
    controller.activate(0.0)
    q = np.array([0.0, 1.0])
    policy = np.array([0.5, 0.9])
    commands = run(controller, limits, np.arange(1, 15) * 0.01, q, policy)
    steps = np.diff([q] + [c.targets for c in commands], axis=0)
    # 4 rad/s × 0.01 s = 0.04 rad per tick until the policy's target is reached
    np.testing.assert_allclose(steps[:, 0], [0.04] * 12 + [0.02, 0.0], atol=1e-12)
    np.testing.assert_allclose(steps[:, 1], [-0.04, -0.04, -0.02] + [0.0] * 11, atol=1e-12)
    np.testing.assert_allclose(commands[-1].targets, policy)


def controller_running(limits, config, t_end=0.2):
    """A controller brought to RUNNING on the go2 at rest in its default pose."""
    controller = SafetyController(limits, config)
    controller.activate(0.0)
    times = np.arange(1, round(t_end / 0.02) + 1) * 0.02
    run(controller, limits, times, limits.default_joint_pos, limits.default_joint_pos)
    assert controller.state is State.RUNNING
    return controller, times[-1]


RENAMED = GO2.joint_names[:4] + ("FR_thigh",) + GO2.joint_names[5:]
FAULTS = {  # name: (what differs from a valid tick, the expected reason)
    "NaN position": (
        {"q": np.where(np.arange(12) == 3, np.nan, GO2.default_joint_pos)},
        r"joint positions not finite at \['FR_hip_joint'\]",
    ),
    "huge position": ({"q": np.full(12, 1e12)}, "position out of physical range"),
    "stale joint state": ({"joint_age": 0.5}, "joint state is stale"),
    "stale IMU": ({"imu_age": 0.5}, "IMU is stale"),
    "missing joint": (
        {"names": GO2.joint_names[:-1], "q": GO2.default_joint_pos[:-1]},
        r"missing joints \['RR_calf_joint'\]",
    ),
    "renamed joint": ({"names": RENAMED}, r"missing joints \['FR_thigh_joint'\] .*\['FR_thigh'\]"),
    "tilt": ({"quat": tilted(1.3)}, "base tilted 1.300 rad > 1.0 rad: fall"),
    "NaN policy": ({"policy": np.full(12, np.nan)}, "policy targets not finite"),
    "no policy": ({"policy": None}, "no policy targets"),
    "policy of the wrong size": ({"policy": np.zeros(11)}, r"policy targets has shape \(11,\)"),
    "clock back": ({"clock": -1.0}, "clock went back"),
}


def go2_tick(controller, now, q=GO2.default_joint_pos, policy=GO2.default_joint_pos, **fault):
    """One go2 tick at rest, with what a fault changes.

    ``fault`` may hold ``names``, ``quat``, ``joint_age`` and ``imu_age`` (of the stamps)
    and ``clock`` (an offset of the controller's ``now``).
    """
    stamp, imu_stamp = now - fault.pop("joint_age", 0.0), now - fault.pop("imu_age", 0.0)
    clock = fault.pop("clock", 0.0)
    state = robot_state(GO2, q, stamp=stamp, imu_stamp=imu_stamp, **fault)
    return controller.tick(now + clock, state, policy)


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_fault_in_running_damps_until_reset(go2, fault):
    controller, now = controller_running(go2, SafetyConfig(standup_s=0.1, fade_s=0.04))
    held = go2.default_joint_pos + 0.02
    go2_tick(controller, now + 0.02, q=held)
    now += 0.04
    inputs, reason = FAULTS[fault]
    command = go2_tick(controller, now, **inputs)
    assert command.state is State.DAMPING and command.mode is Mode.DAMPING
    transition = controller.transitions[-1]
    assert (transition.source, transition.target) == (State.RUNNING, State.DAMPING)
    assert re.search(reason, transition.reason), transition.reason
    # DAMPING: no stiffness, nominal damping, targets at the last pose that passed every check
    np.testing.assert_array_equal(command.kp, 0.0)
    np.testing.assert_array_equal(command.kd, go2.kd)
    last_valid = go2.default_joint_pos if "policy" in fault else held
    np.testing.assert_allclose(command.targets, last_valid)
    # perfectly good inputs do not clear the latch
    later = now + np.arange(1, 20) * 0.02
    commands = run(controller, go2, later, go2.default_joint_pos, go2.default_joint_pos)
    assert {c.state for c in commands} == {State.DAMPING}
    assert controller.reset(later[-1])
    [restart] = run(controller, go2, [later[-1] + 0.02], held, go2.default_joint_pos)
    assert restart.state is State.STANDUP and restart.mode is Mode.POSITION
    np.testing.assert_allclose(restart.targets, held)  # the ramp starts where the robot is


def test_estop_latches_until_an_explicit_reset(go2):
    controller, now = controller_running(go2, SafetyConfig(standup_s=0.1, fade_s=0.0))
    assert controller.estop(now, "operator pressed the e-stop")
    times = now + np.arange(1, 11) * 0.02
    commands = run(controller, go2, times, go2.default_joint_pos, go2.default_joint_pos)
    assert {(c.state, c.mode) for c in commands} == {(State.DAMPING, Mode.DAMPING)}
    assert not controller.activate(times[-1]) and not controller.estop(times[-1])
    assert controller.transitions[-1].reason == "operator pressed the e-stop"
    assert controller.reset(times[-1])
    # meanwhile the robot was moved 0.5 rad away from the last position targets: the first
    # STANDUP target is where it is now, not a rate-limited step from the old targets
    moved = go2.default_joint_pos + np.where(go2.default_joint_pos > 0, -0.5, 0.5)
    [command] = run(controller, go2, [times[-1] + 0.02], moved)
    assert command.state is State.STANDUP
    np.testing.assert_allclose(command.targets, moved)


def test_estop_while_inactive_blocks_activation(go2):
    controller = SafetyController(go2)
    assert controller.estop(0.0)
    assert not controller.activate(0.1)
    [command] = run(controller, go2, [0.2], go2.default_joint_pos)
    assert command.state is State.DAMPING
    assert controller.reset(0.3) and controller.state is State.STANDUP


def test_inactive_sends_passive_and_ignores_bad_inputs(go2):
    controller = SafetyController(go2)
    commands = run(controller, go2, [0.0, 0.02], np.full(12, np.nan))
    assert {(c.state, c.mode) for c in commands} == {(State.INACTIVE, Mode.PASSIVE)}
    assert controller.transitions == []
    assert controller.last_fault.startswith("joint positions not finite")
    np.testing.assert_array_equal(commands[0].kd, 0.0)
    np.testing.assert_allclose(commands[0].targets, go2.default_joint_pos)  # nothing measured


def test_damping_without_any_valid_measurement_holds_the_default_pose(go2):
    limits = go2
    controller = SafetyController(limits, SafetyConfig(damping_kd_scale=4.0))
    controller.activate(0.0)
    [command] = run(controller, limits, [0.02], np.full(12, np.inf))
    assert command.mode is Mode.DAMPING
    np.testing.assert_allclose(command.kd, 4.0 * limits.kd)
    np.testing.assert_allclose(command.targets, limits.default_joint_pos)
    assert not command.targets.flags.writeable and not command.kd.flags.writeable


def test_panda_without_imu_reaches_running_and_limits_stay_inside_margin():
    panda = robot_limits("panda", velocity_limits=2.0)
    config = SafetyConfig(use_imu=False, standup_s=0.1, fade_s=0.1)
    controller = SafetyController(panda, config)
    controller.activate(0.0)
    policy = panda.upper + 1.0  # beyond every upper limit
    times = np.arange(1, 41) * 0.02
    q = panda.default_joint_pos
    commands = [
        controller.tick(t, RobotState(JointState(panda.joint_names, q, np.zeros(7), t)), policy)
        for t in times
    ]
    assert commands[-1].state is State.RUNNING
    # the torque bound holds the arm near its measured pose: τ/Kp = 87/2000 = 0.0435 rad
    np.testing.assert_allclose(commands[-1].targets - q, panda.effort_limits / panda.kp)
