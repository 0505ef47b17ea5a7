"""Strict, friendly parameters: one validation (funk_perception/ros/params.py) for the node at start-up,
the node at run time and the bag tool's options.

A bad start-up value ends in one ``error:`` line and exit 2, no traceback,
rclpy's and rcl's own refusals included; an integer is accepted for a
floating-point parameter and one string for the task list, at start and at
run time; the ``roi`` parameter is refused when it misses the image, clears
a region from the ``roi`` topic, and a topic region expires after
``roi_timeout`` seconds."""

import os
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")

from ros_graph import get_parameters, running_node, start_and_fail  # noqa: E402

from funk_perception.bag import BagConfig, process_bag  # noqa: E402
from funk_perception.bag import main as bag_main
from funk_perception.detector import FunctionalKeypointDetector  # noqa: E402
from funk_perception.ros import client  # noqa: E402
from funk_perception.ros.messages import decode_keypoints  # noqa: E402
from funk_perception.ros.params import PARAMETERS, check_value, coerce, validate  # noqa: E402
from funk_perception.ros.sample_bag import IMAGE_TOPIC, write_sample_bag  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "synth" / "images" / "trowel" / "trowel_0000_v0.jpg"
DOMAIN = 20 + (os.getpid() + 11) % 80
NAMESPACE = f"/funk_params_{os.getpid()}"
NODE = f"{NAMESPACE}/keypoint_node"


# -- the shared validation, no ROS graph ------------------------------------------------------------------


def test_validate_converts_unambiguous_types_and_names_what_is_wrong():
    assert validate("min_confidence", 1) == 1.0 and type(validate("min_confidence", 1)) is float
    assert validate("tasks", "Pour") == ["pour"] and validate("tasks", ["lift something", "pour"]) == [
        "lift_something",
        "pour",
    ]
    assert coerce("depth_tolerance", 0) == 0.0 and coerce("threads", 2.0) == 2.0  # only int -> float is coerced
    assert validate("roi", None) == [0, 0, 0, 0]  # ``roi:=[]`` reaches rclpy as an unset value
    cases = [
        ("depth_window", 4, "depth_window: expected an odd number of pixels, found 4"),
        ("min_confidence", 1.5, "min_confidence: expected a value from 0 to 1, found 1.5"),
        ("threads", 2.0, "threads: expected an integer from 0 to 256, found 2.0 (a number)"),
        ("use_depth", "yes", "use_depth: expected true or false, found 'yes' (a string)"),
        ("image_qos", "fast", "image_qos: expected one of sensor_data, reliable, found 'fast'"),
        ("roi", [1, 2, 3], "roi: expected [x, y, width, height] (integers, width and height >= 0), found [1, 2, 3]"),
        ("roi_timeout", -1.0, "roi_timeout: expected a value from 0 to 3600, found -1.0"),
        ("tasks", [1, 2], "tasks: expected a non-empty list of task names"),
        ("tasks", ["fly"], "tasks: unknown task 'fly'"),
    ]
    for name, value, words in cases:
        with pytest.raises(ValueError) as err:
            validate(name, value)
        assert str(err.value).startswith(words), str(err.value)
        assert check_value(name, value) == str(err.value)
    for param in PARAMETERS:
        assert validate(param.name, param.default) == param.default, param.name


# -- start-up: the node as a subprocess ----------------------------------------------------------------------

BAD_START = [
    (["-p", "depth_window:=4"], "depth_window: expected an odd number of pixels, found 4"),
    (["-p", "min_confidence:=1.5"], "min_confidence: expected a value from 0 to 1, found 1.5"),
    (["-p", "tasks:=[fly]"], "tasks: unknown task 'fly'"),
    (["-p", "tasks:=[]"], "tasks: expected a non-empty list"),
    (["-p", "threads:=many"], "threads: expected an integer"),
    (["-p", "use_depth:=maybe"], "use_depth: expected true or false"),
    (["-p", "roi:=[1, 2, 3]"], "roi: expected [x, y, width, height]"),
    (
        ["-p", "image_qos:=fast", "-p", "depth_tolerance:=5.0"],  # every bad value, on the same one line
        "image_qos: expected one of sensor_data, reliable, found 'fast'; depth_tolerance: expected a value from 0 to 1",
    ),
    (["-p", "depth_window"], "Couldn't parse parameter override rule"),  # rcl's own refusal
    (["--params-file", "/nonexistent/keypoints.yaml"], "/nonexistent/keypoints.yaml"),
]


@pytest.mark.parametrize("args, words", BAD_START, ids=[" ".join(a) for a, _ in BAD_START])
def test_every_bad_start_up_value_gives_one_error_line_and_exit_2(args, words):
    done = start_and_fail(args, DOMAIN)
    assert done.returncode == 2, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr[-2000:]
    assert errors[0].startswith("error: keypoint_node: ") and words in errors[0], errors[0]
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout


def test_a_bad_value_in_a_params_file_is_named_too(tmp_path):
    params = tmp_path / "bad.yaml"
    params.write_text("/**:\n  ros__parameters:\n    depth_window: 4\n    tasks: [pour, juggle]\n")
    done = start_and_fail(["--params-file", str(params)], DOMAIN)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert "depth_window: expected an odd number" in line and "tasks: unknown task 'juggle'" in line


# -- start-up leniency and run time: one live node --------------------------------------------------------------


@pytest.fixture(scope="module")
def detector():
    import torch

    torch.set_num_threads(1)
    return FunctionalKeypointDetector.load(ROOT / "models" / "funk-lite0-synth.pt", device="cpu")


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    """A node started with ``tasks:=pour`` (one string), integers for two floating-point parameters and an
    roi that no frame can hold (accepted at start, when no image size is known yet)."""
    log = tmp_path_factory.mktemp("node") / "keypoint_node.log"
    parameters = {
        "threads": 1,
        "device": "cpu",
        "tasks": "pour",
        "min_confidence": 0,
        "depth_tolerance": 0,
        "roi": [5000, 5000, 10, 10],
        "publish_image": False,
    }
    with running_node(DOMAIN, NAMESPACE, parameters, log) as (probe, proc):
        yield probe, proc, log


def rgb() -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(SAMPLE)), cv2.COLOR_BGR2RGB)


def send(probe, stamp: int):
    return decode_keypoints(
        probe.exchange(lambda: probe.pub_image.publish(client.image_msg(rgb(), "rgb8", stamp)), stamp, timeout=60.0)
    )


def test_start_up_values_are_converted_and_an_roi_outside_the_first_frame_is_reset(graph, detector):
    probe, _, log = graph
    values = get_parameters(probe, NODE, ["tasks", "min_confidence", "depth_tolerance", "roi"])
    assert values["tasks"] == ["pour"]
    assert values["min_confidence"] == 0.0 and type(values["min_confidence"]) is float
    assert type(values["depth_tolerance"]) is float
    got = send(probe, 1_000_000_000)  # the first frame: the roi misses it, so it is reset and the frame used
    assert list(got) == ["pour"]
    assert np.allclose(got["pour"].points, detector.detect(rgb(), ["pour"])["pour"].points - 0.5, atol=1e-3)
    assert list(get_parameters(probe, NODE, ["roi"])["roi"]) == [0, 0, 0, 0]
    text = log.read_text()
    assert "roi parameter: expected a region inside the 224x224 image, found [5000, 5000, 10, 10]" in text
    assert "reset to [0, 0, 0, 0]" in text


def test_run_time_integers_for_floats_and_a_string_for_tasks(graph):
    probe, _, _ = graph
    send(probe, 2_000_000_000)  # the node knows the image size from here on
    assert probe.set_parameters(NODE, {"min_confidence": 1}) == [(True, "")]
    assert get_parameters(probe, NODE, ["min_confidence"])["min_confidence"] == 1.0
    assert probe.set_parameters(NODE, {"min_confidence": 0, "roi_timeout": 3}) == [(True, ""), (True, "")]
    assert probe.set_parameters(NODE, {"tasks": "scoop"}) == [(True, "")]
    assert list(send(probe, 2_100_000_000)) == ["scoop"]
    ((ok, reason),) = probe.set_parameters(NODE, {"min_confidence": "high"})
    assert not ok and "DOUBLE" in reason  # rclpy's type check, after the conversions
    ((ok, reason),) = probe.set_parameters(NODE, {"depth_window": 4})
    assert not ok
    assert probe.set_parameters(NODE, {"tasks": ["pour"]}) == [(True, "")]


def test_an_roi_outside_the_image_is_refused_when_set(graph):
    probe, _, _ = graph
    send(probe, 3_000_000_000)
    for roi in ([5000, 5000, 10, 10], [223, 0, 50, 50], [0, 0, -1, 5]):
        ((ok, reason),) = probe.set_parameters(NODE, {"roi": roi})
        assert not ok and reason.startswith("roi"), (roi, reason)
    assert list(get_parameters(probe, NODE, ["roi"])["roi"]) == [0, 0, 0, 0]
    ((ok, reason),) = probe.set_parameters(NODE, {"roi": [5000, 5000, 10, 10]})
    assert "expected a region inside the 224x224 image" in reason


def test_the_roi_parameter_clears_a_topic_roi_and_a_topic_roi_expires(graph, detector):
    from sensor_msgs.msg import RegionOfInterest

    probe, _, _ = graph
    image = rgb()
    box = (30, 20, 160, 180)
    whole = detector.detect(image, ["pour"])["pour"].points - 0.5
    cropped = detector.detect_region(image, box, ["pour"])["pour"].points - 0.5
    assert not np.allclose(whole, cropped, atol=1.0)  # else nothing below could fail
    assert probe.set_parameters(NODE, {"roi_timeout": 30.0}) == [(True, "")]

    def with_topic_roi(stamp: int):
        def publish():
            probe.pub_roi.publish(RegionOfInterest(x_offset=box[0], y_offset=box[1], width=box[2], height=box[3]))
            time.sleep(0.2)  # the roi first: the node uses the latest one for the next frame
            probe.pub_image.publish(client.image_msg(image, "rgb8", stamp))

        return decode_keypoints(probe.exchange(publish, stamp, timeout=60.0))["pour"].points

    assert np.allclose(with_topic_roi(4_000_000_000), cropped, atol=1e-3)
    assert np.allclose(send(probe, 4_100_000_000)["pour"].points, cropped, atol=1e-3)  # still in force
    assert probe.set_parameters(NODE, {"roi": [0, 0, 0, 0]}) == [(True, "")]  # clears the topic's region
    assert np.allclose(send(probe, 4_200_000_000)["pour"].points, whole, atol=1e-3)

    assert probe.set_parameters(NODE, {"roi_timeout": 1}) == [(True, "")]  # an integer, one second
    assert np.allclose(with_topic_roi(5_000_000_000), cropped, atol=1e-3)
    time.sleep(1.5)  # no newer region: the last one expires
    assert np.allclose(send(probe, 5_100_000_000)["pour"].points, whole, atol=1e-3)


# -- the bag tool: the same validation ---------------------------------------------------------------------------


def test_bag_tool_checks_its_options_as_the_node_does(tmp_path, capsys):
    bag = tmp_path / "in"
    write_sample_bag(bag, frames=1)
    out = str(tmp_path / "out")
    cases = {
        ("--depth-window", "4"): "error: --depth-window: expected an odd number of pixels, found 4",
        ("--min-confidence", "1.5"): "error: --min-confidence: expected a value from 0 to 1, found 1.5",
        ("--tasks", "fly"): "error: --tasks: unknown task 'fly'",
        ("--depth-tolerance", "-1"): "error: --depth-tolerance: expected a value from 0 to 1, found -1.0",
        ("--device", "tpu"): "error: --device: expected one of auto, cpu, cuda, found 'tpu'",
        ("--roi", "0,0,-5,5"): "error: --roi: expected [x, y, width, height]",
    }
    for args, words in cases.items():
        assert bag_main([str(bag), out, "--image-topic", IMAGE_TOPIC, *args]) == 2
        (line,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
        assert line.startswith(words), line
    assert not (tmp_path / "out").exists()


def test_bag_tool_takes_depth_window_and_refuses_an_roi_outside_the_image(tmp_path, detector):
    bag = tmp_path / "in"
    write_sample_bag(bag, frames=1)
    config = BagConfig(bag, tmp_path / "out", ("pour",), IMAGE_TOPIC, depth_window=7, min_confidence=0, progress=False)
    process_bag(config, detector)
    assert config.depth_window == 7 and type(config.min_confidence) is float
    with pytest.raises(ValueError, match=r"--roi: expected a region inside the 224x224 image"):
        process_bag(
            BagConfig(bag, tmp_path / "out2", ("pour",), IMAGE_TOPIC, roi=(500, 0, 10, 10), progress=False), detector
        )
    assert not (tmp_path / "out2").exists()
