"""The machine a benchmark ran on, for its JSON report; run alone, prints it."""

from __future__ import annotations

import json
import os
import platform

import mujoco
import numpy as np


def describe_machine() -> dict:
    """CPU model, usable cores and library versions."""
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    return {
        "cpu_model": cpu,
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "mujoco": mujoco.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


if __name__ == "__main__":
    print(json.dumps(describe_machine(), indent=2))
