"""Reading declared node parameters, shared by the package's nodes."""

from __future__ import annotations

from rclpy.exceptions import ParameterUninitializedException
from rclpy.node import Node
from rclpy.parameter import Parameter


def parameter_value(node: Node, name: str):
    """A declared parameter's value; ``None`` for an unset (uninitialized) one."""
    try:
        parameter = node.get_parameter(name)
    except ParameterUninitializedException:
        return None
    return None if parameter.type_ == Parameter.Type.NOT_SET else parameter.value
