"""Smoke tests of the benchmark scripts: they run and print the JSON they promise.

No timing is asserted (DESIGN: benchmarks print figures, tests never assert on time).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_quick(script: str) -> dict:
    """Run ``benchmarks/<script> --quick`` and return the JSON it prints."""
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / script), "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and value > 0


def test_sim_throughput_quick_prints_its_figures():
    report = run_quick("sim_throughput.py")

    for key in ("benchmark", "task", "command", "machine", "settings", "target"):
        assert key in report
    assert report["task"] == "go2-flat"
    machine = report["machine"]
    assert machine["cpu_model"] and _positive(machine["nproc"])
    assert machine["mujoco"] and machine["python"]

    grid = report["taskenv_vs_ceiling"]
    settings = report["settings"]
    assert {(r["num_envs"], r["nthread"]) for r in grid} == {
        (n, t) for n in settings["num_envs"] for t in settings["nthreads"]
    }
    for row in grid:
        for key in ("env_steps_per_s", "ceiling_steps_per_s", "ratio"):
            assert _positive(row[key]), (key, row)
        assert row["ceiling_check_max_abs_diff"] == 0.0  # same states, same controls

    gym_figures = report["gymnasium"]
    for kind in ("sync", "async"):
        rows = gym_figures[kind]
        assert [r["num_envs"] for r in rows] == gym_figures[f"{kind}_num_envs"]
        for row in rows:
            for key in ("env_steps_per_s", "taskenv_nthread1_steps_per_s"):
                assert _positive(row[key]), (kind, key, row)

    memory = report["memory"]
    assert all(_positive(r["bytes_per_env"]) for r in memory["taskenv"])
    assert _positive(memory["sync"]["bytes_per_env"])
    assert _positive(memory["async"]["bytes_per_env"])
    assert isinstance(report["target"]["met"], bool)


def test_randomization_overhead_quick_prints_its_figures():
    report = run_quick("randomization_overhead.py")
    assert report["benchmark"] == "randomization_overhead" and report["task"] == "go2-flat"
    assert set(report["variants"]) == {"off", "reset_terms", "default"}
    for variant in report["variants"].values():
        assert variant["env_steps_per_s_cpu"] > 0 and variant["resets_per_step"] > 1
    assert set(report["verdict"]) == {"reset_terms", "default"}
    assert report["profile_default"]["reset_ms_per_step"] > 0


def test_training_throughput_quick_prints_its_figures():
    report = run_quick("training_throughput.py")
    assert report["benchmark"] == "training_throughput"
    for row in report["training"]:
        for key in ("sim_only_steps_per_s", "training_steps_per_s", "ratio"):
            assert _positive(row[key]), (key, row)
        assert 0.0 < row["collection_share"] < 1.0
    assert _positive(report["sb3"]["env_steps_per_s"])
    target = report["target"]
    assert target["num_envs"] in [row["num_envs"] for row in report["training"]]
    assert isinstance(target["met"], bool)


def policy_rows(script: str) -> list[dict]:
    """Run a go2-flat + arm-reach latency benchmark quickly; check its header; its rows."""
    report = run_quick(script)
    assert report["benchmark"] == script.removesuffix(".py")
    assert report["machine"]["onnxruntime"] and _positive(report["machine"]["nproc"])
    assert [r["policy"] for r in report["policies"]] == ["go2-flat", "arm-reach"]
    assert isinstance(report["target"]["met"], bool)
    return report["policies"]


def test_export_latency_quick_prints_its_figures():
    for row in policy_rows("export_latency.py"):
        assert row["parity_max_abs_diff"] <= 1e-5
        for backend in ("ort", "ort_policy", "torch"):
            figures = row[backend]
            assert 0 < figures["median_us"] <= figures["p99_us"], (backend, row)


def test_node_loop_quick_prints_its_figures():
    import pytest

    pytest.importorskip("rclpy", reason="the `ros` extra (ROS 2 Jazzy wheels)")
    report = run_quick("node_loop.py")
    assert report["benchmark"] == "node_loop" and _positive(report["machine"]["nproc"])
    assert [r["rate_hz"] for r in report["rates"]] == [50, 500]
    for row in report["rates"]:
        for key in ("stamp_period_error", "arrival_period_error", "bare_timer"):
            figures = row[key]
            assert figures["samples"] > 0, (key, row)
            assert 0 <= figures["median_us"] <= figures["p99_us"] <= figures["max_us"], (key, row)
            assert _positive(figures["mean_period_us"])
        assert row["latency"]["median_us"] > 0
        assert row["final_state"] in ("running", "damping")


def test_hil_timing_quick_prints_its_figures():
    import pytest

    pytest.importorskip("rclpy", reason="the `ros` extra (ROS 2 Jazzy wheels)")
    report = run_quick("hil_timing.py")
    assert report["benchmark"] == "hil_timing" and report["mode"] == "realtime"
    assert report["period_error"]["count"] > 100  # 5 s at 50 Hz
    assert _positive(report["state_to_command_latency"]["p50_ms"])
    assert report["real_time"]["real_time_factor"] > 0.5
    assert report["dropped"]["commands_dropped"] <= 1
    for node, priority in (("robot", 50), ("policy", 40)):  # FIFO where permitted
        scheduling = report["scheduling"][node]
        assert scheduling == f"SCHED_FIFO {priority}" or scheduling.startswith("normal ("), node


def test_sysid_accuracy_quick_prints_its_figures():
    report = run_quick("sysid_accuracy.py")
    assert [c["profile"] for c in report["cases"]] == ["panda-hidden", "go2-stand-hidden"]
    for case in report["cases"]:
        assert case["errors"]["delay_steps"] <= 1
        assert case["errors"]["kp_scale"] < 0.1
        assert 0 < case["effort_rms_after"] < case["effort_rms_before"]


def test_deploy_tick_quick_prints_its_figures():
    for row in policy_rows("deploy_tick.py"):
        assert row["ticks"] == 200 and row["ticks_not_running"] == 0  # every tick timed runs
        for part in ("tick", "observation", "inference", "safety"):
            figures = row[part]
            assert 0 < figures["median_us"] <= figures["p99_us"] <= figures["max_us"], (part, row)
        assert row["tick"]["median_us"] > row["inference"]["median_us"]
