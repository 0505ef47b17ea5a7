"""keypoint_node end to end: latency (publish -> keypoints received) and the highest rate it keeps up with.

    python benchmarks/bench_ros.py [--frames 20] [--rates 2 5 10 15 30] [--duration 6] [--threads 0]

Runs the installed ``keypoint_node`` (default parameters: markers and the
annotated image published too) on an isolated localhost ROS graph and feeds it
640 x 480 rgb8 frames (a shipped sample, resized) from a client node, for 1 task
and for all 10. Latency: ``--frames`` frames one at a time, each sent once the
previous answer came back; p50/p95 in ms. Sustained rate: frames at each of
``--rates`` Hz for ``--duration`` s; a rate is sustained when at least 90 % of
the frames are answered and the p95 latency of the second half is within 1.5x
that of the first half (no backlog building up; the node drops what it cannot
take). GPU rows come when CUDA is available (``--device auto``). Writes
benchmarks/results/ros.json and ros.md (machine, load average, date, command).
"""

from __future__ import annotations

import torch  # noqa: F401  isort: skip  (first, before anything that could create a GL context)

import argparse
import datetime as _dt
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import rclpy

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from funk_perception.atomic import write_json_atomic, write_text_atomic  # noqa: E402
from funk_perception.ros import client  # noqa: E402
from funk_perception.tasks import TASKS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "benchmarks" / "results"
SAMPLE = ROOT / "samples" / "synth" / "images" / "watering_can" / "watering_can_0000_v0.jpg"
TARGETS = {"cpu": {"tasks": 1, "rate_hz": 10, "p95_ms": 150}, "cuda": {"tasks": 10, "rate_hz": 30, "p95_ms": 15}}


def latency(probe: client.NodeClient, msg, frames: int, base: int) -> list[float]:
    out = []
    for n in range(frames):
        stamp = base + n * 1_000_000
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
        start = time.monotonic()
        probe.pub_image.publish(msg)
        probe.wait_keypoints(stamp, 60.0)
        out.append(1000.0 * (probe.arrival[stamp] - start))
    return out


def flood(probe: client.NodeClient, msg, rate: float, duration: float, base: int) -> dict:
    sent: dict[int, float] = {}
    start = time.monotonic()
    n = 0
    while time.monotonic() - start < duration:
        stamp = base + n * 1_000_000
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
        sent[stamp] = time.monotonic()
        probe.pub_image.publish(msg)
        n += 1
        time.sleep(max(0.0, start + n / rate - time.monotonic()))
    time.sleep(2.0)  # let the last answers arrive
    stamps = sorted(sent)
    answered = [s for s in stamps if s in probe.arrival]
    lat = {s: 1000.0 * (probe.arrival[s] - sent[s]) for s in answered}
    half = stamps[len(stamps) // 2]
    first = [v for s, v in lat.items() if s < half] or [float("nan")]
    second = [v for s, v in lat.items() if s >= half] or [float("nan")]
    p95_first, p95_second = float(np.percentile(first, 95)), float(np.percentile(second, 95))
    fraction = len(answered) / len(stamps)
    return {
        "rate_hz": rate, "sent": len(stamps), "answered": len(answered), "answered_fraction": fraction,
        "p95_ms_first_half": p95_first, "p95_ms_second_half": p95_second,
        "sustained": bool(fraction >= 0.9 and p95_second <= 1.5 * p95_first),
    }


def bench_setting(args: argparse.Namespace, device: str, tasks: list[str], domain: int, log: Path) -> dict:
    parameters = {"tasks": tasks, "device": device, "threads": args.threads, "image_qos": "reliable"}
    proc = client.start_node(domain, ROOT / "config" / "keypoints.yaml", parameters, log=log)
    probe = client.NodeClient()
    try:
        probe.wait_connected(300.0)
        rgb = cv2.resize(cv2.cvtColor(cv2.imread(str(SAMPLE)), cv2.COLOR_BGR2RGB), (640, 480))
        msg = client.image_msg(rgb, "rgb8", 0)
        probe.exchange(lambda: probe.pub_image.publish(msg), 0, timeout=120.0)  # warm, and discovery done
        lat = latency(probe, msg, args.frames, 1_000_000_000)
        floods = [flood(probe, msg, rate, args.duration, (10 + i) * 1_000_000_000) for i, rate in enumerate(args.rates)]
        stats = probe.wait_diagnostics(lambda v: True, 60.0)
    finally:
        probe.close()
        proc.terminate()
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)
    sustained = [f["rate_hz"] for f in floods if f["sustained"]]
    return {
        "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
        "device_kind": device, "threads": args.threads, "tasks": len(tasks), "image": "640x480 rgb8",
        "p50_ms": float(np.percentile(lat, 50)), "p95_ms": float(np.percentile(lat, 95)), "frames": len(lat),
        "max_sustained_hz": max(sustained) if sustained else 0.0, "floods": floods,
        "node_dropped": int(stats.get("dropped", 0)), "node_received": int(stats.get("received", 0)),
    }


def run(args: argparse.Namespace) -> dict:
    domain = 120 + os.getpid() % 80
    client.init(domain)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() and not args.cpu_only else [])
    rows = []
    log_dir = ROOT / "results" / "bench_ros"
    log_dir.mkdir(parents=True, exist_ok=True)
    try:
        for device in devices:
            for tasks in ([TASKS[0]], list(TASKS)):
                row = bench_setting(args, device, tasks, domain, log_dir / f"node_{device}_{len(tasks)}.log")
                rows.append(row)
                print(f"{row['device']} {row['tasks']} task(s): p50 {row['p50_ms']:.0f} ms, p95 {row['p95_ms']:.0f} ms, "
                      f"sustained {row['max_sustained_hz']:g} Hz", flush=True)
    finally:
        rclpy.try_shutdown()
    return {
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count(), "torch": torch.__version__, "load_average": list(os.getloadavg())},
        "targets": TARGETS, "rates_hz": args.rates, "duration_s": args.duration, "rows": rows,
    }


def markdown(results: dict) -> str:
    m = results["machine"]
    lines = [
        "# keypoint_node end to end",
        "",
        f"{results['date']}, `{results['command']}`.",
        f"Machine: {m['processor']}, {m['cpu_count']} CPUs, torch {m['torch']}, load average at the end "
        f"{[round(x, 1) for x in m['load_average']]} (other jobs shared the cores).",
        "Latency: publish -> `keypoints` received by the client, 640 x 480 rgb8, one frame at a time, "
        "default outputs (cloud, markers, annotated image). Sustained: >= 90 % answered and no growing p95 "
        f"over {results['duration_s']:g} s at each of {results['rates_hz']} Hz. Targets: CPU 1 task >= 10 Hz "
        "with p95 < 150 ms; GPU 10 tasks 30 Hz with p95 < 15 ms.",
        "",
        "| device | threads | tasks | p50 ms | p95 ms | max sustained Hz | answered at each rate |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results["rows"]:
        answered = ", ".join(f"{f['rate_hz']:g} Hz: {100 * f['answered_fraction']:.0f} %" for f in r["floods"])
        lines.append(f"| {r['device']} | {r['threads'] or 'default'} | {r['tasks']} | {r['p50_ms']:.0f} | "
                     f"{r['p95_ms']:.0f} | {r['max_sustained_hz']:g} | {answered} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--rates", type=float, nargs="+", default=[2.0, 5.0, 10.0, 15.0, 30.0])
    parser.add_argument("--duration", type=float, default=6.0)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads of the node (0: torch default)")
    parser.add_argument("--cpu-only", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args()
    results = run(args)
    write_json_atomic(args.out / "ros.json", results, indent=1)
    write_text_atomic(args.out / "ros.md", markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
