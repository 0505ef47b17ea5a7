"""Where p2, p3 and p4 sit along the p1 -> p5 chain, per task: real labels against the renders'.

    .venv/bin/python scripts/keypoint_layout.py --real ../shared/data/funkpoint-real-dev/annotations.csv \
        --synth datasets/synth-v13/annotations.csv

Per task and CSV: the mean position of p2, p3, p4 along the chain (0 at p1, 1 at p5),
the share of rows in which p3 lies nearer p1 than p2 does, and the chain's length in
the frame. Over all tasks: quantiles of the chain's angle from the image's horizontal
in pixels, either way round (0 to 90 degrees; how the objects are framed, variant 52).
With ``--model``, also where that model's reference-free ``detect`` puts each point on the
real test rows: per task and keypoint its PCK@0.1 and the median of (detected - true)
position along the true chain, so a detector that has learned the renders' placement
shows it as a shift (variant 60). Aggregate statistics only (docs/EXPERIMENTS.md, variant 37).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

from funk_perception.data.annotations import Annotation, FunKPointDataset, read_annotations


def layout(rows: list[Annotation]) -> dict[str, dict]:
    by_task: dict[str, list[np.ndarray]] = {}
    for a in rows:
        if a.visible.all():
            by_task.setdefault(a.task, []).append(a.keypoints)
    out = {}
    for task, rows in sorted(by_task.items()):
        p = np.stack(rows)  # (N, 5, 2)
        axis = p[:, 4] - p[:, 0]
        length = np.linalg.norm(axis, axis=1)
        along = ((p - p[:, :1]) * axis[:, None]).sum(-1) / np.maximum(length, 1e-9)[:, None] ** 2
        out[task] = {
            "rows": len(p),
            "p2 p3 p4 along the chain": np.round(along.mean(0)[1:4], 2).tolist(),
            "p3 nearer p1 than p2": round(float(np.mean(along[:, 2] < along[:, 1])), 2),
            "chain length": round(float(length.mean()), 2),
        }
    return out


def chain_angles(rows: list[Annotation]) -> dict:
    """Quantiles of the p1 -> p5 axis angle from horizontal, in pixels (each image's own width and height)."""
    angles = []
    for a in rows:
        if a.visible[[0, 4]].all():
            with Image.open(a.image_path) as image:  # reads the header only
                size = np.array(image.size, dtype=np.float64)
            dx, dy = (a.keypoints[4] - a.keypoints[0]) * size
            angles.append(np.degrees(np.arctan2(abs(dy), abs(dx))))
    quantiles = (0.1, 0.25, 0.5, 0.75, 0.9)
    return {"rows": len(angles), "quantiles 10 25 50 75 90 %": np.round(np.quantile(angles, quantiles), 1).tolist()}


def detected_layout(csv_path: Path, model: Path) -> dict[str, dict]:
    """Per task: detect's PCK@0.1 per keypoint and its median along-chain error per keypoint, on the test rows."""
    from funk_perception.detector import FunctionalKeypointDetector

    detector = FunctionalKeypointDetector.load(model)
    dataset = FunKPointDataset(csv_path, roles=("test",))
    hits: dict[str, list[np.ndarray]] = {}
    errors: dict[str, list[np.ndarray]] = {}
    for a in dataset.annotations:
        image = dataset.load_image(a.image_path)
        found = detector.detect(image, [a.task])[a.task].points / np.array([image.shape[1], image.shape[0]])
        truth = a.keypoints
        axis = truth[4] - truth[0]
        scale = max(float(axis @ axis), 1e-12)
        errors.setdefault(a.task, []).append((found - truth) @ axis / scale)
        hits.setdefault(a.task, []).append(np.linalg.norm(found - truth, axis=1) <= 0.1)
    return {
        task: {
            "rows": len(hits[task]),
            "pck@0.1 p1..p5": np.round(100 * np.mean(hits[task], 0), 1).tolist(),
            "median along-chain error p1..p5": np.round(np.median(errors[task], 0), 2).tolist(),
        }
        for task in hits
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real", type=Path, required=True)
    parser.add_argument("--synth", type=Path, required=True)
    parser.add_argument(
        "--model", type=Path, help="also report where this checkpoint's detect puts the points on the real test rows"
    )
    args = parser.parse_args()
    real_rows = [a for a in read_annotations(args.real) if a.role in {"reference", "test"}]
    synth_rows = [a for a in read_annotations(args.synth) if a.role == "train"]
    real, synth = layout(real_rows), layout(synth_rows)
    out = {task: {"real": real[task], "synth": synth.get(task)} for task in real}
    if args.model is not None:
        for task, found in detected_layout(args.real, args.model).items():
            out[task]["detect"] = found
    out["chain angle from horizontal, degrees"] = {"real": chain_angles(real_rows), "synth": chain_angles(synth_rows)}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
