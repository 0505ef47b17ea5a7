"""Offline rosbag2 processing: every frame of a bag through the keypoint node's code path, into a new bag.

    python -m funk_perception.bag INPUT_BAG OUTPUT_BAG --tasks pour,scoop
    python -m funk_perception.bag in_bag out_bag --image-topic /camera/image_raw \\
        --depth-topic /camera/depth --camera-info-topic /camera/camera_info

Reads a rosbag2 (sqlite3 or mcap) with ``rosbags`` (no ROS install needed) and
writes OUTPUT_BAG with every input topic copied unchanged plus, for each colour
frame, the node's outputs under ``--namespace`` (default: the image topic's
namespace): ``keypoints`` (PointCloud2), ``keypoints/<task>`` (one cloud per
task), ``keypoints/markers``, ``keypoints/image``, the latched
``keypoints/layout`` once, and on ``/diagnostics`` the node's status once a
second of bag time and at the end; same types, layout and stamps as the live
node. Depth is matched to colour by header stamp within ``--depth-tolerance``,
as in the node: a colour frame waits until a depth frame of its stamp, or a
later one, has been read. Options are checked as the node checks its
parameters (funk_perception/ros/params.py), before the bag is read.

The output is written to a hidden folder beside OUTPUT_BAG and renamed into
place once complete, so a crash or Ctrl-C never leaves a half-written bag.
"""

from __future__ import annotations

import torch  # noqa: F401  isort: skip  (before any GL context, see docs/DESIGN.md, "Import torch first")

import argparse
import os
import shutil
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import Reader, ReaderError, StoragePlugin, Writer, WriterError
from rosbags.typesys import Stores, get_typestore
from tqdm import tqdm

from funk_perception.cli import command
from funk_perception.detector import FunctionalKeypointDetector
from funk_perception.ros import diagnostics
from funk_perception.ros.convert import FrameError, stamp_ns
from funk_perception.ros.layout import LAYOUT_TOPIC, layout_message
from funk_perception.ros.messages import RosbagsFactory, frame_outputs, task_topic
from funk_perception.ros.params import parse_tasks, validate
from funk_perception.ros.pipeline import decode_frame, frame_keypoints, parse_roi
from funk_perception.ros.roi import outside_image
from funk_perception.ros.staging import staged_bag
from funk_perception.ros.sync import StampBuffer
from funk_perception.shipped import default_checkpoint
from funk_perception.tasks import TASKS

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
CLOUD = "sensor_msgs/msg/PointCloud2"
DIAGNOSTICS = "diagnostic_msgs/msg/DiagnosticArray"
OUTPUT_TYPES = {
    "keypoints": CLOUD,
    "keypoints/markers": "visualization_msgs/msg/MarkerArray",
    "keypoints/image": IMAGE,
}
#: The node whose outputs the bag's stand for: its name goes into the diagnostics status.
NODE_NAME = "keypoint_node"
#: Latched, as the node publishes keypoints/layout, so ``ros2 bag play`` offers it to late subscribers too.
LATCHED = Qos(
    QosHistory.KEEP_LAST,
    1,
    QosReliability.RELIABLE,
    QosDurability.TRANSIENT_LOCAL,
    QosTime(0, 0),
    QosTime(0, 0),
    QosLiveliness.SYSTEM_DEFAULT,
    QosTime(0, 0),
    False,
)


@dataclass
class BagConfig:
    input: Path
    output: Path
    tasks: tuple[str, ...] = TASKS
    image_topic: str | None = None  # None: the bag's only Image / CompressedImage topic
    depth_topic: str | None = None
    camera_info_topic: str | None = None
    namespace: str | None = None  # None: the image topic's namespace
    model: Path | None = None  # None: the shipped checkpoint
    device: str = "auto"
    min_confidence: float = 0.0
    roi: tuple[int, int, int, int] | None = None
    depth_tolerance: float = 0.02
    depth_window: int = 5
    hardware_id: str | None = None  # None: the model file on the device, as the node
    expected_rate: float = 0.0  # keypoint clouds per second of bag time the frequency status expects
    markers: bool = True
    image: bool = True
    storage: str = "sqlite3"
    progress: bool = True
    counts: Counter = field(default_factory=Counter)


def check_config(config: BagConfig) -> None:
    """Check and normalise the options the node has as parameters, with the node's own validation
    (funk_perception/ros/params.py); raises ValueError naming the option, expected and found."""

    def checked(option: str, name: str, value: Any) -> Any:
        try:
            return validate(name, value)
        except ValueError as exc:
            raise ValueError(f"--{option}: {str(exc).removeprefix(name + ': ')}") from None

    config.tasks = tuple(checked("tasks", "tasks", list(config.tasks)))
    config.device = checked("device", "device", config.device)
    config.min_confidence = checked("min-confidence", "min_confidence", config.min_confidence)
    config.depth_tolerance = checked("depth-tolerance", "depth_tolerance", config.depth_tolerance)
    config.depth_window = checked("depth-window", "depth_window", config.depth_window)
    config.expected_rate = checked("expected-rate", "expected_rate", config.expected_rate)
    if config.roi is not None:
        config.roi = tuple(checked("roi", "roi", list(config.roi)))  # type: ignore[assignment]
    if config.storage not in ("sqlite3", "mcap"):
        raise ValueError(f"--storage: expected sqlite3 or mcap, found {config.storage!r}")


def _open_reader(path: Path) -> Reader:
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such rosbag2 (a folder with metadata.yaml, or a .mcap/.db3 file)")
    try:
        reader = Reader(path)
        reader.open()
    except ReaderError as exc:
        raise ValueError(f"{path}: not a readable rosbag2: {exc}") from exc
    return reader


def _pick_topic(
    reader: Reader, wanted: str | None, types: Sequence[str], what: str, path: Path, exclude: str | None = None
) -> Any:
    """The connection of topic ``wanted`` (or the bag's only topic of ``types`` other than ``exclude``),
    checked to have such a type."""
    found = {c.topic: c for c in reader.connections}
    listing = ", ".join(f"{t} ({c.msgtype})" for t, c in sorted(found.items())) or "none"
    if wanted is None:
        candidates = [c for c in found.values() if c.msgtype in types and c.topic != exclude]
        if len(candidates) != 1:
            raise ValueError(
                f"{path}: expected exactly one {what} topic ({' or '.join(types)}) or --{what}-topic, "
                f"found topics: {listing}"
            )
        return candidates[0]
    if wanted not in found:
        raise ValueError(f"{path}: --{what}-topic {wanted!r} is not in the bag; found topics: {listing}")
    if found[wanted].msgtype not in types:
        raise ValueError(
            f"{path}: --{what}-topic {wanted!r}: expected type {' or '.join(types)}, found {found[wanted].msgtype}"
        )
    return found[wanted]


def _copy_connection(writer: Writer, conn: Any, typestore: Any) -> Any:
    ext = conn.ext
    kwargs = dict(
        serialization_format=getattr(ext, "serialization_format", "cdr"),
        offered_qos_profiles=getattr(ext, "offered_qos_profiles", []),
    )
    if conn.msgdef.data:
        return writer.add_connection(conn.topic, conn.msgtype, msgdef=conn.msgdef.data, rihs01=conn.digest, **kwargs)
    return writer.add_connection(conn.topic, conn.msgtype, typestore=typestore, **kwargs)


def process_bag(config: BagConfig, detector: FunctionalKeypointDetector | None = None) -> Counter:
    """Run the node's pipeline over every colour frame of ``config.input``; write ``config.output``; return counts."""
    output = Path(config.output)
    if output.exists():
        raise FileExistsError(f"{output}: the output bag exists already; remove it or choose another path")
    check_config(config)
    typestore = get_typestore(Stores.ROS2_JAZZY)
    make = RosbagsFactory(typestore)
    reader = _open_reader(Path(config.input))
    try:
        if reader.message_count == 0:
            raise ValueError(f"{config.input}: the bag holds no messages")
        depth_conn = info_conn = None
        if config.depth_topic or config.camera_info_topic:
            if not (config.depth_topic and config.camera_info_topic):
                raise ValueError("--depth-topic and --camera-info-topic: expected both or neither, found one")
            depth_conn = _pick_topic(reader, config.depth_topic, (IMAGE,), "depth", config.input)
            info_conn = _pick_topic(reader, config.camera_info_topic, (CAMERA_INFO,), "camera-info", config.input)
        image_conn = _pick_topic(
            reader,
            config.image_topic,
            (IMAGE, COMPRESSED),
            "image",
            config.input,
            exclude=depth_conn.topic if depth_conn is not None else None,
        )
        model = config.model or default_checkpoint()
        detector = detector or FunctionalKeypointDetector.load(model, device=config.device)
        tasks = parse_tasks(config.tasks, detector.tasks)
        if config.hardware_id is None:
            config.hardware_id = diagnostics.default_hardware_id(detector.device, model)
        base = image_conn.topic.removesuffix("/compressed")  # image_transport's name for the jpeg/png stream
        namespace = config.namespace if config.namespace is not None else base.rsplit("/", 1)[0]
        temp = staged_bag(output)
        try:
            _write(
                config,
                reader,
                temp,
                typestore,
                make,
                detector,
                tasks,
                namespace.rstrip("/"),
                image_conn,
                depth_conn,
                info_conn,
            )
            os.replace(temp, output)
        finally:
            shutil.rmtree(temp.parent, ignore_errors=True)
    finally:
        reader.close()
    return config.counts


def _write(
    config: BagConfig,
    reader: Reader,
    temp: Path,
    typestore: Any,
    make: RosbagsFactory,
    detector: FunctionalKeypointDetector,
    tasks: list[str],
    namespace: str,
    image_conn: Any,
    depth_conn: Any,
    info_conn: Any,
) -> None:
    counts = config.counts
    compressed = image_conn.msgtype == COMPRESSED
    tolerance = int(config.depth_tolerance * 1e9)
    depths: StampBuffer[Any] = StampBuffer(60)
    infos: StampBuffer[Any] = StampBuffer(60)
    latest: dict[str, Any] = {}
    pending: list[tuple[int, Any]] = []  # colour frames waiting for their depth
    storage = StoragePlugin.MCAP if config.storage == "mcap" else StoragePlugin.SQLITE3
    try:
        writer = Writer(temp, version=9, storage_plugin=storage)
        writer.open()
    except WriterError as exc:
        raise OSError(f"{config.output}: cannot write a bag there: {exc}") from exc
    try:
        copies = {c.id: _copy_connection(writer, c, typestore) for c in reader.connections}
        types = {**OUTPUT_TYPES, **{task_topic(t): CLOUD for t in tasks}}
        outputs = {
            name: writer.add_connection(f"{namespace}/{name}", msgtype, typestore=typestore)
            for name, msgtype in types.items()
        }
        layout = writer.add_connection(
            f"{namespace}/{LAYOUT_TOPIC}", "std_msgs/msg/String", typestore=typestore, offered_qos_profiles=[LATCHED]
        )
        status = _BagDiagnostics(
            writer,
            writer.add_connection(diagnostics.DIAGNOSTICS_TOPIC, DIAGNOSTICS, typestore=typestore),
            typestore,
            make,
            config,
        )
        checked_roi = False

        def run(timestamp: int, msg: Any) -> None:
            nonlocal checked_roi
            counts["received"] += 1
            if counts["received"] == 1:
                writer.write(
                    layout,
                    timestamp,
                    typestore.serialize_cdr(layout_message(make, tasks, config.min_confidence), "std_msgs/msg/String"),
                )
            stamp = stamp_ns(msg.header)
            depth = depths.nearest(stamp, tolerance) if depth_conn is not None else None
            info = (infos.nearest(stamp, tolerance) or latest.get("info")) if depth_conn is not None else None
            try:
                frame = decode_frame(msg, compressed, depth, info)
                if not checked_roi and config.roi is not None:
                    # the node refuses a roi parameter that misses the image; offline, that ends the run
                    reason = outside_image(config.roi, frame.rgb.shape[1], frame.rgb.shape[0], "--roi")
                    if reason is not None:
                        raise ValueError(reason)
                    checked_roi = True
                roi = parse_roi(config.roi, frame.rgb.shape[1], frame.rgb.shape[0])
                found = frame_keypoints(detector, frame, tasks, roi, config.depth_window)
            except FrameError as exc:
                counts[f"rejected.{exc.reason}"] += 1
                status.at(timestamp)
                return
            if depth_conn is not None and (frame.depth_problem or depth is None):
                counts[f"no_3d.{frame.depth_problem or 'no_depth'}"] += 1
            for name, out in frame_outputs(
                make, msg.header, frame, found, config.min_confidence, config.markers, config.image
            ).items():
                writer.write(outputs[name], timestamp, typestore.serialize_cdr(out, types[name]))
            counts["processed"] += 1
            status.tick(timestamp)

        def flush(until: int | None) -> None:
            """Run the waiting colour frames whose depth is in, or can no longer come (a later one was read)."""
            while pending:
                timestamp, msg = pending[0]
                stamp = stamp_ns(msg.header)
                ready = (
                    until is None
                    or depth_conn is None
                    or depths.nearest(stamp, tolerance) is not None
                    or until > stamp + tolerance
                )
                if not ready:
                    return
                pending.pop(0)
                run(timestamp, msg)

        try:
            messages = reader.messages()
            for conn, timestamp, raw in tqdm(
                messages, total=reader.message_count, unit="msg", disable=not config.progress, desc="bag"
            ):
                writer.write(copies[conn.id], timestamp, raw)
                if conn.id == image_conn.id:
                    pending.append((timestamp, typestore.deserialize_cdr(raw, conn.msgtype)))
                elif depth_conn is not None and conn.id == depth_conn.id:
                    msg = typestore.deserialize_cdr(raw, conn.msgtype)
                    depths.add(stamp_ns(msg.header), msg)
                    flush(stamp_ns(msg.header))
                    continue
                elif info_conn is not None and conn.id == info_conn.id:
                    msg = typestore.deserialize_cdr(raw, conn.msgtype)
                    infos.add(stamp_ns(msg.header), msg)
                    latest["info"] = msg
                flush(0 if depth_conn is not None else None)
            flush(None)
        except ReaderError as exc:
            raise ValueError(f"{config.input}: corrupt or truncated bag: {exc}") from exc
        status.finish()
    finally:
        writer.close()


class _BagDiagnostics:
    """The node's /diagnostics status, written once per second of bag time (the colour frames' log times)
    and once after the last frame, with its frequency status measured in bag time."""

    def __init__(
        self, writer: Writer, connection: Any, typestore: Any, make: RosbagsFactory, config: BagConfig
    ) -> None:
        self.writer, self.connection, self.typestore, self.make, self.config = (
            writer,
            connection,
            typestore,
            make,
            config,
        )
        self.frequency: diagnostics.FrequencyStatus | None = None
        self.next_ns = 0
        self.last_ns: int | None = None

    def tick(self, timestamp: int) -> None:
        """A cloud was written at ``timestamp`` (ns)."""
        self.at(timestamp)
        assert self.frequency is not None
        self.frequency.tick()

    def at(self, timestamp: int) -> None:
        """Bag time reached ``timestamp`` (ns): write the updates due before it."""
        if self.frequency is None:
            self.frequency, self.next_ns = diagnostics.FrequencyStatus(timestamp / 1e9), timestamp + 1_000_000_000
        while timestamp >= self.next_ns:
            self._write(self.next_ns)
            self.next_ns += 1_000_000_000
        self.last_ns = timestamp

    def finish(self) -> None:
        if self.last_ns is not None:
            self._write(self.last_ns)

    def _write(self, timestamp: int) -> None:
        assert self.frequency is not None
        counts = self.config.counts
        stats = {k: counts[k] for k in ("received", "processed")}
        stats["rejected"] = sum(v for k, v in counts.items() if k.startswith("rejected."))
        stats.update({k: v for k, v in sorted(counts.items()) if "." in k})
        frequency = self.frequency.run(timestamp / 1e9, self.config.expected_rate)
        status = diagnostics.keypoint_status(frequency, stats, int(stats["rejected"]))
        sec, nanosec = divmod(timestamp, 1_000_000_000)
        header = self.make(
            "std_msgs/msg/Header", stamp=self.make("builtin_interfaces/msg/Time", sec=sec, nanosec=nanosec)
        )
        msg = diagnostics.diagnostics_array(
            self.make, header, diagnostics.status_name(NODE_NAME), self.config.hardware_id or "", status
        )
        self.writer.write(self.connection, timestamp, self.typestore.serialize_cdr(msg, DIAGNOSTICS))


def _roi(text: str) -> tuple[int, int, int, int]:
    parts = text.split(",")
    if len(parts) != 4:
        raise argparse.ArgumentTypeError(f"expected x,y,width,height, found {text!r}")
    try:
        return tuple(int(p) for p in parts)  # type: ignore[return-value]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected four integers x,y,width,height, found {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m funk_perception.bag", description=__doc__.split("\n\n")[0])
    parser.add_argument("input", type=Path, help="input rosbag2 (folder, .mcap or .db3)")
    parser.add_argument("output", type=Path, help="output rosbag2 folder (must not exist)")
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated tasks (default: all 10)")
    parser.add_argument("--image-topic", help="sensor_msgs/Image or CompressedImage topic (default: the only one)")
    parser.add_argument("--depth-topic", help="16UC1 (mm) or 32FC1 (m) depth registered to the colour camera")
    parser.add_argument("--camera-info-topic", help="sensor_msgs/CameraInfo of the colour camera")
    parser.add_argument("--namespace", help="prefix of the output topics (default: the image topic's namespace)")
    parser.add_argument("--model", type=Path, help="checkpoint (default: the shipped one)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--min-confidence", type=float, default=0.0)
    parser.add_argument("--roi", type=_roi, help="x,y,width,height region of interest in pixels")
    parser.add_argument("--depth-tolerance", type=float, default=0.02, help="seconds (default 0.02)")
    parser.add_argument(
        "--depth-window",
        type=int,
        default=5,
        help="odd side in pixels of the window whose median depth a keypoint gets (default 5)",
    )
    parser.add_argument("--hardware-id", help="hardware_id of the diagnostics status (default: model and device)")
    parser.add_argument(
        "--expected-rate",
        type=float,
        default=0.0,
        help="clouds per second of bag time the diagnostics' frequency status expects (default 0)",
    )
    parser.add_argument("--storage", default="sqlite3", choices=("sqlite3", "mcap"))
    parser.add_argument("--no-markers", action="store_true")
    parser.add_argument("--no-image", action="store_true", help="leave keypoints/image out (smaller bag)")
    parser.add_argument("--no-progress", action="store_true")
    return parser


@command
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = BagConfig(
        args.input,
        args.output,
        tuple(t for t in args.tasks.split(",") if t),
        args.image_topic,
        args.depth_topic,
        args.camera_info_topic,
        args.namespace,
        args.model,
        args.device,
        args.min_confidence,
        args.roi,
        args.depth_tolerance,
        args.depth_window,
        args.hardware_id,
        args.expected_rate,
        markers=not args.no_markers,
        image=not args.no_image,
        storage=args.storage,
        progress=not args.no_progress,
    )
    counts = process_bag(config)
    print(
        f"{args.output}: {counts['processed']} of {counts['received']} frames processed"
        + "".join(f", {k} {v}" for k, v in sorted(counts.items()) if "." in k),
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
