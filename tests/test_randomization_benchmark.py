"""Smoke test of benchmarks/randomization_overhead.py: it runs and prints its figures.

No timing is asserted (DESIGN: benchmarks print figures, tests never assert on time).
"""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_randomization_overhead_quick_prints_its_figures():
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "randomization_overhead.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["benchmark"] == "randomization_overhead" and report["task"] == "go2-flat"
    assert set(report["variants"]) == {"off", "reset_terms", "default"}
    for variant in report["variants"].values():
        assert variant["env_steps_per_s_cpu"] > 0 and variant["resets_per_step"] > 1
    assert set(report["verdict"]) == {"reset_terms", "default"}
    assert report["profile_default"]["reset_ms_per_step"] > 0
