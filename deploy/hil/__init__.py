"""Hardware-in-the-loop (HIL): a simulated robot with hidden parameters, faults, logs.

ROS-free logic behind ``sim_robot_node`` and ``sim2real hil`` (the ROS 2 side lives in
``deploy/ros2_ws/src/sim2real_ros``).
"""
