"""Rank candidate grasps on a new image (``python -m funk_grasp.predict IMAGE [--mask M]``).

Candidate positions are a grid over the image (or over the object mask when
``--mask`` is given, as the simulated data samples most grasps on the
object); each is scored at all 18 angles with one feature pass per patch and
18 head passes. The best ``--top`` grasps are drawn on the image (closing axis
and finger bars, colour = predicted success) and listed in a JSON file.

``--patch-size`` must be the patch side, in pixels of this image, that covers
the same table area as the training patches (0.2 m in the simulated data:
128 px of its 448 px top-down images).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch  # before anything that could create a GL context (docs/DESIGN.md, "Import torch first")
import torch.nn.functional as F

from funk_grasp.data import ANGLE_BINS, bin_to_angle, crop_patch
from funk_grasp.draw import draw_grasp, success_color
from funk_grasp.model import GraspModel
from funk_perception.atomic import write_json_atomic, write_png_atomic
from funk_perception.cli import command
from funk_perception.model import preprocess, resolve_device


def score_grasps(
    model: GraspModel, image: np.ndarray, points: np.ndarray, patch_size: int, batch_size: int = 32
) -> np.ndarray:
    """(P, 2) pixel positions -> (P, 18) success probabilities, one per angle bin."""
    model.eval()
    device = model.features.in_scale.device
    every_bin = F.one_hot(torch.arange(ANGLE_BINS), ANGLE_BINS).float().to(device)
    out = []
    with torch.no_grad():
        for start in range(0, len(points), batch_size):
            crops = [crop_patch(image, x, y, patch_size) for x, y in points[start : start + batch_size]]
            feats = model.features(preprocess(crops, size=model.features.config.image_size).to(device))  # (B, F)
            b = len(crops)
            logits = model.head(feats.repeat_interleave(ANGLE_BINS, 0), every_bin.repeat(b, 1))
            out.append(torch.sigmoid(logits).reshape(b, ANGLE_BINS).cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, ANGLE_BINS), np.float32)


def candidate_points(shape: tuple[int, int], step: int, margin: int, mask: np.ndarray | None = None) -> np.ndarray:
    """Grid points ``step`` pixels apart, ``margin`` inside the border, on the mask when one is given."""
    h, w = shape
    ys, xs = np.mgrid[margin : h - margin : step, margin : w - margin : step]
    points = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float64)
    if mask is not None:
        if mask.shape != (h, w):
            raise ValueError(f"mask: expected the image's size {w}x{h}, found {mask.shape[1]}x{mask.shape[0]}")
        points = points[mask[points[:, 1].astype(int), points[:, 0].astype(int)]]
    if len(points) == 0:
        raise ValueError("no candidate positions: the mask is empty or the image is smaller than the patch")
    return points


def rank_grasps(
    model: GraspModel,
    image: np.ndarray,
    patch_size: int,
    step: int,
    mask: np.ndarray | None = None,
    top: int = 5,
    one_per_position: bool = False,
) -> list[dict]:
    """The ``top`` grasps (x, y, angle in radians, angle bin, probability), best first.

    ``one_per_position`` keeps only each position's best angle, so the list spreads over the image.
    """
    points = candidate_points(image.shape[:2], step, max(1, patch_size // 4), mask)
    probs = score_grasps(model, image, points, patch_size)
    if one_per_position:
        best = probs.argmax(axis=1)
        keep = np.full_like(probs, -np.inf)
        keep[np.arange(len(points)), best] = probs[np.arange(len(points)), best]
        probs_for_order = keep
    else:
        probs_for_order = probs
    order = np.argsort(-probs_for_order.ravel(), kind="stable")[:top]
    return [
        {
            "x": float(points[i // ANGLE_BINS][0]),
            "y": float(points[i // ANGLE_BINS][1]),
            "angle": bin_to_angle(int(i % ANGLE_BINS)),
            "angle_bin": int(i % ANGLE_BINS),
            "probability": float(probs.ravel()[i]),
        }
        for i in order
    ]


def _read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"{path}: image not found or unreadable")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m funk_grasp.predict", description=__doc__.split("\n\n")[0])
    p.add_argument("image", type=Path)
    p.add_argument(
        "--model",
        type=Path,
        default=Path("runs/grasp/funk-head/best.pt"),
        help="a grasp checkpoint written by python -m funk_grasp.train",
    )
    p.add_argument(
        "--mask", type=Path, default=None, help="object mask image (non-zero = object) to restrict positions"
    )
    p.add_argument("--patch-size", type=int, default=128)
    p.add_argument("--step", type=int, default=8, help="grid spacing of candidate positions, pixels")
    p.add_argument("--top", type=int, default=5)
    p.add_argument("--one-per-position", action="store_true", help="list each position once, at its best angle")
    p.add_argument("--out", type=Path, default=Path("results/grasp/predict.png"))
    p.add_argument("--device", default="auto")
    return p


@command
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(1)
    image = _read_rgb(args.image)
    mask = None
    if args.mask is not None:
        raw = cv2.imread(str(args.mask), cv2.IMREAD_GRAYSCALE)
        if raw is None:
            raise FileNotFoundError(f"{args.mask}: mask not found or unreadable")
        mask = raw > 0
    model = GraspModel.load(args.model, resolve_device(args.device))
    best = rank_grasps(model, image, args.patch_size, args.step, mask, args.top, args.one_per_position)
    canvas = image.copy()
    for grasp in reversed(best):  # the best drawn last, on top
        draw_grasp(
            canvas, grasp["x"], grasp["y"], grasp["angle"], args.patch_size * 0.6, success_color(grasp["probability"])
        )
    write_png_atomic(args.out, canvas)
    write_json_atomic(
        args.out.with_suffix(".json"), {"image": str(args.image), "model": str(args.model), "grasps": best}, indent=1
    )
    for g in best:
        print(f"x={g['x']:.0f} y={g['y']:.0f} angle={np.degrees(g['angle']):.0f} deg  p={g['probability']:.3f}")
    print(f"wrote {args.out} and {args.out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
