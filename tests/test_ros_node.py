"""keypoint_node end to end on a real rclpy graph: the installed executable as a subprocess, started the
way the launch file starts it (--params-file config/keypoints.yaml), fed by a client node on localhost
with a domain id and namespace of this test process alone."""

import os
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")

from ros_graph import saved_environment, stop  # noqa: E402

from funk_perception.bag import BagConfig, process_bag  # noqa: E402
from funk_perception.detector import FunctionalKeypointDetector  # noqa: E402
from funk_perception.ros import client  # noqa: E402
from funk_perception.ros.convert import stamp_ns  # noqa: E402
from funk_perception.ros.messages import decode_keypoints  # noqa: E402
from funk_perception.ros.pipeline import backproject, robust_depth  # noqa: E402
from funk_perception.ros.sample_bag import DEPTH_TOPIC, IMAGE_TOPIC, INFO_TOPIC, write_sample_bag  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples" / "synth"
DOMAIN = 20 + os.getpid() % 80
NAMESPACE = f"/funk_test_{os.getpid()}"
NODE = f"{NAMESPACE}/keypoint_node"
TASKS = ["pour", "scoop"]
K = np.array([[316.0, 0.0, 111.5], [0.0, 316.0, 111.5], [0.0, 0.0, 1.0]])


def centres(kp) -> np.ndarray:
    """``detect``'s points (from the top-left pixel's corner) in the node's pixel-centre convention."""
    return kp.points - 0.5


def sample(name: str) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(SAMPLES / "images" / name)), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def detector():
    import torch

    torch.set_num_threads(1)
    return FunctionalKeypointDetector.load(ROOT / "models" / "funk-lite0-synth.pt", device="cpu")


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    """(client, node process): one node for the whole module (starting one costs seconds)."""
    with saved_environment():
        client.init(DOMAIN)
        log = tmp_path_factory.mktemp("node") / "keypoint_node.log"
        proc = client.start_node(
            DOMAIN,
            ROOT / "config" / "keypoints.yaml",
            parameters={"threads": 1, "tasks": TASKS, "use_depth": True, "device": "cpu"},
            remap={"__ns": NAMESPACE},
            log=log,
        )
        probe = client.NodeClient(namespace=NAMESPACE)
        try:
            probe.wait_connected(240.0)  # torch + model load; minutes on a loaded 2-core VM
            yield probe, proc, log
        finally:
            probe.close()
            stop(proc)
            rclpy.shutdown()


def send(probe, rgb, stamp, encoding="rgb8", step=None, depth=None, info=True):
    """Publish (depth, camera_info and) the colour frame stamped ``stamp``; return the node's keypoints."""
    pixels = rgb if encoding == "rgb8" else np.ascontiguousarray(rgb[:, :, ::-1])

    def publish():
        if depth is not None:
            probe.pub_depth.publish(client.image_msg(depth, "16UC1", stamp))
        if info:
            probe.pub_info.publish(client.camera_info_msg(K, rgb.shape[1], rgb.shape[0], stamp))
        probe.pub_image.publish(client.image_msg(pixels, encoding, stamp, step=step))

    return probe.exchange(publish, stamp, timeout=60.0)


def counters(probe, **at_least):
    return probe.wait_diagnostics(lambda v: all(int(v.get(k, 0)) >= n for k, n in at_least.items()), 30.0)


def test_bad_input_is_counted_and_the_node_keeps_answering(graph, detector):
    probe, proc, log = graph
    rgb = sample("cup/cup_0000_v0.jpg")
    # depth before any camera_info ever came: 2D keypoints, no 3D, counted
    depth = np.full(rgb.shape[:2], 700, np.uint16)
    cloud = send(probe, rgb, 5_000_000_000, depth=depth, info=False)
    assert np.isnan(decode_keypoints(cloud)["pour"].xyz).all()
    good = client.image_msg(rgb, "rgb8", 0)
    bad = {
        "encoding": dict(encoding="rgb16"),
        "size": dict(step=good.step - 1),
        "truncated": dict(data=good.data[:-10]),
        "empty": dict(height=0, width=0, step=0, data=[]),
        "too_large": dict(height=20000, width=20000, step=60000),
    }
    for n, (reason, change) in enumerate(bad.items()):
        msg = client.image_msg(rgb, "rgb8", 6_000_000_000 + n)
        for key, value in change.items():
            setattr(msg, key, value)
        for _ in range(10):  # resent until counted: a busy node keeps only the newest frame
            probe.pub_image.publish(msg)
            try:
                probe.wait_diagnostics(lambda v: int(v.get(f"rejected.{reason}", 0)) >= 1, 3.0)
                break
            except TimeoutError:
                continue
    # depth of another size and all-zero depth, each with camera_info now
    small = np.full((10, 10), 700, np.uint16)
    cloud = send(probe, rgb, 7_000_000_000, depth=small)
    assert np.isnan(decode_keypoints(cloud)["pour"].xyz).all()
    cloud = send(probe, rgb, 7_100_000_000, depth=np.zeros(rgb.shape[:2], np.uint16))
    assert np.isnan(decode_keypoints(cloud)["pour"].xyz).all()
    values = counters(probe, **{f"rejected.{r}": 1 for r in bad}, **{"no_3d.no_camera_info": 1, "no_3d.depth_size": 1})
    assert int(values["rejected"]) >= len(bad)
    assert proc.poll() is None
    # still answering, and still right
    cloud = send(probe, rgb, 8_000_000_000)
    assert np.allclose(
        decode_keypoints(cloud)["pour"].points, centres(detector.detect(rgb, ["pour"])["pour"]), atol=1e-3
    )
    text = log.read_text()
    for reason in bad:
        assert f"[{reason};" in text
        assert text.count(f"[{reason};") == 1  # throttled: once per kind


def test_keypoints_equal_detect_with_header_kept(graph, detector):
    probe, _, _ = graph
    for n, (name, encoding, step) in enumerate(
        [("bottle/bottle_0000_v0.jpg", "rgb8", None), ("hammer/hammer_0000_v0.jpg", "bgr8", 224 * 3 + 8)]
    ):
        rgb = sample(name)
        stamp = 10_000_000_000 + n * 33_000_000
        cloud = send(probe, rgb, stamp, encoding, step)
        assert cloud.header.frame_id == "camera_optical"
        got, want = decode_keypoints(cloud), detector.detect(rgb, TASKS)
        assert list(got) == TASKS
        for task in TASKS:
            assert np.allclose(got[task].points, centres(want[task]), atol=1e-3)
            assert np.allclose(got[task].confidence, want[task].confidence, atol=1e-5)
        annotated = probe.wait_image(stamp, 10.0)
        assert (annotated.width, annotated.height, annotated.encoding) == (224, 224, "rgb8")


def test_3d_keypoints_equal_the_back_projection(graph):
    probe, _, _ = graph
    rgb = sample("bottle/bottle_0000_v0.jpg")
    depth_mm = cv2.imread(str(SAMPLES / "depth" / "bottle" / "bottle_0000_v0.png"), cv2.IMREAD_UNCHANGED)
    cloud = send(probe, rgb, 20_000_000_000, depth=depth_mm)
    got = decode_keypoints(cloud)
    metres = depth_mm.astype(np.float32) * np.float32(0.001)
    metres[depth_mm == 0] = np.nan
    for task in TASKS:
        want = backproject(got[task].points, robust_depth(metres, got[task].points, 5), K)
        assert np.isfinite(want).any()
        assert np.allclose(got[task].xyz, want, atol=1e-4, equal_nan=True)
    spheres = [m for m in probe.wait_markers(20_000_000_000, 10.0).markers if m.type == 7]
    assert [m.ns for m in spheres] == TASKS and spheres[0].points[0].z > 0.1


def test_parameters_change_at_run_time_and_bad_values_are_refused(graph, detector):
    probe, _, _ = graph
    rgb = sample("spoon/spoon_0000_v0.jpg")
    assert probe.set_parameters(NODE, {"tasks": ["Poke"]}) == [(True, "")]
    assert list(decode_keypoints(send(probe, rgb, 30_000_000_000))) == ["poke"]
    ((ok, reason),) = probe.set_parameters(NODE, {"tasks": ["juggle"]})
    assert not ok and "unknown task 'juggle'" in reason
    assert not probe.set_parameters(NODE, {"min_confidence": 2.0})[0][0]
    assert not probe.set_parameters(NODE, {"model": "/elsewhere.pt"})[0][0]  # read-only
    assert probe.set_parameters(NODE, {"min_confidence": 0.3}) == [(True, "")]
    got = decode_keypoints(send(probe, rgb, 30_100_000_000))["poke"]  # the old tasks were kept
    want = detector.detect(rgb, ["poke"])["poke"]
    assert np.array_equal(np.isnan(got.points[:, 0]), want.confidence < 0.3)
    assert probe.set_parameters(NODE, {"tasks": TASKS, "min_confidence": 0.0}) == [(True, ""), (True, "")]


def test_bag_tool_and_live_node_give_the_same_keypoints(graph, detector, tmp_path):
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import Stores, get_typestore

    probe, _, _ = graph
    write_sample_bag(tmp_path / "in", frames=2)
    process_bag(
        BagConfig(
            tmp_path / "in", tmp_path / "out", tuple(TASKS), IMAGE_TOPIC, DEPTH_TOPIC, INFO_TOPIC, progress=False
        ),
        detector,
    )
    store = get_typestore(Stores.ROS2_JAZZY)
    with Reader(tmp_path / "out") as reader:
        raw = [(c.topic, bytes(data)) for c, _, data in reader.messages()]
    publishers = {IMAGE_TOPIC: probe.pub_image, DEPTH_TOPIC: probe.pub_depth, INFO_TOPIC: probe.pub_info}
    inputs = [(topic, data) for topic, data in raw if topic in publishers]
    from_bag = [
        decode_keypoints(store.deserialize_cdr(data, "sensor_msgs/msg/PointCloud2"))
        for topic, data in raw
        if topic == "/camera/color/keypoints"
    ]
    for n, bag_found in enumerate(from_bag):
        frame = inputs[3 * n : 3 * n + 3]  # camera_info, depth, colour: the bag's order
        stamp = stamp_ns(store.deserialize_cdr(frame[-1][1], "sensor_msgs/msg/Image").header)

        def replay():  # the bag's CDR bytes as they are
            for topic, data in frame:
                publishers[topic].publish(data)

        live = decode_keypoints(probe.exchange(replay, stamp, timeout=60.0))
        assert list(live) == list(bag_found) == TASKS
        for task in TASKS:
            assert np.allclose(live[task].points, bag_found[task].points, atol=1e-4)
            assert np.allclose(live[task].confidence, bag_found[task].confidence, atol=1e-6)
            assert np.isfinite(live[task].xyz).any()
            assert np.allclose(live[task].xyz, bag_found[task].xyz, atol=1e-5, equal_nan=True)


def test_roi_topic_crops_and_keypoints_come_back_in_full_image_pixels(graph, detector):
    from sensor_msgs.msg import RegionOfInterest

    probe, _, _ = graph
    rgb = sample("trowel/trowel_0000_v0.jpg")
    roi = (30, 20, 160, 180)
    stamp = 35_000_000_000

    def publish():
        probe.pub_roi.publish(RegionOfInterest(x_offset=roi[0], y_offset=roi[1], width=roi[2], height=roi[3]))
        time.sleep(0.2)  # the roi first: the node uses the latest one for the next frame
        probe.pub_image.publish(client.image_msg(rgb, "rgb8", stamp))

    got = decode_keypoints(probe.exchange(publish, stamp, timeout=60.0))
    want = detector.detect_region(rgb, roi, TASKS)
    for task in TASKS:
        assert np.allclose(got[task].points, centres(want[task]), atol=1e-3)
    probe.pub_roi.publish(RegionOfInterest())  # width 0: the whole image again
    time.sleep(0.5)
    got = decode_keypoints(send(probe, rgb, stamp + 1))
    assert np.allclose(got["pour"].points, centres(detector.detect(rgb, ["pour"])["pour"]), atol=1e-3)


def test_flood_keeps_memory_flat_processes_the_newest_and_counts_drops(graph):
    probe, proc, _ = graph
    rgb = sample("whisk/whisk_0000_v0.jpg")
    send(probe, rgb, 40_000_000_000)
    before = counters(probe)
    msgs = [client.image_msg(rgb, "rgb8", 0) for _ in range(2)]
    rss, stamp = [], 0
    start = time.monotonic()
    for n in range(300):  # 100 Hz for 3 s: about 10x what one CPU thread answers
        stamp = 41_000_000_000 + n * 10_000_000
        msg = msgs[n % 2]
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
        probe.pub_image.publish(msg)
        if n % 50 == 49:
            rss.append(client.rss_mib(proc.pid))
        time.sleep(max(0.0, start + (n + 1) * 0.01 - time.monotonic()))
    probe.wait_keypoints(stamp, 30.0)  # the newest frame is processed
    # best effort: a starved subscriber also loses frames inside DDS, before the node sees them
    after = counters(probe, received=int(before["received"]) + 60)
    received = int(after["received"]) - int(before["received"])
    processed = int(after["processed"]) - int(before["processed"])
    assert int(after["dropped"]) - int(before["dropped"]) >= received // 3
    assert 1 <= processed < received
    assert max(rss[1:]) - rss[1] < 40, rss  # no backlog piling up in memory
    assert proc.poll() is None


def test_missing_or_corrupt_model_exits_with_a_clear_error(tmp_path):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes((ROOT / "models" / "funk-lite0-synth.pt").read_bytes()[:4096])
    for path, words in ((corrupt, "corrupt"),):  # a missing file takes the same CheckpointError path
        cmd = client.node_executable() + ["--ros-args", "-p", f"model:={path}", "-r", f"__ns:={NAMESPACE}_bad"]
        done = subprocess.run(cmd, env=client.ros_environment(DOMAIN), capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, done.stderr[-2000:]
        assert f"error: keypoint_node: {path}" in done.stderr and words in done.stderr
        assert "Traceback" not in done.stderr
