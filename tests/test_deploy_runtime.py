"""The deploy runtime: observation parity with the simulator, contract checks, the tick loop.

Policies, exported once per module: point-reach trained for a few PPO iterations (the
closed-loop tests need one that reaches), and random-init go2-flat, arm-reach and
point-reach GRU and student policies (parity and plumbing need no training).

Parity: simulator states of each task (randomization off) are replayed to the runtime as
by-name ``RobotState``s in a shuffled joint order, with a joint the policy does not use;
the runtime's actions drive the simulator, and every step the runtime's observation must
equal the env's ``policy`` observation within 1e-6, the last action included.
"""

from __future__ import annotations

import dataclasses
import io
import math
import re
import sys
from pathlib import Path

import mujoco
import numpy as np
import onnx
import pytest
import torch
from rich.console import Console

from sim2real.deploy.controller import Mode
from sim2real.deploy.limits import RobotLimits
from sim2real.deploy.robot_state import ImuReading, JointState, RobotState
from sim2real.deploy.runtime import ContractMismatch, PolicyRuntime
from sim2real.deploy.safety import SafetyConfig
from sim2real.deploy.state_machine import State
from sim2real.export.exporter import export_checkpoint, export_policy
from sim2real.export.loading import load_policy
from sim2real.export.model_file import embed_contract
from sim2real.export.source import source_from_state
from sim2real.policies.config import build_config
from sim2real.policies.runner import Trainer
from sim2real.policies.student import ObservationHistory
from sim2real.sim.assets import asset_path
from sim2real.sim.robot import RobotModel
from sim2real.sim.tasks import make_env

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from export_latency import untrained_state  # noqa: E402 (random-init checkpoints)

#: Parity tolerance of the deploy observation against the simulator's.
PARITY_TOL = 1e-6
#: Safety settings for replaying simulator states: nothing but the observation is tested,
#: and the env applies the raw actions, unfiltered (fast motions, falls).
REPLAY_SAFETY = SafetyConfig(max_tilt_rad=None, velocity_tolerance=100.0)
FAST = ["nthread=1", "tensorboard=false", "torch_threads=1"]


@pytest.fixture(scope="module")
def policy_file(tmp_path_factory):
    """``policy_file(name)``: the path of an exported policy, exported once.

    ``point-trained``: point-reach MLP after 25 PPO iterations; ``TASK`` or
    ``TASK:gru|student``: a random-init policy of that task.
    """
    paths = {}

    def get(name: str) -> Path:
        if name not in paths:
            folder = tmp_path_factory.mktemp(name.replace(":", "-"))
            if name == "point-trained":
                config = build_config("point-reach", overrides=[*FAST, "max_iterations=25"])
                trainer = Trainer(
                    config, run_dir=folder / "run", console=Console(file=io.StringIO())
                )
                trainer.learn()
                paths[name] = export_checkpoint(folder / "run", folder / "policy.onnx").onnx_path
            else:
                task, _, variant = name.partition(":")
                source = source_from_state(untrained_state(task, variant or "mlp"), name)
                paths[name] = export_policy(source, folder / "policy.onnx").onnx_path
        return paths[name]

    return get


def runtime_for(path, joint_names=None, **kwargs) -> PolicyRuntime:
    """A configured runtime for the policy at ``path`` (its own joint list by default)."""
    if joint_names is None:
        joint_names = load_policy(path).contract.joint_names
    runtime = PolicyRuntime(path, joint_names, **kwargs)
    runtime.configure()
    return runtime


def sim_state(env, now: float, order: np.ndarray, command_key: str | None) -> RobotState:
    """Env 0's state as a robot reports it: joints by name in ``order``, plus a stranger."""
    state = env.task.robot_state()
    names = [env.robot.joint_names[j] for j in order] + ["unused_gripper"]
    joints = JointState(
        names,
        np.append(state["joint_pos"][0, order], 0.0),
        np.append(state["joint_vel"][0, order], 0.0),
        now,
    )
    imu = None
    if "imu_quat" in state:
        imu = ImuReading(state["imu_quat"][0].copy(), state["imu_ang_vel"][0].copy(), now)
    command = None if command_key is None else state[command_key][0].copy()
    return RobotState(joints, imu, command)


def replay(env, runtime: PolicyRuntime, steps: int, seed: int = 0):
    """Drive ``env`` (1 env) with the runtime's raw actions; yield (env obs, runtime) each step.

    The runtime sees the env's states through ``sim_state``; an episode end in the env
    (termination or time-out, then the env's reset) is an e-stop and a reset for the runtime.
    """
    rng, order = np.random.default_rng(seed), np.arange(env.num_actions)
    while np.array_equal(order, np.arange(env.num_actions)):  # a real shuffle
        order = rng.permutation(env.num_actions)
    key = None if runtime.builder.command is None else runtime.builder.command.key
    obs = env.reset(seed=seed)["policy"][0]
    runtime.activate(0.0)
    for step in range(steps):
        now = step * env.step_dt
        command = runtime.tick(now, sim_state(env, now, order, key))
        assert command.state in (State.STANDUP, State.RUNNING), runtime.diagnostics()
        yield obs, runtime
        result = env.step(runtime.last_actions[None].astype(np.float32))
        obs = result.obs["policy"][0]
        if result.terminated[0] or result.time_outs[0]:
            runtime.estop(now, "episode ended in the simulator")
            runtime.reset(now)


# --------------------------------------------------------------------------- parity


@pytest.mark.parametrize(
    ("task", "policy", "steps"),
    [
        ("go2-flat", "go2-flat", 300),
        ("arm-reach", "arm-reach", 250),  # one time-out (200 steps) and its reset
        ("point-reach", "point-trained", 250),  # two time-outs (100 steps)
    ],
)
def test_observation_equals_the_simulators(policy_file, task, policy, steps):
    env = make_env(task, 1, seed=0, nthread=1, randomization="off")
    runtime = runtime_for(policy_file(policy), standup_s=0.0, fade_s=0.0, safety=REPLAY_SAFETY)
    assert runtime.contract.observation_terms[-1].name == "last_action"  # the last J values
    worst, starts, previous = 0.0, 0, None
    for obs, rt in replay(env, runtime, steps):
        diff = float(np.max(np.abs(rt.last_observation - obs)))
        assert diff <= PARITY_TOL, (rt.runner.steps, diff)
        worst = max(worst, diff)
        last_action = rt.last_observation[-env.num_actions :]
        if rt.runner.steps == 1:  # an episode's first step: no previous action
            starts += 1
            np.testing.assert_array_equal(last_action, 0.0)
        else:  # the raw action of the step before, as sent
            np.testing.assert_array_equal(last_action, np.clip(previous, -100, 100))
        previous = rt.last_actions.copy()
    assert starts == 1 + steps // round(env.max_episode_length) or task == "go2-flat"
    print(f"{task}: max |obs deploy - obs sim| = {worst:.2e} over {steps} steps")


def test_observation_normalizes_the_imu_quaternion(policy_file):
    runtime = runtime_for(policy_file("go2-flat"))
    builder = runtime.builder
    names = runtime.joint_names
    q = np.asarray(builder.state["default_joint_pos"])
    quat = np.array([0.9, 0.1, -0.2, 0.3])
    unit = builder.observe(RobotState(JointState(names, q, q * 0, 0), ImuReading(quat, [0] * 3, 0)))
    scaled = ImuReading(1.05 * quat / np.linalg.norm(quat), [0] * 3, 0)
    np.testing.assert_array_equal(
        builder.observe(RobotState(JointState(names, q, q * 0, 0), scaled)), unit
    )


# --------------------------------------------------------------------------- contract


@pytest.mark.parametrize(
    ("edit", "period", "field", "named"),
    [
        (lambda names: names[:-1], None, "joint_names", ["RR_calf_joint"]),
        (lambda names: [names[3], *names[1:3], names[0], *names[4:]], None, "joint_names",
         ["FL_hip_joint", "FR_hip_joint"]),
        (lambda names: [*names[:-1], "RR_knee_joint"], None, "joint_names",
         ["RR_calf_joint", "RR_knee_joint"]),
        (lambda names: names, 0.01, "control_period_s", []),
    ],
    ids=["missing joint", "other order", "renamed joint", "other period"],
)  # fmt: skip
def test_contract_mismatch_names_the_field_and_joints(policy_file, edit, period, field, named):
    path = policy_file("go2-flat")
    names = list(load_policy(path).contract.joint_names)
    runtime = PolicyRuntime(path, edit(names), control_period=period)
    with pytest.raises(ContractMismatch) as error:
        runtime.configure()
    assert isinstance(error.value, ValueError)
    assert error.value.field == field and f"'{field}'" in str(error.value)
    assert set(named) <= set(error.value.joints)
    for joint in named:
        assert repr(joint) in str(error.value)
    assert not runtime.configured
    with pytest.raises(RuntimeError, match="configure"):
        runtime.tick(0.0, RobotState(JointState(names, np.zeros(12), np.zeros(12), 0.0)))


def test_contract_matching_the_robot_configures(policy_file):
    path = policy_file("go2-flat")
    runtime = runtime_for(path, control_period=1 / 50, task="go2-flat")
    assert runtime.control_period == pytest.approx(0.02)
    assert runtime.state is State.INACTIVE
    with pytest.raises(ContractMismatch, match="'task'"):
        runtime_for(path, task="go2-rough")


def _edit_term(index: int, **changes):
    def edit(contract):
        terms = list(contract.observation_terms)
        terms[index] = dataclasses.replace(terms[index], **changes)
        return dataclasses.replace(contract, observation_terms=terms)

    return edit


@pytest.mark.parametrize(
    ("policy", "edit", "field"),
    [
        ("arm-reach", _edit_term(1, scale=0.2), "observation_terms[1].scale"),
        ("go2-flat", _edit_term(2, scale=[2.0, 2.0, 0.5]), "observation_terms[2].scale"),
        ("arm-reach", _edit_term(2, clip=5.0), "observation_terms[2].clip"),
        ("arm-reach", _edit_term(0, name="joint_pos"), "observation_terms[0].name"),
        ("go2-flat", lambda c: dataclasses.replace(c, observation_group="critic"),
         "observation_terms"),
        ("go2-flat", lambda c: dataclasses.replace(c, observation_group="proprio"),
         "observation_group"),
        ("arm-reach", lambda c: dataclasses.replace(c, velocity_limits=None), "velocity_limits"),
    ],
)  # fmt: skip
def test_observation_layout_or_limits_unlike_the_tasks_are_refused(
    policy_file, tmp_path, policy, edit, field
):
    # the contract sits outside the hashed graph: a file with an edited contract loads
    path = policy_file(policy)
    contract = edit(load_policy(path).contract)
    edited = tmp_path / "edited.onnx"
    edited.write_bytes(embed_contract(onnx.load(path), contract))
    with pytest.raises(ContractMismatch) as error:
        runtime_for(edited)
    assert error.value.field == field, error.value


def test_limits_from_the_contract_are_the_assets(policy_file):
    for task, robot in (("go2-flat", "go2"), ("arm-reach", "panda")):
        contract = load_policy(policy_file(task)).contract
        model = RobotModel.from_mujoco(mujoco.MjModel.from_xml_path(str(asset_path(robot))))
        from_contract = RobotLimits.from_contract(contract)
        from_asset = RobotLimits.from_robot_model(model, 0.02)
        for field in dataclasses.fields(RobotLimits):
            a, b = getattr(from_contract, field.name), getattr(from_asset, field.name)
            np.testing.assert_array_equal(a, b, err_msg=field.name)


# --------------------------------------------------------------------------- tick loop


class SimRobot:
    """A MuJoCo robot driven as a joint driver would: each ``Command``'s gains and targets.

    Torque ``kp (targets − q) − kd q̇`` through the asset's position actuators, whose gains
    are set from the command; joint states reported by name in reverse order.
    """

    def __init__(self, robot: str, control_period: float):
        self.model = mujoco.MjModel.from_xml_path(str(asset_path(robot)))
        self.data = mujoco.MjData(self.model)
        mujoco.mj_resetDataKeyframe(self.model, self.data, self.model.key("home").id)
        mujoco.mj_forward(self.model, self.data)
        self.robot = RobotModel.from_mujoco(self.model)
        self.substeps = round(control_period / self.model.opt.timestep)

    def state(self, now: float) -> RobotState:
        names = list(self.robot.joint_names)[::-1]
        q = self.data.qpos[self.robot.qpos_adr][::-1].copy()
        qd = self.data.qvel[self.robot.dof_adr][::-1].copy()
        return RobotState(JointState(names, q, qd, now))

    def apply(self, command) -> None:
        self.model.actuator_gainprm[:, 0] = command.kp
        self.model.actuator_biasprm[:, 1] = -command.kp
        self.model.actuator_biasprm[:, 2] = -command.kd
        self.data.ctrl[:] = command.targets
        mujoco.mj_step(self.model, self.data, self.substeps)

    @property
    def ee(self) -> np.ndarray:
        return self.data.site("ee_site").xpos.copy()


def run(runtime, robot, start: float, seconds: float) -> list:
    """Tick for ``seconds`` from ``start``; return the commands."""
    commands = []
    period = runtime.control_period
    for k in range(round(seconds / period)):
        commands.append(runtime.tick(start + k * period, robot.state(start + k * period)))
        robot.apply(commands[-1])
    return commands


def test_tick_loop_states_modes_and_diagnostics(policy_file):
    runtime = runtime_for(policy_file("point-trained"), standup_s=0.5, fade_s=0.5)
    robot = SimRobot("point", runtime.control_period)
    inactive = run(runtime, robot, 0.0, 0.2)
    assert {c.mode for c in inactive} == {Mode.PASSIVE}
    assert runtime.diagnostics()["policy_steps"] == 0  # no policy before activation

    assert runtime.activate(1.0)
    ramp = run(runtime, robot, 1.0, 0.5)
    assert {(c.state, c.mode) for c in ramp} == {(State.STANDUP, Mode.POSITION)}
    assert runtime.diagnostics()["policy_steps"] == 0  # not during the ramp
    fade = run(runtime, robot, 1.5, 0.6)
    assert fade[-1].state is State.RUNNING and fade[0].state is State.STANDUP
    steps = runtime.diagnostics()["policy_steps"]
    assert 25 <= steps <= 31 and runtime.runner.steps == steps  # one episode since the fade
    for command in ramp + fade:
        assert np.all(np.abs(command.targets) <= 0.5 - 0.05 + 1e-12)  # limits with margin
        np.testing.assert_array_equal(command.kp, 400.0)

    values = runtime.diagnostics()
    assert values["state"] == "running" and values["mode"] == "position"
    assert values["reason"] == "soft start complete" and values["task"] == "point-reach"
    assert values["tick_period_s"] == pytest.approx(0.02)
    for key in ("tick_us", "observation_us", "inference_us", "safety_us"):
        assert 0 < values[key] < 1e6, key
    assert values["joint_state_age_s"] == 0.0 and math.isnan(values["imu_age_s"])
    assert values["last_fault"] == "" and values["damping_entries"] == 0
    assert all(isinstance(v, (float, str)) for v in values.values())


def test_closed_loop_reaches_commanded_targets(policy_file):
    runtime = runtime_for(policy_file("point-trained"), standup_s=0.5, fade_s=0.5)
    robot = SimRobot("point", runtime.control_period)
    np.testing.assert_array_equal(runtime.builder.current_command, 0.0)  # home: stay
    runtime.activate(0.0)
    now = 0.0
    for target in ([0.3, -0.25, 0.0], [-0.2, 0.35, 0.0]):
        runtime.set_command(target)
        commands = run(runtime, robot, now, 3.0)
        now += 3.0
        assert commands[-1].state is State.RUNNING
        assert np.linalg.norm(robot.ee - target) < 0.03, (target, robot.ee)
    assert runtime.diagnostics()["damping_entries"] == 0


# --------------------------------------------------------------------------- memory


@pytest.mark.parametrize("kind", ["gru", "student"])
def test_recurrent_and_student_policies_follow_the_training_pipeline(policy_file, kind):
    # reference: the env's own observations through the training-side memory conventions
    path = policy_file(f"point-reach:{kind}")
    policy = load_policy(path)
    env = make_env("point-reach", 1, seed=1, nthread=1, randomization="off")
    runtime = runtime_for(path, standup_s=0.0, fade_s=0.0, safety=REPLAY_SAFETY)
    hidden = policy.initial_state(1)
    history = ObservationHistory(
        1, policy.contract.history_length, policy.contract.observation_size
    )
    starts = 0
    for obs, rt in replay(env, runtime, 150):  # one time-out at 100 steps
        start = rt.runner.steps == 1
        starts += start
        if kind == "gru":
            expected, hidden = policy(obs[None], hidden, np.array([start]))
            np.testing.assert_allclose(rt.runner.hidden_state, hidden, atol=1e-5)
        else:
            window = (
                history.reset(torch.from_numpy(obs[None]))
                if start
                else history.push(torch.from_numpy(obs[None]), [False])
            )
            expected, _ = policy(window.numpy())
            np.testing.assert_allclose(rt.runner.history, window[0].numpy(), atol=PARITY_TOL)
        np.testing.assert_allclose(rt.last_actions, expected[0], atol=1e-5)
    assert starts == 2


# --------------------------------------------------------------------------- faults


class _BrokenSession:
    def __init__(self, outputs=None):
        self.outputs = outputs

    def run(self, names, feed):
        if self.outputs is None:
            raise RuntimeError("onnxruntime: out of memory")
        return self.outputs


def _missing_joint(runtime, robot, now):
    return RobotState(JointState(["x"], [0.0], [0.0], now))


def _nan_position(runtime, robot, now):
    return RobotState(JointState(["x", "y"], [np.nan, 0.0], [0.0, 0.0], now))


def _stale(runtime, robot, now):
    return robot.state(now - 0.2)


def _inference_error(runtime, robot, now):
    runtime.runner._session = _BrokenSession()
    return robot.state(now)


def _nan_action(runtime, robot, now):
    runtime.runner._session = _BrokenSession([np.full((1, 2), np.nan, np.float32)])
    return robot.state(now)


def _controller_error(runtime, robot, now):
    def broken(*args):
        raise ZeroDivisionError("a bug")

    runtime.controller.tick = broken
    return robot.state(now)


@pytest.mark.parametrize(
    ("fault", "reason", "counter"),
    [
        (_missing_joint, r"missing joints \['y'\]", "policy_errors"),
        (_nan_position, "not finite", "damping_entries"),
        (_stale, "stale", "damping_entries"),
        (_inference_error, "policy step failed: RuntimeError: onnxruntime", "policy_errors"),
        (_nan_action, r"policy targets not finite at \['x', 'y'\]", "damping_entries"),
        (_controller_error, "safety controller failed: ZeroDivisionError", "controller_errors"),
    ],
)
def test_faults_lead_to_damping_never_to_a_crash(policy_file, fault, reason, counter):
    runtime = runtime_for(policy_file("point-trained"), standup_s=0.0, fade_s=0.0)
    robot = SimRobot("point", runtime.control_period)
    runtime.activate(0.0)
    assert run(runtime, robot, 0.0, 0.1)[-1].mode is Mode.POSITION
    command = runtime.tick(0.1, fault(runtime, robot, 0.1))
    assert command.mode is Mode.DAMPING and command.state is State.DAMPING
    np.testing.assert_array_equal(command.kp, 0.0)
    np.testing.assert_array_equal(command.kd, 40.0)
    assert np.all(np.isfinite(command.targets))
    values = runtime.diagnostics()
    assert values["state"] == "damping" and values[counter] >= 1
    assert values["damping_entries"] == 1
    assert re.search(reason, values["last_fault"]), values["last_fault"]
    if fault is not _controller_error:
        assert runtime.controller.transitions[-1].target is State.DAMPING
        # good inputs do not clear the latch; reset does, and the policy runs again
        assert run(runtime, robot, 0.2, 0.1)[-1].mode is Mode.DAMPING
        if fault not in (_inference_error, _nan_action):
            assert runtime.reset(0.3)
            assert run(runtime, robot, 0.3, 0.1)[-1].state is State.RUNNING
            assert runtime.runner.steps == 5  # a new episode


def test_transitions_deactivate_estop_reset(policy_file):
    runtime = runtime_for(policy_file("point-trained"), standup_s=0.0, fade_s=0.0)
    robot = SimRobot("point", runtime.control_period)
    assert runtime.activate(0.0) and run(runtime, robot, 0.0, 0.1)[-1].state is State.RUNNING
    assert runtime.deactivate(0.1) and runtime.state is State.DAMPING
    assert run(runtime, robot, 0.1, 0.1)[-1].mode is Mode.DAMPING
    assert runtime.activate(0.2)  # a lifecycle re-activation leaves a deactivate's DAMPING
    assert run(runtime, robot, 0.2, 0.1)[-1].state is State.RUNNING
    assert runtime.estop(0.3, "operator") and runtime.diagnostics()["reason"] == "operator"
    assert not runtime.activate(0.4)  # an e-stop's latch needs a reset
    assert runtime.state is State.DAMPING
    assert runtime.reset(0.4) and runtime.state is State.STANDUP


def test_set_command_is_validated_and_clipped(policy_file):
    runtime = runtime_for(policy_file("go2-flat"))
    assert list(runtime.set_command([0.5, -0.2, 0.3])) == [0.5, -0.2, 0.3]
    for bad in ([0.5, 0.0], [np.nan, 0.0, 0.0], ["fast", 0, 0]):
        with pytest.raises(ValueError, match="command"):
            runtime.set_command(bad)
    assert list(runtime.set_command([3.0, 0.0, -2.0])) == [1.0, 0.0, -1.0]  # training ranges
    assert runtime.diagnostics()["commands_clipped"] == 1
    assert runtime.diagnostics()["command"] == "1 0 -1"
    arm = runtime_for(policy_file("arm-reach"))
    start = arm.builder.current_command  # the end effector at the default pose
    assert arm.builder.command.key == "target_pos"
    assert np.all(start >= arm.builder.command.low) and np.all(start <= arm.builder.command.high)
    with pytest.raises(RuntimeError, match="configure"):
        PolicyRuntime(policy_file("arm-reach"), []).set_command([0.4, 0.0, 0.4])


def test_go2_commands_get_the_standing_deadband_training_drew_them_with(policy_file):
    """Deploy turns a raw command into what training's resampling would have made of it."""
    runtime = runtime_for(policy_file("go2-flat"))
    assert list(runtime.set_command([0.1, -0.1, 0.4])) == [0.0, 0.0, 0.4]  # 0.14 m/s: stand
    assert list(runtime.set_command([0.2, 0.0, 0.0])) == [0.2, 0.0, 0.0]  # at the bar: walk
    env = make_env("go2-flat", 256, seed=0)
    low, high = np.array(env.task.command_ranges).T
    raw = np.random.default_rng(7).uniform(low, high, (256, 3))
    env.task._resample_commands(np.arange(256), np.random.default_rng(7))  # the same draws
    deployed = np.array([runtime.set_command(command) for command in raw])
    np.testing.assert_array_equal(deployed, env.task.command)
    standing = np.hypot(deployed[:, 0], deployed[:, 1]) == 0.0
    assert 0 < standing.sum() < len(raw) and (deployed[standing, 2] == raw[standing, 2]).all()
