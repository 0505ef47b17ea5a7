"""Pixel centres: a keypoint the network puts at the centre of pixel (i, j) comes out of the node's code
path as u, v = (i, j), OpenCV's and image_geometry's convention, and everything downstream (depth
window, back-projection through K, markers, drawing) agrees.

The network's output is pinned, not guessed: ``locate`` is replaced by one that returns, in the square
input's normalised coordinates, where the centre of pixel (i, j) of the frame lands (through the
letterbox geometry the detector itself applies); the rest of ``detect`` runs as it is: embedding,
letterbox mapping back, pixels."""

from pathlib import Path

import numpy as np
import pytest
import torch
from rosbags.typesys import Stores, get_typestore

from funk_perception.detector import FunctionalKeypointDetector
from funk_perception.model.letterbox import Letterbox
from funk_perception.ros.messages import RosbagsFactory, decode_keypoints, draw_frame, keypoint_markers, keypoints_cloud
from funk_perception.ros.pipeline import Frame, FrameKeypoints, backproject, frame_keypoints, robust_depth

ROOT = Path(__file__).resolve().parents[1]
BAGS = RosbagsFactory(get_typestore(Stores.ROS2_JAZZY))
#: pixels (i, j) = (column, row), the first and last of a 120 x 120 corner included
TARGETS = np.array([[0.0, 0.0], [10.0, 20.0], [100.0, 37.0], [119.0, 119.0], [60.0, 119.0]])


@pytest.fixture(scope="module")
def detector():
    torch.set_num_threads(1)
    return FunctionalKeypointDetector.load(ROOT / "models" / "funk-lite0-synth.pt", device="cpu")


def pinned(detector, monkeypatch, width: int, height: int) -> None:
    """Make ``detector.locate`` answer the centres of TARGETS' pixels in a ``width`` x ``height`` frame."""
    box = Letterbox.fit(height, width, detector.image_size) if detector.letterbox else None
    # pixel (i, j) spans [i, i + 1) x [j, j + 1) measured from the image's corner, as the detector measures
    centres = (TARGETS + 0.5) / [width, height]
    on_input = box.to_input(centres) if box is not None else centres

    def locate(features, tasks, mirrored=None):
        points = torch.tensor(np.broadcast_to(on_input, (len(tasks), 5, 2)).copy(), dtype=torch.float32)
        return points, torch.ones(len(tasks), 5)

    monkeypatch.setattr(detector, "locate", locate)


@pytest.mark.parametrize("size", [(160, 120), (224, 224), (120, 160)])  # letterboxed both ways, and not
def test_a_keypoint_at_the_centre_of_pixel_i_j_comes_out_as_i_j(detector, monkeypatch, size):
    width, height = size
    pinned(detector, monkeypatch, width, height)
    found = frame_keypoints(detector, Frame(np.full((height, width, 3), 128, np.uint8)), ["pour"])
    assert np.allclose(found["pour"].points, TARGETS, atol=1e-4), found["pour"].points
    cloud = keypoints_cloud(BAGS, BAGS("std_msgs/msg/Header"), found)
    assert np.allclose(decode_keypoints(cloud)["pour"].points, TARGETS, atol=1e-4)


def test_a_region_of_interest_keeps_the_convention(detector, monkeypatch):
    rgb = np.full((200, 200, 3), 128, np.uint8)
    roi = (40, 30, 130, 120)
    pinned(detector, monkeypatch, roi[2], roi[3])  # the crop is what the network sees
    found = frame_keypoints(detector, Frame(rgb), ["pour"], roi)
    assert np.allclose(found["pour"].points, TARGETS + roi[:2], atol=1e-4)


def test_downstream_uses_the_same_pixel_centres():
    k = np.array([[200.0, 0.0, 80.0], [0.0, 200.0, 60.0], [0.0, 0.0, 1.0]])
    # the principal point is the centre of pixel (80, 60): a keypoint there lies on the optical axis
    on_axis = np.array([[80.0, 60.0], [81.0, 60.0]])
    xyz = backproject(on_axis, np.array([2.0, 2.0]), k)
    assert np.allclose(xyz[0], [0.0, 0.0, 2.0]) and np.allclose(xyz[1], [0.01, 0.0, 2.0])
    depth = np.full((120, 160), 1.0, np.float32)
    depth[60, 80] = 3.0
    assert robust_depth(depth, on_axis, window=1).tolist() == [3.0, 1.0]  # pixel (80, 60) is the one it reads
    assert robust_depth(depth, np.array([[80.49, 59.51]]), window=1)[0] == 3.0  # still inside pixel (80, 60)
    assert robust_depth(depth, np.array([[80.51, 60.0]]), window=1)[0] == 1.0  # past its right edge
    kp = FrameKeypoints("pour", np.array([[80.0, 60.0]] * 5), np.ones(5))
    markers = keypoint_markers(BAGS, BAGS("std_msgs/msg/Header"), {"pour": kp}, k=k)
    sphere = next(m for m in markers.markers if m.type == 7)
    assert (sphere.points[0].x, sphere.points[0].y, sphere.points[0].z) == (0.0, 0.0, 1.0)
    # the dot of a keypoint at (81, 61) is centred on pixel (81, 61); (80.5 would round to 80: half-even)
    at = FrameKeypoints("pour", np.array([[81.0, 61.0]] * 5), np.ones(5))
    dot = draw_frame(np.zeros((120, 160, 3), np.uint8), {"pour": at})[..., 0].astype(float)
    below = dot[61:66, 76:87]  # the centre row and below: the number label sits above and to the right
    left = dot[56:67, 76:81]  # the left half, every row of the dot
    assert abs((below.sum(axis=0) * np.arange(76, 87)).sum() / below.sum() - 81.0) < 0.05
    assert abs((left.sum(axis=1) * np.arange(56, 67)).sum() / left.sum() - 61.0) < 0.05
