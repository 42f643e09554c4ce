"""Launch ``policy_node`` with a parameters file, configure it, and optionally activate it.

    ros2 launch sim2real_ros policy.launch.py policy_path:=/robot/go2.onnx
    ros2 launch sim2real_ros policy.launch.py params_file:=my_robot.yaml activate:=true

The node is configured as soon as it starts (the policy is loaded and checked against
``joint_names``); it is activated (soft start, then the policy: the robot moves) only with
``activate:=true``, or later by hand: ``ros2 lifecycle set /policy_node activate``.
For real robots with ROS 2 Humble or Jazzy and ``launch_ros`` installed; the project's
tests start the node through its console entry point instead (no ``launch`` wheel exists).
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, RegisterEventHandler
from launch.conditions import IfCondition
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from lifecycle_msgs.msg import Transition


def generate_launch_description() -> LaunchDescription:
    """The node, a configure request at start and, with ``activate:=true``, activation."""
    default_params = os.path.join(
        get_package_share_directory("sim2real_ros"), "config", "params.yaml"
    )
    params_file = LaunchConfiguration("params_file")
    policy_path = LaunchConfiguration("policy_path")
    node = LifecycleNode(
        package="sim2real_ros",
        executable="policy_node",
        name="policy_node",
        namespace="",  # required by Humble's launch_ros
        output="screen",
        parameters=[params_file, {"policy_path": policy_path}],
    )
    configure = EmitEvent(
        event=ChangeState(
            lifecycle_node_matcher=matches_action(node),
            transition_id=Transition.TRANSITION_CONFIGURE,
        )
    )
    activate_when_configured = RegisterEventHandler(
        OnStateTransition(
            target_lifecycle_node=node,
            start_state="configuring",
            goal_state="inactive",
            entities=[
                EmitEvent(
                    event=ChangeState(
                        lifecycle_node_matcher=matches_action(node),
                        transition_id=Transition.TRANSITION_ACTIVATE,
                    )
                )
            ],
        ),
        condition=IfCondition(LaunchConfiguration("activate")),
    )
    return LaunchDescription(
        [
            DeclareLaunchArgument("params_file", default_value=default_params),
            DeclareLaunchArgument("policy_path", description="the exported policy.onnx"),
            DeclareLaunchArgument(
                "activate", default_value="false", description="activate once configured"
            ),
            activate_when_configured,
            node,
            configure,
        ]
    )
