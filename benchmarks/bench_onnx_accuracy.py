"""Accuracy of the detector's backends on a FunKPoint-style set: torch, ONNX Runtime fp32, ONNX Runtime int8.

    python benchmarks/bench_onnx_accuracy.py --data ../shared/data/funkpoint-real-dev/annotations.csv \\
        [--model models/funk-lite0-synth.pt]

Through the product API alone: on the triplets ``python -m funk_perception.evaluate`` draws (same seed),
``detect`` is ``FunctionalKeypointDetector.detect`` on every target image (all the model's tasks at once, as
the node runs by default; the row's task read out) and ``transfer`` is ``FunctionalKeypointDetector.transfer``
on every (reference, target, task) triplet, once per backend. PCK@0.1 (refined) with the 95 % bootstrap
interval over images (funk_perception/intervals.py) per backend, and each backend's difference to the
one before it (fp32 - torch, int8 - fp32) with its paired interval: the figure that says whether int8
costs accuracy, which two unpaired intervals of +-5 points cannot. The int8 graphs are calibrated on the
shipped synthetic renders (funk_perception/model/onnx_int8.py), never on ``--data``. Also, on the shipped
samples, how far each backend's ``detect`` keypoints lie from torch's (the figures tests/test_onnx_export.py
bounds). Writes
benchmarks/results/onnx-accuracy.json and .md. ``evaluate --backend onnxruntime [--precision int8]``
gives the full tables of the same backends (docs/DEPLOY.md).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch  # before anything that could create a GL context (docs/DESIGN.md, "Import torch first")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import model_record, report_header, report_main  # noqa: E402

from funk_perception.data.pairs import evaluation_pairs  # noqa: E402
from funk_perception.detector import FunctionalKeypointDetector  # noqa: E402
from funk_perception.eval_config import EvalConfig  # noqa: E402
from funk_perception.evaluate import triplet_annotations  # noqa: E402
from funk_perception.intervals import pck_difference, pck_interval  # noqa: E402
from funk_perception.metrics import pck_correct  # noqa: E402
from funk_perception.shipped import DEFAULT_CHECKPOINT  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "benchmarks" / "results"
BACKENDS: tuple[tuple[str, str, str], ...] = (
    ("torch", "torch", "fp32"),
    ("ort-fp32", "onnxruntime", "fp32"),
    ("ort-int8", "onnxruntime", "int8"),
)
#: the deployment target (docs/DEPLOY.md): int8 detect and transfer PCK@0.1 within this many points of fp32
TOLERANCE_POINTS = 1.0
#: the shipped synthetic samples and tasks on which each backend's keypoints are compared with torch's, in pixels
#: (tests/test_onnx_export.py holds int8 to these figures' limits)
SAMPLES = sorted((ROOT / "samples" / "synth" / "images").glob("*/*.jpg"))
SAMPLE_TASKS = ("pour", "scoop")
NEAR_FRACTION = 0.05  # of the image side


def predictions(detector: FunctionalKeypointDetector, dataset, rows, pairs) -> dict[str, np.ndarray]:
    """Normalised (x / W, y / H) points: ``detect`` on each target row, ``transfer`` on each pair."""
    targets = sorted({p.target for p in pairs})
    found: dict[Path, dict] = {}
    detect = []
    for i in targets:
        row = rows[i]
        image = dataset.load_image(row.image_path)
        if row.image_path not in found:
            found[row.image_path] = detector.detect(image)
        scale = np.array([image.shape[1], image.shape[0]], dtype=np.float64)
        detect.append(found[row.image_path][row.task].points / scale)
    transfer = []
    for p in pairs:
        source, target = rows[p.source], rows[p.target]
        ref, tgt = dataset.load_image(source.image_path), dataset.load_image(target.image_path)
        ref_scale = np.array([ref.shape[1], ref.shape[0]], dtype=np.float64)
        points = np.clip(np.asarray(source.keypoints, dtype=np.float64), 0.0, 1.0) * ref_scale
        moved = detector.transfer(ref, points, tgt, p.task).points
        transfer.append(moved / np.array([tgt.shape[1], tgt.shape[0]], dtype=np.float64))
    return {"detect": np.stack(detect), "transfer": np.stack(transfer)}


def ground_truth(data: Path, model: str, seed: int) -> tuple[object, list, list, dict]:
    """evaluate's triplets of ``data`` (seed ``seed``): the dataset, its rows, the pairs, and per ``detect`` /
    ``transfer`` the true normalised points, their visibility and each row's image."""
    config = EvalConfig(data=data, models=[model], seed=seed)
    dataset, rows, _ = triplet_annotations(config)
    pairs = evaluation_pairs(rows, config.seed, config.references_per_task, config.max_targets_per_task)
    targets = sorted({p.target for p in pairs})
    truth = {
        "detect": (
            np.stack([rows[i].keypoints for i in targets]),
            np.stack([rows[i].visible for i in targets]),
            [rows[i].image_path for i in targets],
        ),
        "transfer": (
            np.stack([rows[p.target].keypoints for p in pairs]),
            np.stack([rows[p.source].visible & rows[p.target].visible for p in pairs]),
            [rows[p.target].image_path for p in pairs],
        ),
    }
    return dataset, rows, pairs, truth


def sample_points(detector: FunctionalKeypointDetector) -> np.ndarray:
    """``detect``'s points (pixels) of :data:`SAMPLE_TASKS` on every shipped sample: (N * T, K, 2)."""
    found = [detector.detect(cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB), SAMPLE_TASKS) for p in SAMPLES]
    return np.stack([f[t].points for f in found for t in SAMPLE_TASKS])


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    dataset, rows, pairs, truth = ground_truth(args.data, args.model, args.seed)
    targets = sorted({p.target for p in pairs})
    hits: dict[str, dict[str, np.ndarray]] = {}
    seconds = {}
    points = {}
    for name, backend, precision in BACKENDS:
        start = time.perf_counter()
        detector = FunctionalKeypointDetector.load(args.model, device="cpu", backend=backend, precision=precision)
        found = predictions(detector, dataset, rows, pairs)
        seconds[name] = round(time.perf_counter() - start, 1)
        hits[name] = {what: pck_correct(found[what], truth[what][0], 0.1) for what in found}
        points[name] = sample_points(detector)
    side = float(cv2.imread(str(SAMPLES[0])).shape[0])
    samples = {}
    for name, _, _ in BACKENDS[1:]:
        distance = np.linalg.norm(points[name] - points["torch"], axis=-1).ravel()
        samples[name] = {
            "keypoints": int(distance.size),
            "median_px": float(np.median(distance)),
            "p90_px": float(np.percentile(distance, 90)),
            "near_share": float((distance <= NEAR_FRACTION * side).mean()),
        }
    table = []
    for what, (_, valid, images) in truth.items():
        previous = None
        for name, _, _ in BACKENDS:
            hit = hits[name][what]
            pck = 100.0 * float((hit & valid).sum()) / max(int(valid.sum()), 1)
            entry = {
                "what": what,
                "backend": name,
                "pck@0.1": round(pck, 1),
                "interval": pck_interval(hit, valid, images, seed=args.seed),
                "keypoints": int(valid.sum()),
            }
            if previous is not None:
                entry["vs"] = previous
                entry["difference"] = pck_difference(hit, hits[previous][what], valid, images, seed=args.seed)
            table.append(entry)
            previous = name
    int8 = {e["what"]: e["difference"]["difference"] for e in table if e["backend"] == "ort-int8"}
    return {
        **report_header(["benchmarks/bench_onnx_accuracy.py", *args.argv]),
        "load_average": list(os.getloadavg()),
        "data": str(args.data),
        **model_record(args.model),
        "seed": args.seed,
        "targets": len(targets),
        "pairs": len(pairs),
        "seconds": seconds,
        "rows": table,
        "int8_within_tolerance": {what: abs(d) <= TOLERANCE_POINTS for what, d in int8.items()},
        "samples": {"images": len(SAMPLES), "tasks": list(SAMPLE_TASKS), "side_px": side, "vs_torch": samples},
        "tolerance_points": TOLERANCE_POINTS,
    }


def markdown(results: dict) -> str:
    def interval(value: Sequence[float] | None) -> str:
        return "-" if not value else f"{value[0]:.1f} to {value[1]:.1f}"

    lines = [
        "# Detector backends: accuracy (PCK@0.1, refined)",
        "",
        f"`{results['command']}`, {results['date']}. Data `{results['data']}` ({results['targets']} detect "
        f"targets, {results['pairs']} transfer triplets, seed {results['seed']}); model `{results['model']}` "
        f"(sha256 {results['model_sha256'][:12]}). 95 % bootstrap intervals over images; differences paired.",
        "",
        "| task | backend | PCK@0.1 | interval | difference | vs | paired interval |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in results["rows"]:
        diff = row.get("difference")
        lines.append(
            f"| {row['what']} | {row['backend']} | {row['pck@0.1']:.1f} | {interval(row['interval'])} | "
            + (
                f"{diff['difference']:+.1f} | {row['vs']} | {diff['low']:+.1f} to {diff['high']:+.1f} |"
                if diff
                else "- | - | - |"
            )
        )
    verdict = ", ".join(
        f"{what}: {'within' if ok else 'NOT within'}" for what, ok in results["int8_within_tolerance"].items()
    )
    lines += ["", f"int8 against fp32, {results['tolerance_points']:g} point tolerance: {verdict}.", ""]
    shipped = results["samples"]
    lines += [
        f"On the {shipped['images']} shipped synthetic samples ({', '.join(shipped['tasks'])}; "
        f"{shipped['side_px']:.0f} px images), each backend's `detect` keypoints against torch's:",
        "",
        f"| backend | keypoints | median px | 90th percentile px | within {NEAR_FRACTION:g} of the side |",
        "|---|---|---|---|---|",
    ]
    for name, d in shipped["vs_torch"].items():
        lines.append(
            f"| {name} | {d['keypoints']} | {d['median_px']:.2f} | {d['p90_px']:.2f} | {100 * d['near_share']:.1f} % |"
        )
    lines.append("")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="FunKPoint-style CSV (e.g. the real dev set)")
    parser.add_argument("--model", default=str(ROOT / DEFAULT_CHECKPOINT))
    parser.add_argument("--seed", type=int, default=0, help="evaluate's triplet seed")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "onnx-accuracy")
    return report_main(parser, argv, run, markdown)


if __name__ == "__main__":
    raise SystemExit(main())
