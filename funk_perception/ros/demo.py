"""The node at work without a camera: a sample bag of rendered frames (RGB, depth, camera_info) played
into the real keypoint_node; its annotated images and 3D keypoints written where you can look.

    python -m funk_perception.ros.demo [--tasks pour,scoop] [--frames 8] [--size 640x480] [--out results/ros_demo]

Builds ``OUT/sample_bag`` from the shipped renders at a camera's size (:mod:`funk_perception.ros.sample_bag`,
640 x 480 by default), starts the installed ``keypoint_node`` with its default parameters (best-effort
input as for any camera) plus ``tasks`` and ``use_depth`` on its own localhost ROS graph, publishes each
frame's camera_info, depth and colour messages as the bag's raw CDR bytes under the usual camera topic
names, and keeps what the node publishes: ``OUT/annotated.png`` (the ``keypoints/image`` frames side by
side) and ``OUT/keypoints.json`` (per frame and task: pixels, metres in the optical frame, confidence),
plus the node's log ``OUT/keypoint_node.log``. This process plays the camera, so it runs with the Fast
DDS profile docs/ROS.md gives a camera driver (config/fastdds.xml, unless ``FASTRTPS_DEFAULT_PROFILES_FILE``
is set already).
"""

from __future__ import annotations

import torch  # noqa: F401  isort: skip  (before any GL context, see docs/DESIGN.md, "Import torch first")

import argparse
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore
from sensor_msgs.msg import CameraInfo, Image

from funk_perception.atomic import write_json_atomic, write_png_atomic
from funk_perception.cli import command
from funk_perception.ros import client, transport
from funk_perception.ros.convert import image_to_rgb, stamp_ns
from funk_perception.ros.messages import decode_keypoints
from funk_perception.ros.sample_bag import DEPTH_TOPIC, IMAGE_TOPIC, INFO_TOPIC, parse_size, write_sample_bag


def _sheet(images: list[np.ndarray], columns: int = 4) -> np.ndarray:
    h, w = images[0].shape[:2]
    rows = -(-len(images) // columns)
    sheet = np.full((rows * h, columns * w, 3), 24, np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        sheet[r * h : (r + 1) * h, c * w : (c + 1) * w] = image
    return sheet


def run_demo(
    out: Path, tasks: Sequence[str], frames: int, timeout: float = 300.0, size: tuple[int, int] | None = (640, 480)
) -> dict:
    """Play the sample bag (frames of ``size``, None: as rendered) into the node; write the sheet and JSON
    under ``out``; return the JSON record. Call it in a process with no DDS participant yet (as ``python -m``
    does): Fast DDS reads the profile when a process creates its first one, and without it camera-sized
    frames from this process are mostly lost."""
    bag = out / "sample_bag"
    shutil.rmtree(bag, ignore_errors=True)  # our own output from an earlier run
    write_sample_bag(bag, frames=frames, size=size)
    store = get_typestore(Stores.ROS2_JAZZY)
    with Reader(bag) as reader:
        messages = [(c.topic, bytes(raw)) for c, _, raw in reader.messages()]
    domain = 150 + os.getpid() % 80
    # this process is the camera driver here: camera-sized frames need the profile on the sending side
    os.environ.setdefault(transport.PROFILE_VARIABLE, str(transport.profile_path()))
    client.init(domain)
    parameters = {"tasks": list(tasks), "use_depth": True}  # the node's defaults otherwise
    node = client.start_node(  # camera_info: the image topic's sibling, /camera/color/camera_info
        domain,
        parameters=parameters,
        remap={"__ns": "/camera/color", "image": "image_raw", "depth": DEPTH_TOPIC},
        log=out / "keypoint_node.log",
    )
    probe = client.NodeClient(namespace="/camera/color")
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    pubs = {
        IMAGE_TOPIC: probe.create_publisher(Image, IMAGE_TOPIC, qos),
        DEPTH_TOPIC: probe.create_publisher(Image, DEPTH_TOPIC, qos),
        INFO_TOPIC: probe.create_publisher(CameraInfo, INFO_TOPIC, qos),
    }
    record: dict = {
        "bag": str(bag),
        "tasks": list(tasks),
        "size": list(size) if size else None,
        "camera_profile": os.environ[transport.PROFILE_VARIABLE],
        "node_parameters": parameters,
        "frames": [],
    }
    annotated = []
    try:
        probe.wait_connected(timeout, pubs[IMAGE_TOPIC])
        # depth and camera_info matched too: a best-effort frame sent before its reader matched is gone
        deadline = time.monotonic() + timeout
        while not all(pub.get_subscription_count() for pub in pubs.values()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"keypoint_node did not subscribe to {', '.join(pubs)} within {timeout:g} s")
            time.sleep(0.05)
        # and the other way round: the node's readers learn of these writers a moment later, and a best-effort
        # reader drops what an unknown writer sends (the first frame came without depth when played at once)
        time.sleep(1.0)
        for start in range(0, len(messages), 3):  # camera_info, depth, colour per frame (the bag's order)
            frame = messages[start : start + 3]
            stamp = stamp_ns(store.deserialize_cdr(frame[-1][1], "sensor_msgs/msg/Image").header)

            def play(frame=frame) -> None:
                for topic, raw in frame:
                    pubs[topic].publish(raw)

            found = decode_keypoints(probe.exchange(play, stamp, timeout=timeout))
            record["frames"].append(
                {
                    "stamp_ns": stamp,
                    "tasks": {
                        t: {
                            "points_px": np.round(kp.points, 2).tolist(),
                            "xyz_m": np.round(kp.xyz, 4).tolist(),
                            "confidence": np.round(kp.confidence, 4).tolist(),
                        }
                        for t, kp in found.items()
                    },
                }
            )
            annotated.append(image_to_rgb(probe.wait_image(stamp, timeout)))
            print(
                f"frame {len(annotated)}: "
                + ", ".join(f"{t} p1 at {np.round(kp.xyz[0], 3).tolist()} m" for t, kp in found.items()),
                flush=True,
            )
        try:
            record["diagnostics"] = probe.wait_diagnostics(lambda v: True, 10.0)
        except TimeoutError:  # 1 Hz, but a starved node can miss a beat: the keypoints are what matter here
            record["diagnostics"] = None
    finally:
        probe.close()
        node.terminate()
        node.wait(60)
        rclpy.try_shutdown()
    write_png_atomic(out / "annotated.png", _sheet(annotated))
    write_json_atomic(out / "keypoints.json", record, indent=1)
    return record


@command
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m funk_perception.ros.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("results/ros_demo"))
    parser.add_argument("--tasks", default="pour,scoop", help="comma-separated tasks (default pour,scoop)")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument(
        "--size",
        type=parse_size,
        default=(640, 480),
        help="WIDTHxHEIGHT of the frames played, as a camera would send them (default 640x480)",
    )
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds to wait for the node to start and for each answer"
    )
    args = parser.parse_args(argv)
    run_demo(args.out, [t for t in args.tasks.split(",") if t], args.frames, args.timeout, args.size)
    print(f"{args.out}/annotated.png, {args.out}/keypoints.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
