"""The keypoint node's parameters: names, defaults, ranges, descriptions and validation, without rclpy.

The node declares exactly these; the launch file, ``config/keypoints.yaml``
and the tests read them from here, so the three cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from funk_perception.ros.convert import MAX_PIXELS
from funk_perception.shipped import DEFAULT_CHECKPOINT
from funk_perception.tasks import TASKS, normalize_task

DEVICES = ("auto", "cpu", "cuda")
QOS_PROFILES = ("sensor_data", "reliable")


@dataclass(frozen=True)
class Param:
    """One node parameter. ``low``/``high``/``step`` become the rclpy range; ``choices`` are checked here."""

    name: str
    default: Any
    description: str
    read_only: bool = False
    low: float | None = None
    high: float | None = None
    step: float | None = None
    choices: tuple[str, ...] = ()


PARAMETERS: tuple[Param, ...] = (
    Param("model", "", f"checkpoint path; empty = the shipped {DEFAULT_CHECKPOINT}", read_only=True),
    Param("device", "auto", "auto (CUDA when present), cpu or cuda[:N]", read_only=True, choices=DEVICES),
    Param("threads", 0, "CPU threads for torch; 0 keeps torch's default", read_only=True, low=0, high=256, step=1),
    Param("tasks", list(TASKS), "tasks to detect (pour, scoop, ..., any FunKPoint spelling); changeable at run time"),
    Param("min_confidence", 0.0, "keypoints below this confidence are left out of every output; changeable at run time",
          low=0.0, high=1.0),
    Param("publish_markers", True, "publish keypoints/markers (visualization_msgs/MarkerArray)"),
    Param("publish_image", True, "publish keypoints/image (the frame with keypoints drawn)"),
    Param("image_qos", "sensor_data", "QoS of the input subscriptions: sensor_data (best effort, matches any "
          "publisher) or reliable", read_only=True, choices=QOS_PROFILES),
    Param("compressed", False, "subscribe to image/compressed (jpeg/png) instead of image", read_only=True),
    Param("use_depth", False, "subscribe to depth and camera_info and publish 3D keypoints", read_only=True),
    Param("depth_tolerance", 0.02, "seconds between a colour frame's and its depth frame's stamps still matched",
          low=0.0, high=1.0),
    Param("depth_window", 5, "side in pixels of the window whose median valid depth a keypoint gets (odd)",
          low=1, high=31, step=2),
    Param("roi", [0, 0, 0, 0], "region of interest [x, y, width, height] in pixels; width or height 0 = whole "
          "image; the roi topic overrides it"),
    Param("max_pixels", MAX_PIXELS, "frames with more pixels than this are refused unread", low=1,
          high=1 << 30, step=1),
)

PARAMETER_NAMES: tuple[str, ...] = tuple(p.name for p in PARAMETERS)


def parse_tasks(value: Sequence[str], available: Sequence[str]) -> list[str]:
    """Task names as given (any FunKPoint spelling) -> canonical names; raises ValueError naming the bad one."""
    if isinstance(value, str) or not len(value):
        raise ValueError(f"tasks: expected a non-empty list of task names from {', '.join(available)}, found {value!r}")
    out: list[str] = []
    for name in value:
        try:
            task = normalize_task(str(name))
        except ValueError:
            raise ValueError(f"tasks: unknown task {name!r}; expected names from {', '.join(available)}") from None
        if task not in available:
            raise ValueError(f"tasks: {name!r} has no keypoint prototype in this model; expected {', '.join(available)}")
        if task not in out:
            out.append(task)
    return out


def check_value(name: str, value: Any, available_tasks: Sequence[str] = TASKS) -> str | None:
    """Why ``value`` is refused for parameter ``name`` (None when accepted); rclpy checks the numeric ranges."""
    param = next((p for p in PARAMETERS if p.name == name), None)
    if param is None:
        return None
    if param.choices and not (str(value) in param.choices or (name == "device" and str(value).startswith("cuda:"))):
        return f"{name}: expected one of {', '.join(param.choices)}, found {value!r}"
    if name == "tasks":
        try:
            parse_tasks(list(value), available_tasks)
        except ValueError as exc:
            return str(exc)
    if name == "roi" and (len(value) != 4 or min(value[2], value[3]) < 0):
        return f"roi: expected [x, y, width, height] with width, height >= 0, found {list(value)}"
    if name == "depth_window" and int(value) % 2 == 0:
        return f"depth_window: expected an odd number of pixels, found {value}"
    return None
