"""CPU latency of the detector's backends in one run: eager torch, ONNX Runtime fp32, ONNX Runtime int8.

    python benchmarks/bench_onnx.py [--model models/funk-lite0-synth.pt] [--threads 1] [--rounds 8] [--iters 5]

Batch 1, 224 x 224, one thread by default, 1 task (pour) and all 10. Two figures per backend: the
encoder's forward pass alone (:meth:`FunctionalKeypointDetector.encode` on a prepared input: what the
backend replaces) and the whole ``detect`` call (preprocessing, encoder, the checkpoint's detect method).
The backends are measured in interleaved rounds (every backend ``--iters`` calls per round, ``--rounds``
rounds), so a change in the machine's load during the run hits them alike; each figure is the median
over all calls and the speed-ups are ratios of those medians (torch / backend), with the range of the
per-round ratios beside them. The load average before and after is recorded: on a shared machine the
milliseconds move, the ratios much less. Writes benchmarks/results/onnx.json and onnx.md.

Targets (docs/DEPLOY.md): ONNX Runtime fp32 >= 1.15x torch at 1 and 10 tasks; int8 >= 2x (its accuracy:
benchmarks/bench_onnx_accuracy.py).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch  # before anything that could create a GL context (docs/DESIGN.md, "Import torch first")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import cpu_model, model_record, report_header, report_main  # noqa: E402

from funk_perception.detector import FunctionalKeypointDetector  # noqa: E402
from funk_perception.shipped import DEFAULT_CHECKPOINT  # noqa: E402
from funk_perception.tasks import TASKS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "benchmarks" / "results"
SAMPLE = ROOT / "samples" / "synth" / "images" / "cup" / "cup_0000_v0.jpg"
VARIANTS: tuple[tuple[str, str, str], ...] = (
    ("torch", "torch", "fp32"),
    ("ort-fp32", "onnxruntime", "fp32"),
    ("ort-int8", "onnxruntime", "int8"),
)
TARGETS = {"ort-fp32": 1.15, "ort-int8": 2.0}


def machine() -> dict:
    """What the numbers were measured on, and how loaded it was."""
    import onnxruntime

    return {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "platform": platform.platform(),
    }


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return f"load average {os.getloadavg()}"


def timed(call: Callable[[], object], count: int) -> list[float]:
    times = []
    for _ in range(count):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    image = cv2.cvtColor(cv2.imread(str(SAMPLE)), cv2.COLOR_BGR2RGB)
    image = cv2.resize(image, (args.size, args.size), interpolation=cv2.INTER_AREA)
    detectors = {}
    for name, backend, precision in VARIANTS:
        detector = FunctionalKeypointDetector.load(args.model, device="cpu", image_size=args.size)
        detector.use_backend(backend, precision, threads=args.threads)
        detectors[name] = detector
    prepared = detectors["torch"].prepare_batch([image])
    task_sets = {"1 task": ["pour"], "10 tasks": list(TASKS)}
    calls: dict[tuple[str, str, str], Callable[[], object]] = {}
    for label, tasks in task_sets.items():
        for name, detector in detectors.items():

            def encode(d: FunctionalKeypointDetector = detector, t: list[str] = tasks) -> object:
                with torch.inference_mode():
                    return d.encode(prepared, t)

            calls[("encoder", label, name)] = encode
            calls[("detect", label, name)] = lambda d=detector, t=tasks: d.detect(image, t)
    build = time.perf_counter()
    for call in calls.values():  # builds and caches each graph (funk_perception/onnx_backend.py), then warms up
        timed(call, args.warmup)
    build_s = time.perf_counter() - build
    before = uptime()
    load_before = os.getloadavg()
    samples: dict[tuple[str, str, str], list[list[float]]] = {key: [] for key in calls}
    for _ in range(args.rounds):
        for key, call in calls.items():
            samples[key].append(timed(call, args.iters))
    after = uptime()
    rows = []
    for what in ("encoder", "detect"):
        for label in task_sets:
            base = [t for r in samples[(what, label, "torch")] for t in r]
            for name, _, _ in VARIANTS:
                flat = [t for r in samples[(what, label, name)] for t in r]
                per_round = [
                    statistics.median(b) / statistics.median(v)
                    for b, v in zip(samples[(what, label, "torch")], samples[(what, label, name)])
                ]
                speedup = statistics.median(base) / statistics.median(flat)
                rows.append(
                    {
                        "what": what,
                        "tasks": label,
                        "variant": name,
                        "median_ms": statistics.median(flat),
                        "p90_ms": float(np.percentile(flat, 90)),
                        "speedup": speedup,
                        "speedup_rounds": [min(per_round), max(per_round)],
                        "target": TARGETS.get(name),
                        "meets_target": None if name not in TARGETS else bool(speedup >= TARGETS[name]),
                    }
                )
    return {
        **report_header(["benchmarks/bench_onnx.py", *args.argv]),
        "machine": machine(),
        "uptime_before": before,
        "uptime_after": after,
        "load_average_before": list(load_before),
        "load_average_after": list(os.getloadavg()),
        **model_record(args.model),
        "size": args.size,
        "batch": 1,
        "threads": args.threads,
        "rounds": args.rounds,
        "iters": args.iters,
        "graph_build_and_warmup_s": round(build_s, 1),
        "rows": rows,
    }


def markdown(results: dict) -> str:
    lines = [
        "# Detector backends on the CPU: eager torch vs ONNX Runtime fp32 vs ONNX Runtime int8",
        "",
        f"`{results['command']}`, {results['date']}. Model `{results['model']}` (sha256 "
        f"{results['model_sha256'][:12]}), {results['size']} x {results['size']}, batch 1, "
        f"{results['threads']} thread(s), {results['rounds']} interleaved rounds of {results['iters']} calls.",
        f"Machine: {results['machine']['cpu']}, {results['machine']['cpu_count']} CPUs, torch "
        f"{results['machine']['torch']}, onnxruntime {results['machine']['onnxruntime']}.",
        f"Load before: `{results['uptime_before']}`; after: `{results['uptime_after']}` (a shared machine: "
        "compare the ratios, measured in the same rounds, more than the milliseconds).",
        "",
        "| measured | tasks | backend | median ms | p90 ms | speed-up vs torch | per-round range | target |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in results["rows"]:
        target = (
            "-" if row["target"] is None else f">= {row['target']:g}x {'met' if row['meets_target'] else 'NOT met'}"
        )
        low, high = row["speedup_rounds"]
        lines.append(
            f"| {row['what']} | {row['tasks']} | {row['variant']} | {row['median_ms']:.1f} | "
            f"{row['p90_ms']:.1f} | {row['speedup']:.2f}x | {low:.2f} to {high:.2f} | {target} |"
        )
    lines += [
        "",
        "`encoder`: the forward pass the backend replaces; `detect`: the whole call, preprocessing and the "
        "checkpoint's detect method included (the same Python code for every backend).",
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(ROOT / DEFAULT_CHECKPOINT))
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "onnx")
    return report_main(parser, argv, run, markdown)


if __name__ == "__main__":
    raise SystemExit(main())
