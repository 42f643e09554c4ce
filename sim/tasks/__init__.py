"""The task registry: every task by name, and ``make_env`` to build one.

The registry is an explicit dict, filled here and nowhere else.
"""

from __future__ import annotations

from sim2real.sim.tasks.arm_reach import ArmReach
from sim2real.sim.tasks.base import RewardTerm, Task, TerminationTerm
from sim2real.sim.tasks.go2_flat import Go2Flat
from sim2real.sim.tasks.go2_rough import Go2Rough
from sim2real.sim.tasks.point_reach import PointReach

TASKS: dict[str, type[Task]] = {
    Go2Flat.name: Go2Flat,
    Go2Rough.name: Go2Rough,
    ArmReach.name: ArmReach,
    PointReach.name: PointReach,
}


def task_class(name: str) -> type[Task]:
    """The task class registered as ``name``; a clear error for unknown names."""
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(
            f"unknown task {name!r}; registered tasks: {', '.join(sorted(TASKS))}"
        ) from None


def make_env(
    name: str,
    num_envs: int,
    seed: int = 0,
    nthread: int = 0,
    backend: str = "cpu",
    randomization=None,
):
    """Build the ``TaskEnv`` of task ``name`` with ``num_envs`` envs; see ``TaskEnv``.

    ``randomization``: None for the task's shipped domain randomization, a YAML path or a
    ``RandomizationConfig``, or ``"off"``.
    """
    from sim2real.sim.task_env import TaskEnv

    return TaskEnv(
        task_class(name)(),
        num_envs,
        seed=seed,
        nthread=nthread,
        backend=backend,
        randomization=randomization,
    )


__all__ = ["TASKS", "RewardTerm", "Task", "TerminationTerm", "make_env", "task_class"]
