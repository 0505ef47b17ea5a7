"""Do camera-sized frames arrive? Frames sent by a camera in another process vs frames the subscriber got.

    python benchmarks/bench_transport.py --subscriber node [--sizes 640x480 1280x720] [--rate 10] [--frames 50]
        [--camera-profiles shipped none] [--subscriber-profiles shipped none]
    python benchmarks/bench_transport.py --subscriber probe --camera-profiles none shm:2 shm:8 shm:32 \\
        --subscriber-profiles none [--discovery-range LOCALHOST|SUBNET|default] [--name transport-probe]

The camera is benchmarks/camera_publisher.py (rgb8 frames of a real photo,
best-effort depth 1 or reliable depth 10), started in its own process with
only a Fast DDS profile (or none) in its environment. The subscriber is either
the installed ``keypoint_node`` with its default parameters except
``tasks:=[pour]`` (``--subscriber node``: frames answered, and the node's own
``received`` / ``dropped`` counters, so transport loss and the node's
latest-frame drops are told apart) or a trivial best-effort subscriber in
another process (``--subscriber probe``: transport alone).

Profiles, for ``--camera-profiles`` and ``--subscriber-profiles``:

- ``shipped``: config/fastdds.xml. For the node this means its default: the
  environment holds no profile and the node applies the shipped one itself.
- ``none``: Fast DDS's defaults. For the node: ``FASTRTPS_DEFAULT_PROFILES_FILE``
  set empty, which the node reads as "the user chose" and keeps.
- ``shm:<MB>``: config/fastdds.xml with its shared-memory segment set to MB MiB.
- ``udpbuf:<bytes>``: config/fastdds.xml with its UDPv4 receive buffer set to ``bytes`` (0: the OS default).
- ``udp_only[:<bytes>]``: config/fastdds_udp_only.xml, UDPv4 alone with a 4 MiB (or ``bytes``)
  receive buffer, so a publisher cannot use shared memory towards it. The kernel caps the buffer at
  ``net.core.rmem_max`` (4 MiB on the machine measured; 208 KiB on a stock Ubuntu).

Writes benchmarks/results/<name>.json and <name>.md (date, load average, command).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import report_header, write_report  # noqa: E402

SHIPPED_PROFILE = ROOT / "config" / "fastdds.xml"
PUBLISHER = ROOT / "benchmarks" / "camera_publisher.py"
RESULTS_DIR = ROOT / "benchmarks" / "results"
TOPIC = "/camera/color/image_raw"
PROFILE_VARIABLE = "FASTRTPS_DEFAULT_PROFILES_FILE"
NS = {"f": "http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles"}

UDP_ONLY_PROFILE = ROOT / "config" / "fastdds_udp_only.xml"


def _one(tree: ET.ElementTree, tag: str, source: Path) -> ET.Element:
    found = tree.getroot().findall(f".//f:{tag}", NS)
    if len(found) != 1:
        raise ValueError(f"{source}: expected one <{tag}>, found {len(found)}")
    return found[0]


def variant(
    segment_mb: float | None = None, udp_receive_buffer: int | None = None, source: Path = SHIPPED_PROFILE
) -> str:
    """A shipped profile (``source``) with its SHM segment_size set to ``segment_mb`` MiB and / or its
    UDPv4 receiveBufferSize set to ``udp_receive_buffer`` bytes (0: left out, the OS default)."""
    ET.register_namespace("", NS["f"])
    tree = ET.parse(source)
    if segment_mb is not None:
        _one(tree, "segment_size", source).text = str(int(segment_mb * 1024 * 1024))
    if udp_receive_buffer is not None:
        element = _one(tree, "receiveBufferSize", source)
        if udp_receive_buffer:
            element.text = str(udp_receive_buffer)
        else:
            next(p for p in tree.getroot().iter() if element in list(p)).remove(element)
    return ET.tostring(tree.getroot(), encoding="unicode", xml_declaration=True)


def profile_env(token: str, folder: Path, for_node: bool) -> dict[str, str]:
    """The environment entries that give a process the profile named by ``token`` (see the module doc)."""
    if token == "shipped":
        return {} if for_node else {PROFILE_VARIABLE: str(SHIPPED_PROFILE)}
    if token == "none":
        return {PROFILE_VARIABLE: ""} if for_node else {}
    if token == "udp_only" or token.startswith("udp_only:"):
        text = variant(udp_receive_buffer=int(token.partition(":")[2] or 0) or None, source=UDP_ONLY_PROFILE)
    elif token.startswith("shm:"):
        text = variant(segment_mb=float(token[4:]))
    elif token.startswith("udpbuf:"):
        text = variant(udp_receive_buffer=int(token[7:]))
    else:
        raise ValueError(f"profile {token!r}: expected shipped, none, udp_only[:<bytes>], shm:<MB> or udpbuf:<bytes>")
    path = folder / f"{token.replace(':', '_')}.xml"
    path.write_text(text)
    return {PROFILE_VARIABLE: str(path)}


def child_env(domain: int, discovery_range: str, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (PROFILE_VARIABLE, "FASTDDS_DEFAULT_PROFILES_FILE")}
    env.update(ROS_DOMAIN_ID=str(domain), OMP_NUM_THREADS="1")
    env.pop("ROS_AUTOMATIC_DISCOVERY_RANGE", None)
    if discovery_range != "default":  # default: unset, as on a user's machine (rcl's default range)
        env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = discovery_range
    env.update(extra)
    return env


def publish(env: dict[str, str], size: str, reliability: str, rate: float, frames: int, base: int) -> list[int]:
    """Run the camera publisher to completion; the stamps it sent."""
    cmd = [
        sys.executable,
        str(PUBLISHER),
        "--topic",
        TOPIC,
        "--size",
        size,
        "--reliability",
        reliability,
        "--rate",
        f"{rate:g}",
        "--frames",
        str(frames),
        "--stamp-base",
        str(base),
        "--wait",
        "120",
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"{PUBLISHER.name} exited {done.returncode}: {done.stderr[-1500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])["sent"]


# -- the trivial subscriber, run as `bench_transport.py --probe-subscriber` in its own process --------------------


def probe_subscriber() -> int:
    """Count the stamps received on TOPIC (best effort, depth 5) until SIGINT; print them as JSON."""
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("transport_probe")
    got: list[int] = []
    node.create_subscription(
        Image, TOPIC, lambda m: got.append(m.header.stamp.sec * 10**9 + m.header.stamp.nanosec), qos_profile_sensor_data
    )
    try:
        while rclpy.ok():
            rclpy.spin_once(node, timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):  # SIGINT: rclpy's handler shuts the context down
        pass
    print(json.dumps({"received": got}), flush=True)
    return 0


def run_probe(
    env_sub: dict[str, str], env_pub: dict[str, str], size: str, reliability: str, rate: float, frames: int, base: int
) -> dict[str, Any]:
    probe = subprocess.Popen(
        [sys.executable, __file__, "--probe-subscriber"],
        env=env_sub,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        sent = publish(env_pub, size, reliability, rate, frames, base)
        time.sleep(1.0)
    finally:
        probe.send_signal(signal.SIGINT)
        out, _ = probe.communicate(timeout=60)
    received = set(json.loads(out.strip().splitlines()[-1])["received"])
    return {"sent": len(sent), "received": len(received & set(sent))}


# -- the node as subscriber ----------------------------------------------------------------------------------


class Observer:
    """keypoints stamps and the node's diagnostics counters, from this process (small messages only)."""

    def __init__(self) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from sensor_msgs.msg import PointCloud2

        self.node = rclpy.create_node("transport_observer")
        self.answered: set[int] = set()
        self.counters: dict[str, int] = {}
        self.updates = 0
        self.lock = threading.Lock()
        self.node.create_subscription(PointCloud2, "/keypoints", self._on_cloud, 50)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 50)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.spinning = True
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self) -> None:
        while self.spinning:
            self.executor.spin_once(timeout_sec=0.1)

    def _on_cloud(self, msg: Any) -> None:
        with self.lock:
            self.answered.add(msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec)

    def _on_diagnostics(self, msg: Any) -> None:
        for status in msg.status:
            values = {kv.key: kv.value for kv in status.values}
            if "received" in values:
                with self.lock:
                    self.counters = {k: int(float(values.get(k, 0))) for k in ("received", "processed", "dropped")}
                    self.updates += 1

    def fresh_counters(self, timeout: float = 30.0) -> dict[str, int]:
        """Counters from a diagnostics message published after this call."""
        with self.lock:
            start = self.updates
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if self.updates > start + 1:  # one full period after the call
                    return dict(self.counters)
            time.sleep(0.05)
        raise TimeoutError(f"no diagnostics from keypoint_node within {timeout:g} s")

    def wait_node(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.node.count_subscribers(TOPIC) and self.node.count_publishers("/keypoints"):
                self.fresh_counters(timeout=max(1.0, deadline - time.monotonic()))
                return
            time.sleep(0.1)
        raise TimeoutError(f"keypoint_node did not subscribe to {TOPIC} within {timeout:g} s")

    def close(self) -> None:
        self.spinning = False
        self.thread.join(5.0)
        self.executor.shutdown()
        self.node.destroy_node()


def start_node(env: dict[str, str], log: Path) -> subprocess.Popen:
    from funk_perception.ros.client import node_executable

    cmd = node_executable() + ["--ros-args", "-p", "tasks:=[pour]", "-r", f"image:={TOPIC}"]
    return subprocess.Popen(cmd, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)  # noqa: SIM115


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(30)


def run_node_runs(
    observer: Observer, env_pub: dict[str, str], size: str, reliability: str, rate: float, frames: int, base: int
) -> dict[str, Any]:
    before = observer.fresh_counters()
    sent = publish(env_pub, size, reliability, rate, frames, base)
    time.sleep(2.0)  # the last answers
    after = observer.fresh_counters()
    with observer.lock:
        answered = len(observer.answered & set(sent))
    delta = {k: after[k] - before[k] for k in after}
    return {"sent": len(sent), "received": delta["received"], "answered": answered, "node_dropped": delta["dropped"]}


# -- driver ----------------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    import rclpy

    domain = 60 + os.getpid() % 60
    os.environ.pop(PROFILE_VARIABLE, None)
    os.environ.update(child_env(domain, args.discovery_range, {}))
    rows: list[dict[str, Any]] = []
    base = 1_000_000_000
    log_dir = ROOT / "results" / "bench_transport"
    log_dir.mkdir(parents=True, exist_ok=True)
    load_before = list(os.getloadavg())
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.subscriber == "node":
            rclpy.init()
            observer = Observer()
        try:
            for sub_token in args.subscriber_profiles:
                env_sub = child_env(
                    domain, args.discovery_range, profile_env(sub_token, folder, for_node=args.subscriber == "node")
                )
                node = None
                if args.subscriber == "node":
                    node = start_node(env_sub, log_dir / f"node_{sub_token.replace(':', '_')}.log")
                    observer.wait_node(300.0)
                try:
                    for cam_token in args.camera_profiles:
                        env_pub = child_env(domain, args.discovery_range, profile_env(cam_token, folder, False))
                        for size in args.sizes:
                            for reliability in args.reliability:
                                base += 1_000_000_000_000
                                load = os.getloadavg()[0]
                                if args.subscriber == "node":
                                    row = run_node_runs(
                                        observer, env_pub, size, reliability, args.rate, args.frames, base
                                    )
                                else:
                                    row = run_probe(env_sub, env_pub, size, reliability, args.rate, args.frames, base)
                                row.update(
                                    camera_profile=cam_token,
                                    subscriber_profile=sub_token,
                                    size=size,
                                    reliability=reliability,
                                    load_1min=round(load, 2),
                                )
                                rows.append(row)
                                print(json.dumps(row), flush=True)
                finally:
                    if node is not None:
                        stop(node)
        finally:
            if args.subscriber == "node":
                observer.close()
                rclpy.try_shutdown()
    return {
        **report_header(),
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "load_average_start": load_before,
            "load_average_end": list(os.getloadavg()),
        },
        "subscriber": args.subscriber,
        "discovery_range": args.discovery_range,
        "rate_hz": args.rate,
        "frames": args.frames,
        "rows": rows,
    }


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    node = results["subscriber"] == "node"
    what = (
        "the installed keypoint_node, default parameters except tasks:=[pour]"
        if node
        else "a trivial best-effort subscriber (depth 5) in its own process"
    )
    lines = [
        f"# Camera frames over Fast DDS: {results['subscriber']}",
        "",
        f"{results['date']}, `{results['command']}`.",
        f"Machine: {m['platform']}, {m['cpu_count']} CPUs; load average (1, 5, 15 min) "
        f"{[round(x, 1) for x in m['load_average_start']]} at the start, "
        f"{[round(x, 1) for x in m['load_average_end']]} at the end (other jobs shared the cores).",
        f"Camera: benchmarks/camera_publisher.py in its own process, rgb8 at {results['rate_hz']:g} Hz, "
        f"{results['frames']} frames per row. Subscriber: {what}. ROS_AUTOMATIC_DISCOVERY_RANGE="
        f"{results['discovery_range']}.",
        "",
    ]
    if node:
        lines += [
            "| camera profile | node profile | size | camera QoS | sent | received by the node | answered | "
            "dropped by the node (latest-frame policy) | load (1 min) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in results["rows"]:
            lines.append(
                f"| {r['camera_profile']} | {r['subscriber_profile']} | {r['size']} | {r['reliability']} | "
                f"{r['sent']} | {r['received']} ({100 * r['received'] / r['sent']:.0f} %) | {r['answered']} "
                f"({100 * r['answered'] / r['sent']:.0f} %) | {r['node_dropped']} | {r['load_1min']} |"
            )
    else:
        lines += [
            "| camera profile | subscriber profile | size | camera QoS | sent | received | load (1 min) |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in results["rows"]:
            lines.append(
                f"| {r['camera_profile']} | {r['subscriber_profile']} | {r['size']} | {r['reliability']} | "
                f"{r['sent']} | {r['received']} ({100 * r['received'] / r['sent']:.0f} %) | "
                f"{r['load_1min']} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv == ["--probe-subscriber"]:
        return probe_subscriber()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscriber", choices=("node", "probe"), default="node")
    parser.add_argument("--sizes", nargs="+", default=["640x480", "1280x720"])
    parser.add_argument(
        "--reliability", nargs="+", choices=("best_effort", "reliable"), default=["best_effort", "reliable"]
    )
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--camera-profiles", nargs="+", default=["shipped", "none"])
    parser.add_argument("--subscriber-profiles", nargs="+", default=["shipped", "none"])
    parser.add_argument(
        "--discovery-range",
        choices=("LOCALHOST", "SUBNET", "default"),
        default="LOCALHOST",
        help="ROS_AUTOMATIC_DISCOVERY_RANGE of every process (default: unset)",
    )
    parser.add_argument("--name", default=None, help="results file stem (default transport-<subscriber>)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    results = run(args)
    name = args.name or f"transport-{args.subscriber}"
    return write_report(args.out, name, results, markdown, indent=1)


if __name__ == "__main__":
    sys.exit(main())
