"""Keypoints -> ROS messages (PointCloud2, per-task PointCloud2, MarkerArray, annotated Image) and back;
the diagnostics are built in funk_perception/ros/diagnostics.py, the layout in layout.py.

No rclpy here: every builder takes a *factory* ``make(typename, **fields)``
that creates a message of a ROS type name such as ``sensor_msgs/msg/PointCloud2``.
The node passes one over the rclpy message classes, the bag tool one over the
rosbags typestore (:class:`RosbagsFactory`), so both publish the same layout.

The ``keypoints`` PointCloud2 (one row, ``height = 1``; little-endian;
``point_step = 28``; one point per (task, keypoint) at or above the
confidence threshold, tasks in request order, keypoints p1..p5):

====== ====== ======== =====================================================
offset name   type     meaning
====== ====== ======== =====================================================
0      x      FLOAT32  metres in the image's optical frame (x right), NaN without depth
4      y      FLOAT32  metres (y down), NaN without depth
8      z      FLOAT32  metres (z forward, along the optical axis), NaN without depth
12     u      FLOAT32  pixel x in the full input image, (0, 0) = centre of the top-left pixel (OpenCV)
16     v      FLOAT32  pixel y, same convention
20     confidence FLOAT32 in [0, 1] (see FunctionalKeypointDetector)
24     task   UINT16   index in ``funk_perception.tasks.TASKS`` (0 pour ... 9 flip)
26     keypoint UINT8  0..4 for p1..p5
====== ====== ======== =====================================================

:func:`decode_keypoints` turns such a cloud back into ``{task: FrameKeypoints}``,
the structure ``FunctionalKeypointDetector.detect`` returns (pixels in the
pixel-centre convention of :mod:`funk_perception.ros.pipeline`).

Beside it, one cloud per task on ``keypoints/<task>`` (:func:`task_cloud`) that
needs no decoder: always five points, p1..p5 in order, fields ``x y z u v
confidence`` (FLOAT32, ``point_step = 24``); a keypoint under the confidence
threshold is NaN with confidence 0, as :func:`decode_keypoints` gives it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import cv2
import numpy as np

from funk_perception.ros.convert import ImageFields, rgb_to_image_fields
from funk_perception.ros.pipeline import Frame, FrameKeypoints
from funk_perception.tasks import KEYPOINTS, NUM_KEYPOINTS, TASKS

Factory = Callable[..., Any]

# sensor_msgs/PointField datatypes
_FLOAT32, _UINT16, _UINT8 = 7, 4, 2

#: The record layout of one keypoint in the ``keypoints`` cloud (see the module docstring).
POINT_DTYPE = np.dtype(
    {
        "names": ["x", "y", "z", "u", "v", "confidence", "task", "keypoint"],
        "formats": ["<f4", "<f4", "<f4", "<f4", "<f4", "<f4", "<u2", "u1"],
        "offsets": [0, 4, 8, 12, 16, 20, 24, 26],
        "itemsize": 28,
    }
)
_DATATYPES = {"<f4": _FLOAT32, "<u2": _UINT16, "|u1": _UINT8}

#: The record layout of one keypoint in a ``keypoints/<task>`` cloud; the point's index is the keypoint's.
TASK_POINT_DTYPE = np.dtype(
    {
        "names": ["x", "y", "z", "u", "v", "confidence"],
        "formats": ["<f4"] * 6,
        "offsets": [0, 4, 8, 12, 16, 20],
        "itemsize": 24,
    }
)

#: What each field of the clouds means (published in ``keypoints/layout``, tabled in docs/ROS.md).
FIELD_MEANINGS: dict[str, str] = {
    "x": "metres in the header's optical frame, x right; NaN without valid depth",
    "y": "metres, y down; NaN without valid depth",
    "z": "metres along the optical axis; NaN without valid depth",
    "u": "pixel x in the full input image; (0, 0) is the centre of the top-left pixel (OpenCV, image_geometry)",
    "v": "pixel y, same convention",
    "confidence": "in [0, 1]; how sure the detector is of this keypoint",
    "task": "task index: the position of the task's name in keypoints/layout's task list",
    "keypoint": "keypoint index: 0..4 for p1..p5",
}


def task_topic(task: str) -> str:
    """The relative topic of one task's cloud: ``keypoints/<task>`` (task names are valid ROS names)."""
    return f"keypoints/{task}"


#: One colour per task (matplotlib's tab10, RGB 0..255), so a task looks the same in RViz and the image.
TASK_COLORS: dict[str, tuple[int, int, int]] = dict(
    zip(
        TASKS,
        [
            (31, 119, 180),
            (255, 127, 14),
            (44, 160, 44),
            (214, 39, 40),
            (148, 103, 189),
            (140, 86, 75),
            (227, 119, 194),
            (127, 127, 127),
            (188, 189, 34),
            (23, 190, 207),
        ],
    )
)

# visualization_msgs/Marker constants
_LINE_STRIP, _SPHERE_LIST, _TEXT, _ADD, _DELETEALL = 4, 7, 9, 0, 3


def keypoints_cloud(
    make: Factory, header: Any, found: Mapping[str, FrameKeypoints], min_confidence: float = 0.0
) -> Any:
    """The ``keypoints`` sensor_msgs/PointCloud2 of one frame (layout in the module docstring)."""
    rows = []
    for task, kp in found.items():
        xyz = kp.xyz if kp.xyz is not None else np.full((len(kp.points), 3), np.nan)
        for i in range(len(kp.points)):
            if kp.confidence[i] >= min_confidence:
                rows.append((*xyz[i], *kp.points[i], kp.confidence[i], TASKS.index(task), i))
    points = np.zeros(len(rows), POINT_DTYPE)  # zeros: the pad byte at offset 27 is deterministic too
    if rows:
        points[:] = rows
    fields = _fields(make, POINT_DTYPE)
    return make(
        "sensor_msgs/msg/PointCloud2",
        header=header,
        height=1,
        width=len(points),
        fields=fields,
        is_bigendian=False,
        point_step=POINT_DTYPE.itemsize,
        row_step=POINT_DTYPE.itemsize * len(points),
        data=points.view(np.uint8).reshape(-1),
        is_dense=False,
    )


def _fields(make: Factory, dtype: np.dtype) -> list[Any]:
    return [
        make(
            "sensor_msgs/msg/PointField",
            name=name,
            offset=dtype.fields[name][1],
            datatype=_DATATYPES[dtype.fields[name][0].str],
            count=1,
        )
        for name in dtype.names
    ]


def task_cloud(make: Factory, header: Any, kp: FrameKeypoints, min_confidence: float = 0.0) -> Any:
    """The ``keypoints/<task>`` sensor_msgs/PointCloud2 of one task: five points p1..p5, fields
    x, y, z, u, v, confidence; a keypoint under ``min_confidence`` is all NaN with confidence 0."""
    points = np.zeros(len(kp.points), TASK_POINT_DTYPE)
    xyz = kp.xyz if kp.xyz is not None else np.full((len(kp.points), 3), np.nan)
    keep = np.asarray(kp.confidence) >= min_confidence
    for name, column in zip(("x", "y", "z", "u", "v"), np.concatenate([xyz, kp.points], axis=1).T):
        points[name] = np.where(keep, column, np.nan)
    points["confidence"] = np.where(keep, kp.confidence, 0.0)
    return make(
        "sensor_msgs/msg/PointCloud2",
        header=header,
        height=1,
        width=len(points),
        fields=_fields(make, TASK_POINT_DTYPE),
        is_bigendian=False,
        point_step=TASK_POINT_DTYPE.itemsize,
        row_step=TASK_POINT_DTYPE.itemsize * len(points),
        data=points.view(np.uint8).reshape(-1),
        is_dense=False,
    )


def decode_task_cloud(cloud: Any, task: str) -> FrameKeypoints:
    """A ``keypoints/<task>`` cloud (rclpy or rosbags) -> :class:`FrameKeypoints` of ``task``."""
    names = [f.name for f in cloud.fields]
    if names != list(TASK_POINT_DTYPE.names) or int(cloud.point_step) != TASK_POINT_DTYPE.itemsize:
        raise ValueError(
            f"keypoints/{task} cloud: expected fields {list(TASK_POINT_DTYPE.names)} with point_step "
            f"{TASK_POINT_DTYPE.itemsize}, found {names} with point_step {cloud.point_step}"
        )
    data = np.asarray(cloud.data if isinstance(cloud.data, np.ndarray) else memoryview(cloud.data), np.uint8)
    points = data.view(TASK_POINT_DTYPE)
    uv = np.stack([points["u"], points["v"]], axis=1).astype(np.float64)
    xyz = np.stack([points["x"], points["y"], points["z"]], axis=1).astype(np.float64)
    return FrameKeypoints(task, uv, points["confidence"].astype(np.float64), KEYPOINTS, xyz)


def decode_keypoints(cloud: Any) -> dict[str, FrameKeypoints]:
    """A ``keypoints`` PointCloud2 (rclpy or rosbags) -> ``{task: FrameKeypoints}`` as ``detect`` returns;
    keypoints left out by the confidence threshold come back as NaN points with confidence 0."""
    names = [f.name for f in cloud.fields]
    if names != list(POINT_DTYPE.names) or int(cloud.point_step) != POINT_DTYPE.itemsize or cloud.is_bigendian:
        raise ValueError(
            f"keypoints cloud: expected little-endian fields {list(POINT_DTYPE.names)} with point_step "
            f"{POINT_DTYPE.itemsize}, found {names} with point_step {cloud.point_step}"
        )
    count = int(cloud.width) * int(cloud.height)
    data = np.asarray(cloud.data if isinstance(cloud.data, np.ndarray) else memoryview(cloud.data), np.uint8)
    if data.size != count * POINT_DTYPE.itemsize:
        raise ValueError(
            f"keypoints cloud: expected {count} points of {POINT_DTYPE.itemsize} bytes, found {data.size} bytes"
        )
    points = data.view(POINT_DTYPE)
    out: dict[str, FrameKeypoints] = {}
    for task_index in dict.fromkeys(points["task"].tolist()):
        mine = points[points["task"] == task_index]
        uv = np.full((NUM_KEYPOINTS, 2), np.nan)
        xyz = np.full((NUM_KEYPOINTS, 3), np.nan)
        conf = np.zeros(NUM_KEYPOINTS)
        k = mine["keypoint"].astype(int)
        uv[k] = np.stack([mine["u"], mine["v"]], axis=1)
        xyz[k] = np.stack([mine["x"], mine["y"], mine["z"]], axis=1)
        conf[k] = mine["confidence"]
        task = TASKS[int(task_index)]
        out[task] = FrameKeypoints(task, uv, conf, KEYPOINTS, xyz)
    return out


def _marker_positions(kp: FrameKeypoints, k: np.ndarray | None) -> np.ndarray:
    """Where to draw each keypoint: its 3D point; without depth, on the plane 1 m in front of the camera
    (through K, whose pixel convention ``points`` share) or, without K either, on the image plane at 1 mm
    per pixel."""
    if kp.xyz is not None and np.isfinite(kp.xyz).all(axis=1).any():
        return kp.xyz
    if k is not None:
        x = (kp.points[:, 0] - k[0, 2]) / k[0, 0]
        y = (kp.points[:, 1] - k[1, 2]) / k[1, 1]
        return np.stack([x, y, np.ones_like(x)], axis=1)
    return np.concatenate([kp.points * 0.001, np.zeros((len(kp.points), 1))], axis=1)


def keypoint_markers(
    make: Factory,
    header: Any,
    found: Mapping[str, FrameKeypoints],
    min_confidence: float = 0.0,
    k: np.ndarray | None = None,
) -> Any:
    """visualization_msgs/MarkerArray: per task (namespace = task) a sphere per keypoint, the p1-p5 chain
    and a label per keypoint, in the task's colour; a DELETEALL first so vanished tasks disappear."""
    identity = make("geometry_msgs/msg/Pose", orientation=make("geometry_msgs/msg/Quaternion", w=1.0))
    # the pose is always given: rclpy's IDL default quaternion is w=1, rosbags' is all zeros
    markers = [make("visualization_msgs/msg/Marker", header=header, action=_DELETEALL, pose=identity)]
    for task, kp in found.items():
        r, g, b = (c / 255.0 for c in TASK_COLORS[task])
        color = make("std_msgs/msg/ColorRGBA", r=r, g=g, b=b, a=1.0)
        where = _marker_positions(kp, k)
        keep = [i for i in range(len(where)) if kp.confidence[i] >= min_confidence and np.isfinite(where[i]).all()]
        if not keep:
            continue
        depth = float(np.nanmedian(where[keep, 2])) or 1.0
        size = max(0.004, 0.012 * depth)  # a few pixels wide at any distance
        pts = [
            make("geometry_msgs/msg/Point", x=float(where[i, 0]), y=float(where[i, 1]), z=float(where[i, 2]))
            for i in keep
        ]
        common = dict(header=header, ns=task, action=_ADD, pose=identity, color=color)
        markers.append(
            make(
                "visualization_msgs/msg/Marker",
                id=0,
                type=_SPHERE_LIST,
                points=pts,
                scale=make("geometry_msgs/msg/Vector3", x=size, y=size, z=size),
                **common,
            )
        )
        markers.append(
            make(
                "visualization_msgs/msg/Marker",
                id=1,
                type=_LINE_STRIP,
                points=pts,
                scale=make("geometry_msgs/msg/Vector3", x=size / 3),
                **common,
            )
        )
        for n, i in enumerate(keep):
            label_pose = make(
                "geometry_msgs/msg/Pose",
                position=make(
                    "geometry_msgs/msg/Point",
                    x=float(where[i, 0]),
                    y=float(where[i, 1]) - 1.5 * size,
                    z=float(where[i, 2]),
                ),
                orientation=make("geometry_msgs/msg/Quaternion", w=1.0),
            )
            markers.append(
                make(
                    "visualization_msgs/msg/Marker",
                    id=2 + n,
                    type=_TEXT,
                    text=f"{task} {KEYPOINTS[i]}",
                    scale=make("geometry_msgs/msg/Vector3", z=1.5 * size),
                    **{**common, "pose": label_pose},
                )
            )
    return make("visualization_msgs/msg/MarkerArray", markers=markers)


def draw_frame(rgb: np.ndarray, found: Mapping[str, FrameKeypoints], min_confidence: float = 0.0) -> np.ndarray:
    """A copy of ``rgb`` with each task's chain p1-p5, numbered dots and the task name drawn in its colour."""
    out = rgb.copy()
    scale = max(1.0, max(rgb.shape[:2]) / 480.0)
    radius, thick = int(round(4 * scale)), max(1, int(round(scale)))
    for row, (task, kp) in enumerate(found.items()):
        color = TASK_COLORS[task]
        keep = [
            i for i in range(len(kp.points)) if kp.confidence[i] >= min_confidence and np.isfinite(kp.points[i]).all()
        ]
        # pixel-centre coordinates: rounding gives the pixel OpenCV draws at
        pix = [(int(round(kp.points[i, 0])), int(round(kp.points[i, 1]))) for i in keep]
        if len(pix) > 1:
            cv2.polylines(out, [np.array(pix, np.int32)], False, color, thick, cv2.LINE_AA)
        for i, p in zip(keep, pix):
            cv2.circle(out, p, radius, color, -1, cv2.LINE_AA)
            cv2.putText(
                out,
                str(i + 1),
                (p[0] + radius, p[1] - radius),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.4 * scale,
                color,
                thick,
                cv2.LINE_AA,
            )
        cv2.putText(
            out,
            task,
            (int(6 * scale), int((16 + 16 * row) * scale)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.45 * scale,
            color,
            thick,
            cv2.LINE_AA,
        )
    return out


def image_message(make: Factory, header: Any, rgb: np.ndarray) -> Any:
    """An rgb8 sensor_msgs/Image of ``rgb`` with ``header``."""
    fields: ImageFields = rgb_to_image_fields(rgb)
    return make(
        "sensor_msgs/msg/Image",
        header=header,
        height=fields.height,
        width=fields.width,
        encoding=fields.encoding,
        is_bigendian=fields.is_bigendian,
        step=fields.step,
        data=fields.data,
    )


def frame_outputs(
    make: Factory,
    header: Any,
    frame: Frame,
    found: Mapping[str, FrameKeypoints],
    min_confidence: float = 0.0,
    markers: bool = True,
    image: bool = True,
) -> dict[str, Any]:
    """Every per-frame output by topic name (relative, as the node publishes them): what node and bag share."""
    out = {"keypoints": keypoints_cloud(make, header, found, min_confidence)}
    for task, kp in found.items():
        out[task_topic(task)] = task_cloud(make, header, kp, min_confidence)
    if markers:
        out["keypoints/markers"] = keypoint_markers(make, header, found, min_confidence, frame.k)
    if image:
        out["keypoints/image"] = image_message(make, header, draw_frame(frame.rgb, found, min_confidence))
    return out


class RosbagsFactory:
    """``make(typename, **fields)`` over a rosbags typestore; unset fields get ROS defaults (0, "", empty)."""

    def __init__(self, typestore: Any) -> None:
        self.typestore = typestore

    def __call__(self, typename: str, **fields: Any) -> Any:
        _, defs = self.typestore.fielddefs[typename]
        values = {name: fields[name] if name in fields else self._default(desc) for name, desc in defs}
        for name, value in values.items():
            if isinstance(value, bytes) and len(value) == 1:  # a ``byte`` scalar: rclpy wants b"\x01", rosbags 1
                values[name] = value[0]
        return self.typestore.types[typename](**values)

    def _default(self, desc: tuple[int, Any]) -> Any:
        node, spec = desc
        if node == 1:  # BASE
            kind = spec[0]
            return (
                ""
                if kind in ("string", "wstring")
                else False
                if kind == "bool"
                else 0.0
                if kind.startswith("float")
                else 0
            )
        if node == 2:  # NAME (a nested message)
            return self(spec)
        (inner_node, inner), length = spec  # ARRAY (3) or SEQUENCE (4)
        if inner_node == 1 and inner[0] not in ("string", "wstring"):
            dtype = {"bool": np.bool_, "byte": np.uint8, "char": np.uint8, "octet": np.uint8}.get(inner[0], inner[0])
            return np.zeros(length if node == 3 else 0, dtype=dtype)
        return [self._default((inner_node, inner)) for _ in range(length if node == 3 else 0)]
