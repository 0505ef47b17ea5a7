"""Offline rosbag2 processing: a bag written with rosbags goes through the bag tool; outputs decode to
``detect`` and the back-projection; bad bags end in one error line; no half-written output ever."""

from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import Reader, Writer
from rosbags.typesys import Stores, get_typestore

from funk_perception.bag import BagConfig, main, process_bag
from funk_perception.detector import FunctionalKeypointDetector
from funk_perception.ros.convert import compressed_to_rgb
from funk_perception.ros.messages import decode_keypoints
from funk_perception.ros.pipeline import backproject, robust_depth
from funk_perception.ros.sample_bag import DEPTH_TOPIC, IMAGE_TOPIC, INFO_TOPIC, write_sample_bag

ROOT = Path(__file__).resolve().parents[1]
STORE = get_typestore(Stores.ROS2_JAZZY)
TASKS = ("pour", "scoop")


@pytest.fixture(scope="module")
def detector():
    import torch

    torch.set_num_threads(1)
    return FunctionalKeypointDetector.load(ROOT / "models" / "funk-lite0-synth.pt", device="cpu")


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    path = tmp_path_factory.mktemp("bags") / "in"
    return path, write_sample_bag(path, frames=3)


def read(path: Path) -> dict[str, list[tuple[int, bytes]]]:
    with Reader(path) as reader:
        out: dict[str, list[tuple[int, bytes]]] = {}
        for conn, stamp, raw in reader.messages():
            out.setdefault(conn.topic, []).append((stamp, bytes(raw)))
        return out


def test_round_trip_with_depth_matches_detect_and_back_projection(sample, detector, tmp_path):
    bag, frames = sample
    out = tmp_path / "out"
    counts = process_bag(
        BagConfig(bag, out, TASKS, depth_topic=DEPTH_TOPIC, camera_info_topic=INFO_TOPIC, progress=False), detector
    )
    assert counts["processed"] == counts["received"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # the stage folder is gone
    before, after = read(bag), read(out)
    for topic in before:  # the input, copied as it was
        assert after[topic] == before[topic]
    ns = IMAGE_TOPIC.rsplit("/", 1)[0]
    assert {f"{ns}/keypoints", f"{ns}/keypoints/markers", f"{ns}/keypoints/image", "/diagnostics"} <= set(after)
    clouds = after[f"{ns}/keypoints"]
    assert [s for s, _ in clouds] == [s for s, _ in before[IMAGE_TOPIC]]
    for frame, (_, raw) in zip(frames, clouds):
        cloud = STORE.deserialize_cdr(raw, "sensor_msgs/msg/PointCloud2")
        assert cloud.header.frame_id == "camera_color_optical_frame"
        got, want = decode_keypoints(cloud), detector.detect(frame.rgb, list(TASKS))
        metres = frame.depth_mm.astype(np.float32) * np.float32(0.001)
        metres[frame.depth_mm == 0] = np.nan
        for task in TASKS:
            assert np.allclose(got[task].points, want[task].points - 0.5, atol=1e-3)  # pixel centres
            xyz = backproject(got[task].points, robust_depth(metres, got[task].points, 5), frame.k)
            assert np.isfinite(got[task].xyz).any()
            assert np.allclose(got[task].xyz, xyz, atol=1e-4, equal_nan=True)


def test_mcap_with_compressed_images_and_no_depth(detector, tmp_path):
    bag = tmp_path / "in"
    write_sample_bag(bag, frames=2, storage="mcap", compressed=True)
    out = tmp_path / "out"
    counts = process_bag(
        BagConfig(bag, out, ("poke",), IMAGE_TOPIC + "/compressed", storage="mcap", image=False, progress=False),
        detector,
    )
    assert counts["processed"] == 2
    after = read(out)
    ns = IMAGE_TOPIC.rsplit("/", 1)[0]
    assert f"{ns}/keypoints/image" not in after
    for (_, raw_image), (_, raw_cloud) in zip(after[IMAGE_TOPIC + "/compressed"], after[f"{ns}/keypoints"]):
        rgb = compressed_to_rgb(STORE.deserialize_cdr(raw_image, "sensor_msgs/msg/CompressedImage"))
        got = decode_keypoints(STORE.deserialize_cdr(raw_cloud, "sensor_msgs/msg/PointCloud2"))["poke"]
        assert np.allclose(got.points, detector.detect(rgb, ["poke"])["poke"].points - 0.5, atol=1e-3)
        assert np.isnan(got.xyz).all()


def test_a_crash_midway_leaves_no_output(sample, detector, tmp_path, monkeypatch):
    calls = []

    def detect_then_crash(image, tasks=None, **options):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return FunctionalKeypointDetector.detect(detector, image, tasks, **options)

    monkeypatch.setattr(detector, "detect", detect_then_crash)
    with pytest.raises(KeyboardInterrupt):
        process_bag(BagConfig(sample[0], tmp_path / "out", TASKS, IMAGE_TOPIC, progress=False), detector)
    assert list(tmp_path.iterdir()) == []


def _error(capsys, argv) -> str:
    assert main(argv) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1
    return lines[0]


def test_bad_bags_and_topics_end_in_one_error_line(sample, tmp_path, capsys):
    bag, _ = sample
    out = str(tmp_path / "out")
    assert "no such rosbag2" in _error(capsys, [str(tmp_path / "nope"), out])
    assert "'/camera/nothing' is not in the bag" in _error(capsys, [str(bag), out, "--image-topic", "/camera/nothing"])
    assert "expected type sensor_msgs/msg/Image" in _error(
        capsys,
        [str(bag), out, "--image-topic", IMAGE_TOPIC, "--depth-topic", INFO_TOPIC, "--camera-info-topic", INFO_TOPIC],
    )
    assert "expected both or neither" in _error(capsys, [str(bag), out, "--depth-topic", DEPTH_TOPIC])
    assert "exists already" in _error(capsys, [str(bag), str(bag)])

    empty = tmp_path / "empty"
    with Writer(empty, version=9) as writer:
        writer.add_connection(IMAGE_TOPIC, "sensor_msgs/msg/Image", typestore=STORE)
    assert "holds no messages" in _error(capsys, [str(empty), out])
    assert "expected exactly one image topic" in _error(capsys, [str(bag), out])  # colour and depth: which?

    broken = tmp_path / "broken"
    write_sample_bag(broken, frames=1)
    db = next(broken.glob("*.db3"))
    db.write_bytes(db.read_bytes()[:3000])
    message = _error(capsys, [str(broken), out])
    assert str(broken) in message and ("corrupt" in message or "not a readable rosbag2" in message)
    assert not (tmp_path / "out").exists()
