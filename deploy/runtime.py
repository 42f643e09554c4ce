"""``PolicyRuntime``: an exported policy on a robot, one ``tick`` per control period.

The ROS-free core of deployment (DESIGN contract 6) that the ROS 2 node drives::

    runtime = PolicyRuntime("go2.onnx", joint_names, standup_s=2.0, fade_s=1.0)
    runtime.configure()                 # load, check against the robot, build everything
    runtime.activate(now)               # INACTIVE -> STANDUP: soft start, then the policy
    runtime.set_command([0.5, 0.0, 0.0])
    command = runtime.tick(now, robot_state)   # every runtime.control_period seconds
    # command.mode, command.targets, command.kp, command.kd -> the joint driver
    runtime.estop(now, "operator")      # DAMPING, latched; runtime.reset(now) to leave it

Each tick: observation (``ObservationBuilder``: the training code's own terms) → ONNX
(``PolicyRunner``) → targets ``action_offset + action_scale × action`` → the safety
controller (``SafetyController``: checks, state machine, soft start, target bounds).
The policy runs only when its targets are used: in RUNNING and during the soft start's
fade-in, not during the ramp to the default pose. Its episode starts at its first step
after ``activate`` or ``reset`` (the robot then stands at the default pose, as after a
reset in training): no previous action, recurrent state zeroed, student history
refilled.

``tick`` never raises once configured: a bad input is a fault of the safety controller
(DAMPING, with the fault as the reason); any exception of the policy step (observation,
inference) latches DAMPING with the error as the reason; and should the safety
controller itself raise, the tick still returns a DAMPING command.

Not thread-safe: call it from one thread (a ROS executor's callbacks, or under a lock).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from sim2real.deploy.contract_check import ContractMismatch, check_robot
from sim2real.deploy.controller import Command, Mode, SafetyController
from sim2real.deploy.limits import RobotLimits
from sim2real.deploy.observation_builder import ObservationBuilder
from sim2real.deploy.policy_runner import PolicyRunner
from sim2real.deploy.robot_state import Fault, RobotState
from sim2real.deploy.safety import SafetyConfig
from sim2real.deploy.state_machine import State
from sim2real.export.contract import PolicyContract
from sim2real.export.loading import load_policy

__all__ = ["ContractMismatch", "PolicyRuntime"]

logger = logging.getLogger(__name__)

#: The reason ``deactivate`` gives DAMPING; ``activate`` may leave only such a DAMPING.
DEACTIVATED = "deactivated"


class PolicyRuntime:
    """An exported policy, checked against the robot, behind the safety controller.

    The constructor only stores its arguments; ``configure`` does the work.

    Args:
        policy_path: the ``.onnx`` file written by ``sim2real export``.
        joint_names: the robot's joints in the robot's order: they must be the policy's
            joints in the policy's order (joint *states* may arrive in any order each tick:
            they are matched by name).
        standup_s: soft start: seconds of the ramp from the measured pose to the default.
        fade_s: soft start: seconds over which the policy is then faded in.
        watchdog_s: maximum age of the joint state and IMU sample; None: the
            ``SafetyConfig`` default (0.05 s).
        max_tilt: base tilt from upright that counts as a fall, rad; None: the
            ``SafetyConfig`` default (1.0 rad). To switch the tilt check off, pass
            ``safety=SafetyConfig(max_tilt_rad=None)``.
        control_period: the robot's loop period, s, if fixed: checked against the
            contract's ``control_period_s``; None: the runtime runs at the contract's
            (``control_period``).
        task: when given, refuse a policy trained on another task.
        safety: every other safety parameter; the keywords above override its fields, and
            ``use_imu`` is set from the policy (on when a term reads the IMU).
        threads: onnxruntime intra-op threads (1 is fastest for one robot).
    """

    def __init__(
        self,
        policy_path: str | Path,
        joint_names: Sequence[str],
        *,
        standup_s: float = 2.0,
        fade_s: float = 1.0,
        watchdog_s: float | None = None,
        max_tilt: float | None = None,
        control_period: float | None = None,
        task: str | None = None,
        safety: SafetyConfig | None = None,
        threads: int = 1,
    ):
        self.policy_path = Path(policy_path)
        self._robot_joints = tuple(joint_names)
        overrides = {"standup_s": standup_s, "fade_s": fade_s}
        if watchdog_s is not None:
            overrides.update(max_joint_state_age_s=watchdog_s, max_imu_age_s=watchdog_s)
        if max_tilt is not None:
            overrides["max_tilt_rad"] = max_tilt
        self._safety = dataclasses.replace(safety or SafetyConfig(), **overrides)  # validated
        self._control_period = control_period
        self._task = task
        self._threads = threads
        self.contract: PolicyContract | None = None
        self.builder: ObservationBuilder | None = None
        self.runner: PolicyRunner | None = None
        self.controller: SafetyController | None = None
        self.last_observation: np.ndarray | None = None
        self.last_actions: np.ndarray | None = None
        self.last_targets: np.ndarray | None = None
        self._reset_stats()

    # ------------------------------------------------------------------ set-up

    def configure(self) -> None:
        """Load the policy, check it against the robot, build the limits and the pipeline.

        A failed configure leaves the runtime as it was.

        Raises:
            FileNotFoundError: no policy file.
            PolicyFileError: an unreadable or invalid policy file (``ContractError``, a
                subclass, names the contract field).
            ContractMismatch: the policy does not fit the robot: the field
                (``joint_names``, ``control_period_s``, ``task``, ``velocity_limits``,
                ``observation_terms[i]...``) and the joints are named.
        """
        policy = load_policy(self.policy_path, threads=self._threads)
        contract = policy.contract
        check_robot(contract, self._robot_joints, self._control_period, self._task)
        limits = RobotLimits.from_contract(contract)
        builder = ObservationBuilder(contract)
        config = dataclasses.replace(self._safety, use_imu=builder.needs_imu)
        controller = SafetyController(limits, config)
        self.contract, self.builder, self.controller = contract, builder, controller
        self.runner = PolicyRunner(policy)
        self._offset = np.asarray(contract.action_offset, dtype=np.float64)
        self._scale = np.asarray(contract.action_scale, dtype=np.float64)
        self._new_episode = True
        self.last_observation = self.last_actions = self.last_targets = None
        self._reset_stats()
        logger.info(
            "configured %s: %s %s policy, %d joints, %g Hz",
            self.policy_path, contract.task, contract.policy_kind, contract.num_joints,
            1.0 / contract.control_period_s,
        )  # fmt: skip

    @property
    def configured(self) -> bool:
        """Whether ``configure`` succeeded."""
        return self.controller is not None

    @property
    def control_period(self) -> float:
        """Seconds between two ticks: the contract's ``control_period_s``."""
        return self._configured().limits.control_period

    @property
    def joint_names(self) -> tuple[str, ...]:
        """The joints in policy order: the order of every array of a ``Command``."""
        return self._robot_joints if self.contract is None else tuple(self.contract.joint_names)

    @property
    def state(self) -> State:
        """The safety controller's state."""
        return self._configured().state

    # ------------------------------------------------------------------ transitions

    def activate(self, now: float) -> bool:
        """Start: INACTIVE → STANDUP (soft start, then the policy); returns whether it did.

        Also leaves a DAMPING that ``deactivate`` entered (a lifecycle deactivate and
        activate), but never one a fault or an e-stop latched: that needs ``reset``.
        """
        controller = self._configured()
        if controller.state is State.DAMPING and self._damping_reason() == DEACTIVATED:
            return self.reset(now)
        changed = controller.activate(now)
        self._new_episode |= changed
        return changed

    def deactivate(self, now: float) -> bool:
        """Stop: DAMPING (from any state but DAMPING); returns whether the state changed."""
        return self._configured().estop(now, DEACTIVATED)

    def estop(self, now: float, reason: str = "e-stop") -> bool:
        """Latch DAMPING until ``reset``; returns whether the state changed."""
        return self._configured().estop(now, reason)

    def reset(self, now: float) -> bool:
        """Leave DAMPING: soft start again from the current pose; returns whether it did."""
        changed = self._configured().reset(now)
        self._new_episode |= changed
        return changed

    def set_command(self, values: ArrayLike) -> np.ndarray:
        """The task command (go2: vx, vy m/s, yaw rate rad/s; reach: target x, y, z m).

        Clipped into the ranges the policy was trained on (counted in ``diagnostics``);
        go2: a planar speed under the task's ``standing_speed`` (0.2 m/s) becomes zero,
        as training drew its commands.
        A ``RobotState`` that carries a ``command`` sets it the same way at its tick.

        Returns:
            the command as used.

        Raises:
            ValueError: not C finite numbers, or a task without a command.
        """
        self._configured()
        return self.builder.set_command(values)

    # ------------------------------------------------------------------ the tick

    def tick(self, now: float, state: RobotState) -> Command:
        """The command for this control period; never raises once configured (see module)."""
        controller = self._configured()
        start = time.perf_counter_ns()
        stats = self._stats
        targets = None
        try:
            if controller.policy_weight(now) > 0:
                targets = self._policy_step(state)
        except Exception as error:  # noqa: BLE001 (any failure of the policy: DAMPING)
            self._policy_failed(now, error)
        safety_start = time.perf_counter_ns()
        try:
            command = controller.tick(now, state, targets)
        except Exception as error:  # noqa: BLE001 (a bug in the safety core: still damp)
            command = self._fail_safe(now, error)
        end = time.perf_counter_ns()
        stats["safety_us"] = (end - safety_start) / 1e3
        stats["tick_us"] = (end - start) / 1e3
        self._after_tick(now, state, command)
        return command

    def _policy_step(self, state: RobotState) -> np.ndarray:
        """Observation → ONNX → joint targets; raises on any failure."""
        builder, runner, stats = self.builder, self.runner, self._stats
        if state.command is not None:
            builder.set_command(state.command)
        if self._new_episode:
            builder.start_episode()
            runner.start_episode()
            self._new_episode = False
        start = time.perf_counter_ns()
        obs = builder.observe(state)
        middle = time.perf_counter_ns()
        actions = runner(obs)
        end = time.perf_counter_ns()
        builder.record_action(actions)
        stats["observation_us"] = (middle - start) / 1e3
        stats["inference_us"] = (end - middle) / 1e3
        stats["policy_steps"] += 1
        self.last_observation, self.last_actions = obs, actions
        self.last_targets = self._offset + self._scale * actions
        return self.last_targets

    def _policy_failed(self, now: float, error: Exception) -> None:
        """Latch DAMPING with the error as the reason."""
        if isinstance(error, Fault):  # an input the policy cannot use, named by the message
            reason = f"policy step: {error}"
        else:
            reason = f"policy step failed: {type(error).__name__}: {error}"
            logger.error("%.3f s: %s", now, reason, exc_info=error)
        self._stats["policy_errors"] += 1
        self._stats["last_fault"], self._stats["last_fault_s"] = reason, now
        self.controller.estop(now, reason)

    def _fail_safe(self, now: float, error: Exception) -> Command:
        """A DAMPING command built here, when the safety controller itself raised."""
        controller = self.controller
        reason = f"safety controller failed: {type(error).__name__}: {error}"
        logger.critical("%.3f s: %s", now, reason, exc_info=error)
        self._stats["controller_errors"] += 1
        self._stats["last_fault"], self._stats["last_fault_s"] = reason, now
        with contextlib.suppress(Exception):  # the command below damps regardless
            controller.estop(now, reason)
        limits = controller.limits
        last = self._last_command
        hold = limits.default_joint_pos if last is None else last.targets
        kd = limits.kd * controller.config.damping_kd_scale
        arrays = [np.clip(hold, limits.lower, limits.upper), np.zeros_like(kd), kd]
        for array in arrays:
            array.flags.writeable = False
        return Command(float(now), State.DAMPING, Mode.DAMPING, *arrays)

    def _after_tick(self, now: float, state: RobotState, command: Command) -> None:
        stats = self._stats
        stats["ticks"] += 1
        last_now, self._last_now = self._last_now, now
        stats["tick_period_s"] = math.nan if last_now is None else now - last_now
        fault = self.controller.last_fault
        if fault is not None:
            stats["last_fault"], stats["last_fault_s"] = fault, now
        if command.mode is Mode.DAMPING and (
            self._last_command is None or self._last_command.mode is not Mode.DAMPING
        ):
            stats["damping_entries"] += 1
        self._last_command = command
        stats["joint_state_age_s"] = _age(now, getattr(state, "joints", None))
        stats["imu_age_s"] = _age(now, getattr(state, "imu", None))

    # ------------------------------------------------------------------ diagnostics

    def diagnostics(self) -> dict[str, float | str]:
        """Figures for monitoring (a ROS ``DiagnosticStatus``): flat, numbers or text.

        Keys: ``state``, ``mode``, ``reason`` (of the latest state change), ``task``,
        ``policy_kind``, ``command`` (as used), ``tick_period_s`` (between the last two
        ticks), ``tick_us``, ``observation_us``, ``inference_us``, ``safety_us`` (the last
        tick's), ``joint_state_age_s``, ``imu_age_s`` (at the last tick; NaN: none),
        ``last_fault``, ``last_fault_s``, and counts: ``ticks``, ``policy_steps``,
        ``episode_steps``, ``damping_entries``, ``policy_errors``, ``controller_errors``,
        ``commands_clipped``.
        """
        if not self.configured:
            return {"state": "unconfigured"}
        controller, builder = self.controller, self.builder
        command = builder.current_command
        values: dict[str, float | str] = {
            "state": controller.state.value,
            "mode": "" if self._last_command is None else self._last_command.mode.value,
            "reason": controller.transitions[-1].reason if controller.transitions else "",
            "task": self.contract.task,
            "policy_kind": self.contract.policy_kind,
            "command": "" if command is None else " ".join(f"{v:.4g}" for v in command),
            "episode_steps": float(self.runner.steps),
            "commands_clipped": float(builder.clipped_commands),
        }
        for key, value in self._stats.items():
            values[key] = value if isinstance(value, str) else float(value)
        return values

    # ------------------------------------------------------------------ helpers

    def _configured(self) -> SafetyController:
        if self.controller is None:
            raise RuntimeError("PolicyRuntime: call configure() first")
        return self.controller

    def _damping_reason(self) -> str | None:
        transitions = self.controller.transitions
        return transitions[-1].reason if transitions else None

    def _reset_stats(self) -> None:
        self._last_now: float | None = None
        self._last_command: Command | None = None
        nan = math.nan
        self._stats: dict[str, float | str] = {
            "tick_period_s": nan, "tick_us": nan, "observation_us": nan,
            "inference_us": nan, "safety_us": nan, "joint_state_age_s": nan,
            "imu_age_s": nan, "last_fault": "", "last_fault_s": nan, "ticks": 0,
            "policy_steps": 0, "damping_entries": 0, "policy_errors": 0,
            "controller_errors": 0,
        }  # fmt: skip


def _age(now: float, reading) -> float:
    """``now`` minus the reading's stamp; NaN without a reading or a numeric stamp."""
    try:
        return float(now) - float(reading.stamp)
    except (AttributeError, TypeError, ValueError):
        return math.nan
