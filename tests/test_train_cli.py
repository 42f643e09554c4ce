"""The ``sim2real train`` and ``play`` commands end to end, on the tiny point-reach task."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sim2real.cli import main
from sim2real.policies.checkpoint import latest_checkpoint, load_checkpoint
from sim2real.policies.config import build_config
from sim2real.policies.evaluation import evaluate
from sim2real.policies.runner import Trainer
from sim2real.sim.tasks import make_env

FAST = ["tensorboard=false", "nthread=1"]


def test_ppo_solves_point_reach(tmp_path):
    """The task's default budget (40 iterations, about 10 s) reaches targets within 3 cm."""
    config = build_config("point-reach", overrides=[f"log_dir={tmp_path}", "run_name=r", *FAST])
    trainer = Trainer(config)
    start = time.perf_counter()
    scalars = trainer.learn()
    assert time.perf_counter() - start < 60.0
    assert scalars["episode/return"] > 0.8  # a random policy scores about -1.5
    env = make_env("point-reach", 64, seed=123, nthread=1, randomization="off")
    metrics, _ = evaluate(trainer.model, env, seed=123)
    assert metrics["ee_error"] < 0.03


def _train_command(run_dir: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "sim2real", "train", "point-reach",
        "--set", f"log_dir={run_dir.parent}", f"run_name={run_dir.name}",
        "save_interval=2", "max_iterations=30", *FAST, *extra,
    ]  # fmt: skip


def test_sigkill_then_resume_finishes_the_run(tmp_path):
    """A run killed with SIGKILL mid-way resumes from its last checkpoint and finishes."""
    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        _train_command(run_dir), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 60.0
        while not (run_dir / "model_6.pt").exists():
            assert process.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no checkpoint within 60 s"
            time.sleep(0.05)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    killed_at = load_checkpoint(latest_checkpoint(run_dir))["iteration"]
    assert 6 <= killed_at < 30
    for path in run_dir.glob("model_*.pt"):
        load_checkpoint(path)  # every checkpoint on disk is whole

    resumed = subprocess.run(
        [*_train_command(run_dir), "--resume", str(run_dir)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    final = load_checkpoint(run_dir / "model_30.pt")
    assert final["iteration"] == 30
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    iterations = [json.loads(line)["iteration"] for line in lines]
    # each iteration logged once: lines past the checkpoint were dropped on resume
    assert iterations == list(range(1, 31))


def test_resume_keeps_the_run_config_and_takes_new_max_iterations(tmp_path):
    run = ["--set", f"log_dir={tmp_path}", "run_name=r", "max_iterations=2", *FAST]
    assert main(["train", "point-reach", *run]) == 0
    more = ["--resume", str(tmp_path / "r"), "--set", "max_iterations=3"]
    assert main(["train", "point-reach", *more]) == 0
    state = load_checkpoint(tmp_path / "r" / "model_3.pt")
    assert state["iteration"] == 3 and state["config"]["run_name"] == "r"
    assert main(["train", "arm-reach", *more]) == 2  # another task's run: a clear error


def test_resume_checks_its_overrides_against_the_config(tmp_path, capsys):
    run = ["--set", f"log_dir={tmp_path}", "run_name=r", "max_iterations=1", *FAST]
    assert main(["train", "point-reach", *run]) == 0
    resume = ["train", "point-reach", "--resume", str(tmp_path / "r"), "--set"]
    assert main([*resume, "no_such_key=1"]) == 2
    assert "no_such_key" in capsys.readouterr().out
    assert main([*resume, "max_iterations=two"]) == 2
    assert "max_iterations" in capsys.readouterr().out
    assert main([*resume, "max_iterations=2", "run_name=off"]) == 0  # text stays text
    state = load_checkpoint(tmp_path / "r" / "model_2.pt")
    assert state["config"]["max_iterations"] == 2 and state["config"]["run_name"] == "off"


def test_train_cli_rejects_bad_settings(tmp_path, capsys):
    assert main(["train", "point-reach", "--set", "ppo.gamma=high"]) == 2
    assert "ppo.gamma" in capsys.readouterr().out
    assert main(["train", "point-reach", "--set", "no_such_key=1"]) == 2
    assert "no_such_key" in capsys.readouterr().out
    assert main(["train", "no-such-task"]) == 2
    assert main(["train", "point-reach", "--randomization", str(tmp_path / "missing.yaml")]) == 2


def test_train_with_randomization_file(tmp_path):
    """--randomization FILE trains on that file's ranges (what sysid writes)."""
    from sim2real.randomization.config import default_config, dump

    config = default_config("point-reach")
    ranges = tmp_path / "ranges.yaml"
    dump(config, ranges)
    run = ["--set", f"log_dir={tmp_path}", "run_name=r", "max_iterations=1", *FAST]
    assert main(["train", "point-reach", "--randomization", str(ranges), *run]) == 0
    state = load_checkpoint(tmp_path / "r" / "model_1.pt")
    assert state["config"]["randomization"] == str(ranges)


def test_play_writes_metrics_for_randomization_off_and_on(tmp_path):
    run = ["--set", f"log_dir={tmp_path}", "run_name=r", "max_iterations=1", *FAST]
    assert main(["train", "point-reach", *run]) == 0
    output = tmp_path / "play.json"
    args = ["play", "point-reach", "--checkpoint", str(tmp_path / "r"), "-o", str(output)]
    assert main([*args, "--num-envs", "8"]) == 0
    report = json.loads(output.read_text())
    for label in ("randomization_off", "randomization_on"):
        assert report[label]["ee_error"] >= 0.0 and report[label]["episodes"] == 8


@pytest.mark.parametrize("suffix", [".gif"])
def test_play_renders_a_video(tmp_path, suffix):
    from sim2real.sim.render import rendering_available

    available, reason = rendering_available()
    if not available:
        pytest.skip(f"no offscreen OpenGL here: {reason}")
    run = ["--set", f"log_dir={tmp_path}", "run_name=r", "max_iterations=1", *FAST]
    assert main(["train", "point-reach", *run]) == 0
    video = tmp_path / f"play{suffix}"
    args = ["play", "point-reach", "--checkpoint", str(tmp_path / "r"), "--num-envs", "2"]
    assert main([*args, "-o", str(tmp_path / "p.json"), "--video", str(video)]) == 0
    assert video.stat().st_size > 1000
