"""The Trainer (sim2real.policies.runner) end to end on tiny runs, checkpoints, evaluation."""

import json

import numpy as np
import pytest
import torch
import yaml

from sim2real.cli import main
from sim2real.policies import checkpoint as ckpt
from sim2real.policies.checkpoint import (
    CHECKPOINT_VERSION,
    latest_checkpoint,
    load_actor_critic,
    load_checkpoint,
    save_checkpoint,
)
from sim2real.policies.config import build_config, to_dict
from sim2real.policies.evaluation import evaluate
from sim2real.policies.runner import Trainer, build_model
from sim2real.sim.tasks import TASKS, make_env

TASK = "point-reach" if "point-reach" in TASKS else "arm-reach"


def tiny(tmp_path, *pairs, task=TASK):
    """A tiny run of ``task`` in ``tmp_path/run``: 32 envs, 8 steps, 2 iterations."""
    overrides = [
        "num_envs=32",
        "nthread=1",
        "ppo.num_steps=8",
        "ppo.num_minibatches=2",
        "ppo.num_epochs=2",
        "max_iterations=2",
        "save_interval=1",
        "tensorboard=false",
        f"log_dir={tmp_path}",
        "run_name=run",
        "model.actor_hidden=[32]",
        "model.critic_hidden=[32]",
        *pairs,
    ]
    return build_config(task, overrides=overrides)


def assert_same(a, b, path="state"):
    """Nested dicts/lists of tensors and plain values are equal."""
    if isinstance(a, dict):
        assert set(a) == set(b), path
        for key in a:
            assert_same(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), path
    else:
        assert a == b, path


# ------------------------------------------------------------- a run's folder


def test_learn_writes_metrics_config_and_checkpoints(tmp_path):
    config = tiny(tmp_path)
    trainer = Trainer(config)
    assert trainer.run_dir == tmp_path / "run"
    scalars = trainer.learn()
    run = tmp_path / "run"
    # only these files: no temporary checkpoint left behind, no TensorBoard folder
    assert sorted(p.name for p in run.iterdir()) == [
        "config.yaml",
        "metrics.jsonl",
        "model_1.pt",
        "model_2.pt",
    ]
    assert yaml.safe_load((run / "config.yaml").read_text()) == to_dict(config)
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [line["iteration"] for line in lines] == [1, 2]
    for line in lines:
        for key in (
            "time",
            "loss/surrogate",
            "loss/value",
            "loss/entropy",
            "policy/kl",
            "policy/learning_rate",
            "policy/action_std",
            "perf/steps_per_s",
            "perf/collection_s",
            "perf/learn_s",
        ):
            assert np.isfinite(line[key]), key
    assert lines[-1]["perf/total_steps"] == 2 * 8 * 32
    assert set(scalars) == set(lines[-1]) - {"iteration", "time"}
    # the normalizers saw both rollouts
    assert trainer.model.actor_normalizer.count.item() == 2 * 8 * 32
    # checkpoints are plain data: torch's safe loader reads them
    state = torch.load(run / "model_2.pt", weights_only=True)
    assert state["checkpoint_version"] == CHECKPOINT_VERSION
    assert state["iteration"] == 2 and state["task"] == TASK
    assert state["config"] == to_dict(config)
    assert state["obs_sizes"] == trainer.env.obs_sizes
    assert state["num_actions"] == trainer.env.num_actions
    for key in ("model", "ppo", "curricula", "torch_rng"):
        assert key in state
    assert torch.load(run / "model_1.pt", weights_only=True)["iteration"] == 1
    assert latest_checkpoint(run).name == "model_2.pt"
    # the deployable model comes back with weights and normalizer statistics
    loaded_config, model, raw = load_actor_critic(run)
    assert loaded_config == config and not model.training
    assert_same(model.state_dict(), trainer.model.state_dict())
    assert raw["iteration"] == 2


def test_save_interval_and_the_last_iteration(tmp_path):
    trainer = Trainer(tiny(tmp_path, "max_iterations=3", "save_interval=2", "num_envs=8"))
    trainer.learn()
    assert sorted(p.name for p in (tmp_path / "run").glob("*.pt")) == ["model_2.pt", "model_3.pt"]


def test_checkpoints_are_written_atomically(tmp_path, monkeypatch):
    path = tmp_path / "model_5.pt"
    save_checkpoint({"iteration": 5, "weights": torch.ones(3)}, path)
    before = path.read_bytes()

    def crash(obj, f):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt.torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint({"iteration": 6, "weights": torch.zeros(3)}, path)
    # the old file is intact and no temporary file is left
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model_5.pt"]
    assert load_checkpoint(path)["iteration"] == 5


# -------------------------------------------------------------------- resume


def test_resume_restores_iteration_model_optimizer_lr_and_rng(tmp_path):
    first = Trainer(tiny(tmp_path))
    first.learn()
    saved = torch.load(tmp_path / "run" / "model_2.pt", weights_only=True)
    # the adaptive rate has moved away from the initial one, so restoring it means something
    assert first.ppo.learning_rate != first.config.ppo.learning_rate

    resumed = Trainer.resume(tmp_path / "run", {"max_iterations": 3})
    assert resumed.iteration == 2 and resumed.config.max_iterations == 3
    assert_same(resumed.model.state_dict(), first.model.state_dict())
    assert_same(resumed.ppo.optimizer.state_dict(), first.ppo.optimizer.state_dict())
    assert resumed.ppo.learning_rate == first.ppo.learning_rate
    assert resumed.ppo.optimizer.param_groups[0]["lr"] == first.ppo.learning_rate
    assert torch.equal(resumed.ppo.generator.get_state(), saved["ppo"]["generator"])
    assert torch.equal(torch.get_rng_state(), saved["torch_rng"])
    assert resumed.model.actor_normalizer.count.item() == 2 * 8 * 32

    resumed.learn()
    run = tmp_path / "run"
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["iteration"] for line in lines] == [1, 2, 3]
    assert json.loads(lines[-1])["perf/total_steps"] == 3 * 8 * 32
    assert latest_checkpoint(run).name == "model_3.pt"
    assert load_checkpoint(run)["config"]["max_iterations"] == 3
    # the optimizer went on from where it was: Adam's step count continued
    steps = resumed.ppo.optimizer.state_dict()["state"][0]["step"]
    assert float(steps) == 3 * 2 * 2  # iterations x epochs x minibatches


def test_recurrent_run_trains_and_resumes(tmp_path):
    config = tiny(tmp_path, "model.recurrent=lstm", "model.rnn_hidden=8", "max_iterations=1")
    trainer = Trainer(config)
    trainer.env.max_episode_length = 5  # episodes end (and restart) inside the rollout
    trainer.learn()
    resumed = Trainer.resume(tmp_path / "run", {"max_iterations": 2})
    assert resumed.model.is_recurrent and resumed.iteration == 1
    assert_same(resumed.model.state_dict(), trainer.model.state_dict())
    scalars = resumed.learn()
    assert np.isfinite(scalars["loss/surrogate"]) and resumed.iteration == 2


def test_command_curriculum_state_is_saved_in_checkpoints_and_logged(tmp_path):
    # issue: "curriculum state is saved in checkpoints and logged"
    config = tiny(tmp_path, "num_envs=8", "ppo.num_steps=4", "max_iterations=1", task="go2-flat")
    assert config.curriculum.commands
    trainer = Trainer(config)
    commands = trainer.curricula.curricula["commands"]
    initial_ranges = commands.ranges
    assert trainer.env.task.command_ranges == initial_ranges
    # a run that has been promoted twice and counted some episodes towards the next decision
    state = commands.state_dict()
    state.update(level=2, episodes=3, last_score=0.9)
    state["sums"] = {name: 1.5 for name in state["sums"]}
    trainer.curricula.load_state_dict({"commands": state})
    widened = commands.ranges
    assert widened != initial_ranges and trainer.env.task.command_ranges == widened
    trainer.learn()

    line = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert line["curriculum/command_level"] == 2.0
    assert line["curriculum/command_vx_max"] == pytest.approx(widened[0][1])
    assert line["curriculum/command_yaw_min"] == pytest.approx(widened[2][0])
    assert line["curriculum/command_tracking"] == pytest.approx(0.9)
    saved = load_checkpoint(tmp_path / "run")
    assert saved["curricula"]["commands"]["level"] == 2
    assert saved["curricula"]["commands"]["episodes"] >= 3

    resumed = Trainer.resume(tmp_path / "run", {"max_iterations": 2})
    back = resumed.curricula.curricula["commands"]
    assert back.state_dict() == commands.state_dict()
    # and the task samples its commands from the restored, widened ranges again
    assert resumed.env.task.command_ranges == widened
    # a checkpoint without the curriculum's state is an error, not a silent restart
    with pytest.raises(ValueError, match="commands"):
        resumed.load_state_dict({**saved, "curricula": {}})


# ------------------------------------------------------- time-out bootstrapping


def record_steps(env, terminate):
    """Wrap ``env.step``: record each result; ``terminate[step]`` env ids end in a fall."""
    records = []
    step = env.step

    def wrapped(actions):
        result = step(actions)
        forced = np.zeros(env.num_envs, dtype=bool)
        forced[terminate.get(len(records), [])] = True
        forced &= ~result.time_outs
        result.terminated = result.terminated | forced
        final = result.infos.get("final_obs")
        records.append(
            {
                "rewards": result.rewards.copy(),
                "time_outs": result.time_outs.copy(),
                "terminated": result.terminated.copy(),
                "final_critic": None if final is None else final["critic"].copy(),
                "next_critic": result.obs["critic"].copy(),
            }
        )
        return result

    env.step = wrapped
    return records


@pytest.mark.parametrize("recurrent", ["none", "gru"])
def test_time_outs_bootstrap_the_final_value_and_nothing_else(tmp_path, recurrent):
    config = tiny(tmp_path, "num_envs=8", f"model.recurrent={recurrent}", "model.rnn_hidden=8")
    trainer = Trainer(config)
    env, model, storage = trainer.env, trainer.model, trainer.storage
    env.max_episode_length = 3
    env.episode_length[:] = np.arange(8) % 3  # envs time out at different steps
    records = record_steps(env, terminate={1: [0, 1, 2], 4: [5, 6, 7]})
    trainer.collect()
    gamma = config.ppo.gamma

    def final_value(t, critic):
        """V of ``critic`` (N, D) as the next observation after step t of the rollout."""
        x = torch.from_numpy(critic)
        if not model.is_recurrent:
            return model.value(x)[0]
        past, starts = storage.critic_obs[: t + 1], storage.starts[: t + 1]
        _, state = model.value(past, storage.initial_state[1], starts)
        return model.value(x[None], state, torch.zeros(1, 8, dtype=torch.bool))[0][0]

    mixed = bootstrapped = 0
    with torch.no_grad():
        for t, rec in enumerate(records):
            time_outs = torch.from_numpy(rec["time_outs"])
            rewards = torch.from_numpy(rec["rewards"])
            dones = torch.from_numpy(rec["terminated"] | rec["time_outs"])
            assert torch.equal(storage.dones[t], dones)
            if t + 1 < len(records):
                assert torch.equal(storage.starts[t + 1], dones)
            # rows that did not time out keep the env's reward exactly (falls included)
            assert torch.equal(storage.rewards[t][~time_outs], rewards[~time_outs])
            if not time_outs.any():
                continue
            mixed += bool((~time_outs).any())
            value = final_value(t, rec["final_critic"])
            expected = rewards + gamma * value * time_outs
            torch.testing.assert_close(storage.rewards[t], expected, rtol=0, atol=1e-6)
            # it is the final observation that counts, not the first one of the next episode
            reset_value = final_value(t, rec["next_critic"])
            assert (value - reset_value)[time_outs].abs().max() > 1e-4
            assert (storage.rewards[t] - rewards)[time_outs].abs().min() > 1e-5
            bootstrapped += int(time_outs.sum())
    assert storage.starts[0].all()
    assert mixed >= 3 and bootstrapped >= 8
    # the forced falls were real dones without a bootstrap
    assert records[1]["terminated"][[0, 1, 2]].any() and records[4]["terminated"].sum() >= 2


@pytest.mark.parametrize("recurrent", ["none", "gru"])
def test_single_threaded_rollout_equals_the_multi_threaded_one(tmp_path, recurrent):
    """``collect`` runs torch on one thread and restores the count; the rollout is the same."""
    config = tiny(tmp_path, "num_envs=256", f"model.recurrent={recurrent}", "model.rnn_hidden=8")
    fast, plain = Trainer(config), Trainer(config)
    for trainer in (fast, plain):
        trainer.env.max_episode_length = 5  # time-outs and their bootstrap inside the rollout
    seen = []
    step = fast.env.step
    fast.env.step = lambda actions: seen.append(torch.get_num_threads()) or step(actions)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        torch.manual_seed(5)
        fast.collect()
        assert torch.get_num_threads() == 2 and set(seen) == {1}
        torch.manual_seed(5)
        with torch.inference_mode():
            Trainer.collect.__wrapped__.__wrapped__(plain)  # without the one-thread wrapper
    finally:
        torch.set_num_threads(before)
    for name in ("actor_obs", "critic_obs", "actions", "log_probs", "means", "stds",
                 "values", "rewards", "dones", "starts", "advantages", "returns"):  # fmt: skip
        assert torch.equal(getattr(fast.storage, name), getattr(plain.storage, name)), name


# --------------------------------------------------------------- bad checkpoints


def test_checkpoint_of_another_task_is_a_clear_error(tmp_path):
    other = Trainer(tiny(tmp_path / "other", "num_envs=4", "max_iterations=1", task="arm-reach"))
    other.learn()
    trainer = Trainer(tiny(tmp_path, "num_envs=4"))
    with pytest.raises(ValueError, match=f"checkpoint is for task 'arm-reach', not '{TASK}'"):
        trainer.load_state_dict(load_checkpoint(tmp_path / "other" / "run"))
    # the CLI refuses to resume or play it as the wrong task
    run = str(tmp_path / "other" / "run")
    assert main(["train", TASK, "--resume", run, "--set", "max_iterations=2"]) == 2
    assert main(["play", TASK, "--checkpoint", run, "-o", str(tmp_path / "m.json")]) == 2
    assert not (tmp_path / "other" / "run" / "model_2.pt").exists()


def test_unreadable_checkpoints_are_value_errors(tmp_path):
    good = save_checkpoint({"iteration": 1, "weights": torch.randn(1000)}, tmp_path / "good.pt")
    data = good.read_bytes()
    truncated = tmp_path / "model_7.pt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="model_7.pt is not a readable checkpoint"):
        load_checkpoint(truncated)
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load_actor_critic(tmp_path)  # the folder's latest checkpoint is the truncated one
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not a zip file at all" * 10)
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load_checkpoint(garbage)
    # a pickled object weights_only refuses to build
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"checkpoint_version": CHECKPOINT_VERSION, "x": np.random.default_rng()}, unsafe)
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load_checkpoint(unsafe)
    # readable, but not a checkpoint of this layout
    for name, obj in (("tensor.pt", torch.ones(2)), ("old.pt", {"checkpoint_version": 0})):
        torch.save(obj, tmp_path / name)
        with pytest.raises(ValueError, match="checkpoint_version"):
            load_checkpoint(tmp_path / name)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        Trainer.resume(tmp_path / "empty")


def test_latest_checkpoint_is_the_highest_iteration(tmp_path):
    for name in ("model_9.pt", "model_10.pt", "model_best.pt", ".model_11.pt.abc.tmp"):
        (tmp_path / name).write_bytes(b"")
    assert latest_checkpoint(tmp_path).name == "model_10.pt"


# ------------------------------------------------------------------- evaluation


def test_evaluate_arm_reach_reports_the_end_effector_error():
    env = make_env("arm-reach", 4, seed=0, nthread=1, randomization="off")
    torch.manual_seed(0)
    model = build_model(tiny(None, task="arm-reach"), env)
    metrics, qpos = evaluate(model, env, record_env=1, seed=3)
    assert {"ee_error", "return", "length", "fall_rate", "episodes"} <= set(metrics)
    assert "lin_vel_error" not in metrics
    assert metrics["episodes"] == 4 and metrics["length"] == env.max_episode_length
    assert metrics["fall_rate"] == 0.0  # arm-reach has no terminations
    assert qpos.shape == (env.max_episode_length + 1, env.model.nq)
    # the same numbers by hand: the mean action, distances over the last second
    obs = env.reset(3)
    distances = []
    with torch.no_grad():
        for step in range(env.max_episode_length):
            if step >= env.max_episode_length - round(1.0 / env.step_dt):
                state = env.task.robot_state()
                distances.append(np.linalg.norm(state["ee_pos"] - state["target_pos"], axis=1))
            obs = env.step(model.action_mean(torch.from_numpy(obs["policy"]))[0].numpy()).obs
    assert metrics["ee_error"] == pytest.approx(np.mean(distances), rel=1e-6)
    assert metrics["ee_error"] > 0.01
    # deterministic
    again, _ = evaluate(model, env, seed=3)
    assert again == metrics


def test_evaluate_go2_flat_reports_velocity_errors_and_falls():
    env = make_env("go2-flat", 4, seed=0, nthread=1)
    env.max_episode_length = 100  # 2 s: 1 s of warm-up, 1 s of tracking
    torch.manual_seed(0)
    model = build_model(tiny(None, task="go2-flat"), env)
    metrics, qpos = evaluate(model, env, seed=1)
    assert qpos is None
    for key in ("lin_vel_error", "yaw_rate_error", "fall_rate", "return", "length"):
        assert np.isfinite(metrics[key]), key
    assert "ee_error" not in metrics
    assert metrics["lin_vel_error"] > 0 and metrics["yaw_rate_error"] >= 0
    assert 0.0 <= metrics["fall_rate"] <= 1.0 and metrics["episodes"] >= 4
    # a model of another task is refused
    reach = build_model(tiny(None, task="arm-reach"), make_env("arm-reach", 1, nthread=1))
    with pytest.raises(ValueError, match="policy expects 24 'policy' observations"):
        evaluate(reach, env)


def test_adr_and_terrain_curricula_are_checkpointed_and_logged(tmp_path):
    """go2-rough with ADR: all three curricula travel in the checkpoint and the logs."""
    overrides = [
        f"log_dir={tmp_path}", "run_name=r", "num_envs=8", "ppo.num_steps=4",
        "max_iterations=1", "tensorboard=false", "nthread=1", "curriculum.adr=true",
    ]  # fmt: skip
    trainer = Trainer(build_config("go2-rough", overrides=overrides))
    trainer.learn()
    state = load_checkpoint(tmp_path / "r" / "model_1.pt")
    assert set(state["curricula"]) == {"commands", "adr", "terrain"}
    line = json.loads((tmp_path / "r" / "metrics.jsonl").read_text().splitlines()[-1])
    assert "curriculum/adr_ground_friction_low" in line
    assert any(key.startswith("curriculum/terrain") for key in line)
    resumed = Trainer.resume(tmp_path / "r", {"max_iterations": 2})
    assert resumed.curricula.state_dict() == state["curricula"]
