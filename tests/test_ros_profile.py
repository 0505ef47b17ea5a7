"""The node's per-stage profile (funk_perception/stages.py): the detector times its stages without changing
its keypoints, the sums add up, and a live node publishes them in its diagnostics, stages within the total.
No timing thresholds: only that each stage is there and that the stages never exceed the frame's time."""

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from funk_perception.detector import FunctionalKeypointDetector
from funk_perception.ros.pipeline import Frame, frame_keypoints
from funk_perception.stages import STAGES, StageTimes, StageTotals, stage_means

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "synth" / "images" / "cup" / "cup_0000_v0.jpg"
#: what a frame of the torch backend passes through in the node, with no depth (no ``sync``)
NODE_STAGES = ("queue", "decode", "letterbox", "trunk", "modular", "locate", "postprocess", "messages", "publish")
#: each published sum is rounded to 0.01 ms (funk_perception/ros/diagnostics.py, ``_format``)
ROUNDING_MS = 0.005


def stage_sums(values: dict[str, str]) -> tuple[float, dict[str, float]]:
    """(total, {stage: ms}) of the ``stage_ms_sum.*`` diagnostics values."""
    sums = {k.removeprefix("stage_ms_sum."): float(v) for k, v in values.items() if k.startswith("stage_ms_sum.")}
    return sums.pop("total"), sums


def test_stage_times_add_up_and_totals_difference_to_means():
    ticks = iter([0.0, 0.010, 0.010, 0.013, 0.020, 0.021])
    times = StageTimes(clock=lambda: next(ticks))
    with times("decode"):
        pass
    with times("trunk"):
        pass
    with times("decode"):  # entered twice: the two add up
        pass
    assert times.ms == pytest.approx({"decode": 11.0, "trunk": 3.0})
    totals = StageTotals()
    before = {k: str(v) for k, v in totals.values().items()}
    totals.add(times, 20.0)
    totals.add(StageTimes(), 4.0)  # a frame with no stage timed still counts
    after = {k: str(v) for k, v in totals.values().items()}
    # in STAGES order, decode before trunk, whatever order they were met in
    assert list(after) == ["stage_frames", "stage_ms_sum.total", "stage_ms_sum.decode", "stage_ms_sum.trunk"]
    frames, means = stage_means(before, after)
    assert frames == 2 and means == pytest.approx({"total": 12.0, "decode": 5.5, "trunk": 1.5})
    assert stage_means(after, after) == (0, {})


def test_detector_stages_leave_the_keypoints_as_they_were():
    torch.set_num_threads(1)
    detector = FunctionalKeypointDetector.load(ROOT / "models" / "funk-lite0-synth.pt", device="cpu")
    rgb = cv2.cvtColor(cv2.imread(str(SAMPLE)), cv2.COLOR_BGR2RGB)
    plain = frame_keypoints(detector, Frame(rgb), ["pour", "scoop"])
    times = detector.stage_times()
    timed = frame_keypoints(detector, Frame(rgb), ["pour", "scoop"], (10, 20, 150, 160), stages=times)
    assert set(times.ms) == {"letterbox", "trunk", "modular", "locate", "postprocess"}
    assert all(ms >= 0 for ms in times.ms.values())
    times = detector.stage_times()
    again = frame_keypoints(detector, Frame(rgb), ["pour", "scoop"], stages=times)
    for task in plain:
        np.testing.assert_array_equal(again[task].points, plain[task].points)
        np.testing.assert_array_equal(again[task].confidence, plain[task].confidence)
    assert timed["pour"].points.shape == plain["pour"].points.shape
    assert list(times.ms) == [s for s in STAGES if s in times.ms]  # met in the node's order


# -- a live node ---------------------------------------------------------------------------------------------------


def test_node_publishes_its_stages_within_the_frame_time(tmp_path):
    pytest.importorskip("rclpy")
    from ros_graph import domain, running_node

    from funk_perception.ros import client

    namespace = f"/funk_profile_{os.getpid()}/camera"
    parameters = {"threads": 1, "device": "cpu", "tasks": ["pour"]}  # markers and annotated image: defaults
    rgb = cv2.cvtColor(cv2.imread(str(SAMPLE)), cv2.COLOR_BGR2RGB)
    with running_node(domain(67), namespace, parameters, tmp_path / "node.log") as (probe, _):
        frames = 3
        for n in range(frames):
            stamp = (n + 1) * 1_000_000_000
            msg = client.image_msg(rgb, "rgb8", stamp)
            probe.exchange(lambda msg=msg: probe.pub_image.publish(msg), stamp, timeout=120.0)
        values = probe.wait_diagnostics(lambda v: int(v.get("stage_frames", 0)) >= frames, 30.0)
    total, sums = stage_sums(values)
    assert set(NODE_STAGES) <= set(sums), sorted(sums)
    assert all(ms >= 0 for ms in sums.values()), sums
    assert sums["trunk"] > 0 and sums["publish"] > 0
    # stages never overlap: together at most the receive -> published time they are part of
    assert sum(sums.values()) <= total + ROUNDING_MS * (len(sums) + 1), (total, sums)
