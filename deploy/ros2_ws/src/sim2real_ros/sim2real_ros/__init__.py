"""ROS 2 nodes over the ROS-free sim2real deploy runtime."""
