"""The pipeline report's figures (matplotlib, Agg): training, safety timeline, loop timing.

Each function draws one PNG and returns its path.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sim2real.deploy.hil.hil_log import HilLog  # noqa: E402

#: Runtime states from bottom to top of the timeline.
STATES = ("inactive", "damping", "standup", "running")
#: The two HIL runs: label, colour.
RUNS = {"hil": ("before sysid", "tab:red"), "hil_after": ("after fine-tune", "tab:blue")}
NS = 1e-9


def read_metrics(path: Path) -> list[dict]:
    """The rows of a run's ``metrics.jsonl`` (a torn last line, from a crash, is skipped)."""
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def training_figure(runs: dict[str, list[dict]], path: Path) -> Path:
    """Episode return and length per iteration, one line per training run."""
    keys = ("episode/return", "episode/length")
    figure, axes = plt.subplots(1, len(keys), figsize=(11, 3.4))
    for axis, key in zip(axes, keys, strict=True):
        for label, rows in runs.items():
            points = [(r["iteration"], r[key]) for r in rows if key in r]
            if points:
                iterations, values = np.array(points).T
                axis.plot(iterations, values, label=label)
        axis.set_xlabel("iteration")
        axis.set_title(key)
        axis.grid(alpha=0.3)
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend()
    return _save(figure, path)


def timeline_figure(reports: dict[str, dict], path: Path) -> Path:
    """The runtime's state over time in each HIL run, the faults marked."""
    figure, axes = plt.subplots(len(reports), 1, figsize=(11, 1.9 * len(reports)), squeeze=False)
    for axis, (name, report) in zip(axes[:, 0], reports.items(), strict=True):
        label, colour = RUNS[name]
        times = [0.0] + [e["t_s"] for e in report["safety_events"]] + [report["duration_s"]]
        states = ["inactive"] + [e["to"] for e in report["safety_events"]]
        levels = [STATES.index(s) if s in STATES else 0 for s in states]
        axis.step(times, levels + levels[-1:], where="post", color=colour, lw=1.5)
        for fault in report["faults"]:
            axis.axvline(fault["t_s"], color="grey", lw=0.8, ls="--")
            axis.text(fault["t_s"], len(STATES) - 0.6, fault["kind"], fontsize=7, rotation=90,
                      va="top", ha="right")  # fmt: skip
        axis.set_yticks(range(len(STATES)), STATES)
        axis.set_ylim(-0.5, len(STATES) - 0.5)
        axis.set_title(f"HIL {label}: runtime state (dashed: faults injected)", fontsize=9)
        axis.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("s after the policy's first tick")
    return _save(figure, path)


def timing_figure(bags: dict[str, Path], control_period_s: float, path: Path) -> Path:
    """Histograms of the policy's tick periods and of the commands' inter-arrival times."""
    figure, axes = plt.subplots(1, 2, figsize=(11, 3.4))
    for name, bag in bags.items():
        label, colour = RUNS[name]
        log = HilLog.from_bag(bag)
        periods = np.diff(log.tick_ns) * NS * 1e3
        arrivals = np.diff(log.command_receipt_ns) * NS * 1e3
        for axis, values in zip(axes, (periods, arrivals), strict=True):
            if values.size:
                axis.hist(values, bins=60, alpha=0.55, color=colour, label=label)
    axes[0].axvline(control_period_s * 1e3, color="black", lw=0.8, ls="--")
    axes[0].set_title("policy tick period (policy clock; dashed: nominal)", fontsize=9)
    axes[1].set_title("command inter-arrival at the recorder (wall clock)", fontsize=9)
    for axis in axes:
        axis.set_xlabel("ms")
        axis.set_yscale("log")
        axis.grid(alpha=0.3)
    axes[0].legend()
    return _save(figure, path)


def _save(figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path
