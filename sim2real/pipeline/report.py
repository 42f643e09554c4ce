"""The pipeline's report: one HTML page with its PNGs (and a GIF) in ``report/``.

Sections, each an ``<h2 id=...>``:

- ``overview``: the run's config and each stage's wall time;
- ``training``: episode return and length over the first training and the fine-tune;
- ``contract``: the exported policy's contract (``sim2real inspect``'s tables);
- ``hil``: the headline figures of the HIL run before sysid and after the fine-tune, side
  by side, and each fault's reaction (DAMPING after how long);
- ``safety``: the runtime's state over time in both runs, faults marked;
- ``timing``: histograms of the policy's tick periods and the commands' inter-arrival;
- ``sysid``: the trajectory fit and delay figures and the parameter table with intervals
  (and, against a HIL profile, the truth and the error);
- ``video``: the fine-tuned policy in simulation, where offscreen rendering works.
"""

from __future__ import annotations

import html
import io
import json
import shutil
from pathlib import Path

from rich.console import Console

from sim2real import cli_hil
from sim2real.pipeline import figures
from sim2real.pipeline.run_folder import RunFolder

SECTIONS = ("overview", "training", "contract", "hil", "safety", "timing", "sysid", "video")
STYLE = (
    "body{font-family:sans-serif;margin:2em;max-width:1100px}"
    "td,th{padding:2px 10px;border-bottom:1px solid #ddd;text-align:right}"
    "td:first-child,th:first-child{text-align:left}pre{font-size:12px;line-height:1.25}"
    "img{max-width:100%}"
)


def write_report(run: RunFolder, folder: Path, console: Console) -> Path:
    """Write ``folder/index.html`` and its figures from the run's artifacts; returns the page."""
    from sim2real.export.loading import load_policy

    reports = {name: json.loads(run.artifact(name, "report").read_text()) for name in figures.RUNS}
    contract = load_policy(run.artifact("finetune", "policy")).contract
    training = figures.training_figure(
        {
            "train": figures.read_metrics(run.artifact("train", "metrics")),
            "fine-tune (identified ranges)": figures.read_metrics(
                run.artifact("finetune", "metrics")
            ),
        },
        folder / "training.png",
    )
    timeline = figures.timeline_figure(reports, folder / "safety_timeline.png")
    timing = figures.timing_figure(
        {name: run.artifact(name, "bag") for name in figures.RUNS},
        contract.control_period_s,
        folder / "loop_timing.png",
    )
    sysid_figures = []
    for source in sorted(run.artifact("sysid", "report").parent.glob("*.png")):
        sysid_figures.append(shutil.copy(source, folder / f"sysid_{source.name}"))
    video = _video(run, folder, console) if run.config.video else None
    body = [
        _section("overview", "Run", _overview(run)),
        _section("training", "Training", _image(training)),
        _section("contract", "Policy contract", _contract(contract)),
        _section("hil", "HIL before and after sysid", _hil_table(reports)),
        _section("safety", "Safety events", _image(timeline) + _events(reports)),
        _section("timing", "Loop timing", _image(timing)),
        _section(
            "sysid",
            "System identification",
            "".join(_image(Path(p)) for p in sysid_figures)
            + run.artifact("sysid", "parameters").read_text(),
        ),
        _section("video", "The fine-tuned policy", video),
    ]
    page = folder / "index.html"
    page.write_text(
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>sim2real pipeline: {html.escape(run.config.task)}</title>"
        f"<style>{STYLE}</style></head><body>"
        f"<h1>sim2real pipeline: {html.escape(run.config.task)}</h1>{''.join(body)}</body></html>"
    )
    return page


def _section(anchor: str, title: str, content: str) -> str:
    return f"<h2 id='{anchor}'>{html.escape(title)}</h2>{content}"


def _image(path: Path) -> str:
    return f"<p><img src='{html.escape(path.name)}' alt='{html.escape(path.stem)}'></p>"


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _overview(run: RunFolder) -> str:
    config = [
        [key, "—" if value is None else str(value)] for key, value in run.config.to_dict().items()
    ]
    stages = [
        [name, f"{record['seconds']:.0f} s", record["finished"]]
        for name, record in run.stages.items()
    ]
    return (
        _table(["setting", "value"], config)
        + "<p></p>"
        + _table(["stage", "wall time", "finished"], stages)
    )


def _contract(contract) -> str:
    from sim2real.export.inspection import contract_tables

    console = Console(record=True, width=120, file=io.StringIO())
    for table in contract_tables(contract):
        console.print(table)
    return console.export_html(inline_styles=True, code_format="<pre>{code}</pre>")


def _hil_table(reports: dict[str, dict]) -> str:
    columns = [figures.RUNS[name][0] for name in reports]
    values = [dict(cli_hil.summary_rows(report)) for report in reports.values()]
    rows = [[figure] + [v.get(figure, "—") for v in values] for figure in values[0]]
    for i, fault in enumerate(next(iter(reports.values()))["faults"]):
        if fault["kind"] == "reset":
            continue
        cells = []
        for report in reports.values():
            reaction = report["faults"][i]["reaction"]
            cells.append(
                "rode it out"
                if reaction is None
                else f"DAMPING after {reaction['damping_after_s'] * 1e3:.0f} ms"
            )
        rows.append([f"{fault['t_s']:g} s: {fault['fault']}", *cells])
    return _table(["figure", *columns], rows)


def _events(reports: dict[str, dict]) -> str:
    rows = [
        [figures.RUNS[name][0], f"{e['t_s']:.2f} s", f"{e['from']} → {e['to']}", e["reason"]]
        for name, report in reports.items()
        for e in report["safety_events"]
    ]
    return (
        "<details><summary>every state change</summary>"
        + _table(["run", "time", "change", "reason"], rows)
        + "</details>"
    )


def _video(run: RunFolder, folder: Path, console: Console) -> str:
    from sim2real.sim.render import rendering_available

    available, reason = rendering_available()
    if not available:
        return (
            f"<p>No video: offscreen rendering is not available here ({html.escape(reason)}).</p>"
        )
    with console.status("rendering the fine-tuned policy"):
        gif = render_policy(
            run.artifact("finetune", "checkpoint"),
            run.config.task,
            folder / "policy.gif",
            run.config.seed,
        )
    return _image(gif)


#: Frames per second of the GIF (every other control step at 50 Hz).
GIF_FPS = 25.0


def render_policy(checkpoint: Path, task: str, path: Path, seed: int) -> Path:
    """One deterministic episode of ``checkpoint`` in simulation (randomization off) as a GIF."""
    from sim2real.policies.checkpoint import actor_critic_from_state, load_checkpoint
    from sim2real.policies.evaluation import evaluate
    from sim2real.sim.render import render_episode, write_video
    from sim2real.sim.tasks import make_env

    _, model = actor_critic_from_state(load_checkpoint(checkpoint), checkpoint)
    env = make_env(task, 1, seed=seed, randomization="off")
    _, qpos = evaluate(model, env, record_env=0, seed=seed)
    stride = max(1, round(1.0 / (env.step_dt * GIF_FPS)))
    fps = 1.0 / (env.step_dt * stride)
    frames = render_episode(env.model, qpos[::stride], fps=fps, width=400, height=300)
    return write_video(frames, path, fps=fps)
