"""Contact sheets: a grid of images per task with keypoints drawn and numbered, to check semantics by eye.

``python -m funk_perception.data.preview --data DIR/annotations.csv --out sheet.png --task pour``

One row per category labelled for the task, ``--per-category`` images per row.
Each keypoint has one colour per index across every sheet (p1 red ... p5
blue), a thin line chains p1 -> p5, and an occluded keypoint (``v = 0``) is a
hollow ring rather than a filled dot. Without ``--task`` one sheet per task is
written next to ``--out`` (``sheet_pour.png``, ``sheet_scoop.png``, ...).
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from funk_perception.atomic import write_png_atomic
from funk_perception.cli import command
from funk_perception.data.annotations import Annotation, read_annotations
from funk_perception.tasks import (
    ALL_CATEGORIES,
    KEYPOINT_MEANINGS,
    KEYPOINTS,
    TASK_DISPLAY_NAMES,
    TASKS,
    normalize_task,
)

#: RGB colour of p1..p5 (a colour-blind-friendlier qualitative palette).
KEYPOINT_COLORS: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75),
    (245, 130, 48),
    (255, 225, 25),
    (60, 180, 75),
    (0, 130, 200),
)


@dataclass(frozen=True)
class PreviewConfig:
    per_category: int = 6
    tile: int = 192
    label_width: int = 130
    seed: int = 0


def _text(
    image: np.ndarray,
    text: str,
    org: tuple[int, int],
    scale: float,
    color=(255, 255, 255),
    thickness: int = 1,
    outline: bool = True,
) -> None:
    if outline:  # a dark outline so labels read on any photo or texture
        cv2.putText(image, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness + 2, cv2.LINE_AA)
    cv2.putText(image, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, color, thickness, cv2.LINE_AA)


def draw_keypoints(image: np.ndarray, keypoints: np.ndarray, visible: np.ndarray, radius: int = 5) -> np.ndarray:
    """Draw (5, 2) pixel keypoints on an RGB image copy: chain line, filled/hollow dots, p1..p5 labels."""
    out = np.ascontiguousarray(image.copy())
    pts = [(int(round(x)), int(round(y))) for x, y in keypoints]
    for a, b in zip(pts[:-1], pts[1:]):
        cv2.line(out, a, b, (255, 255, 255), 1, cv2.LINE_AA)
    for k, (p, vis) in enumerate(zip(pts, visible)):
        color = KEYPOINT_COLORS[k]
        if vis:
            cv2.circle(out, p, radius, (0, 0, 0), -1, cv2.LINE_AA)
            cv2.circle(out, p, radius - 1, color, -1, cv2.LINE_AA)
        else:
            cv2.circle(out, p, radius, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.circle(out, p, radius, color, 1, cv2.LINE_AA)
        _text(out, KEYPOINTS[k], (p[0] + radius + 1, p[1] - radius + 2), 0.36, color)
    return out


def _choose(rows: list[Annotation], n: int, rng: np.random.Generator) -> list[Annotation]:
    """Up to n rows, one per instance first (more instances say more about a category than more views)."""
    by_instance: dict[str, list[Annotation]] = defaultdict(list)
    for a in rows:
        by_instance[a.instance_id].append(a)
    instances = sorted(by_instance)
    order = [instances[i] for i in rng.permutation(len(instances))]
    chosen: list[Annotation] = []
    round_ = 0
    while len(chosen) < n and any(len(by_instance[i]) > round_ for i in order):
        for inst in order:
            if len(chosen) < n and len(by_instance[inst]) > round_:
                chosen.append(by_instance[inst][round_])
        round_ += 1
    return chosen


def contact_sheet(annotations: Sequence[Annotation], task: str, config: PreviewConfig | None = None) -> np.ndarray:
    """An RGB contact sheet for ``task``: a header with the legend, one row per category."""
    config = config or PreviewConfig()
    task = normalize_task(task)
    rows = [a for a in annotations if a.task == task]
    if not rows:
        raise ValueError(f"contact_sheet: no annotation rows for task {task!r}")
    categories = [c for c in ALL_CATEGORIES if any(a.category == c for a in rows)]
    rng = np.random.default_rng(config.seed)
    t = config.tile
    header_h = 64
    width = config.label_width + config.per_category * t
    sheet = np.full((header_h + len(categories) * t, width, 3), 32, np.uint8)
    _text(sheet, f"{TASK_DISPLAY_NAMES[task]}  ({task})", (8, 24), 0.7, outline=False)
    x = 8
    for k, name in enumerate(KEYPOINTS):
        cv2.circle(sheet, (x + 6, 46), 6, KEYPOINT_COLORS[k], -1, cv2.LINE_AA)
        label = f"{name}: {KEYPOINT_MEANINGS[name].split('(')[0].strip()}"
        _text(sheet, label, (x + 16, 51), 0.38, outline=False)
        x += 16 + int(cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.38, 1)[0][0]) + 14
    _text(sheet, "hollow ring = occluded", (max(width - 190, 300), 24), 0.45, outline=False)
    for r, category in enumerate(categories):
        y0 = header_h + r * t
        _text(sheet, category, (6, y0 + t // 2), 0.5, outline=False)
        for c, a in enumerate(_choose([a for a in rows if a.category == category], config.per_category, rng)):
            bgr = cv2.imread(str(a.image_path), cv2.IMREAD_COLOR)
            if bgr is None:
                raise OSError(f"contact_sheet: cannot read image {a.image_path} (line {a.line})")
            image = cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), (t, t), interpolation=cv2.INTER_AREA)
            tile = draw_keypoints(image, a.pixel_keypoints(t, t), a.visible, radius=max(3, t // 40))
            _text(tile, a.instance_id, (3, t - 5), 0.33, (220, 220, 220))
            x0 = config.label_width + c * t
            sheet[y0 : y0 + t, x0 : x0 + t] = tile
            cv2.rectangle(sheet, (x0, y0), (x0 + t - 1, y0 + t - 1), (32, 32, 32), 1)
    return sheet


def write_previews(
    csv_path: str | Path, out: str | Path, task: str | None = None, config: PreviewConfig | None = None
) -> list[Path]:
    """Write one sheet (``task`` given) to ``out``, or one per task present as ``<out stem>_<task>.png``."""
    annotations = read_annotations(csv_path, check_images=False)
    out = Path(out)
    if task is not None:
        sheet = contact_sheet(annotations, task, config)
        write_png_atomic(out, sheet)
        return [out]
    present = {a.task for a in annotations}
    paths = []
    for t in TASKS:
        if t in present:
            path = out.with_name(f"{out.stem}_{t}{out.suffix or '.png'}")
            write_png_atomic(path, contact_sheet(annotations, t, config))
            paths.append(path)
    return paths


@command
def main(argv: Sequence[str] | None = None) -> int:
    d = PreviewConfig()
    p = argparse.ArgumentParser(prog="python -m funk_perception.data.preview", description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, required=True, help="a FunKPoint-style CSV (e.g. DIR/annotations.csv)")
    p.add_argument("--out", type=Path, required=True, help="PNG path (one per task without --task)")
    p.add_argument("--task", default=None, help="one task (any spelling: pour, 'Mash/Pound')")
    p.add_argument("--per-category", type=int, default=d.per_category)
    p.add_argument("--tile", type=int, default=d.tile)
    p.add_argument("--seed", type=int, default=d.seed)
    args = p.parse_args(argv)
    try:
        paths = write_previews(
            args.data, args.out, args.task, PreviewConfig(args.per_category, args.tile, d.label_width, args.seed)
        )
    except ValueError as error:
        print(f"preview: error: {error}", file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
