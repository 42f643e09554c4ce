"""``go2-rough``: go2-flat's velocity tracking on heightfield terrain with a level curriculum.

Same observations, rewards and weights as ``go2-flat`` (inherited, one place); what
differs is stated here:

- Scene: the floor plane becomes the patch-grid heightfield of
  ``sim2real.randomization.terrain`` (rough, slopes, stairs; 10 levels), built with
  ``mujoco.MjSpec`` in ``build_model``. The terrain is part of the task, seeded by
  ``terrain_seed``, the same for every env seed.
- Spawn: each env stands on the flat platform at the centre of its patch (curriculum
  level, type), at a uniform offset of up to ``spawn_jitter`` m in x and y, the home
  keyframe's base height above the ground there.
- Curriculum (``TerrainCurriculum``): at an env's reset, promoted when it walked more than
  half a patch from its spawn, demoted when it walked less than half its commanded
  distance. Distance walked: the base's xy at the end of the episode's last step
  (recorded in ``after_step``, before the engine's keyframe reset overwrites qpos) minus
  the spawn xy. Commanded distance: ``|v_cmd,xy| * dt`` summed over the steps of the
  episode, so commands resampled mid-episode count for the time they were active, and an
  episode cut short is judged on the time it lasted (legged_gym multiplies the final
  command by the full episode duration instead, which also demotes early falls).
- Termination: as go2-flat, plus a time-out (truncation: the map's end is no failure)
  when the base comes within 0.5 m of the terrain's outer edge
  (``terrain_out_of_bounds``), before a foot can step off it.

``self.curriculum`` holds the levels: its ``state_dict()`` goes into checkpoints and its
``metrics()`` into logs.
"""

from __future__ import annotations

from functools import cached_property

import mujoco
import numpy as np

from sim2real.randomization.terrain import Terrain, TerrainConfig, TerrainCurriculum
from sim2real.sim import rewards as rew
from sim2real.sim.assets import asset_path
from sim2real.sim.backends.base import SimBackend
from sim2real.sim.observations import RobotState
from sim2real.sim.robot import RobotModel
from sim2real.sim.tasks.base import TerminationTerm
from sim2real.sim.tasks.go2_flat import Go2Flat


def terrain_out_of_bounds(state: RobotState, margin: float = 0.5) -> np.ndarray:
    """Termination: the base is within ``margin`` m of the terrain's edge (or beyond).

    Reads ``distance_to_terrain_edge`` (N,) m, negative outside the terrain.
    """
    return state["distance_to_terrain_edge"] < margin


class Go2Rough(Go2Flat):
    """Velocity tracking for the Go2-class quadruped on curriculum heightfield terrain."""

    name = "go2-rough"
    terrain_config = TerrainConfig()
    terrain_seed = 0
    max_init_level = 5
    spawn_jitter = 0.5  # m, within the 2 m spawn platform

    terminations = (
        TerminationTerm("base_contact", rew.base_contact),
        TerminationTerm("bad_orientation", rew.bad_orientation),
        TerminationTerm("terrain_out_of_bounds", terrain_out_of_bounds, time_out=True),
    )

    @cached_property
    def terrain(self) -> Terrain:
        """The task's terrain, generated once from ``terrain_config`` and ``terrain_seed``."""
        return Terrain(self.terrain_config, seed=self.terrain_seed)

    def build_model(self) -> mujoco.MjModel:
        """The Go2 asset with its floor plane replaced by the terrain heightfield."""
        spec = mujoco.MjSpec.from_file(str(asset_path(self.robot)))
        self.terrain.add_to_spec(spec, geom="floor")
        return spec.compile()

    def bind(self, backend: SimBackend, robot: RobotModel, dt: float) -> None:
        """Go2-flat's state, plus the curriculum, spawn points and walked-distance trackers."""
        super().bind(backend, robot, dt)
        n, config = backend.num_envs, self.terrain.config
        if self.spawn_jitter > config.platform_size / 2:
            raise ValueError("spawn_jitter must keep spawns on the flat platform")
        self.curriculum = TerrainCurriculum(
            n,
            config.num_levels,
            len(config.types),
            promote_distance=config.patch_size / 2,
            max_init_level=self.max_init_level,
            type_names=config.types,
        )
        self.spawn_xy = np.zeros((n, 2))
        self.last_base_xy = np.zeros((n, 2))
        self.commanded_distance = np.zeros(n)
        self.home_base_pos = backend.model.key_qpos[robot.home_key, 0:3].copy()

    def reset(self, env_ids: np.ndarray, rng: np.random.Generator) -> None:
        """Move each env's level by its last episode, then spawn it on its patch."""
        distance = np.linalg.norm(self.last_base_xy[env_ids] - self.spawn_xy[env_ids], axis=1)
        self.curriculum.update(env_ids, distance, self.commanded_distance[env_ids], rng)
        super().reset(env_ids, rng)  # yaw, joints, base velocity, commands
        origin = self.terrain.spawn(self.curriculum.levels[env_ids], self.curriculum.types[env_ids])
        xy = origin[:, :2] + rng.uniform(-self.spawn_jitter, self.spawn_jitter, (len(env_ids), 2))
        qpos = self.backend.qpos
        qpos[env_ids, 0:2] = self.home_base_pos[:2] + xy
        qpos[env_ids, 2] = self.home_base_pos[2] + origin[:, 2]
        self.spawn_xy[env_ids] = qpos[env_ids, 0:2]
        self.last_base_xy[env_ids] = self.spawn_xy[env_ids]
        self.commanded_distance[env_ids] = 0.0

    def robot_state(self) -> dict[str, np.ndarray]:
        """Go2-flat's state, plus ``distance_to_terrain_edge`` (N,) m."""
        state = super().robot_state()
        state["distance_to_terrain_edge"] = self.terrain.distance_to_edge(self.backend.qpos[:, :2])
        return state

    def after_step(self, state: RobotState, rng: np.random.Generator) -> None:
        """Record where each base is and the distance commanded this step; then go2-flat's."""
        self.last_base_xy[:] = self.backend.qpos[:, :2]
        self.commanded_distance += np.linalg.norm(self.command[:, :2], axis=1) * self.dt
        super().after_step(state, rng)
