"""Launch funk_perception's keypoint_node (needs a sourced ROS 2 Jazzy install with launch and launch_ros).

    ros2 launch funk_perception keypoints.launch.py
    ros2 launch funk_perception keypoints.launch.py image:=/camera/color/image_raw tasks:="[pour, scoop]" \\
        use_depth:=true depth:=/camera/aligned_depth_to_color/image_raw camera_info:=/camera/color/camera_info

Parameters come from ``params_file`` (default: the installed config/keypoints.yaml);
the launch arguments model, tasks, device and use_depth override it.
"""

import os
from typing import List

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

PACKAGE = "funk_perception"
EXECUTABLE = "keypoint_node"


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory(PACKAGE)
    arguments = [
        DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", "keypoints.yaml"),
                              description="parameter YAML of the node"),
        DeclareLaunchArgument("model", default_value="", description="checkpoint path; empty = the shipped model"),
        DeclareLaunchArgument("tasks", default_value="[pour, scoop, mix, mash_pound, lift_something, scrape, poke, "
                              "brush_dust, pull_out_nail, flip]", description="tasks to detect, a YAML list"),
        DeclareLaunchArgument("device", default_value="auto", description="auto, cpu or cuda"),
        DeclareLaunchArgument("use_depth", default_value="false", description="subscribe to depth + camera_info"),
        DeclareLaunchArgument("image", default_value="image", description="colour image topic"),
        DeclareLaunchArgument("depth", default_value="depth", description="depth topic registered to the colour image"),
        DeclareLaunchArgument("camera_info", default_value="camera_info", description="colour camera_info topic"),
        DeclareLaunchArgument("roi", default_value="roi", description="sensor_msgs/RegionOfInterest topic"),
    ]
    node = Node(
        package=PACKAGE,
        executable=EXECUTABLE,
        name="keypoint_node",
        output="screen",
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "model": LaunchConfiguration("model"),
                "tasks": ParameterValue(LaunchConfiguration("tasks"), value_type=List[str]),
                "device": LaunchConfiguration("device"),
                "use_depth": ParameterValue(LaunchConfiguration("use_depth"), value_type=bool),
            },
        ],
        remappings=[
            ("image", LaunchConfiguration("image")),
            ("image/compressed", [LaunchConfiguration("image"), "/compressed"]),
            ("depth", LaunchConfiguration("depth")),
            ("camera_info", LaunchConfiguration("camera_info")),
            ("roi", LaunchConfiguration("roi")),
        ],
    )
    return LaunchDescription(arguments + [node])
