"""Teacher-student distillation: observation history, student network, Distiller, CLI.

A point-reach teacher (actor on the privileged "critic" group) is trained once per module
with PPO in a few seconds; the student then learns to imitate it from noisy "policy"
observation histories.
"""

import json

import numpy as np
import pytest
import torch

from sim2real.cli import main
from sim2real.policies.checkpoint import load_actor_critic, load_checkpoint
from sim2real.policies.config import build_config
from sim2real.policies.distillation import (
    DistillationStorage,
    Distiller,
    load_student,
)
from sim2real.policies.evaluation import evaluate
from sim2real.policies.runner import Trainer
from sim2real.policies.student import ObservationHistory, StudentController, StudentPolicy
from sim2real.sim.tasks import make_env

FAST = ["nthread=1", "tensorboard=false", "torch_threads=1"]


def train(task, run_dir, *overrides):
    """A PPO run of ``task`` in ``run_dir``; returns the trainer after ``learn``."""
    config = build_config(task, overrides=[*FAST, *overrides])
    trainer = Trainer(config, run_dir=run_dir)
    trainer.learn()
    return trainer


def distill_config(teacher, log_dir, *overrides):
    return build_config(
        "point-reach",
        overrides=[*FAST, f"distill.teacher={teacher}", f"log_dir={log_dir}", *overrides],
    )


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A point-reach teacher on privileged observations (40 PPO iterations, ~10 s)."""
    run_dir = tmp_path_factory.mktemp("teacher")
    trainer = train("point-reach", run_dir, "model.actor_group=critic")
    return run_dir, trainer.model


def small_student(history_length=4, obs_size=3, num_actions=2):
    return StudentPolicy(obs_size, num_actions, history_length, 4, [16], [16])


# ------------------------------------------------------------------ history and network


def test_history_shifts_and_fills_new_episodes():
    history = ObservationHistory(num_envs=2, length=3, size=2)
    first = torch.tensor([[1.0, 1.0], [2.0, 2.0]])
    window = history.push(first, torch.tensor([True, True]))
    np.testing.assert_array_equal(window, first[:, None].expand(2, 3, 2))  # filled
    history.push(first + 10, torch.tensor([False, False]))
    window = history.push(first + 20, torch.tensor([False, True]))  # env 1 starts anew
    np.testing.assert_array_equal(window[0], [[1, 1], [11, 11], [21, 21]])  # oldest first
    np.testing.assert_array_equal(window[1], [[22, 22]] * 3)
    window = history.push(first + 30, np.array([False, False]))
    np.testing.assert_array_equal(window[0], [[11, 11], [21, 21], [31, 31]])
    np.testing.assert_array_equal(window[1], [[22, 22], [22, 22], [32, 32]])
    history.reset(first)
    np.testing.assert_array_equal(history.buffer, first[:, None].expand(2, 3, 2))


@pytest.mark.parametrize("length", [1, 5])
def test_storage_windows_equal_the_step_by_step_history(length):
    """The rollout rebuilds every step's window as ObservationHistory saw it."""
    num_envs, steps, size = 3, 12, 2
    generator = torch.Generator().manual_seed(0)
    history = ObservationHistory(num_envs, length, size)
    history.push(torch.randn(num_envs, size, generator=generator), torch.ones(num_envs, dtype=bool))
    for _ in range(length + 1):  # a history from before the rollout
        history.push(torch.randn(num_envs, size, generator=generator), torch.zeros(3, dtype=bool))
    storage = DistillationStorage(steps, num_envs, size, 1, length)
    storage.begin(history.buffer)
    expected = []
    for _ in range(steps):
        obs = torch.randn(num_envs, size, generator=generator)
        starts = torch.rand(num_envs, generator=generator) < 0.2
        expected.append(history.push(obs, starts).clone())
        storage.add(obs, starts, torch.zeros(num_envs, 1))
    assert storage.starts.any()
    windows = storage.windows(torch.arange(steps * num_envs))
    torch.testing.assert_close(windows, torch.stack(expected).reshape(-1, length, size))


def test_student_output_depends_on_the_whole_history():
    torch.manual_seed(0)
    student = small_student(history_length=4)
    student.update_normalizer(torch.randn(100, 3) * 2 + 1)
    history = torch.randn(5, 4, 3)
    action = student(history)
    assert action.shape == (5, 2)
    torch.testing.assert_close(student(history), action)  # no state between calls
    older = history.clone()
    older[:, 0] += 1.0  # only the oldest row changes; the current observation stays
    assert (student(older) - action).abs().min() > 1e-4


def test_student_controller_keeps_the_history_between_steps():
    student = small_student(history_length=3, obs_size=2)
    controller = StudentController(student)
    controller.reset(2)
    obs = {"policy": np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)}
    controller.act(obs, torch.tensor([True, True]))
    obs2 = {"policy": np.array([[2.0, 0.0], [0.0, 2.0]], np.float32)}
    action = controller.act(obs2, torch.tensor([False, False]))
    expected = torch.tensor([[[1.0, 0.0], [1.0, 0.0], [2.0, 0.0]], [[0, 1.0], [0, 1.0], [0, 2.0]]])
    torch.testing.assert_close(action, student(expected))


# ------------------------------------------------------------------ distillation


def test_distillation_imitates_the_teacher(teacher, tmp_path):
    teacher_dir, teacher_model = teacher
    config = distill_config(teacher_dir, tmp_path, "run_name=student", "max_iterations=20")
    distiller = Distiller(config)
    distiller.learn()
    lines = (tmp_path / "student" / "metrics.jsonl").read_text().splitlines()
    metrics = [json.loads(line) for line in lines]
    assert [m["iteration"] for m in metrics] == list(range(1, 21))
    assert {"loss/distill", "distill/action_mse", "perf/steps_per_s"} <= set(metrics[-1])
    assert any("episode/return" in m for m in metrics)
    first = metrics[0]["distill/action_mse"]
    last = np.mean([m["distill/action_mse"] for m in metrics[-3:]])
    assert last < 0.05 * first, (first, last)
    # and it acts like the teacher: most of its return, on policy observations only
    env = make_env("point-reach", 32, seed=7, nthread=1)
    teacher_metrics, _ = evaluate(teacher_model, env, seed=7)
    student_metrics, _ = evaluate(distiller.student, env, seed=7)
    assert set(student_metrics) == set(teacher_metrics)
    assert student_metrics["return"] > 0.7 * teacher_metrics["return"] > 0
    assert student_metrics["ee_error"] < 0.05  # m


def test_teacher_can_drive_the_first_iterations(teacher, tmp_path):
    config = distill_config(
        teacher[0], tmp_path, "run_name=s", "max_iterations=2", "distill.teacher_actions_until=1"
    )
    Distiller(config).learn()
    lines = (tmp_path / "s" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["distill/teacher_acts"] for line in lines] == [1.0, 0.0]


def test_checkpoint_round_trip_and_resume(teacher, tmp_path):
    run_dir = tmp_path / "student"
    config = distill_config(
        teacher[0], tmp_path, "run_name=student", "max_iterations=2", "save_interval=1"
    )
    distiller = Distiller(config)
    distiller.learn()
    assert sorted(p.name for p in run_dir.glob("model_*.pt")) == ["model_1.pt", "model_2.pt"]
    state = load_checkpoint(run_dir / "model_2.pt")
    assert state["kind"] == "student" and state["iteration"] == 2
    assert state["history_length"] == config.distill.history_length == 16
    assert state["num_actions"] == 2 and state["obs_sizes"]["policy"] == 9
    loaded_config, student, _ = load_student(run_dir)
    assert loaded_config == config and not student.training
    histories = torch.randn(8, 16, 9)
    with torch.no_grad():
        torch.testing.assert_close(student(histories), distiller.student(histories))
    with pytest.raises(ValueError, match="student checkpoint"):
        load_actor_critic(run_dir)  # a student is no actor-critic

    resumed = Distiller.resume(run_dir, {"max_iterations": 3})
    assert resumed.iteration == 2 and resumed.config.max_iterations == 3
    for key, value in distiller.student.state_dict().items():
        torch.testing.assert_close(resumed.student.state_dict()[key], value)
    assert resumed.optimizer.state_dict()["state"]  # Adam moments came back
    resumed.learn()
    assert (run_dir / "model_3.pt").is_file()
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["iteration"] for line in lines] == [1, 2, 3]


def test_unfit_teachers_are_refused(teacher, tmp_path):
    arm = Trainer(
        build_config("arm-reach", overrides=[*FAST, "model.actor_group=critic", "num_envs=2"]),
        run_dir=tmp_path / "arm",
    )
    arm.save()
    with pytest.raises(ValueError, match="trained on task 'arm-reach'.*cannot teach 'point-reach'"):
        Distiller(distill_config(tmp_path / "arm", tmp_path))
    plain = Trainer(build_config("point-reach", overrides=[*FAST, "num_envs=2"]), tmp_path / "p")
    plain.save()
    with pytest.raises(ValueError, match="model.actor_group=policy"):
        Distiller(distill_config(tmp_path / "p", tmp_path))
    with pytest.raises(ValueError, match="distill.teacher is empty"):
        Distiller(build_config("point-reach", overrides=FAST))
    with pytest.raises(ValueError, match="needs domain randomization"):
        # (quoted: YAML reads a bare off as False)
        Distiller(distill_config(teacher[0], tmp_path, "randomization=off"))


def test_cli_distill_resume_and_play(teacher, tmp_path, capsys):
    run_dir = tmp_path / "cli"
    args = ["--set", *FAST, "num_envs=8", "max_iterations=1", f"log_dir={tmp_path}", "run_name=cli"]
    assert main(["distill", "point-reach", "--teacher", str(teacher[0]), *args]) == 0
    assert (
        main(["distill", "point-reach", "--resume", str(run_dir), "--set", "max_iterations=2"]) == 0
    )
    assert load_checkpoint(run_dir)["iteration"] == 2
    output = tmp_path / "play.json"
    play = ["play", "point-reach", "--checkpoint", str(run_dir), "--num-envs", "4"]
    assert main([*play, "-o", str(output)]) == 0
    report = json.loads(output.read_text())
    assert report["kind"] == "student"
    assert {"return", "ee_error"} <= set(report["randomization_on"])
    # a teacher of another task, or no teacher at all: a clear error, exit status 2
    assert main(["distill", "arm-reach", "--teacher", str(teacher[0])]) == 2
    assert main(["distill", "point-reach"]) == 2
    assert "--teacher CHECKPOINT is required" in capsys.readouterr().out


# ------------------------------------------------------------------ slow: the full recipe


@pytest.mark.slow
def test_student_reaches_most_of_the_teachers_return_on_arm_reach(tmp_path):
    """arm-reach: the student gets >= 90 % of the teacher's return (a few minutes)."""
    train("arm-reach", tmp_path / "teacher", "model.actor_group=critic", "nthread=0")
    config = build_config(
        "arm-reach",
        overrides=[
            *FAST,
            "nthread=0",
            f"distill.teacher={tmp_path / 'teacher'}",
            f"log_dir={tmp_path}",
            "run_name=student",
            "max_iterations=60",
        ],
    )
    distiller = Distiller(config)
    distiller.learn()
    _, teacher_model, _ = load_actor_critic(tmp_path / "teacher")
    env = make_env("arm-reach", 128, seed=11)
    teacher_metrics, _ = evaluate(teacher_model, env, seed=11)
    student_metrics, _ = evaluate(distiller.student, env, seed=11)
    assert teacher_metrics["return"] > 0, teacher_metrics
    assert student_metrics["return"] >= 0.9 * teacher_metrics["return"], (
        student_metrics,
        teacher_metrics,
    )
