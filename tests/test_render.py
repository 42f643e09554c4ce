"""Offscreen rendering of the robots and video writing (sim2real.sim.render)."""

from __future__ import annotations

import imageio.v3 as iio
import mujoco
import numpy as np
import pytest

from sim2real.sim import render
from sim2real.sim.assets import asset_path

WIDTH, HEIGHT = 160, 120  # small frames keep the software renderer quick


@pytest.fixture(scope="module")
def gl() -> str:
    """Skip, with the reason, where no OpenGL backend renders; else the backend in use."""
    available, reason = render.rendering_available()
    if not available:
        pytest.skip(reason)
    return reason


def load(robot: str) -> mujoco.MjModel:
    """The packaged robot's model."""
    return mujoco.MjModel.from_xml_path(str(asset_path(robot)))


def home_motion(model: mujoco.MjModel, frames: int, amplitude: float = 0.3) -> np.ndarray:
    """The home pose with the last three joints turning steadily, shape (frames, nq).

    Every frame differs from the one before: a GIF merges identical consecutive frames.
    """
    qpos = np.tile(model.key("home").qpos, (frames, 1))
    qpos[:, -3:] += np.linspace(0.0, amplitude, frames)[:, None]
    return qpos


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute pixel difference of two images, in grey levels."""
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


@pytest.mark.parametrize("robot", ["go2", "panda"])
def test_render_episode_frames(gl: str, robot: str) -> None:
    model = load(robot)
    frames = render.render_episode(model, home_motion(model, 3), fps=30, width=WIDTH, height=HEIGHT)
    assert frames.shape == (3, HEIGHT, WIDTH, 3)
    assert frames.dtype == np.uint8
    assert all(frame.std() > 5.0 for frame in frames), "a blank frame"
    assert mean_abs_diff(frames[0], frames[1]) > 0.1, "the joints moved but the image did not"


def test_default_size_and_larger_than_offscreen_buffer(gl: str) -> None:
    model = load("panda")
    qpos = model.key("home").qpos[None]
    assert render.render_episode(model, qpos, fps=30).shape == (1, 480, 640, 3)
    offwidth = model.vis.global_.offwidth
    frames = render.render_episode(model, qpos, fps=30, width=offwidth + 160, height=600)
    assert frames.shape == (1, 600, offwidth + 160, 3)
    assert model.vis.global_.offwidth == offwidth, "the caller's model was modified"


def test_tracking_camera_follows_the_floating_base(gl: str) -> None:
    model = load("go2")
    qpos = np.tile(model.key("home").qpos, (2, 1))
    qpos[1, 0] += 1.0  # the whole robot, 1 m along x
    tracked = render.render_episode(model, qpos, fps=30, width=WIDTH, height=HEIGHT)
    fixed = render.render_episode(model, qpos, fps=30, width=WIDTH, height=HEIGHT, camera=-1)
    moved_tracked = mean_abs_diff(tracked[0], tracked[1])
    moved_fixed = mean_abs_diff(fixed[0], fixed[1])
    assert moved_fixed > 2.0, "the fixed camera should see the robot leave its place"
    assert moved_tracked < 0.2 * moved_fixed


def test_camera_choices(gl: str) -> None:
    model = load("go2")
    qpos = model.key("home").qpos[None]
    named = render.render_episode(model, qpos, fps=30, width=WIDTH, height=HEIGHT, camera="track")
    assert named.std() > 5.0
    base = render.render_episode(model, qpos, fps=30, width=WIDTH, height=HEIGHT, track_body="base")
    auto = render.render_episode(model, qpos, fps=30, width=WIDTH, height=HEIGHT)
    np.testing.assert_array_equal(base, auto)  # the default tracks the free joint's body
    with pytest.raises(ValueError, match="not both"):
        render.render_episode(model, qpos, fps=30, camera="track", track_body="base")
    with pytest.raises(ValueError, match="nose"):
        render.render_episode(model, qpos, fps=30, track_body="nose")
    with pytest.raises(ValueError, match="nq=19"):
        render.render_episode(model, qpos[:, :7], fps=30)


def synthetic_frames(count: int = 5, height: int = 48, width: int = 64) -> np.ndarray:
    """Distinct frames (a bright square moving right), shape (count, height, width, 3)."""
    frames = np.zeros((count, height, width, 3), dtype=np.uint8)
    for t in range(count):
        frames[t, 10:30, 8 * t : 8 * t + 20] = (255, 200, 40)
    return frames


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_write_video_reads_back(tmp_path, suffix: str) -> None:
    frames = synthetic_frames()
    path = render.write_video(frames, tmp_path / f"clip{suffix}", fps=10)
    assert path == tmp_path / f"clip{suffix}"
    back = iio.imread(path, index=None)
    assert back.shape == frames.shape
    assert [p.name for p in tmp_path.iterdir()] == [path.name], "a temporary file was left"


def test_rendered_episode_to_video(gl: str, tmp_path) -> None:
    model = load("panda")
    frames = render.render_episode(model, home_motion(model, 4), fps=20, width=WIDTH, height=HEIGHT)
    for name in ("reach.mp4", "reach.gif"):
        back = iio.imread(render.write_video(frames, tmp_path / name, fps=20), index=None)
        assert back.shape == frames.shape


def test_write_video_rejects_other_suffixes(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"'\.avi'"):
        render.write_video(synthetic_frames(), tmp_path / "clip.avi", fps=10)
    with pytest.raises(ValueError, match="suffix ''"):
        render.write_video(synthetic_frames(), tmp_path / "clip", fps=10)
    assert not list(tmp_path.iterdir())


def test_write_video_is_atomic(tmp_path, monkeypatch) -> None:
    path = render.write_video(synthetic_frames(), tmp_path / "clip.gif", fps=10)
    before = path.read_bytes()

    def crash_midway(uri, *args, **kwargs):
        with open(uri, "wb") as f:
            f.write(b"GIF89a half")
        raise OSError("disk full")

    monkeypatch.setattr(render.iio, "imwrite", crash_midway)
    with pytest.raises(OSError, match="disk full"):
        render.write_video(synthetic_frames(), path, fps=10)
    assert path.read_bytes() == before, "the old video was damaged"
    assert [p.name for p in tmp_path.iterdir()] == ["clip.gif"], "a temporary file was left"
