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
from collections.abc import Sequence
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.event_handler import SubscriptionEventCallbacks, UnsupportedEventTypeError
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException
from rclpy.impl.implementation_singleton import rclpy_implementation
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import (
    DurabilityPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_policy_name_from_kind,
    qos_profile_sensor_data,
)
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, RegionOfInterest
from std_msgs.msg import String
from visualization_msgs.msg import MarkerArray

from funk_perception.detector import FunctionalKeypointDetector
from funk_perception.ros import diagnostics, transport
from funk_perception.ros.convert import FrameError, stamp_ns
from funk_perception.ros.declare import convert_types, declare_parameters
from funk_perception.ros.layout import LAYOUT_TOPIC, layout_message
from funk_perception.ros.messages import frame_outputs, task_topic
from funk_perception.ros.params import check_value, parse_tasks
from funk_perception.ros.pipeline import decode_frame, frame_keypoints, parse_roi
from funk_perception.ros.roi import PARAMETER as ROI_PARAMETER
from funk_perception.ros.roi import RoiState, outside_image
from funk_perception.ros.sync import LatestSlot, StampBuffer
from funk_perception.shipped import default_checkpoint
from funk_perception.stages import StageTotals

RCLError = rclpy_implementation.RCLError
#: the Fast DDS profile main() chose before rclpy.init (funk_perception/ros/transport.py); None when not started by main
PROFILE_CHOICE: transport.ProfileChoice | None = None
LOG_EVERY_S = 10.0
LATENCY_WINDOW = 300


@functools.cache
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


class KeypointNode(Node):
    """Subscribes to image (+ depth, camera_info, roi); publishes keypoints (whole and per task), layout,
    markers, image, diagnostics."""

    def __init__(self) -> None:
        super().__init__("keypoint_node")
        declare_parameters(
            self
        )  # every bad start-up value: one ValueError naming each (funk_perception/ros/declare.py)
        value = self._value
        threads = int(value("threads"))
        if threads:
            torch.set_num_threads(threads)
        model = value("model") or default_checkpoint()
        # the user's own reference photos, beside or instead of the shipped bank (docs/REFERENCES.md)
        self.detector = FunctionalKeypointDetector.load(
            model,
            device=value("device"),
            references=value("references") or None,
            references_mode=value("references_mode"),
            backend=value("backend"),
            precision=value("precision"),
        )
        if self.detector.references:
            self.get_logger().info(
                f"references {value('references')} ({value('references_mode')}) for "
                f"{', '.join(self.detector.references)}"
            )
        self.tasks = parse_tasks(value("tasks"), self.detector.tasks)
        # The first forward pass is several times slower (allocation, kernel selection): pay it before frames come.
        self.detector.detect(np.zeros((64, 64, 3), np.uint8), self.tasks)
        self.min_confidence = float(value("min_confidence"))
        self.hardware_id = value("hardware_id") or diagnostics.default_hardware_id(self.detector.device, model)
        self._roi = RoiState(value("roi"))
        self._image_size: tuple[int, int] | None = None  # (width, height) of the last decoded frame
        self.add_pre_set_parameters_callback(convert_types)
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self.counts: Counter[str] = Counter()
        self.latencies_ms: deque[float] = deque(maxlen=LATENCY_WINDOW)
        #: milliseconds per stage of every published frame, summed (funk_perception/stages.py)
        self.stage_totals = StageTotals()
        self._last_logged: dict[str, float] = {}
        self._slot: LatestSlot[tuple[Any, float]] = LatestSlot()
        self._depths: StampBuffer[Any] = StampBuffer(30)
        self._infos: StampBuffer[Any] = StampBuffer(30)
        self._latest_info: Any = None
        self._frequency = diagnostics.FrequencyStatus(time.monotonic())

        qos = (
            qos_profile_sensor_data
            if value("image_qos") == "sensor_data"
            else QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        )
        self.compressed = bool(value("compressed"))
        self.use_depth = bool(value("use_depth"))
        self.input_topics = self._input_topics()
        topics = self.input_topics
        self._image_sub = self._subscribe(
            CompressedImage if self.compressed else Image, topics["image"], self._on_image, qos, watch_lost=True
        )
        if self.use_depth:
            self._subscribe(Image, topics["depth"], self._on_depth, qos)
            self._subscribe(CameraInfo, topics["camera_info"], self._on_camera_info, qos)
        self._subscribe(RegionOfInterest, topics["roi"], self._on_roi, qos)
        # a publisher matched and no frame: say why (funk_perception/ros/transport.py)
        self._stall = transport.StallWatch(topics["image"])
        self.create_timer(1.0, self._check_input)
        self.publishers_by_topic = {
            "keypoints": self.create_publisher(PointCloud2, "keypoints", 10),
            "keypoints/markers": self.create_publisher(MarkerArray, "keypoints/markers", 10),
            "keypoints/image": self.create_publisher(Image, "keypoints/image", 10),
            # one cloud per task the model knows, so tasks can change at run time (funk_perception/ros/messages.py)
            **{task_topic(t): self.create_publisher(PointCloud2, task_topic(t), 10) for t in self.detector.tasks},
        }
        # latched: a consumer that starts later still learns what the clouds' fields and indices mean
        latched = QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
        )
        self.pub_layout = self.create_publisher(String, LAYOUT_TOPIC, latched)
        self.publish_layout()
        # absolute, as diagnostic_updater publishes: aggregators listen on /diagnostics whatever the namespace
        self.pub_diagnostics = self.create_publisher(DiagnosticArray, diagnostics.DIAGNOSTICS_TOPIC, 1)
        self.create_timer(1.0, self.publish_diagnostics)

        self._running = True
        self._worker = threading.Thread(target=self._work, name="funk-inference", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"funk keypoints for {', '.join(self.tasks)} on {self.detector.device}; listening on "
            + ", ".join(f"{name} {topic}" for name, topic in topics.items())
            + f"; {PROFILE_CHOICE.describe() if PROFILE_CHOICE else 'Fast DDS profile as the environment sets it'}"
        )

    def _value(self, name: str) -> Any:
        return self.get_parameter(name).value

    # -- inputs: topic names and why frames may not arrive ---------------------------------------------

    def _input_topics(self) -> dict[str, str]:
        """The resolved input topics: ``image`` as remapped, the compressed stream and camera_info derived from
        it as image_transport does unless remapped themselves (funk_perception/ros/transport.py)."""
        return transport.input_topics(self.resolve_topic_name, self.compressed, self.use_depth)

    def _subscribe(self, kind: type, topic: str, callback: Any, qos: QoSProfile, watch_lost: bool = False) -> Any:
        """A subscription that warns, with the fix, on incompatible QoS and (``watch_lost``) on frames the
        middleware reports lost on the way."""
        events = SubscriptionEventCallbacks(
            incompatible_qos=functools.partial(self._on_incompatible_qos, topic),
            message_lost=functools.partial(self._on_lost, topic) if watch_lost else None,
        )
        try:
            return self.create_subscription(kind, topic, callback, qos, event_callbacks=events)
        except UnsupportedEventTypeError:  # an RMW without the message-lost event: the stall check remains
            events.message_lost = None
            return self.create_subscription(kind, topic, callback, qos, event_callbacks=events)

    def _on_incompatible_qos(self, topic: str, info: Any) -> None:
        self.counts["transport.incompatible_qos"] = int(info.total_count)
        policy = qos_policy_name_from_kind(info.last_policy_kind)
        self.get_logger().warning(transport.incompatible_qos_message(topic, policy, str(self._value("image_qos"))))

    def _on_lost(self, topic: str, info: Any) -> None:
        self.counts["transport.lost"] += int(info.total_count_change)
        self._log_once("transport", transport.lost_message(topic, self.counts["transport.lost"]))

    def _check_input(self) -> None:
        warning = self._stall.check(time.monotonic(), self._image_sub.get_publisher_count(), self.counts["received"])
        if warning is not None:
            self.get_logger().warning(warning)

    # -- parameters --------------------------------------------------------------------------------

    def _on_set_parameters(self, params: Sequence[Parameter]) -> SetParametersResult:
        for param in params:
            reason = check_value(param.name, param.value, self.detector.tasks)
            if reason is None and param.name == "roi" and self._image_size is not None:
                reason = outside_image(param.value, *self._image_size)  # refused now, not frame after frame
            if reason is not None:
                self.get_logger().warning(f"parameter refused, keeping the old value: {reason}")
                return SetParametersResult(successful=False, reason=reason)
        for param in params:
            if param.name == "tasks":
                self.tasks = parse_tasks(param.value, self.detector.tasks)
            elif param.name == "min_confidence":
                self.min_confidence = float(param.value)
            elif param.name == "roi":
                self._roi.set_parameter(param.value)  # clears a region from the roi topic, [0, 0, 0, 0] included
        if any(p.name in ("tasks", "min_confidence") for p in params):
            self.publish_layout(self.tasks, self.min_confidence)
        return SetParametersResult(successful=True)

    def publish_layout(self, tasks: Sequence[str] | None = None, min_confidence: float | None = None) -> None:
        """(Re)publish the latched ``keypoints/layout`` (funk_perception/ros/layout.py)."""
        self.pub_layout.publish(
            layout_message(
                make_message,
                self.tasks if tasks is None else tasks,
                self.min_confidence if min_confidence is None else min_confidence,
            )
        )

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
        # no header on RegionOfInterest: its age is counted from its arrival here (funk_perception/ros/roi.py)
        self._roi.set_topic((int(msg.x_offset), int(msg.y_offset), int(msg.width), int(msg.height)), time.monotonic())

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
            self.get_logger().warning(
                f"{text} [{kind}; counted in diagnostics, logged at most every {LOG_EVERY_S:g} s]"
            )

    def _process(self, msg: Any, received: float) -> None:
        depth = info = None
        times = self.detector.stage_times()  # this frame's stages (funk_perception/stages.py)
        times.add("queue", 1000.0 * (times.clock() - received))
        try:
            if self.use_depth:
                stamp, tolerance = stamp_ns(msg.header), float(self._value("depth_tolerance"))
                with times("sync"):
                    depth = self._depths.nearest(stamp, int(tolerance * 1e9), wait=tolerance)
                    info = self._infos.nearest(stamp, int(tolerance * 1e9)) or self._latest_info
            with times("decode"):
                frame = decode_frame(msg, self.compressed, depth, info, int(self._value("max_pixels")))
            height, width = frame.rgb.shape[:2]
            self._image_size = (width, height)
            roi = self._region(width, height)
            tasks, min_confidence = list(self.tasks), self.min_confidence
            found = frame_keypoints(self.detector, frame, tasks, roi, int(self._value("depth_window")), times)
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
        with times("messages"):
            outputs = frame_outputs(
                make_message,
                msg.header,
                frame,
                found,
                min_confidence,
                bool(self._value("publish_markers")),
                bool(self._value("publish_image")),
            )
        with times("publish"):
            for topic, out in outputs.items():
                self.publishers_by_topic[topic].publish(out)
        self.counts["processed"] += 1
        self._frequency.tick()
        latency_ms = (times.clock() - received) * 1000.0
        self.latencies_ms.append(latency_ms)
        self.stage_totals.add(times, latency_ms)

    def _region(self, width: int, height: int) -> tuple[int, int, int, int] | None:
        """This frame's region of interest (None: the whole image), from funk_perception/ros/roi.py.

        A ``roi`` parameter is checked against the image when it is set; one set before any frame came,
        or left behind when the image size changed, is refused here: reset to [0, 0, 0, 0] with an error
        in the log. A region from the ``roi`` topic that misses the image rejects the frame (``roi``)."""
        roi, source = self._roi.current(time.monotonic(), float(self._value("roi_timeout")))
        if source == ROI_PARAMETER and (reason := outside_image(roi, width, height, source)) is not None:
            self.get_logger().error(f"{reason}; the roi parameter is reset to [0, 0, 0, 0] (the whole image)")
            self.counts["roi.reset"] += 1
            self.set_parameters([Parameter("roi", value=[0, 0, 0, 0])])
            return None
        return parse_roi(roi, width, height, source)

    # -- diagnostics ---------------------------------------------------------------------------------

    def statistics(self) -> dict[str, float | int]:
        """Counters, latency percentiles (receive -> published, ms, last frames) and the summed time of each
        stage of the frames published (:class:`funk_perception.stages.StageTotals`) for ``diagnostics``."""
        lat = np.array(self.latencies_ms) if self.latencies_ms else np.array([np.nan])
        stats: dict[str, float | int] = {k: self.counts[k] for k in ("received", "processed", "dropped")}
        stats["rejected"] = sum(v for k, v in self.counts.items() if k.startswith("rejected."))
        stats.update({k: v for k, v in sorted(self.counts.items()) if "." in k})
        stats.update(
            latency_ms_p50=float(np.percentile(lat, 50)),
            latency_ms_p95=float(np.percentile(lat, 95)),
            latency_ms_max=float(np.max(lat)),
        )
        stats.update(self.stage_totals.values())
        return stats

    def publish_diagnostics(self) -> None:
        """One ``<node name>: keypoints`` status on /diagnostics (funk_perception/ros/diagnostics.py): the rate
        of published clouds against ``expected_rate``, merged with the counters."""
        stats = self.statistics()
        header = make_message("std_msgs/msg/Header", stamp=self.get_clock().now().to_msg())
        frequency = self._frequency.run(time.monotonic(), float(self._value("expected_rate")))
        status = diagnostics.keypoint_status(frequency, stats, int(stats["rejected"]))
        self.pub_diagnostics.publish(
            diagnostics.diagnostics_array(
                make_message, header, diagnostics.status_name(self.get_name()), self.hardware_id, status
            )
        )

    def destroy_node(self) -> None:
        self._running = False
        self._slot.close()
        self._worker.join(timeout=5.0)
        super().destroy_node()


def main(argv: Sequence[str] | None = None) -> int:
    """``ros2 run funk_perception keypoint_node [--ros-args ...]``; a bad model or parameter exits with 2
    after one ``error:`` line (rclpy's own parameter and argument errors included), no traceback."""
    global PROFILE_CHOICE
    node = None
    try:
        # before rclpy.init: Fast DDS reads its profile once per process, when the first participant is created
        PROFILE_CHOICE = transport.apply_profile()
        rclpy.init(args=list(sys.argv if argv is None else argv))
        node = KeypointNode()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (ValueError, OSError, ParameterException, RCLError) as exc:
        # RCLError: rcl refusing the arguments, e.g. a -p rule or a --params-file it cannot parse
        print(f"error: keypoint_node: {' '.join(str(exc).split()) or type(exc).__name__}", file=sys.stderr)
        return 2
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
