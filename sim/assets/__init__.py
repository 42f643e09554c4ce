"""The robot assets: one MJCF file per robot, the single source of truth (DESIGN contract 1).

Conventions every asset follows, so that tasks, Pinocchio, export and deploy read
the same facts from the same file:

- every actuated joint has a ``position`` actuator of the same name whose ``kp``/``kv``
  are the PD gains and whose ``forcerange`` is the joint's effort limit (N·m; N for a
  slide joint, whose positions are in m);
- a keyframe named ``home`` holds the default pose in ``qpos`` and the default joint
  targets in ``ctrl``;
- a ``<custom><numeric name="velocity_limits">`` holds each actuated joint's velocity
  limit (rad/s; m/s for a slide joint), one per actuator in actuator order: MJCF has no
  joint velocity limit of its own (Pinocchio's parser leaves ``velocityLimit`` infinite;
  take them from ``RobotModel.velocity_limits``);
- joint sensors are named ``<joint>_pos`` (jointpos) and ``<joint>_vel`` (jointvel).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

ROBOTS = ("go2", "panda", "point")


def asset_path(robot: str) -> Path:
    """Path of a packaged robot's MJCF file, e.g. ``asset_path("go2")``."""
    if robot not in ROBOTS:
        raise ValueError(f"unknown robot {robot!r}; packaged robots: {', '.join(ROBOTS)}")
    return Path(str(resources.files(__name__).joinpath(f"{robot}.xml")))
