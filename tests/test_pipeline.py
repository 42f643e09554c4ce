"""``sim2real pipeline`` end to end on a tiny configuration, and its run folder's rules.

The tiny run takes the pretrained arm policy as its training, runs two short HIL
sessions (a joint-state dropout each), identifies the arm from 12 s of the first
log, fine-tunes one iteration on the identified ranges and writes the report.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

pytest.importorskip("rclpy", reason="the `ros` extra (ROS 2 Jazzy wheels)")
pytest.importorskip("sim2real_ros", reason="the sim2real_ros package (`make` installs it)")

from sim2real.cli import main  # noqa: E402
from sim2real.export.loading import load_policy  # noqa: E402
from sim2real.pipeline.config import PipelineConfig  # noqa: E402
from sim2real.pipeline.report import SECTIONS  # noqa: E402
from sim2real.pipeline.run_folder import STAGES, RunFolder  # noqa: E402
from sim2real.pipeline.runner import run_pipeline  # noqa: E402
from sim2real.pipeline.stages import hil_duration, sysid_start  # noqa: E402
from sim2real.randomization import config as rconfig  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FAULTS = """
faults:
  - {at: 4.0, kind: dropout, topic: joint_states, duration: 0.2}
  - {at: 4.5, kind: reset}
"""


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pipeline")
    faults = root / "faults.yaml"
    faults.write_text(FAULTS)
    argv = [
        "pipeline", "--run-dir", str(root / "run"),
        "--init-checkpoint", str(REPO / "pretrained/arm-reach/model_70.pt"),
        "--train-iterations", "0", "--finetune-iterations", "1", "--num-envs", "512",
        "--faults", str(faults), "--sysid-seconds", "12",
    ]  # fmt: skip
    assert main(argv) == 0
    return root / "run"


def test_every_stage_leaves_a_valid_artifact(tiny_run):
    run = RunFolder.open(tiny_run)
    assert list(run.stages) == list(STAGES)
    for stage, record in run.stages.items():
        for name, path in record["artifacts"].items():
            assert (tiny_run / path).exists(), (stage, name)
    assert run.artifact("train", "checkpoint").name == "model_70.pt"
    assert run.artifact("finetune", "checkpoint").name == "model_71.pt"
    for stage in ("export", "finetune"):
        contract = load_policy(run.artifact(stage, "policy")).contract  # validates the file
        assert contract.task == "arm-reach"
        assert contract.parity["max_abs_diff"] < 1e-4
    ranges = rconfig.load(run.artifact("sysid", "ranges"))  # validates against the schema
    assert ranges.task == "arm-reach"
    assert ranges.terms["action_delay"].range[1] >= 1  # 12 ms of delay: ≥ 1 control step
    kp = ranges.terms["kp_scale"].range
    if isinstance(kp, dict):  # identified per joint
        low, high = kp["panda_joint1"]  # panda-hidden's true Kp scale of joint 1: 0.75
        assert low < high and abs((low + high) / 2 / 0.75 - 1) < 0.2
    else:  # a drive the policy saturated gave an unphysical value: the default stays, noted
        assert "kp_scale came out unphysical" in run.artifact("sysid", "parameters").read_text()
    finetuned = (tiny_run / "finetune" / "config.yaml").read_text()
    assert str(run.artifact("sysid", "ranges").resolve()) in finetuned
    for stage in ("hil", "hil_after"):
        report = json.loads(run.artifact(stage, "report").read_text())
        assert report["limits"]["commands_outside_limits"] == 0
        assert [f["reaction"] is not None for f in report["faults"]] == [True, False]


def test_the_report_has_every_section_and_its_images(tiny_run):
    page = RunFolder.open(tiny_run).artifact("report", "page")
    text = page.read_text()
    for section in SECTIONS:
        assert f"id='{section}'" in text, section
    images = re.findall(r"<img src='([^']+)'", text)
    assert {"training.png", "safety_timeline.png", "loop_timing.png"} <= set(images)
    assert any(name.startswith("sysid_") for name in images)
    for name in images:
        assert (page.parent / name).stat().st_size > 1000, name
    assert "panda_joint1" in text  # the contract's joints and the sysid table
    assert "kp_scale" in text


def test_a_stage_reruns_alone_and_finished_ones_are_kept(tiny_run, capsys):
    before = RunFolder.open(tiny_run).stages
    assert main(["pipeline", "--run-dir", str(tiny_run), "--from", "report"]) == 0
    after = RunFolder.open(tiny_run).stages
    assert {k: v for k, v in after.items() if k != "report"} == {
        k: v for k, v in before.items() if k != "report"
    }
    assert "train: done" in capsys.readouterr().out
    assert main(["pipeline", "--run-dir", str(tiny_run), "--task", "go2-flat"]) == 2
    assert "is a run of {'task': 'arm-reach'}" in " ".join(capsys.readouterr().out.split())


def test_run_folder_refuses_a_foreign_folder_and_out_of_order_stages(tmp_path):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a pipeline run folder"):
        RunFolder.open(tmp_path / "other")
    run = RunFolder.open(tmp_path / "new", {"task": "arm-reach"})
    with pytest.raises(ValueError, match="stage 'train' has not run"):
        run_pipeline(run, console=None, first="sysid")
    with pytest.raises(ValueError, match="unknown stage 'deploy'"):
        run_pipeline(run, console=None, first="deploy")
    with pytest.raises(ValueError, match="train_iterations must be ≥ 1"):
        PipelineConfig(train_iterations=0)
    assert PipelineConfig(train_iterations=0, init_checkpoint="model_70.pt").iterations == 0
    with pytest.raises(ValueError, match="unknown pipeline config fields \\['tsak'\\]"):
        PipelineConfig.from_dict({"tsak": "arm-reach"})


def test_sysid_starts_after_the_recovery_from_the_last_fault():
    report = {
        "faults": [{"t_s": 1.0}, {"t_s": 1.5}],
        "safety_events": [
            {"t_s": 0.0, "to": "standup"}, {"t_s": 0.8, "to": "running"},
            {"t_s": 1.06, "to": "damping"}, {"t_s": 1.5, "to": "standup"},
            {"t_s": 4.5, "to": "running"},
        ],
    }  # fmt: skip
    assert sysid_start(report) == pytest.approx(5.0)
    report["safety_events"] = report["safety_events"][:4]
    with pytest.raises(ValueError, match="never returned to RUNNING after the last fault"):
        sysid_start(report)
    assert hil_duration(PipelineConfig(faults="standard")) == pytest.approx(20.0 + 3.5 + 20.0)
