"""``run_pipeline``: the stages in order, skipping those a run folder has finished."""

from __future__ import annotations

import time

from rich.console import Console

from sim2real.pipeline.run_folder import STAGES, RunFolder
from sim2real.pipeline.stages import STAGE_FUNCTIONS


def run_pipeline(
    run: RunFolder,
    console: Console,
    first: str | None = None,
    last: str | None = None,
) -> None:
    """Run the stages from ``first`` to ``last`` (default: all), finished ones skipped.

    A stage before ``first`` that has finished is kept; every stage from ``first`` on is
    redone from scratch. An unfinished stage runs (an unfinished training resumes from its
    last checkpoint, any other stage starts over).

    Raises:
        ValueError: an unknown stage, or ``first`` needs an earlier stage that has not run.
    """
    for name in (first, last):
        if name is not None and name not in STAGES:
            raise ValueError(f"unknown stage {name!r}; stages: {', '.join(STAGES)}")
    begin = STAGES.index(first) if first else 0
    end = STAGES.index(last) if last else len(STAGES) - 1
    for index, stage in enumerate(STAGES[: end + 1]):
        if index < begin or (first is None and run.done(stage)):
            if not run.done(stage):
                raise ValueError(f"stage {stage!r} has not run in {run.root}: start from it")
            console.print(f"[dim]{stage}: done ({run.stages[stage]['seconds']:.0f} s), kept[/]")
            continue
        console.rule(f"[bold]{stage}")
        fresh = first is not None or stage != "train"  # a training resumes
        folder = run.start(stage, fresh=fresh)
        started = time.perf_counter()
        artifacts = STAGE_FUNCTIONS[stage](run, folder, console)
        seconds = time.perf_counter() - started
        run.finish(stage, seconds, artifacts)
        console.print(f"[green]{stage}[/] done in {seconds:.0f} s")
