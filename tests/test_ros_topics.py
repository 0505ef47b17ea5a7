"""Camera-driver topic conventions: the compressed stream and camera_info follow the image topic as
image_transport lays them out (``<image>/compressed``, ``<namespace of image>/camera_info``) unless
remapped themselves, resolved by real rcl remap rules; and the live node listens there (a jpeg on the
derived compressed topic and a camera_info on the derived sibling give 3D keypoints back)."""

import os
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")

from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from ros_graph import restore_environment, stop  # noqa: E402
from sensor_msgs.msg import CameraInfo, CompressedImage, Image  # noqa: E402

from funk_perception.ros import client, transport  # noqa: E402
from funk_perception.ros.messages import decode_keypoints  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples" / "synth"
DOMAIN = 20 + (os.getpid() + 47) % 80
NAMESPACE = f"/funk_topics_{os.getpid()}"
CAMERA = f"{NAMESPACE}/camera"
K = np.array([[316.0, 0.0, 111.5], [0.0, 316.0, 111.5], [0.0, 0.0, 1.0]])


def resolved(rules: list[str], compressed: bool = True, use_depth: bool = True) -> dict[str, str]:
    """The node's input topics under these ``-r`` rules, resolved by a real rclpy node of the node's name."""
    ctx = rclpy.Context()
    args = ["keypoint_node", "--ros-args"] + [a for rule in rules for a in ("-r", rule)]
    rclpy.init(args=args, context=ctx)
    try:
        node = rclpy.create_node("keypoint_node", context=ctx)
        topics = transport.input_topics(node.resolve_topic_name, compressed, use_depth)
        node.destroy_node()
    finally:
        rclpy.shutdown(context=ctx)
    return topics


def test_compressed_and_camera_info_follow_the_remapped_image_topic():
    topics = resolved(["image:=/camera/color/image_raw"])
    assert topics == {
        "image": "/camera/color/image_raw/compressed",
        "depth": "/depth",
        "camera_info": "/camera/color/camera_info",
        "roi": "/roi",
    }
    topics = resolved(["__ns:=/camera/color", "image:=image_raw"])  # relative rules resolve in the namespace
    assert topics["image"] == "/camera/color/image_raw/compressed"
    assert topics["camera_info"] == "/camera/color/camera_info" and topics["depth"] == "/camera/color/depth"
    assert resolved(["image:=/camera/color/image_raw"], compressed=False)["image"] == "/camera/color/image_raw"


def test_without_remaps_the_topics_are_the_old_ones():
    topics = resolved(["__ns:=/robot"])
    assert topics == {
        "image": "/robot/image/compressed",
        "depth": "/robot/depth",
        "camera_info": "/robot/camera_info",
        "roi": "/robot/roi",
    }


def test_a_remap_of_the_derived_topics_themselves_wins():
    topics = resolved(
        [
            "image:=/camera/color/image_raw",
            "image/compressed:=/jpeg/stream",
            "camera_info:=/calibration/info",
            "depth:=/camera/depth/image_rect_raw",
        ]
    )
    assert topics["image"] == "/jpeg/stream" and topics["camera_info"] == "/calibration/info"
    assert topics["depth"] == "/camera/depth/image_rect_raw"


def test_image_transport_names():
    assert transport.compressed_topic("/camera/color/image_raw") == "/camera/color/image_raw/compressed"
    assert transport.camera_info_topic("/camera/color/image_raw") == "/camera/color/camera_info"
    assert transport.camera_info_topic("/image_raw") == "/camera_info"


@pytest.fixture(scope="module")
def compressed_node(tmp_path_factory):
    """keypoint_node with compressed:=true and use_depth:=true, its image remapped to ``<camera>/color/image_raw``
    and its depth to ``<camera>/aligned_depth_to_color/image_raw``; nothing else remapped."""
    saved = {k: os.environ.get(k) for k in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE")}
    client.init(DOMAIN)
    log = tmp_path_factory.mktemp("topics") / "keypoint_node.log"
    proc = client.start_node(
        DOMAIN,
        ROOT / "config" / "keypoints.yaml",
        parameters={"threads": 1, "tasks": ["pour"], "device": "cpu", "compressed": True, "use_depth": True},
        remap={
            "__ns": NAMESPACE,
            "image": f"{CAMERA}/color/image_raw",
            "depth": f"{CAMERA}/aligned_depth_to_color/image_raw",
        },
        log=log,
    )
    probe = client.NodeClient(namespace=NAMESPACE)
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    pubs = {
        "image": probe.create_publisher(CompressedImage, f"{CAMERA}/color/image_raw/compressed", qos),
        "depth": probe.create_publisher(Image, f"{CAMERA}/aligned_depth_to_color/image_raw", qos),
        "info": probe.create_publisher(CameraInfo, f"{CAMERA}/color/camera_info", qos),
    }
    try:
        probe.wait_connected(240.0, pubs["image"])  # torch + model load; minutes on a loaded 2-core VM
        deadline = time.monotonic() + 60.0
        while not all(pub.get_subscription_count() for pub in pubs.values()):
            assert time.monotonic() < deadline, "keypoint_node did not subscribe to depth and camera_info"
            time.sleep(0.05)
        yield probe, pubs, log
    finally:
        probe.close()
        stop(proc)
        rclpy.shutdown()
        restore_environment(saved)


def test_live_node_listens_on_the_derived_topics_and_logs_them(compressed_node):
    probe, pubs, log = compressed_node
    bgr = cv2.imread(str(SAMPLES / "images" / "bottle" / "bottle_0000_v0.jpg"))
    depth = cv2.imread(str(SAMPLES / "depth" / "bottle" / "bottle_0000_v0.png"), cv2.IMREAD_UNCHANGED)
    ok, jpeg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    frame_id = "camera_color_optical_frame"

    def publish(stamp: int) -> None:
        pubs["info"].publish(client.camera_info_msg(K, bgr.shape[1], bgr.shape[0], stamp, frame_id))
        pubs["depth"].publish(client.image_msg(depth, "16UC1", stamp, frame_id))
        time.sleep(0.1)  # depth and camera_info first, as drivers usually send them
        header = client.header_fields(stamp, frame_id)
        pubs["image"].publish(CompressedImage(format="jpeg", data=jpeg.tobytes(), **header))

    # a best-effort reader drops what a writer it has not matched yet sends, so the first frame may come
    # without depth or camera_info: a few frames, each with all three; with the wrong camera_info topic none has 3D
    for attempt in range(5):
        stamp = 50_000_000_000 + attempt * 1_000_000
        found = decode_keypoints(probe.exchange(lambda stamp=stamp: publish(stamp), stamp, timeout=90.0))
        if np.isfinite(found["pour"].xyz).any():
            break
    assert list(found) == ["pour"]
    assert np.isfinite(found["pour"].xyz).any(), "no 3D: the camera_info sibling of the image topic was not used"
    text = log.read_text()
    for topic in (
        f"image {CAMERA}/color/image_raw/compressed",
        f"camera_info {CAMERA}/color/camera_info",
        f"depth {CAMERA}/aligned_depth_to_color/image_raw",
        f"roi {NAMESPACE}/roi",
    ):
        assert topic in text, text[-2000:]
