"""Latency of FunctionalKeypointDetector.detect: 224 x 224 and 640 x 480, one task and all 10.

    python benchmarks/bench_detect.py [--model models/CKPT.pt ...] [--repeats 20] [--warmup 3]

CPU rows at 1 and 2 torch threads, GPU rows when CUDA is available. Each number
is the median wall time of ``--repeats`` calls after ``--warmup`` calls, for the
whole ``detect`` call (validation, resize, normalisation, trunk, modular network,
matching, refinement, confidence). Writes benchmarks/results/detect.json and
detect.md (machine, date, command) and reports the ratio all-10 / 1-task;
with several ``--model``s, also each model's time over the first model's, in the same run.

Without ``--model`` the detector is built from a named config (default the paper
head on the lite0 trunk) with prototypes taken from its own embeddings of a noise
image: latency does not depend on the weight values, and the JSON says so.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch  # first, before anything that could create a GL context (docs/DESIGN.md, "Import torch first")
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import machine, report_header, write_report  # noqa: E402

from funk_perception.detector import FunctionalKeypointDetector  # noqa: E402
from funk_perception.matching import sample_features  # noqa: E402
from funk_perception.model import FunctionalEncoder, named_config  # noqa: E402
from funk_perception.tasks import TASKS  # noqa: E402

SIZES: tuple[tuple[int, int], ...] = ((224, 224), (480, 640))  # (height, width)
RESULTS_DIR = Path(__file__).resolve().parent / "results"
TARGET_ONE_TASK_MS = 100.0
TARGET_RATIO = 3.0


def build_detector(
    model: Path | None, config: str, device: str, seed: int, method: str = "auto"
) -> tuple[FunctionalKeypointDetector, str]:
    if model is not None:
        return FunctionalKeypointDetector.load(model, device=device, method=method), str(model)
    torch.manual_seed(seed)
    encoder = FunctionalEncoder(named_config(config)).to(torch.device(device)).eval()
    plain = FunctionalKeypointDetector(encoder)
    image = np.random.default_rng(seed).integers(0, 256, (224, 224, 3), dtype=np.uint8)
    points = torch.tensor([[0.2, 0.2], [0.35, 0.3], [0.5, 0.5], [0.65, 0.6], [0.8, 0.8]], device=plain.device)
    feats = plain.features(image)  # (10, D, h, w)
    prototypes = {
        t: F.normalize(sample_features(feats[i : i + 1], points[None])[0], dim=-1) for i, t in enumerate(TASKS)
    }
    label = f"untrained named config {config!r} (latency does not depend on weight values)"
    return FunctionalKeypointDetector(encoder, prototypes), label


def time_detect(
    detector: FunctionalKeypointDetector, image: np.ndarray, tasks: Sequence[str], warmup: int, repeats: int, cuda: bool
) -> list[float]:
    for _ in range(warmup):
        detector.detect(image, tasks)
    times = []
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        detector.detect(image, tasks)  # returns numpy: the GPU work is finished when it returns
        times.append(1000.0 * (time.perf_counter() - start))
    return times


def run(args: argparse.Namespace) -> dict:
    rng = np.random.default_rng(args.seed)
    images = {f"{w}x{h}": rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in SIZES}
    settings: list[tuple[str, int | None]] = [("cpu", t) for t in args.threads]
    if torch.cuda.is_available() and not args.cpu_only:
        settings.append(("cuda", None))
    rows = []
    original_threads = torch.get_num_threads()
    for device, threads in settings:
        if threads is not None:
            torch.set_num_threads(threads)
        for model, method in ((m, k) for m in args.model for k in args.method):
            detector, model_label = build_detector(model, args.config, device, args.seed, method)
            for size, image in images.items():
                for label, tasks in (("1 task", [TASKS[0]]), ("all 10 tasks", list(TASKS))):
                    times = time_detect(detector, image, tasks, args.warmup, args.repeats, device == "cuda")
                    rows.append(
                        {
                            "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
                            "threads": threads,
                            "model": model_label,
                            "method": detector.method,
                            "image": size,
                            "tasks": len(tasks),
                            "label": label,
                            "median_ms": statistics.median(times),
                            "min_ms": min(times),
                            "max_ms": max(times),
                            "repeats": len(times),
                        }
                    )
                    print(
                        f"{rows[-1]['device']:>10} threads={threads} {Path(model_label).name:>24} {detector.method:>12} "
                        f"{size:>8} {label:>13}: "
                        f"median {rows[-1]['median_ms']:.1f} ms",
                        flush=True,
                    )
    torch.set_num_threads(original_threads)
    same = ("device", "threads", "image")
    for row in rows:
        one = next(r for r in rows if all(r[k] == row[k] for k in (*same, "model", "method")) and r["tasks"] == 1)
        row["ratio_to_one_task"] = row["median_ms"] / one["median_ms"]
        first = next(r for r in rows if all(r[k] == row[k] for k in (*same, "method", "tasks")))
        row["ratio_to_first_model"] = row["median_ms"] / first["median_ms"]
    labels = list(dict.fromkeys(r["model"] for r in rows))
    return {
        **report_header(),
        "machine": machine(host=platform.node(), python=platform.python_version(), torch=torch.__version__),
        "model": labels[0] if len(labels) == 1 else labels,
        "refine": "parabolic",
        "warmup": args.warmup,
        "targets": {"cpu_224_one_task_ms": TARGET_ONE_TASK_MS, "all_tasks_over_one_task": TARGET_RATIO},
        "rows": rows,
    }


def markdown(results: dict) -> str:
    lines = [
        "# detect latency",
        "",
        f"{results['date']}, `{results['command']}`, model: {results['model']}.",
        "Ratios to the first model are of medians in this one run (the same device, threads, image and tasks).",
        f"Machine: {results['machine']['processor']}, {results['machine']['cpu_count']} CPUs, "
        f"torch {results['machine']['torch']}, load average {results['machine']['load_average']}.",
        f"Median of {results['rows'][0]['repeats']} calls after {results['warmup']} warm-up calls; "
        f"targets: 224 x 224 one task < {TARGET_ONE_TASK_MS:.0f} ms on the CPU, all 10 < {TARGET_RATIO:.0f}x one task.",
        "",
        "| device | threads | model | detect method | image | tasks | median ms | min ms | all-10 / 1-task | / first model |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["rows"]:
        ratio = f"{r['ratio_to_one_task']:.2f}" if r["tasks"] > 1 else "-"
        lines.append(
            f"| {r['device']} | {r['threads'] if r['threads'] is not None else '-'} | {Path(r['model']).name} | "
            f"{r.get('method', '-')} | {r['image']} | {r['tasks']} | {r['median_ms']:.1f} | {r['min_ms']:.1f} | "
            f"{ratio} | {r['ratio_to_first_model']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model",
        type=Path,
        action="append",
        default=None,
        help="checkpoint (repeatable, compared in one run; default: untrained --config)",
    )
    parser.add_argument("--config", default="paper", help="named config used without --model")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cpu-only", action="store_true")
    parser.add_argument(
        "--method",
        action="append",
        default=None,
        help="detect method to time (repeatable, compared in one run; default: auto, the model's own)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="folder for detect.json / detect.md")
    args = parser.parse_args(argv)
    args.method = args.method or ["auto"]
    if args.model is None and args.method != ["auto"]:
        parser.error("--method needs --model: an untrained config detects by prototypes only")
    args.model = args.model or [None]
    results = run(args)
    return write_report(args.out, "detect", results, markdown)


if __name__ == "__main__":
    raise SystemExit(main())
