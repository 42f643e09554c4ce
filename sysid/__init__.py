"""System identification from robot logs; writes randomization ranges (``README.md``).

``robot_log`` (logs in), ``excitation`` (what to record), ``motor`` (gain scales, delay),
``trajectory_fit`` (joint damping, armature, friction loss, link mass scale), ``identify``
(both, and the ranges out), ``report``, ``validation`` (against a HIL profile's truth).
"""
