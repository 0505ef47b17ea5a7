"""The node's frame pipeline without a ROS graph: depth/camera_info handling, ROI, 3D, timing helpers, parameters."""

import threading
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from funk_perception.detector import FunctionalKeypointDetector
from funk_perception.ros.params import PARAMETERS, check_value, parse_tasks
from funk_perception.ros.pipeline import (
    FrameError,
    backproject,
    decode_frame,
    frame_keypoints,
    parse_roi,
    robust_depth,
)
from funk_perception.ros.sync import LatestSlot, StampBuffer
from funk_perception.shipped import default_checkpoint
from funk_perception.tasks import TASKS

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "synth" / "images" / "bottle" / "bottle_0000_v0.jpg"


def msg(pixels: np.ndarray, encoding: str) -> SimpleNamespace:
    height, width = pixels.shape[:2]
    data = np.ascontiguousarray(pixels).reshape(height, -1).view(np.uint8)
    return SimpleNamespace(
        height=height, width=width, encoding=encoding, step=data.shape[1], is_bigendian=0, data=data.tobytes()
    )


K = np.array([[300.0, 0, 31.5], [0, 310.0, 23.5], [0, 0, 1]])
INFO = SimpleNamespace(k=K.reshape(-1).tolist(), width=64, height=48)


@pytest.fixture(scope="module")
def detector():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    return FunctionalKeypointDetector.load(ROOT / "models" / "funk-lite0-synth.pt", device="cpu")


def test_backprojection_inverts_the_ros_pinhole_projection():
    rng = np.random.default_rng(1)
    xyz = np.column_stack([rng.uniform(-0.2, 0.2, 20), rng.uniform(-0.2, 0.2, 20), rng.uniform(0.3, 2.0, 20)])
    skewed = K.copy()
    skewed[0, 1] = 2.0
    pixel_centres = (xyz / xyz[:, 2:]) @ skewed.T  # ROS convention, the node's too: integers at pixel centres
    assert np.allclose(backproject(pixel_centres[:, :2], xyz[:, 2], skewed), xyz)


def test_robust_depth_is_the_median_of_valid_pixels_and_nan_without_any():
    depth = np.full((48, 64), 1.0, np.float32)
    depth[10:13, 10:13] = [[np.nan, 2.0, 2.0], [2.0, 9.0, 2.0], [2.0, 2.0, np.nan]]
    depth[30:35, 30:35] = np.nan
    # pixel-centre coordinates: (11.4, 10.6) lies in pixel (11, 11); (63.5, 47.5) is the image's far corner
    z = robust_depth(depth, np.array([[11.4, 10.6], [32.2, 32.4], [np.nan, 3.0], [63.5, 47.5]]), window=3)
    assert z[0] == 2.0 and np.isnan(z[1]) and np.isnan(z[2]) and z[3] == 1.0
    assert robust_depth(depth, np.array([[10.6, 10.6]]), window=1)[0] == 9.0  # pixel (11, 11), not (10, 10)
    assert robust_depth(depth, np.array([[63.5, 47.5], [-0.5, -0.5]]), window=1).tolist() == [1.0, 1.0]


def test_decode_frame_keeps_2d_when_depth_is_unusable():
    rgb = np.zeros((48, 64, 3), np.uint8)
    depth = msg(np.full((48, 64), 1000, np.uint16), "16UC1")
    ok = decode_frame(msg(rgb, "rgb8"), depth=depth, camera_info=INFO)
    assert ok.depth_problem is None and ok.depth.shape == (48, 64) and np.allclose(ok.k, K)
    cases = {
        "no_camera_info": dict(depth=depth, camera_info=None),
        "depth_size": dict(depth=msg(np.full((24, 32), 1000, np.uint16), "16UC1"), camera_info=INFO),
        "depth_encoding": dict(depth=msg(rgb, "rgb8"), camera_info=INFO),
        "camera_info": dict(depth=depth, camera_info=SimpleNamespace(k=[0.0] * 9, width=64, height=48)),
        "camera_info_size": dict(depth=depth, camera_info=SimpleNamespace(k=INFO.k, width=640, height=480)),
    }
    for reason, kwargs in cases.items():
        frame = decode_frame(msg(rgb, "rgb8"), **kwargs)
        assert frame.depth is None and frame.depth_problem == reason, reason
        assert frame.depth_message
    with pytest.raises(FrameError):
        decode_frame(msg(rgb, "rgb16"))


def test_parse_roi_clips_and_refuses_regions_outside():
    assert parse_roi([0, 0, 0, 0], 64, 48) is None and parse_roi([], 64, 48) is None
    assert parse_roi([-10, 40, 30, 30], 64, 48) == (0, 40, 20, 8)
    for bad in ([70, 0, 10, 10], [0, 0, -5, 10], [1, 2, 3]):
        with pytest.raises(FrameError) as err:
            parse_roi(bad, 64, 48)
        assert err.value.reason == "roi"


def test_frame_keypoints_match_detect_and_detect_region(detector):
    rgb = cv2.cvtColor(cv2.imread(str(SAMPLE)), cv2.COLOR_BGR2RGB)
    depth_mm = np.full(rgb.shape[:2], 800, np.uint16)
    info = SimpleNamespace(k=[300.0, 0, 111.5, 0, 300, 111.5, 0, 0, 1], width=224, height=224)
    frame = decode_frame(msg(rgb, "rgb8"), depth=msg(depth_mm, "16UC1"), camera_info=info)
    found = frame_keypoints(detector, frame, ["pour", "scoop"])
    reference = detector.detect(rgb, ["pour", "scoop"])
    for task in ("pour", "scoop"):
        # the detector measures from the top-left pixel's corner, the node from its centre
        assert np.array_equal(found[task].points, reference[task].points - 0.5)
        assert np.allclose(found[task].xyz[:, 2], 0.8)
        assert np.allclose(found[task].xyz[:, 0], (found[task].points[:, 0] - 111.5) * 0.8 / 300)
    roi = (40, 30, 150, 170)
    cropped = frame_keypoints(detector, frame, ["pour"], roi)
    on_crop = detector.detect(np.ascontiguousarray(rgb[30:200, 40:190]), ["pour"])["pour"].points
    assert np.allclose(cropped["pour"].points, on_crop + [40, 30] - 0.5)
    assert (cropped["pour"].points[:, 0] >= 39.5).all() and (cropped["pour"].points[:, 1] >= 29.5).all()


def test_latest_slot_keeps_only_the_newest_and_counts_replacements():
    slot: LatestSlot[int] = LatestSlot()
    assert [slot.put(i) for i in range(5)] == [False, True, True, True, True]
    assert slot.take(0.01) == 4 and slot.take(0.01) is None
    got = []
    thread = threading.Thread(target=lambda: got.append(slot.take(5.0)))
    thread.start()
    time.sleep(0.05)
    slot.put(7)
    thread.join(5.0)
    assert got == [7]
    slot.close()
    assert slot.take(5.0) is None


def test_stamp_buffer_matches_within_tolerance_and_waits_for_late_arrivals():
    buf: StampBuffer[str] = StampBuffer(capacity=3)
    for stamp in (100, 300, 200, 400):
        buf.add(stamp, f"d{stamp}")
    assert len(buf) == 3 and buf.nearest(100, 10) is None  # the oldest fell out
    assert buf.nearest(290, 20) == "d300" and buf.nearest(250, 10) is None
    threading.Timer(0.05, lambda: buf.add(1000, "late")).start()
    assert buf.nearest(1005, 10, wait=5.0) == "late"


def test_parameters_validate_with_reasons():
    assert check_value("tasks", ["Pour", "mash/pound"]) is None
    assert "unknown task" in check_value("tasks", ["pour", "juggle"])
    assert "non-empty" in check_value("tasks", [])
    assert "no keypoint prototype" in check_value("tasks", ["scoop"], available_tasks=("pour",))
    assert check_value("device", "cuda:1") is None and "expected one of" in check_value("device", "tpu")
    assert "expected one of" in check_value("image_qos", "fast")
    assert "odd" in check_value("depth_window", 4)
    assert "roi" in check_value("roi", [0, 0, -1, 5])
    assert parse_tasks(["Lift Something", "pour", "pour"], TASKS) == ["lift_something", "pour"]
    assert {p.name for p in PARAMETERS} >= {"model", "tasks", "device", "min_confidence", "image_qos"}
    assert all(check_value(p.name, p.default) is None for p in PARAMETERS)
    assert default_checkpoint().is_file()
