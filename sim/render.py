"""Offscreen rendering of recorded robot motion to frames, MP4 and GIF.

Headless OpenGL. MuJoCo picks its OpenGL backend once per process: ``import mujoco``
imports ``mujoco.rendering.classic.gl_context``, which reads the ``MUJOCO_GL``
environment variable right then, and every later ``mujoco.Renderer`` creates a
context of the class chosen there. Unset on Linux means GLFW, which needs a display.
So this module:

- respects a ``MUJOCO_GL`` the user set, whatever it is;
- otherwise, on Linux, tries ``egl`` then ``osmesa``, each in a child process (the
  first backend imported binds PyOpenGL's platform for the whole process, so two
  cannot be tried in one, and a driver crash must not take the caller down);
- sets ``MUJOCO_GL`` to the first that renders and reloads MuJoCo's ``gl_context``
  module, because ``mujoco`` has already been imported by then.

EGL needs only ``libEGL`` (Mesa's llvmpipe renders on the CPU when there is no GPU);
OSMesa needs ``libOSMesa`` (Debian: ``apt-get install libosmesa6``).
"""

from __future__ import annotations

import copy
import functools
import importlib
import os
import subprocess
import sys
import uuid
from pathlib import Path

import imageio.v3 as iio
import mujoco
import numpy as np
from mujoco.rendering.classic import gl_context

_HEADLESS_BACKENDS = ("egl", "osmesa")
_INSTALL_HINTS = {
    "egl": "needs libEGL and a Mesa or NVIDIA EGL driver (Debian: libegl1 libegl-mesa0)",
    "osmesa": "needs libOSMesa (Debian: libosmesa6)",
}
_PROBE_TIMEOUT_S = 60.0
_PROBE = """
import mujoco
m = mujoco.MjModel.from_xml_string('<mujoco><worldbody><geom size="1"/></worldbody></mujoco>')
d = mujoco.MjData(m)
mujoco.mj_forward(m, d)
with mujoco.Renderer(m, 16, 16) as r:
    r.update_scene(d)
    assert r.render().any(), "the probe rendered a black image"
"""

# Default view: a three-quarter view from the front right, looking slightly down.
_AZIMUTH_DEG = 135.0
_ELEVATION_DEG = -20.0
_DISTANCE_PER_EXTENT = 2.0  # camera distance in units of the model's extent (stat.extent)
# Geom groups drawn: MuJoCo's default 0-2 plus 3, where the Go2 asset keeps its trunk,
# thighs and feet (collision primitives with no separate visual geom).
_GEOM_GROUPS = (0, 1, 2, 3)
# With software OpenGL (Mesa llvmpipe), MuJoCo's default 4096² shadow map and 4x
# multisampling take most of a frame; 1024² and none render about 4x faster and
# still show where the feet touch the floor.
_SHADOW_MAP_SIZE = 1024
_MSAA_SAMPLES = 0


def _probe(backend: str) -> str:
    """Render one tiny image in a child process with ``MUJOCO_GL=backend``.

    Returns:
        ``""`` when it worked, else the reason (the child's last line of error output).
    """
    env = {**os.environ, "MUJOCO_GL": backend}
    try:
        result = subprocess.run(
            [sys.executable, "-c", _PROBE],
            env=env,
            capture_output=True,
            text=True,
            timeout=_PROBE_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return f"no image within {_PROBE_TIMEOUT_S:.0f} s"
    if result.returncode == 0:
        return ""
    lines = result.stderr.strip().splitlines()
    return lines[-1] if lines else f"exit status {result.returncode}"


@functools.cache
def _select_backend() -> tuple[str | None, str]:
    """Choose the OpenGL backend once per process and make ``mujoco.Renderer`` use it.

    Returns:
        ``(backend, reason)``: the ``MUJOCO_GL`` value in use, or ``None`` with why
        every candidate failed.
    """
    user_choice = os.environ.get("MUJOCO_GL", "")
    if user_choice:
        candidates = (user_choice,)
    elif sys.platform.startswith("linux"):
        candidates = _HEADLESS_BACKENDS
    else:
        candidates = ("",)  # MuJoCo's own default: CGL on macOS, GLFW/WGL on Windows
    failures = []
    for backend in candidates:
        reason = _probe(backend)
        if reason:
            hint = _INSTALL_HINTS.get(backend)
            failures.append(f"MUJOCO_GL={backend!r}: {reason}" + (f" [{hint}]" if hint else ""))
            continue
        if backend != user_choice:
            os.environ["MUJOCO_GL"] = backend
            importlib.reload(gl_context)  # mujoco read MUJOCO_GL at import; read it again
        return backend, ""
    return None, "no OpenGL backend renders here (" + "; ".join(failures) + ")"


def rendering_available() -> tuple[bool, str]:
    """Whether offscreen rendering works in this process, choosing the backend if needed.

    The first call may take a second or two: it probes backends in child processes.

    Returns:
        ``(True, "MUJOCO_GL=<backend>")``, or ``(False, reason)`` naming what failed.
    """
    backend, reason = _select_backend()
    if backend is None:
        return False, reason
    return True, f"MUJOCO_GL={backend}"


def _floating_base(model: mujoco.MjModel) -> int | None:
    """Id of the body that carries the model's first free joint, or None if fixed-base."""
    free = np.flatnonzero(model.jnt_type == mujoco.mjtJoint.mjJNT_FREE)
    return int(model.jnt_bodyid[free[0]]) if free.size else None


def _make_camera(
    model: mujoco.MjModel, camera: str | int | None, track_body: str | None
) -> str | int | mujoco.MjvCamera:
    """The camera to render from: a model camera, a tracking camera or a fixed free one."""
    if camera is not None:
        if track_body is not None:
            raise ValueError("give either camera or track_body, not both")
        return camera
    cam = mujoco.MjvCamera()
    cam.azimuth = _AZIMUTH_DEG
    cam.elevation = _ELEVATION_DEG
    cam.distance = _DISTANCE_PER_EXTENT * model.stat.extent
    if track_body is None:
        body_id = _floating_base(model)
    else:
        body_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, track_body)
        if body_id < 0:
            raise ValueError(f"track_body {track_body!r} is not a body of the model")
    if body_id is None:
        cam.type = mujoco.mjtCamera.mjCAMERA_FREE
        cam.lookat[:] = model.stat.center
    else:
        cam.type = mujoco.mjtCamera.mjCAMERA_TRACKING  # lookat = the body's subtree CoM
        cam.trackbodyid = body_id
    return cam


def render_episode(
    model: mujoco.MjModel,
    qpos: np.ndarray,
    *,
    fps: float,
    width: int = 640,
    height: int = 480,
    camera: str | int | None = None,
    track_body: str | None = None,
) -> np.ndarray:
    """Replay recorded joint positions and render one RGB image per step.

    Each row of ``qpos`` is applied with ``mj_forward`` (velocities are zero, so this
    is a kinematic replay) and rendered offscreen with ``mujoco.Renderer``.

    Args:
        model: The robot's model, left unmodified: frames come from a copy whose
            offscreen buffer fits ``width`` x ``height``, with a 1024² shadow map and
            no multisampling (fast on software OpenGL).
        qpos: Joint positions, shape (T, nq), in the model's units (m, rad, quaternions).
        fps: Frame rate the rows were recorded at, in frames/s; frame ``t`` is shown at
            ``data.time = t / fps``. Resample ``qpos`` beforehand to change the speed.
        width: Image width in pixels.
        height: Image height in pixels.
        camera: Name or id of a camera defined in the model (``-1``: MuJoCo's default
            free camera, fixed in the world). Excludes ``track_body``.
        track_body: Name of the body the camera follows (tracking camera on the body's
            subtree centre of mass). Default: the floating base (body of the first free
            joint); a fixed-base model gets a fixed camera aimed at ``model.stat.center``.
            Both default views sit ``2 * model.stat.extent`` away, 135° azimuth, 20° above.

    Returns:
        Frames, shape (T, height, width, 3), dtype uint8, RGB.

    Raises:
        ValueError: On a malformed ``qpos``, ``fps`` or camera choice.
        RuntimeError: When no OpenGL backend works (see ``rendering_available``).
    """
    qpos = np.asarray(qpos, dtype=np.float64)
    if qpos.ndim != 2 or qpos.shape[1] != model.nq:
        raise ValueError(f"qpos must have shape (T, nq={model.nq}), got {qpos.shape}")
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    available, reason = rendering_available()
    if not available:
        raise RuntimeError(reason)

    model = _render_copy(model, width, height)
    data = mujoco.MjData(model)
    cam = _make_camera(model, camera, track_body)
    option = mujoco.MjvOption()
    option.geomgroup[:] = [group in _GEOM_GROUPS for group in range(len(option.geomgroup))]
    frames = np.empty((len(qpos), height, width, 3), dtype=np.uint8)
    with mujoco.Renderer(model, height=height, width=width) as renderer:
        for t, q in enumerate(qpos):
            data.qpos[:] = q
            data.time = t / fps
            mujoco.mj_forward(model, data)
            renderer.update_scene(data, camera=cam, scene_option=option)
            renderer.render(out=frames[t])
    return frames


def _render_copy(model: mujoco.MjModel, width: int, height: int) -> mujoco.MjModel:
    """A copy of ``model`` to render from: a large enough framebuffer, lighter quality."""
    model = copy.copy(model)
    buffer = model.vis.global_
    buffer.offwidth, buffer.offheight = max(width, buffer.offwidth), max(height, buffer.offheight)
    model.vis.quality.shadowsize = min(_SHADOW_MAP_SIZE, model.vis.quality.shadowsize)
    model.vis.quality.offsamples = _MSAA_SAMPLES
    return model


def write_video(frames: np.ndarray, path: str | os.PathLike, fps: float) -> Path:
    """Write frames to an MP4 (H.264 through imageio-ffmpeg) or GIF (pillow) file.

    The video is written to a hidden temporary file in the same folder and renamed
    onto ``path`` with ``os.replace``, so ``path`` is either the old file or the whole
    new video, never half of one.

    Args:
        frames: RGB frames, shape (T, H, W, 3), dtype uint8, T >= 1.
        path: Output file; its suffix, ``.mp4`` or ``.gif``, picks the format.
        fps: Playback rate in frames/s. GIF stores delays in 1/100 s, so it rounds
            the rate, and most viewers slow GIFs above 50 frames/s. Pillow merges identical
            consecutive frames into one longer one, so a GIF may read back fewer frames.

    Returns:
        The path written.

    Raises:
        ValueError: On another suffix, malformed frames or a non-positive ``fps``.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".mp4", ".gif"):
        raise ValueError(f"unsupported video suffix {path.suffix!r} ({path}); use .mp4 or .gif")
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[0] < 1 or frames.shape[3] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (T>=1, H, W, 3), got {frames.dtype} {frames.shape}")
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")

    # Not mkstemp: the writer creates the file, so it gets the usual permissions (umask).
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.tmp{suffix}")
    try:
        if suffix == ".mp4":
            # macro_block_size=2: H.264 (yuv420p) needs even sizes only, not multiples of 16.
            iio.imwrite(tmp, frames, plugin="FFMPEG", fps=fps, macro_block_size=2)
        else:
            iio.imwrite(tmp, frames, plugin="pillow", duration=1000.0 / fps, loop=0)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
