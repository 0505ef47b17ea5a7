"""A contact sheet of grasp attempts to check the labels by eye (``python -m funk_grasp.preview``).

Each tile is one patch from a split folder in the Pinto-Gupta layout (the
simulated dataset's or the real one's) with its grasp drawn through the
centre (closing axis and finger bars at the gripper's full opening, 0.11 m =
70 px of a 128 px simulated patch) and a frame: green for a successful
attempt, red for a failed one. Half the tiles are successes where the split
has enough.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from funk_grasp.data import GraspPatch, read_split
from funk_grasp.draw import draw_grasp
from funk_perception.atomic import write_png_atomic
from funk_perception.cli import command


def contact_sheet(
    patches: Sequence[GraspPatch], columns: int = 8, tile: int = 128, finger_span: float = 0.55
) -> np.ndarray:
    """Tiles of ``patches`` (grasp drawn, green/red frame), ``columns`` wide; RGB uint8."""
    tiles = []
    for patch in patches:
        image = cv2.imread(str(patch.path), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"{patch.path}: not a readable image")
        image = cv2.resize(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), (tile, tile), interpolation=cv2.INTER_AREA)
        draw_grasp(image, tile / 2, tile / 2, patch.angle, finger_span * tile, (255, 255, 255), 2)
        color = (40, 200, 40) if patch.success else (220, 40, 40)
        cv2.rectangle(image, (1, 1), (tile - 2, tile - 2), color, 3)
        tiles.append(image)
    rows = []
    for start in range(0, len(tiles), columns):
        row = tiles[start : start + columns]
        row += [np.zeros_like(tiles[0])] * (columns - len(row))
        rows.append(np.hstack(row))
    return np.vstack(rows)


def pick(patches: Sequence[GraspPatch], count: int, seed: int) -> list[GraspPatch]:
    """Up to ``count`` patches, half successes where there are enough, drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    pos = [p for p in patches if p.success]
    neg = [p for p in patches if not p.success]
    n_pos = min(len(pos), count // 2)
    n_neg = min(len(neg), count - n_pos)
    chosen = [pos[i] for i in rng.choice(len(pos), n_pos, replace=False)] + [
        neg[i] for i in rng.choice(len(neg), n_neg, replace=False)
    ]
    return [chosen[i] for i in rng.permutation(len(chosen))]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m funk_grasp.preview", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--data", type=Path, default=Path("datasets/grasp/Train"), help="a split folder (positive/ and negative/)"
    )
    p.add_argument("--out", type=Path, default=Path("results/grasp/preview.png"))
    p.add_argument("--count", type=int, default=48)
    p.add_argument("--columns", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    return p


@command
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.count < 1 or args.columns < 1:
        raise ValueError(f"--count and --columns: expected >= 1, found {args.count} and {args.columns}")
    chosen = pick(read_split(args.data), args.count, args.seed)
    if not chosen:
        raise ValueError(f"{args.data}: no patches listed")
    write_png_atomic(args.out, contact_sheet(chosen, args.columns))
    print(f"wrote {args.out} ({len(chosen)} attempts, {sum(p.success for p in chosen)} successful)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
