"""Keypoint messages: the PointCloud2 layout and its decoder, markers, annotated image, diagnostics;
the rclpy and rosbags factories give byte-identical CDR (the node and the bag tool publish the same thing)."""

import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from rosbags.typesys import Stores, get_typestore
from sensor_msgs.msg import PointCloud2

from funk_perception.ros.diagnostics import WARN, diagnostics_array, keypoint_status
from funk_perception.ros.keypoint_node import make_message
from funk_perception.ros.messages import (
    POINT_DTYPE,
    RosbagsFactory,
    decode_keypoints,
    draw_frame,
    frame_outputs,
    keypoint_markers,
    keypoints_cloud,
)
from funk_perception.ros.pipeline import Frame, FrameKeypoints

STORE = get_typestore(Stores.ROS2_JAZZY)
BAGS = RosbagsFactory(STORE)
RNG = np.random.default_rng(3)


def found(with_depth: bool = True) -> dict[str, FrameKeypoints]:
    out = {}
    for task in ("scoop", "pour"):
        xyz = np.column_stack([RNG.normal(size=(5, 2)) * 0.1, RNG.uniform(0.4, 1.0, 5)]) if with_depth else None
        if xyz is not None:
            xyz[3] = np.nan  # a keypoint over a depth hole
        out[task] = FrameKeypoints(task, RNG.uniform(0, 64, (5, 2)), np.linspace(0.1, 0.9, 5), xyz=xyz)
    return out


def header(make):
    return make(
        "std_msgs/msg/Header",
        stamp=make("builtin_interfaces/msg/Time", sec=12, nanosec=345),
        frame_id="camera_color_optical_frame",
    )


def test_cloud_layout_and_decoder_round_trip_through_cdr():
    kps = found()
    cloud = keypoints_cloud(BAGS, header(BAGS), kps)
    assert [f.name for f in cloud.fields] == ["x", "y", "z", "u", "v", "confidence", "task", "keypoint"]
    assert cloud.point_step == 28 and cloud.width == 10 and cloud.height == 1 and not cloud.is_dense
    back = decode_keypoints(
        STORE.deserialize_cdr(STORE.serialize_cdr(cloud, "sensor_msgs/msg/PointCloud2"), "sensor_msgs/msg/PointCloud2")
    )
    assert list(back) == ["scoop", "pour"]  # request order kept
    for task, kp in kps.items():
        assert np.allclose(back[task].points, kp.points, atol=1e-4)
        assert np.allclose(back[task].confidence, kp.confidence, atol=1e-6)
        assert np.allclose(back[task].xyz, kp.xyz, atol=1e-6, equal_nan=True)
        assert back[task].names == ("p1", "p2", "p3", "p4", "p5")


def test_confidence_threshold_drops_points_and_decoder_fills_nan():
    cloud = keypoints_cloud(BAGS, header(BAGS), found(with_depth=False), min_confidence=0.5)
    assert cloud.width == 2 * 3
    back = decode_keypoints(cloud)
    assert np.isnan(back["pour"].points[:2]).all() and (back["pour"].confidence[:2] == 0).all()
    assert np.isnan(back["pour"].xyz).all()
    empty = decode_keypoints(keypoints_cloud(BAGS, header(BAGS), found(), min_confidence=1.0))
    assert empty == {}


def test_decoder_refuses_foreign_clouds():
    cloud = keypoints_cloud(BAGS, header(BAGS), found())
    cloud.point_step = 32
    with pytest.raises(ValueError, match="point_step"):
        decode_keypoints(cloud)


def test_rclpy_and_rosbags_factories_give_identical_bytes():
    kps = found()
    frame = Frame(
        RNG.integers(0, 256, (48, 64, 3), dtype=np.uint8), k=np.array([[80.0, 0, 32], [0, 80, 24], [0, 0, 1]])
    )
    ours = frame_outputs(make_message, header(make_message), frame, kps, 0.2)
    theirs = frame_outputs(BAGS, header(BAGS), frame, kps, 0.2)
    types = {
        "keypoints": "sensor_msgs/msg/PointCloud2",
        "keypoints/markers": "visualization_msgs/msg/MarkerArray",
        "keypoints/image": "sensor_msgs/msg/Image",
        "keypoints/scoop": "sensor_msgs/msg/PointCloud2",
        "keypoints/pour": "sensor_msgs/msg/PointCloud2",
    }
    assert set(ours) == set(types)
    status = keypoint_status((WARN, "w", {"Events in window": "2"}), {"received": 3, "p": 1.5}, rejected=1)
    ours["diagnostics"] = diagnostics_array(make_message, header(make_message), "n: keypoints", "hw", status)
    theirs["diagnostics"] = diagnostics_array(BAGS, header(BAGS), "n: keypoints", "hw", status)
    types["diagnostics"] = "diagnostic_msgs/msg/DiagnosticArray"
    for topic, msgtype in types.items():
        # through rosbags' reader and writer, since Fast-CDR leaves alignment padding bytes undefined
        normalised = STORE.serialize_cdr(STORE.deserialize_cdr(serialize_message(ours[topic]), msgtype), msgtype)
        assert bytes(normalised) == bytes(STORE.serialize_cdr(theirs[topic], msgtype)), topic
    rclpy_cloud = deserialize_message(serialize_message(ours["keypoints"]), PointCloud2)
    decoded = decode_keypoints(rclpy_cloud)["pour"]
    assert np.isnan(decoded.xyz[0]).all() and decoded.confidence[0] == 0  # p1's 0.1 is under the 0.2 threshold
    assert np.allclose(decoded.xyz[1:], kps["pour"].xyz[1:], equal_nan=True, atol=1e-6)


def test_markers_per_task_in_3d_with_depth_and_on_a_plane_without():
    kps = found()
    arr = keypoint_markers(BAGS, header(BAGS), kps)
    assert arr.markers[0].action == 3  # DELETEALL first
    spheres = [m for m in arr.markers if m.type == 7]
    assert [m.ns for m in spheres] == ["scoop", "pour"]
    assert spheres[0].color.b != spheres[1].color.b  # per-task colours
    finite = np.isfinite(kps["pour"].xyz).all(axis=1)
    assert np.allclose([[p.x, p.y, p.z] for p in spheres[1].points], kps["pour"].xyz[finite])
    labels = [m.text for m in arr.markers if m.type == 9 and m.ns == "pour"]
    assert labels == ["pour p1", "pour p2", "pour p3", "pour p5"]
    flat = keypoint_markers(
        BAGS, header(BAGS), found(with_depth=False), k=np.array([[80.0, 0, 32], [0, 80, 24], [0, 0, 1]])
    )
    assert all(p.z == 1.0 for m in flat.markers if m.type == 7 for p in m.points)


def test_annotated_image_draws_in_task_colours():
    rgb = np.zeros((48, 64, 3), np.uint8)
    out = draw_frame(rgb, found())
    assert out.shape == rgb.shape and out.any() and not rgb.any()
    assert POINT_DTYPE.itemsize == 28
