"""int8 recipes side by side: how far each moves the encoder from fp32, what it costs on the dev set, its speed.

    python benchmarks/bench_int8_variants.py --heldout SYNTH_CSV \\
        [--data ../shared/data/funkpoint-real-dev/annotations.csv] [--variants minmax percentile-99.99 ...]

Every variant is a :class:`funk_perception.model.onnx_int8.Int8Recipe` (calibration method, nodes kept in
float), calibrated on the shipped synthetic renders as the backend's default is. Per variant, against the
ONNX Runtime fp32 graph of the same model:

- fidelity on synthetic renders that calibration never saw (``--heldout``, a CSV that
  ``python -m funk_perception.data.synth`` wrote with another seed): the mean cosine between the int8 and
  fp32 embeddings of all ten tasks, and how many of ``detect``'s keypoints move by more than 2 % and 5 %
  of the image's longer side. This is what a variant is chosen on;
- with ``--data`` (the real dev set: evaluation only), ``detect`` and ``transfer`` PCK@0.1 as
  benchmarks/bench_onnx_accuracy.py measures them, the paired difference to fp32 and how many keypoints
  change from hit to miss and back;
- the encoder's median ms at 1 task and 10 tasks (one thread, batch 1), fp32 and the variants timed in
  interleaved rounds, with the speed-up over fp32.

Writes benchmarks/results/int8-variants.json and .md (docs/DEPLOY.md reports every variant tried).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch  # before anything that could create a GL context (docs/DESIGN.md, "Import torch first")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_onnx import timed, uptime  # noqa: E402
from bench_onnx_accuracy import TOLERANCE_POINTS, ground_truth, predictions  # noqa: E402
from common import model_record, report_header, report_main  # noqa: E402

from funk_perception.data.annotations import FunKPointDataset  # noqa: E402
from funk_perception.detector import FunctionalKeypointDetector  # noqa: E402
from funk_perception.intervals import pck_difference, pck_interval  # noqa: E402
from funk_perception.metrics import pck_correct  # noqa: E402
from funk_perception.model.onnx_int8 import FLOAT_TRUNK, Int8Recipe, check_synthetic  # noqa: E402
from funk_perception.onnx_backend import default_calibration  # noqa: E402
from funk_perception.shipped import DEFAULT_CHECKPOINT  # noqa: E402
from funk_perception.tasks import TASKS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "benchmarks" / "results"
#: each head's last convolution (1 x 1) and the task mixes (MatMul): cheap layers next to the embedding
LAST_CONV, MIXES = "/blocks.3/*", "/MatMul*"
#: the trunk's linear outputs: each block's projection (no activation) and the residual sums, signed values
TRUNK_LINEAR = ("/trunk/*conv_pwl*", "/trunk/*/Add")
VARIANTS: dict[str, Int8Recipe] = {
    "minmax": Int8Recipe(float_nodes=()),
    "percentile-99.999": Int8Recipe(method="percentile", percentile=99.999, float_nodes=()),
    "percentile-99.99": Int8Recipe(method="percentile", percentile=99.99, float_nodes=()),
    "entropy": Int8Recipe(method="entropy", float_nodes=()),
    "minmax-float-last": Int8Recipe(float_nodes=(LAST_CONV,)),
    "minmax-float-mixes": Int8Recipe(float_nodes=(MIXES,)),
    "minmax-float-last-mixes": Int8Recipe(float_nodes=(LAST_CONV, MIXES)),
    # where the error comes from: one part of the graph kept in float at a time
    "minmax-float-stem": Int8Recipe(float_nodes=("/trunk/body/body.0/*", "/trunk/body/body.1/*")),
    "minmax-float-layer0": Int8Recipe(float_nodes=("/blocks.0/*",)),
    "minmax-float-heads": Int8Recipe(float_nodes=("/blocks.*", "/Conv*", MIXES, "/Reshape*", "/Transpose*")),
    "minmax-float-trunk": Int8Recipe(float_nodes=FLOAT_TRUNK),  # the default since 2026-12-07
    "minmax-float-trunk-dw": Int8Recipe(float_nodes=("/trunk/*conv_dw*",)),
    "minmax-float-trunk-linear": Int8Recipe(float_nodes=TRUNK_LINEAR),
    "minmax-float-trunk-last-stage": Int8Recipe(float_nodes=("/trunk/body/body.6/*",)),
    "minmax-float-trunk-output": Int8Recipe(float_nodes=("/trunk/body/body.6/body.6.2/Add",)),
}


def load(model: str, threads: int, recipe: Int8Recipe | None) -> FunctionalKeypointDetector:
    """The model on ONNX Runtime: fp32 when ``recipe`` is None, else int8 made by ``recipe``."""
    detector = FunctionalKeypointDetector.load(model, device="cpu")
    precision = "fp32" if recipe is None else "int8"
    detector.use_backend("onnxruntime", precision, threads=threads, int8=recipe)
    return detector


def heldout_outputs(detector: FunctionalKeypointDetector, images: list[np.ndarray]) -> dict[str, np.ndarray]:
    """All-task embeddings (N, T, D, h, w) and ``detect``'s points, normalised by the longer side (N, T, K, 2)."""
    embeddings, points = [], []
    for image in images:
        with torch.inference_mode():
            embeddings.append(detector.encode(detector.prepare_batch([image]), list(TASKS)).float().numpy())
        found = detector.detect(image, list(TASKS))
        points.append(np.stack([found[t].points for t in TASKS]) / float(max(image.shape[:2])))
    return {"embeddings": np.concatenate(embeddings), "points": np.stack(points)}


def fidelity(variant: dict[str, np.ndarray], fp32: dict[str, np.ndarray]) -> dict:
    cosine = (variant["embeddings"] * fp32["embeddings"]).sum(axis=2)  # both unit along D
    moved = np.linalg.norm(variant["points"] - fp32["points"], axis=-1)
    return {
        "cosine_mean": float(cosine.mean()),
        "cosine_p01": float(np.percentile(cosine, 1)),
        "keypoints": int(moved.size),
        "moved_over_2pct": int((moved > 0.02).sum()),
        "moved_over_5pct": int((moved > 0.05).sum()),
    }


def dev_scores(found: dict[str, np.ndarray], base: dict[str, np.ndarray], truth: dict, seed: int) -> dict:
    scores = {}
    for what, (points, valid, images) in truth.items():
        hit, hit_fp32 = pck_correct(found[what], points, 0.1), pck_correct(base[what], points, 0.1)
        scores[what] = {
            "pck@0.1": round(100.0 * float((hit & valid).sum()) / max(int(valid.sum()), 1), 1),
            "interval": pck_interval(hit, valid, images, seed=seed),
            "difference": pck_difference(hit, hit_fp32, valid, images, seed=seed),
            "gained": int((hit & ~hit_fp32 & valid).sum()),
            "lost": int((~hit & hit_fp32 & valid).sum()),
            "keypoints": int(valid.sum()),
        }
    return scores


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    heldout_csv = check_synthetic(args.heldout)
    if heldout_csv.resolve() == default_calibration().resolve():
        raise ValueError(f"--heldout {heldout_csv}: expected renders calibration never saw, found the calibration set")
    heldout = FunKPointDataset(heldout_csv)
    images = [heldout.load_image(p) for p in heldout.image_paths[: args.heldout_images]]
    recipes = {name: VARIANTS[name] for name in args.variants}
    fp32 = load(args.model, args.threads, None)
    reference = heldout_outputs(fp32, images)
    dev = ground_truth(args.data, args.model, args.seed) if args.data else None
    base = predictions(fp32, *dev[:3]) if dev else None
    detectors: dict[str, FunctionalKeypointDetector] = {"fp32": fp32}
    rows = []
    for name, recipe in recipes.items():
        start = time.perf_counter()
        detector = load(args.model, args.threads, recipe)
        row = {
            "variant": name,
            "recipe": asdict(recipe),
            "fidelity": fidelity(heldout_outputs(detector, images), reference),
        }
        if dev:
            row["dev"] = dev_scores(predictions(detector, *dev[:3]), base, dev[3], args.seed)
        row["seconds"] = round(time.perf_counter() - start, 1)
        print(name, row, flush=True)
        rows.append(row)
        detectors[name] = detector
    prepared = fp32.prepare_batch([images[0]])
    task_sets = {"1 task": ["pour"], "10 tasks": list(TASKS)}
    calls = {}
    for label, tasks in task_sets.items():
        for name, detector in detectors.items():

            def encode(d: FunctionalKeypointDetector = detector, t: list[str] = tasks) -> object:
                with torch.inference_mode():
                    return d.encode(prepared, t)

            calls[(label, name)] = encode
            timed(encode, 2)  # builds the task set's graph first (funk_perception/onnx_backend.py), then warms up
    load_before, before = os.getloadavg(), uptime()
    samples: dict[tuple[str, str], list[list[float]]] = {key: [] for key in calls}
    for _ in range(args.rounds):
        for key, call in calls.items():
            samples[key].append(timed(call, args.iters))
    after = uptime()
    speed = {}
    for label in task_sets:
        fp32_ms = statistics.median(t for r in samples[(label, "fp32")] for t in r)
        for name in detectors:
            ms = statistics.median(t for r in samples[(label, name)] for t in r)
            speed.setdefault(name, {})[label] = {"median_ms": ms, "speedup_vs_fp32": fp32_ms / ms}
    for row in rows:
        row["speed"] = speed[row["variant"]]
    return {
        **report_header(["benchmarks/bench_int8_variants.py", *args.argv]),
        **model_record(args.model),
        "heldout": str(args.heldout),
        "heldout_images": len(images),
        "data": str(args.data) if args.data else None,
        "seed": args.seed,
        "threads": args.threads,
        "fp32_speed": speed["fp32"],
        "load_average": {"before_timing": list(load_before), "after": list(os.getloadavg())},
        "uptime": {"before": before, "after": after},
        "tolerance_points": TOLERANCE_POINTS,
        "rows": rows,
    }


def markdown(results: dict) -> str:
    lines = [
        "# int8 recipes against ONNX Runtime fp32",
        "",
        f"`{results['command']}`, {results['date']}. Model `{results['model']}` (sha256 "
        f"{results['model_sha256'][:12]}); calibration: the shipped synthetic renders; fidelity on "
        f"{results['heldout_images']} held-out renders `{results['heldout']}` (all 10 tasks); dev: "
        f"`{results['data']}` (seed {results['seed']}). One thread, batch 1, 224 x 224; load average "
        f"{results['load_average']['before_timing'][0]:.2f} before the timing, "
        f"{results['load_average']['after'][0]:.2f} after. fp32 encoder: "
        f"{results['fp32_speed']['1 task']['median_ms']:.1f} ms (1 task), "
        f"{results['fp32_speed']['10 tasks']['median_ms']:.1f} ms (10 tasks).",
        "",
        "| variant | cosine mean | cosine p1 | keypoints moved > 2 % / > 5 % | detect (diff, paired interval, lost/gained) "
        "| transfer (diff, paired interval, lost/gained) | speed-up 1 / 10 tasks |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in results["rows"]:
        f = row["fidelity"]
        cells = []
        for what in ("detect", "transfer"):
            d = row.get("dev", {}).get(what)
            diff = d and d["difference"]
            cells.append(
                "-"
                if not d
                else f"{d['pck@0.1']:.1f} ({diff['difference']:+.1f}, {diff['low']:+.1f} to {diff['high']:+.1f}, "
                f"-{d['lost']}/+{d['gained']})"
            )
        s = row["speed"]
        lines.append(
            f"| {row['variant']} | {f['cosine_mean']:.4f} | {f['cosine_p01']:.4f} | "
            f"{f['moved_over_2pct']} / {f['moved_over_5pct']} of {f['keypoints']} | {cells[0]} | {cells[1]} | "
            f"{s['1 task']['speedup_vs_fp32']:.2f}x / {s['10 tasks']['speedup_vs_fp32']:.2f}x |"
        )
    lines += [
        "",
        f"Differences are int8 minus fp32 in PCK@0.1 points (target: within {results['tolerance_points']:g}); "
        "lost/gained: keypoints fp32 hit and the variant misses, and the reverse.",
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--heldout", type=Path, required=True, help="synthetic CSV calibration never saw")
    parser.add_argument("--heldout-images", type=int, default=20)
    parser.add_argument("--data", type=Path, default=None, help="FunKPoint-style CSV (the real dev set)")
    parser.add_argument("--model", default=str(ROOT / DEFAULT_CHECKPOINT))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--seed", type=int, default=0, help="evaluate's triplet seed")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "int8-variants")
    return report_main(parser, argv, run, markdown)


if __name__ == "__main__":
    raise SystemExit(main())
