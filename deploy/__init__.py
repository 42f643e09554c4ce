"""ROS-free deployment runtime: observation builder, ONNX runner, safety filters."""
