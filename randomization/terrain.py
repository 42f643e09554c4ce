"""Heightfield terrain for legged locomotion, and the terrain-level curriculum.

The terrain is ONE heightfield: a grid of square patches, difficulty levels along x
(patch column ``level``) and terrain types along y (patch row ``type``), in the manner of
legged_gym's ``Terrain`` (curriculum layout). Each patch has a flat square spawn platform
at its centre and its border at height 0, so neighbouring patches meet without a seam
(only random-rough noise reaches the border). The types and what a level ``l`` of ``L``
sets, with ``d = l / (L - 1)`` from 0 to 1:

- ``rough``: heights drawn uniformly in ``[-a, a]`` at every sample,
  ``a = rough_amplitude[0] + d * (rough_amplitude[1] - rough_amplitude[0])``, m.
- ``slope_up`` / ``slope_down``: a pyramid rising to / sinking into the platform, slope
  ``d * max_slope`` rad on its four faces.
- ``stairs_up`` / ``stairs_down``: a pyramid of square rings ``step_width`` wide, each
  ``stair_height[0] + d * (stair_height[1] - stair_height[0])`` m higher (lower) than
  the ring outside it.

Geometry is computed on sample indices, never by rounding positions, so every step is
exactly ``step_width / resolution`` samples wide. MuJoCo triangulates a heightfield
between samples, so a stair riser is a ramp one sample (``resolution``) long.

The default grid, 10 levels x 5 types of 8 m patches at 0.1 m, is 801 x 401 = 321,201
samples: 1.3 MB of float32 in the one ``MjModel`` that ``mujoco.batch`` shares between all
envs (per-env copies exist only for fields a randomization term expands, which the
heightfield is not), compiled in about 0.1 s. Collision cost does not grow with the
heightfield: MuJoCo tests a geom only against the samples under its bounding box.

Units: m and rad. Frame: the heightfield's corner at the world origin, x from 0 to
``num_levels * patch_size``, y from 0 to ``len(types) * patch_size``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import mujoco
import numpy as np

TERRAIN_TYPES = ("rough", "slope_up", "slope_down", "stairs_up", "stairs_down")


@dataclass(frozen=True)
class TerrainConfig:
    """Layout and difficulty ranges of the patch grid.

    Attributes:
        num_levels: difficulty levels, one patch column each (along x).
        types: terrain types, one patch row each (along y); names from ``TERRAIN_TYPES``.
        patch_size: side of a square patch, m.
        resolution: distance between heightfield samples, m.
        platform_size: side of the flat spawn platform at each patch centre, m.
        rough_amplitude: half-range of the rough noise at the lowest and top level, m.
        max_slope: slope of the pyramid faces at the top level, rad.
        stair_height: step height at the lowest and top level, m.
        step_width: tread of one stair ring, m.
        base_depth: thickness of the heightfield's solid base below its lowest point, m.
    """

    num_levels: int = 10
    types: tuple[str, ...] = TERRAIN_TYPES
    patch_size: float = 8.0
    resolution: float = 0.1
    platform_size: float = 2.0
    rough_amplitude: tuple[float, float] = (0.01, 0.06)
    max_slope: float = 0.4
    stair_height: tuple[float, float] = (0.02, 0.15)
    step_width: float = 0.3
    base_depth: float = 0.5

    def __post_init__(self):
        unknown = [t for t in self.types if t not in TERRAIN_TYPES]
        if unknown:
            raise ValueError(f"unknown terrain types {unknown}; known: {TERRAIN_TYPES}")
        if self.num_levels < 1 or not self.types:
            raise ValueError("a terrain needs at least one level and one type")
        for name in ("patch_size", "platform_size", "step_width"):
            _samples(getattr(self, name), self.resolution, name)
        if self.patch_samples % 2 or self.platform_samples % 2:
            raise ValueError("patch_size and platform_size must span an even number of samples")
        if self.platform_samples >= self.patch_samples:
            raise ValueError("platform_size must be smaller than patch_size")

    @property
    def patch_samples(self) -> int:
        """Sample intervals along a patch side (its samples: this + 1)."""
        return _samples(self.patch_size, self.resolution, "patch_size")

    @property
    def platform_samples(self) -> int:
        """Sample intervals along the platform side."""
        return _samples(self.platform_size, self.resolution, "platform_size")

    def difficulty(self, level: int) -> float:
        """``level / (num_levels - 1)`` in [0, 1] (0 with a single level)."""
        return level / (self.num_levels - 1) if self.num_levels > 1 else 0.0

    def rough_amplitude_at(self, level: int) -> float:
        """Half-range of the rough noise at ``level``, m."""
        low, high = self.rough_amplitude
        return low + self.difficulty(level) * (high - low)

    def slope_at(self, level: int) -> float:
        """Slope of the pyramid faces at ``level``, rad."""
        return self.difficulty(level) * self.max_slope

    def stair_height_at(self, level: int) -> float:
        """Step height at ``level``, m."""
        low, high = self.stair_height
        return low + self.difficulty(level) * (high - low)


def _samples(length: float, resolution: float, name: str) -> int:
    n = round(length / resolution)
    if n < 1 or abs(n * resolution - length) > 1e-9 * max(1.0, length):
        raise ValueError(f"{name} {length} m is not a whole number of {resolution} m samples")
    return n


def border_distance(n: int) -> np.ndarray:
    """(n+1, n+1) Chebyshev distance of each sample of a patch from its border, samples."""
    i = np.arange(n + 1)
    edge = np.minimum(i, n - i)
    return np.minimum(edge[:, None], edge[None, :])


def patch_heights(
    config: TerrainConfig, kind: str, level: int, rng: np.random.Generator
) -> np.ndarray:
    """Heights (m) of one patch, (n+1, n+1) samples with n = ``config.patch_samples``.

    The border is at 0 (rough: noise), the central platform flat; ``rng`` is drawn from
    only for ``rough``.
    """
    n, res = config.patch_samples, config.resolution
    # samples from the border to the platform's edge; the platform is at or beyond it
    to_platform = (n - config.platform_samples) // 2
    e = np.minimum(border_distance(n), to_platform)
    if kind == "rough":
        amplitude = config.rough_amplitude_at(level)
        heights = rng.uniform(-amplitude, amplitude, (n + 1, n + 1))
        heights[e == to_platform] = 0.0
        return heights
    if kind in ("slope_up", "slope_down"):
        heights = np.tan(config.slope_at(level)) * res * e
    elif kind in ("stairs_up", "stairs_down"):
        width = _samples(config.step_width, res, "step_width")
        heights = config.stair_height_at(level) * (e // width)
    else:
        raise ValueError(f"unknown terrain type {kind!r}; known: {TERRAIN_TYPES}")
    return heights if kind.endswith("_up") else -heights


class Terrain:
    """The patch grid's heights and where each patch's spawn platform is.

    Args:
        config: layout and difficulty ranges.
        seed: seeds the rough patches' noise (a ``numpy.random.Generator``); the same
            seed gives the same heights.

    Attributes:
        heights: (nrow, ncol) heights in m, row ``i`` at ``y = i * resolution``, column
            ``j`` at ``x = j * resolution`` (MuJoCo's heightfield layout: rows along y).
    """

    def __init__(self, config: TerrainConfig | None = None, seed: int = 0):
        self.config = config = config or TerrainConfig()
        n = config.patch_samples
        rng = np.random.default_rng(seed)
        self.heights = np.zeros((len(config.types) * n + 1, config.num_levels * n + 1))
        for t, kind in enumerate(config.types):
            for level in range(config.num_levels):
                patch = patch_heights(config, kind, level, rng)
                self.heights[t * n : (t + 1) * n + 1, level * n : (level + 1) * n + 1] = patch

    @property
    def size(self) -> tuple[float, float]:
        """Extent (x, y) of the terrain, m."""
        c = self.config
        return c.num_levels * c.patch_size, len(c.types) * c.patch_size

    def spawn(self, level: np.ndarray | int, kind: np.ndarray | int) -> np.ndarray:
        """(..., 3) centre (x, y, ground z) of the platform of patch (level, type index)."""
        level, kind = np.asarray(level), np.asarray(kind)
        c, n = self.config, self.config.patch_samples
        z = self.heights[kind * n + n // 2, level * n + n // 2]
        x = (level + 0.5) * c.patch_size
        y = (kind + 0.5) * c.patch_size
        return np.stack(np.broadcast_arrays(x, y, z), axis=-1).astype(float)

    def sample_height(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Height of the nearest sample to world (x, y), m (exact at samples)."""
        res = self.config.resolution
        i = np.clip(np.rint(np.asarray(y) / res).astype(int), 0, self.heights.shape[0] - 1)
        j = np.clip(np.rint(np.asarray(x) / res).astype(int), 0, self.heights.shape[1] - 1)
        return self.heights[i, j]

    def distance_to_edge(self, xy: np.ndarray) -> np.ndarray:
        """(N,) distance of points (N, 2) inside the terrain to its nearest edge, m (<0 out)."""
        sx, sy = self.size
        x, y = xy[:, 0], xy[:, 1]
        return np.minimum(np.minimum(x, sx - x), np.minimum(y, sy - y))

    def add_to_spec(
        self, spec: mujoco.MjSpec, geom: str = "floor", hfield: str = "terrain"
    ) -> mujoco.MjsHField:
        """Turn ``spec``'s geom ``geom`` (e.g. the floor plane) into this heightfield.

        The geom keeps its name, contype, conaffinity, friction and the rest; its type
        becomes ``mjGEOM_HFIELD`` and its position the heightfield's centre at the lowest
        height. MuJoCo normalizes heightfield data to [0, 1] at compile (it rescales
        ``userdata`` given in metres too), and the surface is at
        ``geom z + data * size[2]``; so heights go in normalized, with
        ``size[2] = max - min`` and the geom at ``z = min``.
        """
        low, high = float(self.heights.min()), float(self.heights.max())
        span = high - low
        nrow, ncol = self.heights.shape
        sx, sy = self.size
        field = spec.add_hfield(
            name=hfield,
            nrow=nrow,
            ncol=ncol,
            # a flat terrain still needs a positive elevation size; its data are all 0
            size=[sx / 2, sy / 2, span if span > 0 else 1.0, self.config.base_depth],
        )
        normalized = (self.heights - low) / span if span > 0 else np.zeros_like(self.heights)
        field.userdata = normalized.astype(np.float32).ravel()
        floor = spec.geom(geom)
        if floor is None:
            raise ValueError(f"the spec has no geom named {geom!r}")
        floor.type = mujoco.mjtGeom.mjGEOM_HFIELD
        floor.hfieldname = hfield
        floor.pos = [sx / 2, sy / 2, low]
        return field


class TerrainCurriculum:
    """Per-env terrain level and type, moved at each env's reset by how far it walked.

    The legged_gym rule: at an env's reset, promote it one level when it walked farther
    than ``promote_distance`` from its spawn point (half a patch: it reached the patch's
    edge); otherwise demote it one level when it walked less than ``demote_ratio`` times
    the distance it was commanded to walk. Levels are clipped at 0; an env promoted past
    the top level goes to a level drawn uniformly from all levels, so mastered robots
    keep revisiting the whole range rather than piling up at the top.

    Envs start unplaced (level -1) and get a level in ``[0, max_init_level]`` drawn at
    their first update. Types are ``env_id % num_types``, fixed: each type gets an equal
    share of the envs. It satisfies ``sim2real.randomization.curriculum.Curriculum``
    (``state_dict``, ``load_state_dict``, ``metrics``).

    Args:
        num_envs: N.
        num_levels: number of levels (the top one is ``num_levels - 1``).
        num_types: number of terrain types.
        promote_distance: distance walked above which an env is promoted, m.
        max_init_level: highest initial level.
        demote_ratio: an env is demoted below this fraction of its commanded distance.
        type_names: names of the types for ``metrics`` (default: their indices).
    """

    def __init__(
        self,
        num_envs: int,
        num_levels: int,
        num_types: int,
        promote_distance: float,
        max_init_level: int = 5,
        demote_ratio: float = 0.5,
        type_names: Sequence[str] | None = None,
    ):
        if not 0 <= max_init_level < num_levels:
            raise ValueError(f"max_init_level must be in [0, {num_levels - 1}]")
        self.num_levels, self.num_types = num_levels, num_types
        self.promote_distance, self.demote_ratio = promote_distance, demote_ratio
        self.max_init_level = max_init_level
        self.type_names = tuple(type_names or (str(t) for t in range(num_types)))
        self.levels = np.full(num_envs, -1, dtype=np.int64)
        self.types = np.arange(num_envs, dtype=np.int64) % num_types
        self.last_move = np.zeros(num_envs, dtype=np.int64)  # +1 promoted, -1 demoted

    def update(
        self,
        env_ids: np.ndarray,
        distance: np.ndarray,
        commanded_distance: np.ndarray,
        rng: np.random.Generator,
    ) -> None:
        """Move ``env_ids`` by the distances (m, aligned with ``env_ids``) of their episode.

        Unplaced envs get their initial level instead. A non-finite distance (a blown-up
        simulation) leaves the level as it is.
        """
        env_ids = np.asarray(env_ids)
        distance = np.asarray(distance, dtype=float)
        commanded_distance = np.asarray(commanded_distance, dtype=float)
        new = self.levels[env_ids] < 0
        if new.any():
            self.levels[env_ids[new]] = rng.integers(0, self.max_init_level + 1, int(new.sum()))
        ids, distance, commanded = env_ids[~new], distance[~new], commanded_distance[~new]
        finite = np.isfinite(distance)
        promote = finite & (distance > self.promote_distance)
        demote = finite & ~promote & (distance < self.demote_ratio * commanded)
        levels = np.maximum(self.levels[ids] + promote - demote, 0)
        past_top = levels >= self.num_levels
        levels[past_top] = rng.integers(0, self.num_levels, int(past_top.sum()))
        self.levels[ids] = levels
        self.last_move[ids] = promote.astype(np.int64) - demote

    def metrics(self) -> dict[str, float]:
        """``curriculum/terrain_level_mean|min|max``, per type, and how the envs last moved.

        ``..._promoted`` / ``..._demoted``: the fraction of envs whose last update
        promoted / demoted them (a demotion clipped at level 0 counts).
        """
        placed = self.levels >= 0
        levels = self.levels[placed].astype(float)
        key = "curriculum/terrain_"
        out = {
            f"{key}level_mean": float(levels.mean()) if len(levels) else 0.0,
            f"{key}level_min": float(levels.min()) if len(levels) else 0.0,
            f"{key}level_max": float(levels.max()) if len(levels) else 0.0,
        }
        for t, name in enumerate(self.type_names):
            of_type = self.levels[placed & (self.types == t)]
            out[f"{key}level_{name}"] = float(of_type.mean()) if len(of_type) else 0.0
        out[f"{key}promoted"] = float(np.mean(self.last_move > 0))
        out[f"{key}demoted"] = float(np.mean(self.last_move < 0))
        return out

    def state_dict(self) -> dict[str, Any]:
        """Plain Python values (lists, ints): loads with ``torch.load(weights_only=True)``."""
        return {
            "levels": self.levels.tolist(),
            "types": self.types.tolist(),
            "last_move": self.last_move.tolist(),
            "num_levels": self.num_levels,
            "num_types": self.num_types,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore levels and types saved by ``state_dict`` (same N, levels and types).

        Envs stay where they stand until their next reset, which spawns them on their
        restored patch (call the env's ``reset()`` to respawn all at once).
        """
        for key, mine in (("num_levels", self.num_levels), ("num_types", self.num_types)):
            if int(state[key]) != mine:
                raise ValueError(f"curriculum state has {key}={state[key]}, this one {mine}")
        levels = np.asarray(state["levels"], dtype=np.int64)
        types = np.asarray(state["types"], dtype=np.int64)
        if levels.shape != self.levels.shape or types.shape != self.types.shape:
            raise ValueError(
                f"curriculum state is for {levels.shape[0]} envs, this one has {len(self.levels)}"
            )
        if (
            levels.max(initial=-1) >= self.num_levels
            or (types < 0).any()
            or (types >= self.num_types).any()
        ):
            raise ValueError("curriculum state holds levels or types out of range")
        self.levels[:] = levels
        self.types[:] = types
        self.last_move[:] = np.asarray(state["last_move"], dtype=np.int64)
