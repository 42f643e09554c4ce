"""sim2real: train in batched MuJoCo, export to ONNX, deploy on ROS 2, identify, retrain.

The subpackages map the repository's folders: ``sim2real.sim`` (robots, batched
simulation, tasks), ``sim2real.randomization``, ``sim2real.policies``,
``sim2real.export``, ``sim2real.deploy`` and ``sim2real.sysid``.
"""

__version__ = "0.1.0"
