"""The README's ROS demo at a camera's size: the sample bag's frames as a 640 x 480 camera would send them
(geometry kept: the same 3D points project through the new K onto the scaled pixels), played into the node
with its default parameters (best-effort input) and answered frame by frame."""

import json
import os

import numpy as np
import pytest

from funk_perception.ros.sample_bag import at_camera_size, default_samples, sample_frames


def project(k: np.ndarray, points: np.ndarray) -> np.ndarray:
    uvw = points @ k.T
    return uvw[:, :2] / uvw[:, 2:]


def test_camera_size_frames_keep_the_geometry():
    (frame,) = sample_frames(default_samples(), 1)
    big = at_camera_size(frame, (640, 480))
    assert big.rgb.shape == (480, 640, 3) and big.depth_mm.shape == (480, 640) and big.depth_mm.dtype == np.uint16
    h, w = frame.depth_mm.shape
    scale, left, top = 480 / h, (640 - round(w * 480 / h)) // 2, 0
    rng = np.random.default_rng(0)
    points = np.c_[rng.uniform(-0.2, 0.2, (50, 2)), rng.uniform(0.3, 1.5, 50)]
    # pixel centres (ROS): u' = s (u + 0.5) - 0.5 + left
    assert np.allclose(project(big.k, points), scale * (project(frame.k, points) + 0.5) - 0.5 + [left, top], atol=1e-6)
    # depth kept at the mapped pixel (nearest-neighbour resize), none in the margin
    v, u = 100, 120
    assert big.depth_mm[round(scale * (v + 0.5) - 0.5) + top, round(scale * (u + 0.5) - 0.5) + left] == \
        frame.depth_mm[v, u]
    assert not big.depth_mm[:, :left].any() and not big.depth_mm[:, left + round(w * scale):].any()


def test_the_demo_plays_camera_sized_frames_into_the_default_node(tmp_path):
    pytest.importorskip("rclpy")
    from funk_perception.ros.demo import run_demo

    saved = {k: os.environ.get(k) for k in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE", "OMP_NUM_THREADS",
                                            "FASTRTPS_DEFAULT_PROFILES_FILE")}
    os.environ.pop("FASTRTPS_DEFAULT_PROFILES_FILE", None)
    try:
        record = run_demo(tmp_path, ["pour"], frames=2, timeout=240.0)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    assert record["size"] == [640, 480] and len(record["frames"]) == 2
    assert record["node_parameters"] == {"tasks": ["pour"], "use_depth": True}  # the node's defaults otherwise
    saved_record = json.loads((tmp_path / "keypoints.json").read_text())
    pour = np.array(saved_record["frames"][0]["tasks"]["pour"]["points_px"], dtype=float)
    assert pour.shape == (5, 2) and np.nanmax(pour[:, 0]) < 640 and np.nanmax(pour[:, 1]) < 480
    assert np.isfinite(np.array(saved_record["frames"][0]["tasks"]["pour"]["xyz_m"], dtype=float)).any()
    assert record["camera_profile"].endswith("config/fastdds.xml")
    assert "Fast DDS profile" in (tmp_path / "keypoint_node.log").read_text()
