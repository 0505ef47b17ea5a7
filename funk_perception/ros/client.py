"""Drive a running keypoint_node from Python: start it, feed it frames, collect what it publishes.

The other side of the node, for the tests, the latency benchmark and the
sample-bag demo: :func:`start_node` runs the installed ``keypoint_node``
executable the way the launch file would (``--ros-args --params-file ...``),
and :class:`NodeClient` is an rclpy node that publishes image / depth /
camera_info / roi (typed messages or raw CDR bytes from a bag) and keeps the
node's outputs by stamp. Besides the node itself, this is the one module of
``funk_perception.ros`` that imports rclpy.
"""

from __future__ import annotations

import array
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.srv import SetParameters
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, RegionOfInterest
from std_msgs.msg import Header
from visualization_msgs.msg import MarkerArray

from funk_perception.ros.convert import stamp_ns
from funk_perception.ros.diagnostics import DIAGNOSTICS_TOPIC, STATUS_TASK

#: how long one spin_once waits for work: the most close() waits for the spin thread to notice
SPIN_POLL_S = 0.1


def ros_environment(domain_id: int) -> dict[str, str]:
    """The environment of an isolated ROS graph: this machine only, one DDS domain."""
    env = dict(os.environ)
    env.update(ROS_DOMAIN_ID=str(domain_id), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", OMP_NUM_THREADS="1")
    return env


def node_executable() -> list[str]:
    """``keypoint_node`` as installed (venv ``bin/`` after pip, ``lib/funk_perception`` after colcon)."""
    here = Path(sys.executable).parent
    for candidate in (here / "keypoint_node", here.parent / "lib" / "funk_perception" / "keypoint_node"):
        if candidate.exists():
            return [str(candidate)]
    found = shutil.which("keypoint_node")
    return [found] if found else [sys.executable, "-m", "funk_perception.ros.keypoint_node"]


def start_node(
    domain_id: int,
    params_file: str | Path | None = None,
    parameters: dict[str, Any] | None = None,
    remap: dict[str, str] | None = None,
    log: Path | None = None,
) -> subprocess.Popen:
    """Start keypoint_node in its own process on ``domain_id`` (stdout/stderr to ``log`` when given)."""
    args = node_executable() + ["--ros-args"]
    if params_file is not None:
        args += ["--params-file", str(params_file)]
    for name, value in (parameters or {}).items():
        args += ["-p", f"{name}:={_param_text(value)}"]
    for src, dst in (remap or {}).items():
        args += ["-r", f"{src}:={dst}"]
    out = open(log, "w") if log is not None else subprocess.DEVNULL  # noqa: SIM115  (owned by the child)
    return subprocess.Popen(args, env=ros_environment(domain_id), stdout=out, stderr=subprocess.STDOUT)


def _param_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_param_text(v) for v in value) + "]"
    return str(value)


def rss_mib(pid: int) -> float:
    """Resident memory of a process in MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise OSError(f"/proc/{pid}/status: no VmRSS line")


class NodeClient(Node):
    """Publishes inputs to the node and records its outputs; spins itself in a background thread."""

    def __init__(self, name: str = "funk_client", namespace: str = "", reliable: bool = True) -> None:
        super().__init__(name, namespace=namespace)
        qos = QoSProfile(
            depth=10, reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT
        )
        self.pub_image = self.create_publisher(Image, "image", qos)
        self.pub_compressed = self.create_publisher(CompressedImage, "image/compressed", qos)
        self.pub_depth = self.create_publisher(Image, "depth", qos)
        self.pub_info = self.create_publisher(CameraInfo, "camera_info", qos)
        self.pub_roi = self.create_publisher(RegionOfInterest, "roi", qos)
        self.keypoints: dict[int, PointCloud2] = {}
        self.arrival: dict[int, float] = {}
        self.markers: dict[int, MarkerArray] = {}
        self.images: dict[int, Image] = {}
        self.diagnostics: list[DiagnosticArray] = []
        self._cond = threading.Condition()
        self.create_subscription(PointCloud2, "keypoints", self._keep(self.keypoints, True), 50)
        self.create_subscription(MarkerArray, "keypoints/markers", self._keep(self.markers, header=_first_marker), 50)
        self.create_subscription(Image, "keypoints/image", self._keep(self.images), 50)
        # the node publishes on the absolute /diagnostics, as diagnostic_updater does (funk_perception/ros/diagnostics.py)
        self.create_subscription(DiagnosticArray, DIAGNOSTICS_TOPIC, self._on_diagnostics, 50)
        self._executor = SingleThreadedExecutor()
        self._executor.add_node(self)
        self._spinning = True
        self._thread = threading.Thread(target=self._spin, name="funk-client-spin", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while self._spinning and rclpy.ok():
            self._executor.spin_once(timeout_sec=SPIN_POLL_S)

    def _keep(self, store: dict[int, Any], timed: bool = False, header=lambda msg: msg.header):
        def callback(msg: Any) -> None:
            with self._cond:
                stamp = stamp_ns(header(msg))
                store[stamp] = msg
                if timed:
                    self.arrival[stamp] = time.monotonic()
                self._cond.notify_all()

        return callback

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        with self._cond:
            self.diagnostics.append(msg)
            self._cond.notify_all()

    def wait_connected(self, timeout: float = 30.0, image_publisher: Any = None) -> None:
        """Until the node subscribes to ``image`` (or to ``image_publisher``'s topic) and publishes
        ``keypoints`` (discovery is asynchronous)."""
        deadline = time.monotonic() + timeout
        inputs = [image_publisher] if image_publisher is not None else [self.pub_image, self.pub_compressed]
        while time.monotonic() < deadline:
            if any(p.get_subscription_count() for p in inputs) and self.count_publishers("keypoints"):
                return
            time.sleep(0.05)
        raise TimeoutError(f"keypoint_node did not appear on the graph within {timeout:g} s")

    def _wait(self, store: dict[int, Any], stamp: int, timeout: float, what: str) -> Any:
        with self._cond:
            if not self._cond.wait_for(lambda: stamp in store, timeout):
                raise TimeoutError(f"no {what} for stamp {stamp} within {timeout:g} s")
            return store[stamp]

    def wait_keypoints(self, stamp: int, timeout: float = 30.0) -> PointCloud2:
        """The ``keypoints`` cloud for the frame stamped ``stamp`` (ns)."""
        return self._wait(self.keypoints, stamp, timeout, "keypoints")

    def wait_image(self, stamp: int, timeout: float = 30.0) -> Image:
        """The annotated ``keypoints/image`` for the frame stamped ``stamp`` (ns)."""
        return self._wait(self.images, stamp, timeout, "keypoints/image")

    def wait_markers(self, stamp: int, timeout: float = 30.0) -> MarkerArray:
        """The ``keypoints/markers`` for the frame stamped ``stamp`` (ns)."""
        return self._wait(self.markers, stamp, timeout, "keypoints/markers")

    def exchange(self, publish, stamp: int, timeout: float = 30.0, retry: float = 2.0) -> PointCloud2:
        """Call ``publish()`` (which sends the frame stamped ``stamp``) until its keypoints come back; the
        first frames after discovery can be lost on a best-effort subscription."""
        deadline = time.monotonic() + timeout
        while True:
            publish()
            try:
                return self.wait_keypoints(stamp, min(retry, max(0.0, deadline - time.monotonic())))
            except TimeoutError:
                if time.monotonic() >= deadline:
                    raise

    def wait_diagnostics(self, condition, timeout: float = 30.0) -> dict[str, str]:
        """The first ``keypoints`` status (as {key: value}) published on /diagnostics after now that satisfies
        ``condition``; statuses of other nodes there are skipped."""
        start = len(self.diagnostics)

        def found() -> dict[str, str] | None:
            for msg in self.diagnostics[start:]:
                for status in msg.status:
                    if not status.name.endswith(f": {STATUS_TASK}"):
                        continue
                    values = {kv.key: kv.value for kv in status.values}
                    if condition(values):
                        return values
            return None

        with self._cond:
            if not self._cond.wait_for(lambda: found() is not None, timeout):
                raise TimeoutError(f"no diagnostics satisfied the condition within {timeout:g} s")
            return found()

    def set_parameters(self, node: str, values: dict[str, Any], timeout: float = 10.0) -> list[tuple[bool, str]]:
        """Set parameters of ``node`` (its full name) through its service: [(successful, reason)] per value."""
        service = self.create_client(SetParameters, f"{node}/set_parameters")
        try:
            if not service.wait_for_service(timeout_sec=timeout):
                raise TimeoutError(f"{node}/set_parameters did not appear within {timeout:g} s")
            request = SetParameters.Request(
                parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in values.items()]
            )
            future = service.call_async(request)
            deadline = time.monotonic() + timeout
            while not future.done():
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{node}/set_parameters did not answer within {timeout:g} s")
                time.sleep(0.01)
            return [(r.successful, r.reason) for r in future.result().results]
        finally:
            self.destroy_client(service)

    def close(self) -> None:
        """Stop spinning, then shut the executor down and destroy the node with nothing spinning.

        ``Executor.shutdown()`` from another thread while ``spin()`` is inside
        ``wait_for_ready_callbacks`` races its cleanup (ros2/rclpy#968): on this VM the spin
        thread was caught looping with the GIL held, which starved the main thread for minutes
        (py-spy, 2026-12-01). Waiting for the thread to leave ``spin_once`` first avoids the race.
        """
        self._spinning = False
        self._thread.join(timeout=10.0)
        if self._thread.is_alive():
            raise RuntimeError("NodeClient.close: the spin thread did not stop within 10 s")
        self._executor.shutdown()
        self.destroy_node()


def _first_marker(msg: MarkerArray) -> Any:
    return msg.markers[0].header  # the node always sends a DELETEALL first, stamped like the frame


def header_fields(stamp: int, frame_id: str) -> dict[str, Any]:
    """std_msgs/Header keyword arguments for ``stamp`` (ns)."""
    return {"header": Header(stamp=Time(sec=stamp // 1_000_000_000, nanosec=stamp % 1_000_000_000), frame_id=frame_id)}


def image_msg(
    pixels: np.ndarray,
    encoding: str,
    stamp: int,
    frame_id: str = "camera_optical",
    step: int | None = None,
    big_endian: bool = False,
) -> Image:
    """A sensor_msgs/Image of ``pixels`` (rows padded to ``step`` bytes when given)."""
    height, width = pixels.shape[:2]
    row = np.ascontiguousarray(pixels).reshape(height, -1).view(np.uint8)
    step = row.shape[1] if step is None else step
    padded = np.zeros((height, step), np.uint8)
    padded[:, : row.shape[1]] = row
    return Image(
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=int(big_endian),
        step=step,
        data=array.array("B", padded.tobytes()),
        **header_fields(stamp, frame_id),
    )


def camera_info_msg(k: np.ndarray, width: int, height: int, stamp: int, frame_id: str = "camera_optical") -> CameraInfo:
    """A sensor_msgs/CameraInfo with intrinsics ``k`` (ROS pixel-centre convention) and no distortion."""
    p = np.zeros((3, 4))
    p[:, :3] = k
    return CameraInfo(
        width=width,
        height=height,
        distortion_model="plumb_bob",
        d=[0.0] * 5,
        k=k.reshape(-1).tolist(),
        r=np.eye(3).reshape(-1).tolist(),
        p=p.reshape(-1).tolist(),
        **header_fields(stamp, frame_id),
    )


def init(domain_id: int, args: Sequence[str] | None = None) -> None:
    """``rclpy.init`` on an isolated graph (sets ROS_DOMAIN_ID and localhost discovery for this process)."""
    os.environ.update(ros_environment(domain_id))
    rclpy.init(args=args)
