"""A small rosbag2 of rendered frames with depth and camera_info, made from the shipped samples.

    python -m funk_perception.ros.sample_bag --out results/ros_demo/sample_bag [--frames 12 --rate 5 --size 640x480]

Topics (the names a RealSense-style driver uses), all with frame_id
``camera_color_optical_frame`` and one stamp per frame:

- ``/camera/color/image_raw`` sensor_msgs/Image rgb8 (or ``--compressed``:
  ``/camera/color/image_raw/compressed``, jpeg)
- ``/camera/aligned_depth_to_color/image_raw`` sensor_msgs/Image 16UC1, millimetres, 0 = no depth
- ``/camera/color/camera_info`` sensor_msgs/CameraInfo (K in the ROS pixel-centre convention)

The frames are the shipped synthetic samples (``samples/synth``: RGB, depth
and the camera of each render), so the bag is rebuilt in well under a second
and needs no simulator. Written to a hidden folder and renamed into place.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from funk_perception.cli import command
from funk_perception.ros.convert import rgb_to_image_fields
from funk_perception.ros.messages import RosbagsFactory
from funk_perception.ros.staging import staged_bag

FRAME_ID = "camera_color_optical_frame"
IMAGE_TOPIC = "/camera/color/image_raw"
DEPTH_TOPIC = "/camera/aligned_depth_to_color/image_raw"
INFO_TOPIC = "/camera/color/camera_info"


def default_samples() -> Path:
    """``samples/synth`` of the checkout, else of a colcon / pip install's share directory."""
    here = Path(__file__).resolve()
    candidates = [
        here.parents[2] / "samples" / "synth",
        Path(sys.prefix) / "share" / "funk_perception" / "samples" / "synth",
    ]
    return next((c for c in candidates if c.is_dir()), candidates[0])


@dataclass(frozen=True)
class SampleFrame:
    name: str
    rgb: np.ndarray  # (H, W, 3) uint8
    depth_mm: np.ndarray  # (H, W) uint16
    k: np.ndarray  # (3, 3), ROS convention
    tasks: tuple[str, ...]


def sample_frames(samples: Path, limit: int | None = None) -> list[SampleFrame]:
    """The rendered views under ``samples/records`` in name order, with their depth and intrinsics."""
    records = sorted((samples / "records").glob("*/*.json"))
    if not records:
        raise FileNotFoundError(f"{samples}/records: expected the generator's */*.json scene records, found none")
    frames = []
    for record in records:
        scene = json.loads(record.read_text())
        for view in scene["views"]:
            bgr = cv2.imread(str(samples / view["image"]), cv2.IMREAD_COLOR)
            depth = cv2.imread(str(samples / view["depth"]), cv2.IMREAD_UNCHANGED)
            if bgr is None or depth is None or depth.dtype != np.uint16:
                raise ValueError(
                    f"{record}: view {view['image']}: expected a readable image and a 16-bit depth PNG {view['depth']}"
                )
            k = np.array(view["camera"]["K"], dtype=np.float64)
            k[:2, 2] -= 0.5  # the generator's K has its origin at the pixel corner, ROS at the pixel centre
            frames.append(
                SampleFrame(
                    Path(view["image"]).stem, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), depth, k, tuple(scene["tasks"])
                )
            )
            if limit is not None and len(frames) >= limit:
                return frames
    return frames


def at_camera_size(frame: SampleFrame, size: tuple[int, int]) -> SampleFrame:
    """``frame`` as a camera of ``size`` (width, height) would see it: scaled uniformly to fit, the margin
    filled (colour: the render's mean border colour; depth: 0, no depth) and K moved to match, so the 3D
    keypoints stay where they were. Pixel centres map as ``u' = s (u + 0.5) - 0.5 + left`` (ROS convention)."""
    width, height = size
    h, w = frame.depth_mm.shape
    if width < 1 or height < 1:
        raise ValueError(f"size: expected a positive width and height, found {size}")
    scale = min(width / w, height / h)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    left, top = (width - new_w) // 2, (height - new_h) // 2
    border = np.concatenate([frame.rgb[0], frame.rgb[-1], frame.rgb[:, 0], frame.rgb[:, -1]])
    rgb = np.empty((height, width, 3), np.uint8)
    rgb[:] = border.mean(axis=0).round().astype(np.uint8)
    rgb[top : top + new_h, left : left + new_w] = cv2.resize(frame.rgb, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    depth = np.zeros((height, width), np.uint16)
    # nearest: never a depth between a foreground and a background pixel
    depth[top : top + new_h, left : left + new_w] = cv2.resize(
        frame.depth_mm, (new_w, new_h), interpolation=cv2.INTER_NEAREST
    )
    sx, sy = new_w / w, new_h / h
    k = frame.k.copy()
    k[0, 0], k[0, 1], k[1, 1] = k[0, 0] * sx, k[0, 1] * sx, k[1, 1] * sy
    k[0, 2] = sx * (k[0, 2] + 0.5) - 0.5 + left
    k[1, 2] = sy * (k[1, 2] + 0.5) - 0.5 + top
    return SampleFrame(frame.name, rgb, depth, k, frame.tasks)


def write_sample_bag(
    out: Path,
    samples: Path | None = None,
    frames: int = 12,
    rate: float = 5.0,
    storage: str = "sqlite3",
    compressed: bool = False,
    size: tuple[int, int] | None = None,
) -> list[SampleFrame]:
    """Write the bag to ``out`` (must not exist); return the frames it holds, in order. ``size`` (width,
    height): frames as a camera of that size would send them (:func:`at_camera_size`); None: as rendered."""
    out = Path(out)
    if out.exists():
        raise FileExistsError(f"{out}: exists already; remove it or choose another path")
    if frames < 1 or rate <= 0:
        raise ValueError(f"expected --frames >= 1 and --rate > 0, found {frames} and {rate}")
    chosen = sample_frames(samples or default_samples(), frames)
    if size is not None:
        chosen = [at_camera_size(frame, size) for frame in chosen]
    store = get_typestore(Stores.ROS2_JAZZY)
    make = RosbagsFactory(store)
    temp = staged_bag(out)
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    try:
        with Writer(temp, version=9, storage_plugin=plugin) as writer:
            image_type = "sensor_msgs/msg/CompressedImage" if compressed else "sensor_msgs/msg/Image"
            conns = {
                "image": writer.add_connection(
                    IMAGE_TOPIC + ("/compressed" if compressed else ""), image_type, typestore=store
                ),
                "depth": writer.add_connection(DEPTH_TOPIC, "sensor_msgs/msg/Image", typestore=store),
                "info": writer.add_connection(INFO_TOPIC, "sensor_msgs/msg/CameraInfo", typestore=store),
            }
            for n, frame in enumerate(chosen):
                stamp = 1_000_000_000 + round(n * 1e9 / rate)
                header = make(
                    "std_msgs/msg/Header",
                    frame_id=FRAME_ID,
                    stamp=make("builtin_interfaces/msg/Time", sec=stamp // 10**9, nanosec=stamp % 10**9),
                )
                height, width = frame.depth_mm.shape
                p = np.zeros((3, 4))
                p[:, :3] = frame.k
                msgs = {
                    "info": make(
                        "sensor_msgs/msg/CameraInfo",
                        header=header,
                        height=height,
                        width=width,
                        distortion_model="plumb_bob",
                        d=np.zeros(5),
                        k=frame.k.reshape(-1),
                        r=np.eye(3).reshape(-1),
                        p=p.reshape(-1),
                    ),
                    "depth": make(
                        "sensor_msgs/msg/Image",
                        header=header,
                        height=height,
                        width=width,
                        encoding="16UC1",
                        is_bigendian=0,
                        step=width * 2,
                        data=frame.depth_mm.astype("<u2").reshape(-1).view(np.uint8),
                    ),
                }
                if compressed:
                    ok, jpg = cv2.imencode(
                        ".jpg", cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95]
                    )
                    msgs["image"] = make(
                        "sensor_msgs/msg/CompressedImage", header=header, format="jpeg", data=jpg.reshape(-1)
                    )
                else:
                    f = rgb_to_image_fields(frame.rgb)
                    msgs["image"] = make(
                        "sensor_msgs/msg/Image",
                        header=header,
                        height=f.height,
                        width=f.width,
                        encoding=f.encoding,
                        is_bigendian=f.is_bigendian,
                        step=f.step,
                        data=f.data,
                    )
                for key in ("info", "depth", "image"):  # colour last, as drivers usually send it
                    writer.write(conns[key], stamp, store.serialize_cdr(msgs[key], conns[key].msgtype))
        os.replace(temp, out)
    finally:
        shutil.rmtree(temp.parent, ignore_errors=True)
    return chosen


def parse_size(text: str) -> tuple[int, int]:
    """``"640x480"`` -> (640, 480), for ``--size``."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 640x480, found {text!r}") from None
    return width, height


@command
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m funk_perception.ros.sample_bag", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--out", type=Path, default=Path("results/ros_demo/sample_bag"))
    parser.add_argument("--samples", type=Path, help="a generator output folder (default: the shipped samples/synth)")
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--rate", type=float, default=5.0, help="frames per second of bag time")
    parser.add_argument("--storage", choices=("sqlite3", "mcap"), default="sqlite3")
    parser.add_argument("--compressed", action="store_true", help="jpeg CompressedImage instead of raw rgb8")
    parser.add_argument(
        "--size",
        type=parse_size,
        default=None,
        help="WIDTHxHEIGHT of a camera, e.g. 640x480 (default: the renders' own size)",
    )
    args = parser.parse_args(argv)
    frames = write_sample_bag(args.out, args.samples, args.frames, args.rate, args.storage, args.compressed, args.size)
    print(f"{args.out}: {len(frames)} frames with depth and camera_info", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
