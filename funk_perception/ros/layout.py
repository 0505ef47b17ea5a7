"""``keypoints/layout``: what the node's outputs mean, for consumers without funk's Python decoder.

One std_msgs/String holding a JSON document, published latched (reliable,
transient local, depth 1) so a subscriber that comes later still gets it,
and again whenever it changes (``tasks`` or ``min_confidence`` set at run
time). It says which task each ``task`` index of the ``keypoints`` cloud is,
the keypoint names and meanings, every field of the clouds with its offset,
datatype and meaning, and the pixel convention. docs/ROS.md says why a JSON
string rather than a typed message.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from funk_perception.ros.messages import FIELD_MEANINGS, POINT_DTYPE, TASK_POINT_DTYPE, task_topic
from funk_perception.tasks import KEYPOINT_MEANINGS, KEYPOINTS, TASKS

#: The relative topic the layout is published on.
LAYOUT_TOPIC = "keypoints/layout"

#: Bumped when a consumer reading the previous layout would misread the clouds.
LAYOUT_VERSION = 1

_DATATYPE_NAMES = {"<f4": "FLOAT32", "<u2": "UINT16", "|u1": "UINT8"}


def _fields(dtype: np.dtype) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "offset": dtype.fields[name][1],
            "datatype": _DATATYPE_NAMES[dtype.fields[name][0].str],
            "meaning": FIELD_MEANINGS[name],
        }
        for name in dtype.names
    ]


def layout(tasks: Sequence[str], min_confidence: float) -> dict[str, Any]:
    """The layout document for the requested ``tasks`` (canonical names, in request order)."""
    return {
        "format": "funk_perception keypoints layout",
        "version": LAYOUT_VERSION,
        "tasks": list(TASKS),
        "published_tasks": list(tasks),
        "keypoints": [
            {"index": i, "name": name, "meaning": KEYPOINT_MEANINGS[name]} for i, name in enumerate(KEYPOINTS)
        ],
        "min_confidence": float(min_confidence),
        "pixel_convention": "u, v in pixels of the full input image; (0, 0) is the centre of the top-left pixel, "
        "as in OpenCV, image_geometry and camera_info's K",
        "frame": "every output carries its input frame's header: stamp and frame_id (x, y, z are in that frame)",
        "topics": {
            "keypoints": {
                "type": "sensor_msgs/msg/PointCloud2",
                "points": "one per (task, keypoint) at or above min_confidence; tasks in published_tasks order, "
                "p1..p5 within a task",
                "height": 1,
                "is_bigendian": False,
                "point_step": POINT_DTYPE.itemsize,
                "fields": _fields(POINT_DTYPE),
            },
            task_topic("<task>"): {
                "type": "sensor_msgs/msg/PointCloud2",
                "topics": [task_topic(t) for t in tasks],
                "points": "five, p1..p5 in order (point index = keypoint index); a keypoint under min_confidence "
                "has NaN x, y, z, u, v and confidence 0",
                "height": 1,
                "is_bigendian": False,
                "point_step": TASK_POINT_DTYPE.itemsize,
                "fields": _fields(TASK_POINT_DTYPE),
            },
            "keypoints/markers": {
                "type": "visualization_msgs/msg/MarkerArray",
                "points": "per task (marker namespace = task name): spheres, the p1-p5 chain, labels",
            },
            "keypoints/image": {"type": "sensor_msgs/msg/Image", "points": "the rgb8 frame with keypoints drawn"},
        },
    }


def layout_message(make: Callable[..., Any], tasks: Sequence[str], min_confidence: float) -> Any:
    """The std_msgs/String of :func:`layout`, built with a message factory (see funk_perception/ros/messages.py)."""
    return make("std_msgs/msg/String", data=json.dumps(layout(tasks, min_confidence), indent=1))


def parse_layout(text: str) -> dict[str, Any]:
    """A ``keypoints/layout`` string -> the document; raises ValueError when it is not one."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"keypoints/layout: expected JSON, found {text[:40]!r}: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != "funk_perception keypoints layout":
        raise ValueError(f"keypoints/layout: expected a funk_perception keypoints layout, found {text[:40]!r}")
    return doc
