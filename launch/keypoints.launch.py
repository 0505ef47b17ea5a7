"""Launch funk_perception's keypoint_node (needs a sourced ROS 2 Jazzy install with launch and launch_ros).

    ros2 launch funk_perception keypoints.launch.py                                   # a camera driver under /camera
    ros2 launch funk_perception keypoints.launch.py camera:=/camera/camera use_depth:=true   # realsense2_camera 4.x
    ros2 launch funk_perception keypoints.launch.py image:=/image_raw                 # usb_cam, v4l2_camera
    ros2 launch funk_perception keypoints.launch.py params_file:=my_keypoints.yaml    # the file's values hold

Parameters come from ``params_file`` (default: the installed config/keypoints.yaml).
The arguments model, tasks, device, use_depth, image_qos and compressed
override it only when given on the command line: their defaults are empty,
meaning "as the file says".

Topics follow the camera-driver layout under the ``camera`` namespace:
``<camera>/color/image_raw``, ``<camera>/aligned_depth_to_color/image_raw``
and ``<camera>/color/camera_info``. ``image``, ``depth`` and ``camera_info``
replace one each; camera_info and the compressed stream otherwise follow the
image topic (the node derives ``<image>/compressed`` and the image's sibling
``camera_info``, as image_transport does). ``namespace`` puts the node and its
outputs in a namespace.

The node runs with the Fast DDS profile the launching shell sets in
``FASTRTPS_DEFAULT_PROFILES_FILE``, else with ``fastdds_profile`` (default:
the installed config/fastdds.xml, which lets camera-sized frames through;
docs/ROS.md, "Wire it to your camera", gives the camera driver the same).
"""

import os
from typing import List  # noqa: UP035  (ParameterValue value_type spelled as launch_ros examples spell it)

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

PACKAGE = "funk_perception"
EXECUTABLE = "keypoint_node"
PROFILE_VARIABLE = "FASTRTPS_DEFAULT_PROFILES_FILE"

#: launch argument -> the node parameter's type; each overrides params_file only when given (not empty)
OVERRIDES = {
    "model": str,
    "tasks": List[str],  # noqa: UP006
    "device": str,
    "use_depth": bool,
    "image_qos": str,
    "compressed": bool,
}


def _node(context, share: str) -> list:
    """The node action, built once the arguments are known (which overrides were given, which topics)."""
    config = context.launch_configurations
    overrides = {
        name: LaunchConfiguration(name) if kind is str else ParameterValue(LaunchConfiguration(name), value_type=kind)
        for name, kind in OVERRIDES.items()
        if config.get(name, "")
    }
    camera = config.get("camera", "").rstrip("/")
    remappings = [
        ("image", config.get("image", "") or f"{camera}/color/image_raw"),
        ("depth", config.get("depth", "") or f"{camera}/aligned_depth_to_color/image_raw"),
        ("roi", config.get("roi", "") or "roi"),
    ]
    if config.get("camera_info", ""):  # else the node takes the image topic's sibling
        remappings.append(("camera_info", config["camera_info"]))
    profile = config.get("fastdds_profile", "")
    if not profile and PROFILE_VARIABLE not in os.environ:  # the user's own profile, or an empty one, is kept
        profile = os.path.join(share, "config", "fastdds.xml")
    return [
        Node(
            package=PACKAGE,
            executable=EXECUTABLE,
            name="keypoint_node",
            namespace=config.get("namespace", ""),
            output="screen",
            parameters=[LaunchConfiguration("params_file")] + ([overrides] if overrides else []),
            remappings=remappings,
            additional_env={PROFILE_VARIABLE: profile} if profile else {},
        )
    ]


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory(PACKAGE)
    unless = "empty: as params_file says"
    arguments = [
        DeclareLaunchArgument(
            "params_file",
            default_value=os.path.join(share, "config", "keypoints.yaml"),
            description="parameter YAML of the node",
        ),
        DeclareLaunchArgument("model", default_value="", description=f"checkpoint path; {unless}"),
        DeclareLaunchArgument("tasks", default_value="", description=f"tasks to detect, a YAML list; {unless}"),
        DeclareLaunchArgument("device", default_value="", description=f"auto, cpu or cuda[:N]; {unless}"),
        DeclareLaunchArgument("use_depth", default_value="", description=f"true: depth + camera_info -> 3D; {unless}"),
        DeclareLaunchArgument("image_qos", default_value="", description=f"sensor_data or reliable; {unless}"),
        DeclareLaunchArgument(
            "compressed", default_value="", description=f"true: subscribe to <image>/compressed; {unless}"
        ),
        DeclareLaunchArgument(
            "camera",
            default_value="/camera",
            description="namespace of the camera driver's topics (color/image_raw, "
            "color/camera_info, aligned_depth_to_color/image_raw)",
        ),
        DeclareLaunchArgument(
            "image", default_value="", description="colour image topic; empty: <camera>/color/image_raw"
        ),
        DeclareLaunchArgument(
            "depth",
            default_value="",
            description="depth topic registered to the colour image; empty: <camera>/aligned_depth_to_color/image_raw",
        ),
        DeclareLaunchArgument(
            "camera_info",
            default_value="",
            description="colour camera_info topic; empty: the image topic's sibling camera_info",
        ),
        DeclareLaunchArgument("roi", default_value="roi", description="sensor_msgs/RegionOfInterest topic"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node and its outputs"),
        DeclareLaunchArgument(
            "fastdds_profile",
            default_value="",
            description=f"Fast DDS profile of the node; empty: {PROFILE_VARIABLE} of this shell "
            "if set, else the installed config/fastdds.xml",
        ),
    ]
    return LaunchDescription(arguments + [OpaqueFunction(function=_node, args=[share])])
