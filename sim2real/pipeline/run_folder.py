"""``RunFolder``: one pipeline run's folder and its manifest, ``pipeline.json``.

The manifest holds the run's ``PipelineConfig`` and, per finished stage, its wall time and
artifacts (paths relative to the folder). It is rewritten atomically after each stage, so
a crash leaves the last finished stage on record: running the pipeline on the folder again
skips the finished stages and redoes the rest (training resumes from its checkpoint).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from sim2real.pipeline.config import PipelineConfig

#: The stages in order; each one's artifacts live in the folder of its name.
STAGES = ("train", "export", "hil", "sysid", "finetune", "hil_after", "report")
MANIFEST = "pipeline.json"


class RunFolder:
    """A pipeline run's folder; ``open`` creates or reopens one."""

    def __init__(self, root: Path, config: PipelineConfig, stages: dict[str, dict]):
        self.root = root
        self.config = config
        self.stages = stages

    @classmethod
    def open(cls, root: str | Path, changes: dict | None = None) -> RunFolder:
        """The run in ``root``: its stored config, or a new run of ``changes`` on the defaults.

        Raises:
            ValueError: ``changes`` differ from the stored config of an existing run (named),
                or ``root`` is a non-empty folder that is not a pipeline run.
        """
        root = Path(root)
        changes = changes or {}
        manifest = root / MANIFEST
        if manifest.is_file():
            data = json.loads(manifest.read_text())
            config = PipelineConfig.from_dict(data["config"])
            stored = config.to_dict()
            differ = {k: v for k, v in changes.items() if stored.get(k) != v}
            if differ:
                old = {k: stored.get(k) for k in differ}
                raise ValueError(
                    f"{root} is a run of {old}, not {differ}: drop those options to continue "
                    "it, or choose a new --run-dir"
                )
            return cls(root, config, data.get("stages", {}))
        if root.exists() and any(root.iterdir()):
            raise ValueError(f"{root} exists and holds no {MANIFEST}: not a pipeline run folder")
        run = cls(root, PipelineConfig(**changes), {})
        run.save()
        return run

    def path(self, *parts: str) -> Path:
        """A path inside the folder."""
        return self.root.joinpath(*parts)

    def done(self, stage: str) -> bool:
        """Whether ``stage`` finished."""
        return stage in self.stages

    def artifact(self, stage: str, name: str) -> Path:
        """A finished stage's artifact.

        Raises:
            ValueError: the stage has not finished (the run is out of order).
        """
        if stage not in self.stages:
            raise ValueError(f"stage {stage!r} has not run in {self.root}")
        return self.path(self.stages[stage]["artifacts"][name])

    def start(self, stage: str, fresh: bool) -> Path:
        """The stage's folder, emptied first when ``fresh``; forgets it and every later stage."""
        index = STAGES.index(stage)
        for later in STAGES[index:]:
            self.stages.pop(later, None)
        self.save()
        folder = self.path(stage)
        if fresh and folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def finish(self, stage: str, seconds: float, artifacts: dict[str, Path]) -> None:
        """Record a finished stage (artifact paths inside the folder)."""
        self.stages[stage] = {
            "seconds": round(seconds, 2),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "artifacts": {k: str(Path(p).relative_to(self.root)) for k, p in artifacts.items()},
        }
        self.save()

    def save(self) -> None:
        """Write the manifest atomically."""
        self.root.mkdir(parents=True, exist_ok=True)
        data = {"config": self.config.to_dict(), "stages": self.stages}
        temporary = self.root / f".{MANIFEST}.tmp"
        temporary.write_text(json.dumps(data, indent=2))
        os.replace(temporary, self.root / MANIFEST)
