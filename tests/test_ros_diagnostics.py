"""Diagnostics as diagnostic_updater publishes them (funk_perception/ros/diagnostics.py): the absolute
/diagnostics topic also from a node in a namespace, the status ``keypoint_node: keypoints`` with a
hardware_id, a FrequencyStatus of the published clouds; the bag tool writes the same."""

import os
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")

from ros_graph import running_node  # noqa: E402

from funk_perception.bag import BagConfig, process_bag  # noqa: E402
from funk_perception.detector import FunctionalKeypointDetector  # noqa: E402
from funk_perception.ros import client  # noqa: E402
from funk_perception.ros.diagnostics import (  # noqa: E402
    ERROR,
    OK,
    WARN,
    FrequencyStatus,
    keypoint_status,
    merge_summary,
)
from funk_perception.ros.sample_bag import IMAGE_TOPIC, write_sample_bag  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "synth" / "images" / "cup" / "cup_0000_v0.jpg"
DOMAIN = 20 + (os.getpid() + 23) % 80
NAMESPACE = f"/funk_diag_{os.getpid()}/camera"


# -- FrequencyStatus and the merged status, no ROS graph ------------------------------------------------------


def test_frequency_status_reports_as_diagnostic_updaters():
    freq = FrequencyStatus(now=0.0)  # tolerance 0.1, window 5, as FrequencyStatusParam's defaults
    level, message, values = freq.run(1.0, min_freq=5.0)
    assert (level, message) == (ERROR, "No events recorded.")
    assert values == {
        "Events in window": "0",
        "Events since startup": "0",
        "Duration of window (s)": "1.000000",
        "Actual frequency (Hz)": "0.000000",
        "Minimum acceptable frequency (Hz)": "4.500000",
    }
    for second in range(2, 7):
        for _ in range(5):
            freq.tick()
        level, message, values = freq.run(float(second), min_freq=5.0)
    # the window spans the last 5 updates: 25 events from t = 1 to t = 6
    assert (level, message) == (OK, "Desired frequency met")
    assert values["Events in window"] == "25" and values["Duration of window (s)"] == "5.000000"
    assert values["Actual frequency (Hz)"] == "5.000000" and values["Events since startup"] == "25"
    freq.tick()
    level, message, values = freq.run(7.0, min_freq=5.0)
    assert (level, message) == (WARN, "Frequency too low.")  # 21 events in 5 s: 4.2 Hz < 4.5
    level, message, values = freq.run(8.0, min_freq=1.0, max_freq=2.0)
    assert (level, message) == (WARN, "Frequency too high.")
    assert values["Maximum acceptable frequency (Hz)"] == "2.200000"
    assert "Minimum acceptable frequency (Hz)" not in freq.run(9.0)[2]  # no minimum asked for


def test_status_merges_levels_and_messages_as_a_composite_task():
    assert merge_summary(OK, "Desired frequency met", WARN, "3 frames rejected") == (WARN, "3 frames rejected")
    assert merge_summary(ERROR, "No events recorded.", WARN, "3 frames rejected") == (
        ERROR,
        "No events recorded.; 3 frames rejected",
    )
    level, message, values = keypoint_status(
        (OK, "Desired frequency met", {"Events in window": "5"}), {"received": 7, "latency_ms_p50": 12.345}, rejected=0
    )
    assert (level, message) == (OK, "Desired frequency met")
    assert list(values) == ["Events in window", "received", "latency_ms_p50"] and values["latency_ms_p50"] == "12.35"


# -- a live node in a namespace -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    log = tmp_path_factory.mktemp("node") / "keypoint_node.log"
    parameters = {"threads": 1, "device": "cpu", "tasks": ["pour"], "expected_rate": 2, "publish_image": False}
    with running_node(DOMAIN, NAMESPACE, parameters, log) as (probe, proc):
        yield probe, proc


def wait_status(probe, condition, timeout: float = 30.0):
    """The first DiagnosticStatus published on /diagnostics from now on that satisfies ``condition``."""
    start = len(probe.diagnostics)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for msg in list(probe.diagnostics[start:]):
            for status in msg.status:
                if condition(status):
                    return status
        time.sleep(0.05)
    raise TimeoutError(f"no diagnostics status satisfied the condition within {timeout:g} s")


def test_diagnostics_go_to_the_absolute_topic_under_the_node_name(graph):
    probe, _ = graph
    # a status received first: the graph has then discovered the node's publisher (counting at once raced it)
    status = wait_status(probe, lambda s: True)
    assert probe.count_publishers("/diagnostics") >= 1
    assert probe.count_publishers(f"{NAMESPACE}/diagnostics") == 0  # not under the namespace
    assert status.name == "keypoint_node: keypoints"
    assert status.hardware_id == "funk-lite0-synth.pt on cpu"
    values = {kv.key: kv.value for kv in status.values}
    assert {
        "Events in window",
        "Events since startup",
        "Duration of window (s)",
        "Actual frequency (Hz)",
        "received",
        "processed",
        "dropped",
        "rejected",
    } <= set(values)
    assert values["Minimum acceptable frequency (Hz)"] == "1.800000"  # expected_rate 2 (an integer), -10 %


def test_frequency_status_follows_the_published_clouds(graph):
    probe, _ = graph
    rgb = cv2.cvtColor(cv2.imread(str(SAMPLE)), cv2.COLOR_BGR2RGB)
    idle = wait_status(probe, lambda s: {kv.key: kv.value for kv in s.values}["Events in window"] == "0", 60.0)
    assert idle.level == bytes([ERROR]) and idle.message == "No events recorded."
    stamp = 1_000_000_000
    probe.exchange(lambda: probe.pub_image.publish(client.image_msg(rgb, "rgb8", stamp)), stamp, timeout=60.0)
    slow = wait_status(probe, lambda s: int({kv.key: kv.value for kv in s.values}["Events since startup"]) >= 1)
    assert slow.level == bytes([WARN]) and slow.message.startswith("Frequency too low.")  # one cloud in 5 s
    assert probe.set_parameters(f"{NAMESPACE}/keypoint_node", {"expected_rate": 0}) == [(True, "")]
    met = wait_status(probe, lambda s: s.level == bytes([OK]), 10.0)
    assert met.message == "Desired frequency met" and "Minimum acceptable frequency (Hz)" not in {
        kv.key for kv in met.values
    }
    values = {kv.key: kv.value for kv in met.values}
    assert float(values["Actual frequency (Hz)"]) > 0 and int(values["processed"]) >= 1


# -- the bag tool ----------------------------------------------------------------------------------------------------


def test_bag_tool_writes_the_same_status_on_slash_diagnostics(tmp_path):
    import torch
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import Stores, get_typestore

    torch.set_num_threads(1)
    detector = FunctionalKeypointDetector.load(ROOT / "models" / "funk-lite0-synth.pt", device="cpu")
    frames = write_sample_bag(tmp_path / "in", frames=4)
    assert len(frames) == 4
    process_bag(
        BagConfig(tmp_path / "in", tmp_path / "out", ("pour",), IMAGE_TOPIC, expected_rate=100, progress=False),
        detector,
    )
    store = get_typestore(Stores.ROS2_JAZZY)
    with Reader(tmp_path / "out") as reader:
        topics = {c.topic for c in reader.connections}
        diags = [
            (t, store.deserialize_cdr(raw, c.msgtype)) for c, t, raw in reader.messages() if c.topic == "/diagnostics"
        ]
    assert not any(t.endswith("camera/color/diagnostics") for t in topics)
    assert diags, topics
    last = diags[-1][1].status[0]
    assert last.name == "keypoint_node: keypoints" and last.hardware_id.endswith(" on cpu")
    values = {kv.key: kv.value for kv in last.values}
    assert values["Events since startup"] == "4" and values["processed"] == "4"
    assert values["Minimum acceptable frequency (Hz)"] == "90.000000"
    assert last.level == WARN and last.message == "Frequency too low."  # the sample bag runs at 10 Hz or less
    assert np.all(np.diff([t for t, _ in diags]) >= 0)
