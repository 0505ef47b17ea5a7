"""keypoint_node: functional keypoints of the object in view, for the tasks asked for, on ROS 2 topics.

    ros2 run funk_perception keypoint_node --ros-args -p tasks:="[pour, scoop]" -r image:=/camera/color/image_raw
    ros2 launch funk_perception keypoints.launch.py image:=/camera/color/image_raw use_depth:=true

A thin rclpy shell over :mod:`funk_perception.ros.pipeline` (decoding,
inference, 3D) and :mod:`funk_perception.ros.messages` (outputs), the same
code the bag tool runs. Topics, parameters and the ``keypoints`` cloud
layout: docs/ROS.md.

The subscription callbacks only file messages away; one inference thread
takes the newest colour frame from a one-place slot, so the node never falls
behind its camera (a frame replaced before it was taken is counted as
dropped). Bad input is logged once per kind every 10 s, counted by reason in
``diagnostics`` and skipped; the node keeps running.
"""

from __future__ import annotations

import torch  # isort: skip  (before anything that may open a GL context, see docs/DESIGN.md, "Import torch first")

import array
import functools
import importlib
import sys
import threading
import time
from collections import Counter, deque
from typing import Any, Sequence

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, RegionOfInterest
from visualization_msgs.msg import MarkerArray

from funk_perception.detector import FunctionalKeypointDetector
from funk_perception.ros.convert import FrameError, stamp_ns
from funk_perception.ros.messages import diagnostics_message, frame_outputs
from funk_perception.ros.params import PARAMETERS, check_value, parse_tasks
from funk_perception.shipped import default_checkpoint
from funk_perception.ros.pipeline import decode_frame, frame_keypoints, parse_roi
from funk_perception.ros.sync import LatestSlot, StampBuffer

LOG_EVERY_S = 10.0
LATENCY_WINDOW = 300


@functools.lru_cache(maxsize=None)
def _message_class(typename: str) -> type:
    package, _, name = typename.split("/")
    return getattr(importlib.import_module(f"{package}.msg"), name)


def make_message(typename: str, **fields: Any) -> Any:
    """The rclpy message factory for :mod:`funk_perception.ros.messages`."""
    for key, value in fields.items():
        # rclpy copies a numpy uint8 array element by element (0.1 s for a VGA frame); array.array is a memcpy
        if isinstance(value, np.ndarray) and value.dtype == np.uint8:
            fields[key] = array.array("B", value.tobytes())
    return _message_class(typename)(**fields)


def _descriptor(param: Any) -> ParameterDescriptor:
    descriptor = ParameterDescriptor(description=param.description, read_only=param.read_only)
    if param.low is not None and isinstance(param.default, float):
        descriptor.floating_point_range = [FloatingPointRange(from_value=float(param.low), to_value=float(param.high))]
    elif param.low is not None:
        descriptor.integer_range = [IntegerRange(from_value=int(param.low), to_value=int(param.high),
                                                 step=int(param.step or 1))]
    if param.choices:
        descriptor.additional_constraints = f"one of: {', '.join(param.choices)}"
    return descriptor


class KeypointNode(Node):
    """Subscribes to image (+ depth, camera_info, roi); publishes keypoints, markers, image, diagnostics."""

    def __init__(self) -> None:
        super().__init__("keypoint_node")
        for param in PARAMETERS:
            self.declare_parameter(param.name, param.default, _descriptor(param))
        bad = [reason for param in PARAMETERS
               if (reason := check_value(param.name, self.get_parameter(param.name).value)) is not None]
        if bad:
            raise ValueError("; ".join(bad))
        value = self._value
        threads = int(value("threads"))
        if threads:
            torch.set_num_threads(threads)
        self.detector = FunctionalKeypointDetector.load(value("model") or default_checkpoint(), device=value("device"))
        self.tasks = parse_tasks(value("tasks"), self.detector.tasks)
        # The first forward pass is several times slower (allocation, kernel selection): pay it before frames come.
        self.detector.detect(np.zeros((64, 64, 3), np.uint8), self.tasks)
        self.min_confidence = float(value("min_confidence"))
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self.counts: Counter[str] = Counter()
        self.latencies_ms: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self._last_logged: dict[str, float] = {}
        self._slot: LatestSlot[tuple[Any, float]] = LatestSlot()
        self._depths: StampBuffer[Any] = StampBuffer(30)
        self._infos: StampBuffer[Any] = StampBuffer(30)
        self._latest_info: Any = None
        self._roi_topic: tuple[int, int, int, int] | None = None

        qos = qos_profile_sensor_data if value("image_qos") == "sensor_data" else \
            QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        self.compressed = bool(value("compressed"))
        if self.compressed:
            self.create_subscription(CompressedImage, "image/compressed", self._on_image, qos)
        else:
            self.create_subscription(Image, "image", self._on_image, qos)
        self.use_depth = bool(value("use_depth"))
        if self.use_depth:
            self.create_subscription(Image, "depth", self._on_depth, qos)
            self.create_subscription(CameraInfo, "camera_info", self._on_camera_info, qos)
        self.create_subscription(RegionOfInterest, "roi", self._on_roi, qos)
        self.publishers_by_topic = {
            "keypoints": self.create_publisher(PointCloud2, "keypoints", 10),
            "keypoints/markers": self.create_publisher(MarkerArray, "keypoints/markers", 10),
            "keypoints/image": self.create_publisher(Image, "keypoints/image", 10),
        }
        self.pub_diagnostics = self.create_publisher(DiagnosticArray, "diagnostics", 10)
        self.create_timer(1.0, self.publish_diagnostics)

        self._running = True
        self._worker = threading.Thread(target=self._work, name="funk-inference", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"funk keypoints for {', '.join(self.tasks)} on {self.detector.device}; "
            f"listening on {'image/compressed' if self.compressed else 'image'}"
            + (" with depth and camera_info" if self.use_depth else "")
        )

    def _value(self, name: str) -> Any:
        return self.get_parameter(name).value

    # -- parameters --------------------------------------------------------------------------------

    def _on_set_parameters(self, params: Sequence[Parameter]) -> SetParametersResult:
        for param in params:
            reason = check_value(param.name, param.value, self.detector.tasks)
            if reason is not None:
                self.get_logger().warning(f"parameter refused, keeping the old value: {reason}")
                return SetParametersResult(successful=False, reason=reason)
        for param in params:
            if param.name == "tasks":
                self.tasks = parse_tasks(param.value, self.detector.tasks)
            elif param.name == "min_confidence":
                self.min_confidence = float(param.value)
        return SetParametersResult(successful=True)

    # -- callbacks: file the message away, nothing more ----------------------------------------------

    def _on_image(self, msg: Any) -> None:
        self.counts["received"] += 1
        if self._slot.put((msg, time.monotonic())):
            self.counts["dropped"] += 1

    def _on_depth(self, msg: Image) -> None:
        self._depths.add(stamp_ns(msg.header), msg)

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._infos.add(stamp_ns(msg.header), msg)
        self._latest_info = msg

    def _on_roi(self, msg: RegionOfInterest) -> None:
        self._roi_topic = (int(msg.x_offset), int(msg.y_offset), int(msg.width), int(msg.height))

    # -- inference thread ----------------------------------------------------------------------------

    def _work(self) -> None:
        while self._running and rclpy.ok():
            item = self._slot.take(timeout=0.2)
            if item is None:
                continue
            try:
                self._process(*item)
            except Exception:  # noqa: BLE001  publishing after Ctrl-C: the context is gone, so is the node
                if rclpy.ok():
                    raise

    def _log_once(self, kind: str, text: str) -> None:
        now = time.monotonic()
        if now - self._last_logged.get(kind, -LOG_EVERY_S) >= LOG_EVERY_S:
            self._last_logged[kind] = now
            self.get_logger().warning(f"{text} [{kind}; counted in diagnostics, logged at most every {LOG_EVERY_S:g} s]")

    def _process(self, msg: Any, received: float) -> None:
        depth = info = None
        try:
            if self.use_depth:
                stamp, tolerance = stamp_ns(msg.header), float(self._value("depth_tolerance"))
                depth = self._depths.nearest(stamp, int(tolerance * 1e9), wait=tolerance)
                info = self._infos.nearest(stamp, int(tolerance * 1e9)) or self._latest_info
            frame = decode_frame(msg, self.compressed, depth, info, int(self._value("max_pixels")))
            height, width = frame.rgb.shape[:2]
            roi = parse_roi(self._roi_topic or tuple(self._value("roi")), width, height)
            tasks, min_confidence = list(self.tasks), self.min_confidence
            found = frame_keypoints(self.detector, frame, tasks, roi, int(self._value("depth_window")))
        except FrameError as exc:
            self.counts[f"rejected.{exc.reason}"] += 1
            self._log_once(exc.reason, f"frame skipped: {exc}")
            return
        except Exception as exc:  # noqa: BLE001  the node must outlive any one frame
            self.counts["rejected.error"] += 1
            self._log_once("error", f"frame skipped: {type(exc).__name__}: {exc}")
            return
        if self.use_depth:
            problem = frame.depth_problem or ("no_depth" if depth is None else None)
            if problem:
                self.counts[f"no_3d.{problem}"] += 1
                self._log_once(problem, f"keypoints without 3D: {frame.depth_message or 'no depth frame matched'}")
        outputs = frame_outputs(make_message, msg.header, frame, found, min_confidence,
                                bool(self._value("publish_markers")), bool(self._value("publish_image")))
        for topic, out in outputs.items():
            self.publishers_by_topic[topic].publish(out)
        self.counts["processed"] += 1
        self.latencies_ms.append((time.monotonic() - received) * 1000.0)

    # -- diagnostics ---------------------------------------------------------------------------------

    def statistics(self) -> dict[str, float | int]:
        """Counters and latency percentiles (receive -> published, ms, last frames) for ``diagnostics``."""
        lat = np.array(self.latencies_ms) if self.latencies_ms else np.array([np.nan])
        stats: dict[str, float | int] = {k: self.counts[k] for k in ("received", "processed", "dropped")}
        stats["rejected"] = sum(v for k, v in self.counts.items() if k.startswith("rejected."))
        stats.update({k: v for k, v in sorted(self.counts.items()) if "." in k})
        stats.update(latency_ms_p50=float(np.percentile(lat, 50)), latency_ms_p95=float(np.percentile(lat, 95)),
                     latency_ms_max=float(np.max(lat)))
        return stats

    def publish_diagnostics(self) -> None:
        stats = self.statistics()
        header = make_message("std_msgs/msg/Header", stamp=self.get_clock().now().to_msg())
        warning = f"{stats['rejected']} frames rejected" if stats["rejected"] else ""
        self.pub_diagnostics.publish(diagnostics_message(make_message, header, "funk_perception: keypoint_node",
                                                         stats, warning))

    def destroy_node(self) -> None:
        self._running = False
        self._slot.close()
        self._worker.join(timeout=5.0)
        super().destroy_node()


def main(argv: Sequence[str] | None = None) -> int:
    """``ros2 run funk_perception keypoint_node [--ros-args ...]``; a bad model or parameter exits with 2."""
    rclpy.init(args=list(sys.argv if argv is None else argv))
    node = None
    try:
        node = KeypointNode()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (ValueError, OSError) as exc:
        print(f"error: keypoint_node: {exc}", file=sys.stderr)
        return 2
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
