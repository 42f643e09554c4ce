"""The accelerator backends (MJX, MuJoCo Warp) against the CPU backend, on the CPU.

JAX's CPU backend and Warp's CPU device run the same engines as a GPU does. With the
same seed, the shipped domain randomization draws the same per-env model fields on
every backend, so equal trajectories also show that those fields reach the device.
Each test skips, saying why, when its backend's extra is not installed.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

from sim2real.sim.backends import extra_installed, require_extra
from sim2real.sim.tasks import make_env

NUM_ENVS = 2
CONTROL_STEPS = 100
# float32 on the device against float64 on the CPU, 100 control steps with the shipped
# randomization. Measured max qpos errors: warp 3e-6 (arm), 1.4e-4 (go2); mjx 1.4e-4
# (go2), and on the arm 3e-7 once its drives stop saturating. MJX keeps a position
# actuator's kd in the implicit integrator's damping while the drive is clamped at its
# effort limit (MuJoCo drops it then): in the ~20 control steps after a reset, while the
# arm's drives saturate, MJX's arm is up to 0.02 rad off.
TOLERANCE = {  # (qpos: rad, or m for the base; observations, scaled to O(1); rewards)
    "arm-reach": (1e-4, 1e-3, 1e-5),
    # go2's joint velocities and contact rewards part most at foot touchdowns (measured
    # 2e-3 in the observations and 1e-4 in a step's reward, on both device backends)
    "go2-flat": (1e-3, 1e-2, 1e-3),
}
SATURATED_STEPS = 20  # after a reset, for mjx on the arm
SATURATED_TOLERANCE = (0.05, 0.2, 1e-3)  # measured 0.02 rad and 0.1
# Action amplitude: 0.05 on the arm, whose drives larger ones keep clamped; random actions make go2
# fall at once, and chaotic contact sequences are where float32 and float64 part.
AMPLITUDE = {"arm-reach": 0.05, "go2-flat": 0.5}


def _case(backend: str, task: str):
    reason = f"the {backend!r} backend's extra is not installed: pip install 'sim2real[{backend}]'"
    skip = pytest.mark.skipif(not extra_installed(backend), reason=reason)
    return pytest.param((backend, task), marks=skip, id=f"{backend}-{task}")


@pytest.fixture(
    scope="module",
    params=[_case(b, t) for b in ("mjx", "warp") for t in ("arm-reach", "go2-flat")],
)
def envs(request):
    """(backend name, CPU env, device env) of one task: same seed, randomization on.

    Module-scoped: the device compiles its kernels once per case. Every test starts
    with a seeded reset of both.
    """
    backend, task = request.param
    reference = make_env(task, NUM_ENVS, seed=3, nthread=1)
    return backend, reference, make_env(task, NUM_ENVS, seed=3, backend=backend)


def _actions(env, step: int) -> np.ndarray:
    """Smooth env-dependent actions, (N, A) float32."""
    phase = np.arange(env.num_envs * env.num_actions).reshape(env.num_envs, env.num_actions)
    return (AMPLITUDE[env.task.name] * np.sin(0.2 * step + phase)).astype(np.float32)


def _assert_same_step(reference, device, step: int, tolerance: tuple[float, ...]) -> None:
    qpos_tol, obs_tol, reward_tol = tolerance
    actions = _actions(reference, step)
    expected, got = reference.step(actions), device.step(actions)
    qpos_error = np.abs(reference.backend.qpos - device.backend.qpos).max()
    assert qpos_error < qpos_tol, f"step {step}: qpos differs by {qpos_error:.2e}"
    for group in expected.obs:
        error = np.abs(expected.obs[group] - got.obs[group]).max()
        assert error < obs_tol, f"step {step}: {group!r} observations differ by {error:.2e}"
    np.testing.assert_allclose(got.rewards, expected.rewards, atol=reward_tol)
    np.testing.assert_array_equal(got.terminated, expected.terminated)
    np.testing.assert_array_equal(got.time_outs, expected.time_outs)


def test_trajectories_match_the_cpu_backend(envs):
    backend, reference, device = envs
    task = reference.task.name
    for env in (reference, device):
        env.reset(seed=5)
    masses = reference.backend.model_field("body_mass")
    assert not np.array_equal(masses[0], masses[1]), "randomization should vary the envs"
    np.testing.assert_array_equal(device.backend.model_field("body_mass"), masses)
    for step in range(CONTROL_STEPS):
        if step == CONTROL_STEPS // 2:  # the device also clears warm starts on a reset
            for env in (reference, device):
                env.reset(seed=6)
        since_reset = step % (CONTROL_STEPS // 2)
        if backend == "mjx" and task == "arm-reach" and since_reset < SATURATED_STEPS:
            tolerance = SATURATED_TOLERANCE
        else:
            tolerance = TOLERANCE[task]
        _assert_same_step(reference, device, step, tolerance)


def test_device_tensor_shares_the_device_state(envs):
    _, _, device = envs
    device.reset(seed=5)
    device.step(_actions(device, 0))
    backend = device.backend
    for name in ("qpos", "qvel"):  # derived fields may be a forward pass newer (arm's stage)
        tensor = backend.device_tensor(name)
        host = getattr(backend, name)
        np.testing.assert_allclose(tensor.cpu().numpy().reshape(host.shape), host, atol=1e-6)
    device_qpos = backend._data.qpos  # the engine's own array, to compare addresses
    address = getattr(device_qpos, "ptr", None) or device_qpos.unsafe_buffer_pointer()
    assert backend.device_tensor("qpos").data_ptr() == address


def test_an_env_that_diverges_is_reported_and_reset(envs):
    _, _, device = envs
    device.reset(seed=5)
    device.backend.qvel[1] = np.nan
    result = device.step(_actions(device, 0))
    assert result.infos["instabilities"] == 1
    assert result.terminated[1] and not result.terminated[0]
    assert np.isfinite(device.backend.qpos).all() and np.isfinite(result.obs["policy"]).all()


@pytest.mark.parametrize("backend, module", [("mjx", "jax"), ("warp", "mujoco_warp")])
def test_a_missing_extra_is_named(monkeypatch, backend, module):
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    with pytest.raises(ImportError, match=rf"pip install 'sim2real\[{backend}\]'"):
        require_extra(backend)
    with pytest.raises(ImportError, match=rf"sim2real\[{backend}\]"):
        make_env("point-reach", 2, backend=backend)


@pytest.mark.skipif(not extra_installed("warp"), reason="needs sim2real[warp]")
def test_training_runs_on_a_device_backend_unchanged(tmp_path):
    from sim2real.cli import main

    code = main(
        [
            "train",
            "point-reach",
            "--backend",
            "warp",
            "--set",
            "num_envs=8",
            "max_iterations=2",
            "save_interval=1",
            "tensorboard=false",
            f"log_dir={tmp_path}",
            "run_name=warp",
        ]
    )
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "warp").glob("*.pt"))
