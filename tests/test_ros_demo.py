"""The README's ROS demo at a camera's size: the sample bag's frames as a 640 x 480 camera would send them
(geometry kept: the same 3D points project through the new K onto the scaled pixels), played into the node
with its default parameters (best-effort input) and answered frame by frame."""

import json
import os
import subprocess
import sys

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
    assert (
        big.depth_mm[round(scale * (v + 0.5) - 0.5) + top, round(scale * (u + 0.5) - 0.5) + left]
        == frame.depth_mm[v, u]
    )
    assert not big.depth_mm[:, :left].any() and not big.depth_mm[:, left + round(w * scale) :].any()


def test_the_demo_plays_camera_sized_frames_into_the_default_node(tmp_path):
    """The README's command in a process of its own: Fast DDS reads its profile once per process, at the first
    participant, so the demo's camera side gets config/fastdds.xml only as a fresh process (as a user runs it)."""
    pytest.importorskip("rclpy")
    env = {k: v for k, v in os.environ.items() if k != "FASTRTPS_DEFAULT_PROFILES_FILE"}
    cmd = [
        sys.executable,
        "-m",
        "funk_perception.ros.demo",
        "--out",
        str(tmp_path),
        "--tasks",
        "pour",
        "--frames",
        "2",
        "--timeout",
        "240",
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((tmp_path / "keypoints.json").read_text())
    assert record["size"] == [640, 480] and len(record["frames"]) == 2
    assert record["node_parameters"] == {"tasks": ["pour"], "use_depth": True}  # the node's defaults otherwise
    assert record["camera_profile"].endswith("config/fastdds.xml")
    for frame in record["frames"]:  # depth with every frame: the node matched depth and camera_info
        pour = frame["tasks"]["pour"]
        points = np.array(pour["points_px"], dtype=float)
        assert points.shape == (5, 2) and np.nanmax(points[:, 0]) < 640 and np.nanmax(points[:, 1]) < 480
        assert np.isfinite(np.array(pour["xyz_m"], dtype=float)).any(), frame["stamp_ns"]
    assert "Fast DDS profile" in (tmp_path / "keypoint_node.log").read_text()
