"""Where p2, p3 and p4 sit along the p1 -> p5 chain, per task: real labels against the renders'.

    .venv/bin/python scripts/keypoint_layout.py --real ../shared/data/funkpoint-real-dev/annotations.csv \
        --synth datasets/synth-v13/annotations.csv

Per task and CSV: the mean position of p2, p3, p4 along the chain (0 at p1, 1 at p5),
the share of rows in which p3 lies nearer p1 than p2 does, and the chain's length in
the frame. Over all tasks: quantiles of the chain's angle from the image's horizontal
in pixels, either way round (0 to 90 degrees; how the objects are framed, variant 52).
Aggregate statistics only (models/README.md, variant 37).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

from funk_perception.data.annotations import Annotation, read_annotations


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
        out[task] = {"rows": len(p), "p2 p3 p4 along the chain": np.round(along.mean(0)[1:4], 2).tolist(),
                     "p3 nearer p1 than p2": round(float(np.mean(along[:, 2] < along[:, 1])), 2),
                     "chain length": round(float(length.mean()), 2)}
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real", type=Path, required=True)
    parser.add_argument("--synth", type=Path, required=True)
    args = parser.parse_args()
    real_rows = [a for a in read_annotations(args.real) if a.role in {"reference", "test"}]
    synth_rows = [a for a in read_annotations(args.synth) if a.role == "train"]
    real, synth = layout(real_rows), layout(synth_rows)
    out = {task: {"real": real[task], "synth": synth.get(task)} for task in real}
    out["chain angle from horizontal, degrees"] = {"real": chain_angles(real_rows), "synth": chain_angles(synth_rows)}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
