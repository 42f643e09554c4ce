"""``PipelineConfig``: what one pipeline run does, stored in its folder (``pipeline.json``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

#: Training iterations by task where the task's own default is more than a demo needs:
#: arm-reach reaches 2 cm in 70 iterations on 2 cores (pretrained/README.md).
DEMO_TRAIN_ITERATIONS = {"arm-reach": 70}
#: Seconds of fault-free HIL log the sysid stage fits, after the robot recovered from the
#: last fault (the HIL duration's default makes room for them).
SYSID_SECONDS = 20.0


@dataclass(frozen=True)
class PipelineConfig:
    """One run of the loop.

    Attributes:
        task: the registered task trained and deployed.
        robot_profile: the HIL robot (profile file or shipped name); ``None``: the task
            robot's off-nominal ``<robot>-hidden`` profile, so sysid has something to find.
        faults: the HIL fault schedule (file or shipped name).
        train_iterations: PPO iterations of the first training (``None``: a demo-sized
            count for arm-reach, the task's default otherwise); with ``init_checkpoint``,
            iterations on top of it (0: the checkpoint as it is).
        finetune_iterations: iterations of the fine-tune on the identified ranges
            (``None``: a third of ``train_iterations``, at least 1).
        num_envs: parallel training envs (``None``: the task's default).
        init_checkpoint: start the training from this checkpoint instead of from scratch.
        hil_duration_s: each HIL run's length, s (``None``: the fault schedule, the soft
            start and ``sysid_seconds``).
        sysid_seconds: seconds of log after the last fault's recovery that sysid needs.
        state_rate_hz: the HIL robot's joint-state rate, Hz.
        seed: training and HIL seed.
        video: render the final policy to ``report/policy.gif`` where rendering works.
    """

    task: str = "arm-reach"
    robot_profile: str | None = None
    faults: str = "standard"
    train_iterations: int | None = None
    finetune_iterations: int | None = None
    num_envs: int | None = None
    init_checkpoint: str | None = None
    hil_duration_s: float | None = None
    sysid_seconds: float = SYSID_SECONDS
    state_rate_hz: float = 500.0
    seed: int = 0
    video: bool = True

    def __post_init__(self):
        for name in ("train_iterations", "finetune_iterations", "num_envs"):
            value = getattr(self, name)
            least = 0 if name == "train_iterations" and self.init_checkpoint else 1
            if value is not None and value < least:
                raise ValueError(f"{name} must be ≥ {least}, got {value}")
        for name in ("hil_duration_s", "sysid_seconds", "state_rate_hz"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be > 0, got {value}")

    @property
    def iterations(self) -> int:
        """The first training's iterations."""
        if self.train_iterations is not None:
            return self.train_iterations
        if self.task in DEMO_TRAIN_ITERATIONS:
            return DEMO_TRAIN_ITERATIONS[self.task]
        from sim2real.policies.config import build_config

        return build_config(self.task).max_iterations

    @property
    def finetune(self) -> int:
        """The fine-tune's iterations."""
        return self.finetune_iterations or max(1, self.iterations // 3)

    def to_dict(self) -> dict:
        """Plain values (JSON)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> PipelineConfig:
        """Inverse of ``to_dict``.

        Raises:
            ValueError: an unknown field (named).
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown pipeline config fields {unknown}; known: {sorted(known)}")
        return cls(**data)
