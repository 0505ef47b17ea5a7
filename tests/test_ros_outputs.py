"""Outputs any consumer can read: the latched ``keypoints/layout`` (JSON on std_msgs/String) says what the
cloud's indices and fields mean, and ``keypoints/<task>`` carries each task's five keypoints in a cloud
that needs no decoder; both from the live node and from the bag tool."""

import json
import os
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")

from ros_graph import running_node  # noqa: E402
from rosbags.typesys import Stores, get_typestore  # noqa: E402

from funk_perception.bag import BagConfig, process_bag  # noqa: E402
from funk_perception.detector import FunctionalKeypointDetector  # noqa: E402
from funk_perception.ros import client  # noqa: E402
from funk_perception.ros.layout import LAYOUT_TOPIC, layout, parse_layout  # noqa: E402
from funk_perception.ros.messages import (  # noqa: E402
    POINT_DTYPE,
    TASK_POINT_DTYPE,
    RosbagsFactory,
    decode_keypoints,
    decode_task_cloud,
    keypoints_cloud,
    task_cloud,
    task_topic,
)
from funk_perception.ros.pipeline import FrameKeypoints  # noqa: E402
from funk_perception.ros.sample_bag import IMAGE_TOPIC, write_sample_bag  # noqa: E402
from funk_perception.tasks import KEYPOINTS, TASKS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "synth" / "images" / "spatula" / "spatula_0000_v0.jpg"
DOMAIN = 20 + (os.getpid() + 37) % 80
NAMESPACE = f"/funk_outputs_{os.getpid()}"
NODE = f"{NAMESPACE}/keypoint_node"
REQUESTED = ["scoop", "pour"]
RNG = np.random.default_rng(5)


def same(a: FrameKeypoints, b: FrameKeypoints) -> None:
    assert a.task == b.task and tuple(a.names) == tuple(b.names) == KEYPOINTS
    assert np.allclose(a.points, b.points, atol=1e-5, equal_nan=True)
    assert np.allclose(a.confidence, b.confidence, atol=1e-6)
    assert np.allclose(a.xyz, b.xyz, atol=1e-6, equal_nan=True)


# -- no ROS graph ---------------------------------------------------------------------------------------------------


def test_layout_describes_every_field_and_index():
    doc = layout(REQUESTED, 0.25)
    assert doc["tasks"] == list(TASKS) and doc["published_tasks"] == REQUESTED and doc["min_confidence"] == 0.25
    assert [k["name"] for k in doc["keypoints"]] == list(KEYPOINTS) and all(k["meaning"] for k in doc["keypoints"])
    cloud = doc["topics"]["keypoints"]
    assert cloud["point_step"] == POINT_DTYPE.itemsize
    assert [(f["name"], f["offset"]) for f in cloud["fields"]] == [
        (name, POINT_DTYPE.fields[name][1]) for name in POINT_DTYPE.names
    ]
    assert [f["datatype"] for f in cloud["fields"]] == ["FLOAT32"] * 6 + ["UINT16", "UINT8"]
    per_task = doc["topics"]["keypoints/<task>"]
    assert per_task["topics"] == ["keypoints/scoop", "keypoints/pour"]
    assert [f["name"] for f in per_task["fields"]] == list(TASK_POINT_DTYPE.names)
    assert "centre of the top-left pixel" in doc["pixel_convention"]
    assert parse_layout(json.dumps(doc)) == doc
    with pytest.raises(ValueError, match="keypoints/layout"):
        parse_layout('{"format": "something else"}')


def test_task_topics_do_not_collide_with_the_other_outputs():
    fixed = {"keypoints/markers", "keypoints/image", LAYOUT_TOPIC}
    assert not fixed & {task_topic(t) for t in TASKS}


def test_per_task_cloud_matches_the_decoded_cloud_threshold_included():
    bags = RosbagsFactory(get_typestore(Stores.ROS2_JAZZY))
    found = {}
    for task in REQUESTED:
        xyz = np.column_stack([RNG.normal(size=(5, 2)) * 0.1, RNG.uniform(0.4, 1.0, 5)])
        xyz[2] = np.nan  # over a depth hole
        found[task] = FrameKeypoints(task, RNG.uniform(0, 64, (5, 2)), np.array([0.1, 0.5, 0.9, 0.3, 0.7]), xyz=xyz)
    header = bags("std_msgs/msg/Header", frame_id="camera")
    decoded = decode_keypoints(keypoints_cloud(bags, header, found, 0.4))
    for task in REQUESTED:
        per_task = decode_task_cloud(task_cloud(bags, header, found[task], 0.4), task)
        same(per_task, decoded[task])
        assert np.isnan(per_task.points[[0, 3]]).all() and (per_task.confidence[[0, 3]] == 0).all()


# -- the live node ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    log = tmp_path_factory.mktemp("node") / "keypoint_node.log"
    parameters = {"threads": 1, "device": "cpu", "tasks": REQUESTED, "publish_image": False}
    with running_node(DOMAIN, NAMESPACE, parameters, log) as (probe, proc):
        yield probe, proc


def late_layout(probe, timeout: float = 20.0) -> dict:
    """Subscribe now, long after the node published its layout, and return the layout that still comes."""
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from std_msgs.msg import String

    got = []
    qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    sub = probe.create_subscription(String, LAYOUT_TOPIC, lambda msg: got.append(msg.data), qos)
    try:
        deadline = time.monotonic() + timeout
        while not got and time.monotonic() < deadline:
            time.sleep(0.05)
        assert got, f"no {LAYOUT_TOPIC} within {timeout:g} s of subscribing"
        return parse_layout(got[-1])
    finally:
        probe.destroy_subscription(sub)


def test_a_late_subscriber_receives_the_layout_and_its_updates(graph):
    probe, _ = graph
    time.sleep(1.0)  # well after the node's start, when the layout was published
    doc = late_layout(probe)
    assert doc["published_tasks"] == REQUESTED and doc["tasks"] == list(TASKS) and doc["min_confidence"] == 0.0
    assert probe.set_parameters(NODE, {"tasks": ["Poke"], "min_confidence": 0.2}) == [(True, ""), (True, "")]
    doc = late_layout(probe)
    assert doc["published_tasks"] == ["poke"] and doc["min_confidence"] == 0.2
    assert probe.set_parameters(NODE, {"tasks": REQUESTED, "min_confidence": 0.0}) == [(True, ""), (True, "")]


def test_per_task_clouds_match_the_keypoints_cloud(graph):
    from sensor_msgs.msg import PointCloud2

    probe, _ = graph
    rgb = cv2.cvtColor(cv2.imread(str(SAMPLE)), cv2.COLOR_BGR2RGB)
    received: dict[tuple[str, int], PointCloud2] = {}
    subs = [
        probe.create_subscription(
            PointCloud2,
            task_topic(task),
            lambda msg, task=task: received.__setitem__(
                (task, msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec), msg
            ),
            10,
        )
        for task in REQUESTED
    ]
    try:
        assert probe.set_parameters(NODE, {"min_confidence": 0.3}) == [(True, "")]
        checked = 0
        for stamp in range(1_000_000_000, 1_000_000_010):  # new subscriptions: the first frames may come too soon
            cloud = probe.exchange(lambda: probe.pub_image.publish(client.image_msg(rgb, "rgb8", stamp)), stamp, 60.0)
            whole = decode_keypoints(cloud)
            deadline = time.monotonic() + 3.0
            while not all((task, stamp) in received for task in REQUESTED) and time.monotonic() < deadline:
                time.sleep(0.05)
            if not all((task, stamp) in received for task in REQUESTED):
                continue
            checked += 1
            for task in REQUESTED:
                per_task = received[(task, stamp)]
                assert per_task.header.frame_id == cloud.header.frame_id
                assert per_task.width == 5 and [f.name for f in per_task.fields] == list(TASK_POINT_DTYPE.names)
                got = decode_task_cloud(per_task, task)
                if task in whole:
                    same(got, whole[task])
                else:  # every keypoint under the threshold: none in the cloud, five NaN points here
                    assert np.isnan(got.points).all() and (got.confidence == 0).all()
            if checked == 2:
                break
        assert checked == 2, f"per-task clouds of {checked} frames received"
    finally:
        for sub in subs:
            probe.destroy_subscription(sub)
        assert probe.set_parameters(NODE, {"min_confidence": 0.0}) == [(True, "")]


# -- the bag tool --------------------------------------------------------------------------------------------------------


def test_bag_tool_writes_the_layout_and_the_per_task_clouds(tmp_path):
    import torch
    from rosbags.rosbag2 import Reader

    torch.set_num_threads(1)
    detector = FunctionalKeypointDetector.load(ROOT / "models" / "funk-lite0-synth.pt", device="cpu")
    write_sample_bag(tmp_path / "in", frames=2)
    process_bag(BagConfig(tmp_path / "in", tmp_path / "out", tuple(REQUESTED), IMAGE_TOPIC, progress=False), detector)
    store = get_typestore(Stores.ROS2_JAZZY)
    ns = IMAGE_TOPIC.rsplit("/", 1)[0]
    with Reader(tmp_path / "out") as reader:
        qos = {c.topic: c.ext.offered_qos_profiles for c in reader.connections}
        messages: dict[str, list] = {}
        for conn, _, raw in reader.messages():
            messages.setdefault(conn.topic, []).append(store.deserialize_cdr(raw, conn.msgtype))
    (layout_msg,) = messages[f"{ns}/{LAYOUT_TOPIC}"]
    assert parse_layout(layout_msg.data)["published_tasks"] == REQUESTED
    assert qos[f"{ns}/{LAYOUT_TOPIC}"][0].durability.name == "TRANSIENT_LOCAL"
    for n, cloud in enumerate(messages[f"{ns}/keypoints"]):
        whole = decode_keypoints(cloud)
        for task in REQUESTED:
            same(decode_task_cloud(messages[f"{ns}/{task_topic(task)}"][n], task), whole[task])
