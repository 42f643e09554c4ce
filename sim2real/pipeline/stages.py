"""The pipeline's stages; each writes into its folder of the run and names its artifacts.

- ``train``: PPO from scratch (or from ``init_checkpoint``) → ``train/model_<it>.pt``,
  ``metrics.jsonl``. A crashed training resumes from its last checkpoint.
- ``export``: the policy to ONNX, parity-checked → ``export/policy.onnx`` (+ ``.json``).
- ``hil``: ``sim2real hil`` (lockstep) against the robot profile with the fault schedule,
  recorded → ``hil/hil_report.json``, ``hil/bag``.
- ``sysid``: identification from that bag, on the span after the robot recovered from the
  last fault (faults such as a command delay would bias the fits) → ``sysid/ranges.yaml``
  (randomization schema), ``sysid/report/``, ``sysid/parameters.html``.
- ``finetune``: training continued from the first one's last checkpoint with the identified
  ranges, then exported → ``finetune/model_<it>.pt``, ``finetune/policy.onnx``.
- ``hil_after``: the HIL run again with the fine-tuned policy → ``hil_after/``.
- ``report``: ``report/index.html`` and its PNGs (``sim2real.pipeline.report``).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from sim2real.pipeline.run_folder import RunFolder

#: Seconds after the robot is RUNNING again before the sysid span starts.
SETTLE_S = 0.5
#: The shortest sysid span accepted, s.
MIN_SYSID_S = 5.0
#: The HIL policy node's soft start (ramp, fade-in), s: the ``sim2real hil`` defaults.
HIL_STANDUP_S = 2.0
HIL_FADE_S = 1.0


def task_robot(task: str) -> str:
    """The robot a task drives."""
    from sim2real.sim.tasks import task_class

    return task_class(task).robot


def train(run: RunFolder, folder: Path, console: Console) -> dict[str, Path]:
    """Train (or resume the training in ``folder``)."""
    from sim2real.policies.checkpoint import latest_checkpoint, load_checkpoint
    from sim2real.policies.config import build_config
    from sim2real.policies.runner import Trainer

    config = run.config
    start = 0
    if config.init_checkpoint:
        init = Path(config.init_checkpoint)
        start = int(load_checkpoint(init)["iteration"])
        if not any(folder.glob("model_*.pt")):
            shutil.copy(init, folder / f"model_{start}.pt")
    target = start + config.iterations
    if any(folder.glob("model_*.pt")):
        changes = {"max_iterations": target}
        if config.num_envs:
            changes["num_envs"] = config.num_envs
        trainer = Trainer.resume(folder, changes, console=console)
    else:
        overrides = [f"max_iterations={target}", f"seed={config.seed}"]
        if config.num_envs:
            overrides.append(f"num_envs={config.num_envs}")
        trainer = Trainer(build_config(config.task, overrides=overrides), folder, console=console)
    if trainer.config.task != config.task:
        raise ValueError(f"{config.init_checkpoint} was trained on {trainer.config.task!r}")
    trainer.learn()
    return {"checkpoint": latest_checkpoint(folder), "metrics": folder / "metrics.jsonl"}


def export(run: RunFolder, folder: Path, console: Console) -> dict[str, Path]:
    """Export the trained policy (parity-checked against torch)."""
    return _export(run.artifact("train", "checkpoint"), folder, run.config.task, console)


def hil(run: RunFolder, folder: Path, console: Console) -> dict[str, Path]:
    """HIL with the exported policy."""
    return _hil(run, run.artifact("export", "policy"), folder, console)


def sysid(run: RunFolder, folder: Path, console: Console) -> dict[str, Path]:
    """Identify the HIL robot from the recorded bag; write ranges and the report."""
    import json

    from sim2real import cli_sysid
    from sim2real.deploy.hil.profile import load_profile
    from sim2real.sysid.report import parameter_table
    from sim2real.sysid.robot_log import load_log
    from sim2real.sysid.validation import profile_truth

    config = run.config
    report = json.loads(run.artifact("hil", "report").read_text())
    start = sysid_start(report)
    if report["duration_s"] - start < MIN_SYSID_S:
        raise ValueError(
            f"the HIL log holds {report['duration_s'] - start:.1f} s after the robot recovered "
            f"from the last fault (from {start:.1f} s on), sysid needs {MIN_SYSID_S:g} s: "
            "raise hil_duration_s"
        )
    console.print(f"fitting the HIL log from {start:.1f} s on (after the last fault)")
    log = load_log(run.artifact("hil", "bag")).window(start)
    truth = profile_truth(load_profile(_profile_name(config)))
    ranges = folder / "ranges.yaml"
    identification, page = cli_sysid.fit_and_write(
        log, task_robot(config.task), config.task, ranges, folder / "report", truth
    )
    table = folder / "parameters.html"
    table.write_text(parameter_table(identification, truth))
    return {"ranges": ranges, "report": page, "parameters": table}


def sysid_start(hil_report: dict) -> float:
    """When the fault-free span of a HIL run starts: back in RUNNING after the last fault, s.

    Raises:
        ValueError: the runtime never ran again after the last fault.
    """
    faults = [f["t_s"] for f in hil_report["faults"]]
    last = max(faults, default=0.0)
    running = [
        e["t_s"] for e in hil_report["safety_events"] if e["to"] == "running" and e["t_s"] >= last
    ]
    if not running:
        raise ValueError(
            f"the runtime never returned to RUNNING after the last fault ({last:g} s): "
            "no fault-free log to identify from"
        )
    return min(running) + SETTLE_S


def finetune(run: RunFolder, folder: Path, console: Console) -> dict[str, Path]:
    """Continue the training with the identified ranges; export the result."""
    from sim2real.policies.checkpoint import latest_checkpoint, load_checkpoint
    from sim2real.policies.runner import Trainer

    checkpoint = run.artifact("train", "checkpoint")
    if not any(folder.glob("model_*.pt")):
        shutil.copy(checkpoint, folder / checkpoint.name)
    start = int(load_checkpoint(checkpoint)["iteration"])
    changes = {
        "max_iterations": start + run.config.finetune,
        "randomization": str(run.artifact("sysid", "ranges").resolve()),
    }
    Trainer.resume(folder, changes, console=console).learn()
    artifacts = _export(latest_checkpoint(folder), folder, run.config.task, console)
    return {
        "checkpoint": latest_checkpoint(folder),
        "metrics": folder / "metrics.jsonl",
        **artifacts,
    }


def hil_after(run: RunFolder, folder: Path, console: Console) -> dict[str, Path]:
    """HIL with the fine-tuned policy."""
    return _hil(run, run.artifact("finetune", "policy"), folder, console)


def report(run: RunFolder, folder: Path, console: Console) -> dict[str, Path]:
    """The run's HTML report."""
    from sim2real.pipeline.report import write_report

    return {"page": write_report(run, folder, console)}


#: Stage name → function(run, its folder, console) → artifacts.
STAGE_FUNCTIONS: dict[str, Callable[[RunFolder, Path, Console], dict[str, Path]]] = {
    "train": train,
    "export": export,
    "hil": hil,
    "sysid": sysid,
    "finetune": finetune,
    "hil_after": hil_after,
    "report": report,
}


def _export(checkpoint: Path, folder: Path, task: str, console: Console) -> dict[str, Path]:
    from sim2real.export.exporter import export_checkpoint

    result = export_checkpoint(checkpoint, folder / "policy.onnx", task=task)
    console.print(
        f"exported {checkpoint.name}: parity max |Δ| {result.parity.max_abs_diff:.1e} "
        f"(tolerance {result.parity.tolerance:g})"
    )
    return {"policy": result.onnx_path, "contract": result.json_path}


def _profile_name(config) -> str:
    return config.robot_profile or f"{task_robot(config.task)}-hidden"


def hil_duration(config) -> float:
    """The HIL runs' length: the configured one, or the faults, the soft start and sysid's span."""
    from sim2real.deploy.hil.faults import FaultSchedule

    if config.hil_duration_s is not None:
        return config.hil_duration_s
    faults = FaultSchedule.from_yaml(config.faults).faults if config.faults else ()
    end = max((f.end for f in faults), default=0.0)
    return end + HIL_STANDUP_S + HIL_FADE_S + SETTLE_S + config.sysid_seconds


def _hil(run: RunFolder, policy: Path, folder: Path, console: Console) -> dict[str, Path]:
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
    from sim2real_ros.hil_session import HilConfig, run_hil

    from sim2real import cli_hil

    config = run.config
    duration = hil_duration(config)
    hil_config = HilConfig(
        task=config.task, policy=policy, out_dir=folder, robot_profile=_profile_name(config),
        faults=config.faults, duration_s=duration, record=folder / "bag",
        state_rate_hz=config.state_rate_hz, standup_s=HIL_STANDUP_S, fade_s=HIL_FADE_S,
        seed=config.seed,
    )  # fmt: skip
    columns = (TextColumn("{task.description}"), BarColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(f"HIL {config.task} on {hil_config.robot_profile}", total=duration)
        result = run_hil(hil_config, lambda done: bar.update(task, completed=done))
    console.print(cli_hil.summary_table(result))
    return {"report": folder / "hil_report.json", "bag": folder / "bag"}
