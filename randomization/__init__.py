"""Domain-randomization terms and curricula; ranges are YAML data (DESIGN contract 5).

- ``config``: the YAML schema (``RandomizationConfig``, ``TermConfig``), ``load`` /
  ``loads`` / ``dump`` / ``dumps``, the shipped per-task defaults (``defaults/*.yaml``,
  ``default_config``).
- ``terms``: what each term writes (``TERMS``), and the modelling decisions
  (restitution, joint offset, masses, disturbances).
- ``distributions``: uniform / log-uniform / gaussian draws; scale / add / set.
- ``sensors``: the policy's sensor model (IMU bias and misalignment, encoder offsets).
- ``randomizer``: the engine a ``TaskEnv`` drives (startup, reset, interval, step).
- ``curriculum``, ``terrain``: curricula and heightfield terrain.

``README.md`` in this folder tables the default ranges.
"""

from sim2real.randomization.config import (
    ConfigError,
    RandomizationConfig,
    TermConfig,
    default_config,
    dump,
    dumps,
    load,
    loads,
)

__all__ = [
    "ConfigError",
    "RandomizationConfig",
    "TermConfig",
    "default_config",
    "dump",
    "dumps",
    "load",
    "loads",
]
