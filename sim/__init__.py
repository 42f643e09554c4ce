"""Robots as MJCF assets, batched MuJoCo simulation behind the VecEnv contract, and tasks.

Import the parts you need: ``sim2real.sim.tasks`` (registry and ``make_env``),
``sim2real.sim.vec_env`` (the contract), ``sim2real.sim.observations`` (the
observation terms the deploy runtime shares). This module imports nothing heavy,
so the deploy runtime can use the observation terms without the simulator.
"""
