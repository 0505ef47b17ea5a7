"""A stand-in camera driver: publishes camera-sized sensor_msgs/Image frames of a real photo from its own process.

    python benchmarks/camera_publisher.py [--topic /camera/color/image_raw] [--size 640x480] [--rate 10]
        [--frames 50] [--reliability best_effort|reliable] [--wait 120] [--stamp-base 1000000000]

What a camera driver does, and nothing more: one rclpy node, one Image publisher
(history depth 1 best effort or depth 10 reliable, as camera drivers set their
publishers), frames published at a fixed rate once a subscriber has matched.
Its DDS settings are whatever its environment gives it, so the caller decides
whether it runs with ``config/fastdds.xml`` (``FASTRTPS_DEFAULT_PROFILES_FILE``)
or with Fast DDS's defaults (benchmarks/bench_transport.py and
tests/test_ros_transport.py start it both ways).

Prints one JSON line on stdout when done: the stamps sent (ns) and the size.
Exit 3 when no subscriber matched within ``--wait`` seconds.
"""

from __future__ import annotations

import argparse
import array
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import Header

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "samples" / "synth" / "images" / "watering_can" / "watering_can_0000_v0.jpg"


def frame(width: int, height: int, photo: Path = PHOTO) -> array.array:
    """The photo resized to width x height, rgb8 bytes (array.array: rclpy copies it with one memcpy)."""
    bgr = cv2.imread(str(photo), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"{photo}: expected a readable image")
    rgb = cv2.cvtColor(cv2.resize(bgr, (width, height), interpolation=cv2.INTER_LINEAR), cv2.COLOR_BGR2RGB)
    return array.array("B", np.ascontiguousarray(rgb).tobytes())


def parse_size(text: str) -> tuple[int, int]:
    """``"640x480"`` -> (640, 480); ValueError naming the option otherwise."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--size: expected WIDTHxHEIGHT such as 640x480, found {text!r}") from None
    if width < 1 or height < 1:
        raise ValueError(f"--size: expected positive sizes, found {text!r}")
    return width, height


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--topic", default="/camera/color/image_raw")
    parser.add_argument("--size", default="640x480", help="WIDTHxHEIGHT")
    parser.add_argument("--rate", type=float, default=10.0, help="frames per second")
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--reliability", choices=("best_effort", "reliable"), default="best_effort")
    parser.add_argument("--wait", type=float, default=120.0, help="seconds to wait for a subscriber to match")
    parser.add_argument(
        "--settle",
        type=float,
        default=1.0,
        help="seconds between the match and the first frame (discovery finishing on the other side)",
    )
    parser.add_argument("--stamp-base", type=int, default=1_000_000_000, help="stamp of the first frame, ns")
    parser.add_argument("--frame-id", default="camera_color_optical_frame")
    args = parser.parse_args(argv)
    try:
        width, height = parse_size(args.size)
    except ValueError as exc:
        print(f"error: camera_publisher: {exc}", file=sys.stderr)
        return 2
    if args.rate <= 0 or args.frames < 1:
        print(
            f"error: camera_publisher: --rate and --frames: expected > 0, found {args.rate} and {args.frames}",
            file=sys.stderr,
        )
        return 2
    data = frame(width, height)
    rclpy.init()
    node = rclpy.create_node("camera_publisher")
    try:
        if args.reliability == "reliable":
            qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)
        else:
            qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
        pub = node.create_publisher(Image, args.topic, qos)
        deadline = time.monotonic() + args.wait
        while pub.get_subscription_count() == 0:
            if time.monotonic() > deadline:
                print(
                    f"error: camera_publisher: no subscriber matched {args.topic} within {args.wait:g} s",
                    file=sys.stderr,
                )
                return 3
            time.sleep(0.05)
        time.sleep(args.settle)
        msg = Image(height=height, width=width, encoding="rgb8", is_bigendian=0, step=width * 3, data=data)
        stamps: list[int] = []
        start = time.monotonic()
        for n in range(args.frames):
            stamp = args.stamp_base + n * round(1e9 / args.rate)
            msg.header = Header(
                stamp=Time(sec=stamp // 1_000_000_000, nanosec=stamp % 1_000_000_000), frame_id=args.frame_id
            )
            pub.publish(msg)
            stamps.append(stamp)
            time.sleep(max(0.0, start + (n + 1) / args.rate - time.monotonic()))
        elapsed = time.monotonic() - start
        time.sleep(0.5)  # a reliable writer may still be resending the last fragments
        print(
            json.dumps(
                {
                    "topic": args.topic,
                    "size": [width, height],
                    "rate_hz": args.rate,
                    "reliability": args.reliability,
                    "sent": stamps,
                    "elapsed_s": round(elapsed, 3),
                }
            ),
            flush=True,
        )
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
