"""Training logs: a rich progress bar, TensorBoard, and ``metrics.jsonl`` for reports.

Each iteration's scalars (losses, learning rate, action std, episode statistics,
per-term episode rewards, curriculum levels) go to TensorBoard under their tag and as
one JSON line to ``metrics.jsonl``, flushed at once so a crash loses nothing written.
A resumed run first drops the lines past its checkpoint (and a line cut by a crash), so
the file holds each iteration once.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


class TrainLogger:
    """Logs one run into ``run_dir``; a no-op on processes other than rank 0.

    Args:
        run_dir: the run folder.
        total_iterations: the last iteration of the run, for the progress bar and ETA.
        start_iteration: where the run (re)starts.
        enabled: False on non-main processes.
        tensorboard: write TensorBoard event files.
        console: where the progress bar draws.
    """

    def __init__(
        self,
        run_dir: Path,
        total_iterations: int,
        start_iteration: int = 0,
        enabled: bool = True,
        tensorboard: bool = True,
        console: Console | None = None,
    ):
        self.enabled = enabled
        self.writer = None
        self.progress = None
        if not enabled:
            return
        run_dir.mkdir(parents=True, exist_ok=True)
        metrics = run_dir / "metrics.jsonl"
        _truncate_metrics(metrics, start_iteration)
        self.metrics_file = metrics.open("a")
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))
        self.progress = Progress(
            TextColumn("[bold]iteration"),
            MofNCompleteColumn(),
            BarColumn(),
            TextColumn("{task.fields[status]}"),
            TimeRemainingColumn(),
            console=console or Console(stderr=True),
        )
        self.bar = self.progress.add_task(
            "train", total=total_iterations, completed=start_iteration, status=""
        )
        self.progress.start()
        self.start_time = time.time()

    def log(self, iteration: int, scalars: dict[str, float]) -> None:
        """Record the scalars of ``iteration`` (1-based, after its update)."""
        if not self.enabled:
            return
        record = {"iteration": iteration, "time": time.time() - self.start_time, **scalars}
        self.metrics_file.write(json.dumps(record) + "\n")
        self.metrics_file.flush()
        if self.writer is not None:
            for tag, value in scalars.items():
                self.writer.add_scalar(tag, value, iteration)
        status = f"{scalars.get('perf/steps_per_s', 0):,.0f} steps/s"
        if "episode/return" in scalars:
            status += (
                f"  return {scalars['episode/return']:.2f}  length {scalars['episode/length']:.0f}"
            )
        self.progress.update(self.bar, completed=iteration, status=status)

    def close(self) -> None:
        """Stop the bar and flush every file."""
        if not self.enabled:
            return
        self.progress.stop()
        self.metrics_file.close()
        if self.writer is not None:
            self.writer.close()


def _truncate_metrics(path: Path, last_iteration: int) -> None:
    """Keep the whole lines of ``path`` up to ``last_iteration`` (atomic rewrite)."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            break  # a line cut by a crash, the last one
        if record.get("iteration", 0) > last_iteration:
            break
        kept.append(line + "\n")
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(kept))
    os.replace(tmp, path)
