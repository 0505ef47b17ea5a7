"""keypoint_node end to end: latency (publish -> keypoints received) and the highest rate it keeps up with.

    python benchmarks/bench_ros.py [--sizes 640x480 1280x720] [--frames 20] [--rates 2 5 10 15 30]
        [--duration 6] [--threads 0] [--backends torch onnxruntime:int8] [--task-counts 1 10] [--name ros]

Runs the installed ``keypoint_node`` with its default parameters (best-effort
``sensor_data`` input, markers and the annotated image published too; only
``tasks``, ``device``, ``threads`` and, for each of ``--backends``, ``backend``
and ``precision`` set) on an isolated localhost ROS graph
and feeds it rgb8 frames of each of ``--sizes`` (a shipped sample, resized)
from a client node, for 1 task and for all 10. The client is the camera here,
so it runs with config/fastdds.xml as docs/ROS.md tells a camera driver to
(``FASTRTPS_DEFAULT_PROFILES_FILE``, unless already set); the node applies the
profile to itself. Latency: ``--frames`` frames one at a time, each sent once
the previous answer came back (or 10 s passed: counted unanswered); p50/p95 in
ms. Sustained rate: frames at each of ``--rates`` Hz for ``--duration`` s; the
fraction answered and the latency percentiles of those answered; a rate is
sustained when at least 90 % of the frames are answered and the p95 latency of
the second half is within 1.5x that of the first half (no backlog building up;
the node drops what it cannot take, counted as ``dropped`` in its
diagnostics). GPU rows come when CUDA is available (``--device auto``; the
torch backend only: ONNX Runtime runs on the CPU).
Profile: the node's mean milliseconds per stage over the one-at-a-time frames,
from the stage sums it publishes in its diagnostics (funk_perception/stages.py:
queue, decode, letterbox, trunk and modular network or the one ONNX encoder
graph, locate, postprocess, messages, publish; "other" is the rest of the
node's receive -> published time), beside the client's latency, which adds the
transport both ways.
Writes benchmarks/results/NAME.json and NAME.md (``--name``, default ``ros``;
machine, load average, date, command).
"""

from __future__ import annotations

import torch  # noqa: F401  isort: skip  (first, before anything that could create a GL context)

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import rclpy

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import machine, model_record, report_header, write_report  # noqa: E402

from funk_perception.onnx_backend import check_backend  # noqa: E402
from funk_perception.ros import client, transport  # noqa: E402
from funk_perception.shipped import default_checkpoint  # noqa: E402
from funk_perception.stages import STAGES, stage_means  # noqa: E402
from funk_perception.tasks import TASKS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "benchmarks" / "results"
SAMPLE = ROOT / "samples" / "synth" / "images" / "watering_can" / "watering_can_0000_v0.jpg"
TARGETS = {"cpu": {"tasks": 1, "rate_hz": 10, "p95_ms": 150}, "cuda": {"tasks": 10, "rate_hz": 30, "p95_ms": 15}}


def latency(probe: client.NodeClient, msg, frames: int, base: int) -> tuple[list[float], int]:
    """(latencies in ms of the frames answered, frames sent), one frame at a time."""
    out = []
    for n in range(frames):
        stamp = base + n * 1_000_000
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
        start = time.monotonic()
        probe.pub_image.publish(msg)
        try:
            probe.wait_keypoints(stamp, 10.0)
        except TimeoutError:  # lost (best effort) or refused: counted as unanswered, not waited for
            continue
        out.append(1000.0 * (probe.arrival[stamp] - start))
    return out, frames


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


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
        "rate_hz": rate,
        "sent": len(stamps),
        "answered": len(answered),
        "answered_fraction": fraction,
        "p50_ms": _percentile(list(lat.values()), 50),
        "p95_ms": _percentile(list(lat.values()), 95),
        "p99_ms": _percentile(list(lat.values()), 99),
        "p95_ms_first_half": p95_first,
        "p95_ms_second_half": p95_second,
        "sustained": bool(fraction >= 0.9 and p95_second <= 1.5 * p95_first),
    }


def bench_size(args: argparse.Namespace, probe: client.NodeClient, size: tuple[int, int], base: int) -> dict:
    """Latency and floods at one frame size, on a running node; the node's counters over this size alone."""
    rgb = cv2.resize(cv2.cvtColor(cv2.imread(str(SAMPLE)), cv2.COLOR_BGR2RGB), size)
    msg = client.image_msg(rgb, "rgb8", base)
    probe.exchange(lambda: probe.pub_image.publish(msg), base, timeout=120.0)  # warm, and discovery done
    before = probe.wait_diagnostics(lambda v: True, 60.0)
    lat, sent = latency(probe, msg, args.frames, base + 1_000_000_000)
    # the node's stage sums once every answered frame is in them (funk_perception/stages.py)
    done = int(before.get("stage_frames", 0)) + len(lat)
    profiled = probe.wait_diagnostics(lambda v: int(v.get("stage_frames", 0)) >= done, 60.0)
    profile_frames, profile = stage_means(before, profiled)
    floods = [
        flood(probe, msg, rate, args.duration, base + (10 + i) * 1_000_000_000) for i, rate in enumerate(args.rates)
    ]
    after = probe.wait_diagnostics(lambda v: True, 60.0)
    sustained = [f["rate_hz"] for f in floods if f["sustained"]]
    return {
        "image": f"{size[0]}x{size[1]} rgb8",
        "p50_ms": _percentile(lat, 50),
        "p95_ms": _percentile(lat, 95),
        "p99_ms": _percentile(lat, 99),
        "mean_ms": float(np.mean(lat)) if lat else float("nan"),
        "frames": sent,
        "answered": len(lat),
        "max_sustained_hz": max(sustained) if sustained else 0.0,
        "profile_frames": profile_frames,
        "profile_ms": profile,
        "floods": floods,
        **{
            f"node_{k}": int(after.get(k, 0)) - int(before.get(k, 0)) for k in ("received", "dropped", "transport.lost")
        },
    }


def bench_setting(
    args: argparse.Namespace, device: str, backend: str, tasks: list[str], domain: int, log: Path
) -> list[dict]:
    name, _, precision = backend.partition(":")
    parameters = {"tasks": tasks, "device": device, "threads": args.threads}  # the rest: the node's defaults
    if name != "torch":
        parameters.update(backend=name, precision=precision or "fp32")
    proc = client.start_node(domain, None, parameters, log=log)
    probe = client.NodeClient()
    rows = []
    try:
        probe.wait_connected(300.0)
        for n, size in enumerate(args.sizes):
            row = bench_size(args, probe, size, (n + 1) * 1_000_000_000_000)
            row.update(
                device=torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
                device_kind=device,
                backend=name,
                precision=precision or "fp32",
                threads=args.threads,
                tasks=len(tasks),
                load_1min=round(os.getloadavg()[0], 2),
            )
            rows.append(row)
            print(
                f"{row['device']} {backend} {row['tasks']} task(s) {row['image']}: p50 {row['p50_ms']:.0f} ms, "
                f"p95 {row['p95_ms']:.0f} ms, sustained {row['max_sustained_hz']:g} Hz, load {row['load_1min']}",
                flush=True,
            )
    finally:
        probe.close()
        proc.terminate()
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)
    return rows


def run(args: argparse.Namespace) -> dict:
    domain = 120 + os.getpid() % 80
    # this process is the camera: it gets the profile a camera driver is told to use (docs/ROS.md)
    os.environ.setdefault(transport.PROFILE_VARIABLE, str(transport.profile_path()))
    camera_profile = os.environ[transport.PROFILE_VARIABLE]
    client.init(domain)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() and not args.cpu_only else [])
    rows = []
    model = default_checkpoint()
    log_dir = ROOT / "results" / "bench_ros"
    log_dir.mkdir(parents=True, exist_ok=True)
    try:
        for device in devices:
            for backend in args.backends if device == "cpu" else ["torch"]:
                for count in args.task_counts:
                    tasks = list(TASKS[:count])
                    log = log_dir / f"node_{device}_{backend.replace(':', '_')}_{count}.log"
                    rows += bench_setting(args, device, backend, tasks, domain, log)
    finally:
        rclpy.try_shutdown()
    return {
        **report_header(),
        "machine": machine(torch=torch.__version__),
        "targets": TARGETS,
        "rates_hz": args.rates,
        "duration_s": args.duration,
        "rows": rows,
        "node_parameters": "defaults except tasks, device, threads (and backend, precision)",
        "camera_profile": camera_profile,
        # the node loads the shipped default: name the file, so figures can be matched to the model they measured
        **model_record(model),
    }


def markdown(results: dict) -> str:
    m = results["machine"]
    lines = [
        "# keypoint_node end to end",
        "",
        f"{results['date']}, `{results['command']}`.",
        f"Machine: {m['processor']}, {m['cpu_count']} CPUs, torch {m['torch']}, load average at the end "
        f"{[round(x, 1) for x in m['load_average']]} (other jobs shared the cores).",
        "Node: default parameters (best-effort `sensor_data` input; cloud, markers and annotated image published) "
        f"except tasks, device, threads; model `{results.get('model', '?')}` (sha256 "
        f"{results.get('model_sha256', 'not recorded')[:12]}). "
        f"Camera side (this client): Fast DDS profile `{results['camera_profile']}`.",
        "Latency: publish -> `keypoints` received by the client, one frame at a time. Floods: frames at each rate "
        f"for {results['duration_s']:g} s; answered = clouds received for frames sent; latency percentiles of "
        "those answered; node received / dropped (latest-frame policy) / lost in transport over the whole row. "
        "Sustained: >= 90 % answered and no growing p95. Targets: CPU 1 task >= 10 Hz with p95 < 150 ms; "
        "GPU 10 tasks 30 Hz with p95 < 15 ms.",
        "",
        "| device | backend | tasks | image | one at a time: answered, p50 / p95 / p99 ms | max sustained Hz | "
        "at each rate: answered, p50 / p95 ms | node received, dropped, lost in transport | load (1 min) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["rows"]:
        floods = "; ".join(
            f"{f['rate_hz']:g} Hz: {f['answered']}/{f['sent']} ({100 * f['answered_fraction']:.0f} %), "
            f"{f['p50_ms']:.0f} / {f['p95_ms']:.0f}"
            for f in r["floods"]
        )
        lines.append(
            f"| {r['device']} | {_backend(r)} | {r['tasks']} | {r['image']} | {r['answered']}/{r['frames']}, "
            f"{r['p50_ms']:.0f} / {r['p95_ms']:.0f} / {r['p99_ms']:.0f} | {r['max_sustained_hz']:g} | "
            f"{floods} | {r['node_received']}, {r['node_dropped']}, {r['node_transport.lost']} | "
            f"{r['load_1min']} |"
        )
    return "\n".join(lines + profile_table(results["rows"])) + "\n"


def _backend(row: dict) -> str:
    return row.get("backend", "torch") + ("" if row.get("precision", "fp32") == "fp32" else f" {row['precision']}")


def profile_table(rows: list[dict]) -> list[str]:
    """The node's mean ms per stage over the one-at-a-time frames of each row, one column per row."""
    rows = [r for r in rows if r.get("profile_frames")]
    if not rows:
        return []
    seen = {s for r in rows for s in r["profile_ms"] if s != "total"}
    stages = [s for s in STAGES if s in seen] + sorted(seen - set(STAGES))
    header = [f"{r['device']} {_backend(r)}, {r['tasks']} task(s), {r['image'].split()[0]}" for r in rows]
    lines = [
        "",
        "## The node, stage by stage",
        "",
        "Mean ms per frame over the one-at-a-time frames, from the stage sums the node publishes in its "
        "diagnostics (funk_perception/stages.py); node total = receive -> published inside the node, other = "
        "the node total less its stages; client latency adds the transport both ways.",
        "",
        "| stage | " + " | ".join(header) + " |",
        "|---|" + "---|" * len(rows),
    ]

    def cell(ms: float | None, total: float) -> str:
        if ms is None:  # not a stage of this row (trunk and modular of torch, encoder of ONNX Runtime)
            return "-"
        return f"{ms:.1f} ({100 * ms / total:.0f} %)" if total > 0 else f"{ms:.1f}"

    for stage in stages:
        cells = [cell(r["profile_ms"].get(stage), r["profile_ms"]["total"]) for r in rows]
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    other = [r["profile_ms"]["total"] - sum(v for k, v in r["profile_ms"].items() if k != "total") for r in rows]
    lines.append("| other | " + " | ".join(cell(o, r["profile_ms"]["total"]) for o, r in zip(other, rows)) + " |")
    lines.append("| node total | " + " | ".join(f"{r['profile_ms']['total']:.1f}" for r in rows) + " |")
    lines.append("| client latency, mean | " + " | ".join(f"{r.get('mean_ms', float('nan')):.1f}" for r in rows) + " |")
    lines.append("| frames | " + " | ".join(str(r["profile_frames"]) for r in rows) + " |")
    lines.append("| load (1 min) | " + " | ".join(str(r["load_1min"]) for r in rows) + " |")
    return lines


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 640x480, found {text!r}") from None
    return width, height


def _backend_arg(text: str) -> str:
    name, _, precision = text.partition(":")
    try:
        check_backend(name, precision or "fp32")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", type=_size, default=[(640, 480), (1280, 720)], help="WIDTHxHEIGHT ...")
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--rates", type=float, nargs="+", default=[2.0, 5.0, 10.0, 15.0, 30.0])
    parser.add_argument("--duration", type=float, default=6.0)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads of the node (0: torch default)")
    parser.add_argument(
        "--backends",
        nargs="+",
        type=_backend_arg,
        default=["torch"],
        help="CPU backends of the node, each torch or onnxruntime[:fp32|:int8] (docs/DEPLOY.md)",
    )
    parser.add_argument("--task-counts", nargs="+", type=int, default=[1, len(TASKS)], choices=range(1, len(TASKS) + 1))
    parser.add_argument("--cpu-only", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    parser.add_argument("--name", default="ros", help="results file names: NAME.json and NAME.md")
    args = parser.parse_args()
    results = run(args)
    return write_report(args.out, args.name, results, markdown, indent=1)


if __name__ == "__main__":
    sys.exit(main())
