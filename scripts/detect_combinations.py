"""Experiment: can the heatmap head and the reference bank be combined into a better reference-free detect?

    .venv/bin/python scripts/detect_combinations.py --data ../shared/data/funkpoint-real-dev/annotations.csv

On every target row of the evaluation triplets (as ``funk_perception.evaluate``'s
detect rows), prints PCK@0.1 and the confidence ROC AUC (hit vs miss) of:
``heatmap`` and ``bank`` alone; ``product``, the normalised geometric mean of
their two probability maps (a product of experts); ``mean``, their average; and
``agree``, the heatmap's points with its confidence multiplied by
``exp(-(d / 0.1)^2)``, d the distance between the heatmap's and the bank's
points. Measured results and the decision are in docs/EXPERIMENTS.md (variants
tried); neither combination was adopted.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import torch

from funk_perception.data.annotations import read_annotations
from funk_perception.data.pairs import evaluation_pairs
from funk_perception.detector import FunctionalKeypointDetector
from funk_perception.matching import map_confidence, refine_points, vote_maps
from funk_perception.metrics import confidence_auc
from funk_perception.model.letterbox import Letterbox

VARIANTS = ("heatmap", "bank", "product", "mean", "agree")


def _points(prob: torch.Tensor) -> np.ndarray:
    return refine_points(torch.log(prob.clamp(min=1e-12)), "parabolic")[0].numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--model", type=Path, default=Path("models/funk-lite0-synth.pt"))
    parser.add_argument("--max-targets-per-task", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--squash",
        action="store_true",
        help="squash images to the square input (detector "
        "letterbox=False), as when the results in models/README.md were measured",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    annotations = read_annotations(args.data)
    pairs = evaluation_pairs(annotations, 0, 20, args.max_targets_per_task)
    targets = [annotations[i] for i in sorted({p.target for p in pairs})]
    detector = FunctionalKeypointDetector.load(args.model, method="heatmap", letterbox=not args.squash)
    hits: dict[str, list] = {v: [] for v in VARIANTS}
    confidences: dict[str, list] = {v: [] for v in VARIANTS}
    visible = []
    for row in targets:
        image = cv2.cvtColor(cv2.imread(str(row.image_path)), cv2.COLOR_BGR2RGB)
        features = detector.features(image, [row.task])  # (1, D, h, w)
        # letterboxed, the grid covers the padded square input: points go back to the photo's x/W, y/H
        frame = None if args.squash else Letterbox.fit(image.shape[0], image.shape[1], detector.image_size)
        unbox = (lambda p: p) if frame is None else frame.from_input
        with torch.inference_mode():
            logits = detector.heatmap_head(features)
            heat = torch.softmax(logits.flatten(2), -1).reshape(logits.shape)
            votes = vote_maps(*detector.bank[row.task], features[0], detector.logit_scale).unsqueeze(0)
        product = torch.sqrt(heat.clamp(min=1e-12) * votes.clamp(min=1e-12))
        maps = {
            "heatmap": heat,
            "bank": votes,
            "product": product / product.flatten(2).sum(-1)[..., None, None],
            "mean": 0.5 * (heat + votes),
        }
        for name, prob in maps.items():
            hits[name].append(np.linalg.norm(unbox(_points(prob)) - row.keypoints, axis=1) <= 0.1)
            confidences[name].append(map_confidence(prob)[0].numpy())
        agreement = np.exp(-((np.linalg.norm(unbox(_points(heat)) - unbox(_points(votes)), axis=1) / 0.1) ** 2))
        hits["agree"].append(hits["heatmap"][-1])
        confidences["agree"].append(confidences["heatmap"][-1] * agreement)
        visible.append(row.visible)
    seen = np.array(visible)
    results = {}
    for name in VARIANTS:
        hit, confidence = np.array(hits[name])[seen], np.array(confidences[name])[seen]
        results[name] = {
            "pck@0.1": round(100 * float(hit.mean()), 1),
            "confidence_auc": round(confidence_auc(confidence, hit)["auc"], 3),
        }
    print(
        json.dumps(
            {
                "data": str(args.data),
                "model": str(args.model),
                "letterbox": not args.squash,
                "targets": len(targets),
                "results": results,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
