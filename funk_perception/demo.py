"""The main job on built-in defaults: functional keypoints on the shipped sample images.

    python -m funk_perception.demo                      # shipped model, shipped samples
    python -m funk_perception.demo --image photo.jpg --task pour --task poke

With no ``--image``, every ``test``-role image of ``--data`` (default: the
synthetic samples under ``samples/``) is run through
:class:`~funk_perception.detector.FunctionalKeypointDetector` for the tasks
its category is labelled for; the sheet shows predictions (filled, numbered)
beside the ground truth, and the run prints PCK@0.1 of the prototype detector
on those images. Results go to ``--out`` as a PNG sheet and a JSON file.
"""

from __future__ import annotations

import torch  # noqa: F401  isort: skip  (before any GL context, see docs/DESIGN.md, "Import torch first")

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from funk_perception.atomic import write_png_atomic, write_text_atomic
from funk_perception.cli import command
from funk_perception.data.annotations import FunKPointDataset
from funk_perception.data.preview import draw_keypoints
from funk_perception.detector import FunctionalKeypointDetector, TaskKeypoints
from funk_perception.metrics import pck_correct
from funk_perception.shipped import default_checkpoint, shipped_file
from funk_perception.tasks import normalize_task

DEFAULT_MODEL = default_checkpoint()
DEFAULT_DATA = shipped_file("samples/synth/annotations.csv")


@dataclass
class DemoConfig:
    model: Path = DEFAULT_MODEL
    data: Path = DEFAULT_DATA
    out: Path = Path("results/demo")
    images: tuple[Path, ...] = ()
    tasks: tuple[str, ...] = ()
    max_images: int = 12
    device: str = "auto"


def _tile(image: np.ndarray, title: str, size: int = 224) -> np.ndarray:
    scale = size / max(image.shape[:2])
    tile = np.zeros((size + 18, size, 3), np.uint8)
    resized = cv2.resize(image, (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale))))
    tile[18 : 18 + resized.shape[0], : resized.shape[1]] = resized
    cv2.putText(tile, title[:34], (3, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def _sheet(tiles: list[np.ndarray], columns: int = 4) -> np.ndarray:
    h, w = tiles[0].shape[:2]
    rows = -(-len(tiles) // columns)
    sheet = np.full((rows * h, columns * w, 3), 24, np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        sheet[r * h : r * h + tile.shape[0], c * w : c * w + tile.shape[1]] = tile
    return sheet


def _as_json(found: dict[str, TaskKeypoints]) -> dict:
    return {
        task: {
            "points": kp.points.round(2).tolist(),
            "confidence": kp.confidence.round(4).tolist(),
            "names": list(kp.names),
        }
        for task, kp in found.items()
    }


def _read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"{path}: not a readable image file")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def run_demo(config: DemoConfig) -> dict:
    """Detect keypoints on the configured images; write a PNG sheet and JSON; return the JSON record."""
    detector = FunctionalKeypointDetector.load(config.model, device=config.device)
    tasks = [normalize_task(t) for t in config.tasks] or None
    tiles: list[np.ndarray] = []
    record: dict = {"model": str(config.model), "images": []}

    if config.images:
        for path in config.images:
            image = _read_rgb(Path(path))
            found = detector.detect(image, tasks)
            record["images"].append({"image": str(path), "detections": _as_json(found)})
            for task, kp in found.items():
                tiles.append(
                    _tile(draw_keypoints(image, kp.points, kp.confidence >= 0.05), f"{Path(path).name} {task}")
                )
    else:
        dataset = FunKPointDataset(config.data, roles=["test"], tasks=tasks)
        rows_by_image: dict[Path, list] = {}
        for ann in dataset.annotations:
            rows_by_image.setdefault(ann.image_path, []).append(ann)
        correct = total = 0
        for path in dataset.image_paths[: config.max_images]:
            rows = rows_by_image.get(path, [])
            if not rows:
                continue
            image = dataset.load_image(path)
            h, w = image.shape[:2]
            found = detector.detect(image, [a.task for a in rows])
            entry = {"image": str(path), "category": rows[0].category, "detections": _as_json(found), "pck@0.1": {}}
            for ann in rows:
                pred = found[ann.task].points / np.array([w, h])
                hits = pck_correct(pred, ann.keypoints, 0.1)[ann.visible]
                correct += int(hits.sum())
                total += int(ann.visible.sum())
                entry["pck@0.1"][ann.task] = float(hits.mean()) if hits.size else None
                truth = draw_keypoints(image, ann.pixel_keypoints(w, h), ann.visible)
                predicted = draw_keypoints(image, found[ann.task].points, np.ones(5, bool))
                tiles += [_tile(predicted, f"{ann.category} {ann.task}: predicted"), _tile(truth, "ground truth")]
            record["images"].append(entry)
        record["pck@0.1"] = correct / total if total else None
        record["visible_keypoints"] = total

    if not tiles:
        raise ValueError(f"nothing to show: no test-role rows in {config.data} for tasks {tasks}")
    write_png_atomic(config.out / "demo.png", _sheet(tiles))
    write_text_atomic(config.out / "demo.json", json.dumps(record, indent=1))
    return record


@command
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="checkpoint (default: the shipped model)")
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="FunKPoint-style CSV whose test images to run on"
    )
    parser.add_argument(
        "--image", type=Path, action="append", default=[], help="run on this image instead (repeatable)"
    )
    parser.add_argument("--task", action="append", default=[], help="restrict to this task (repeatable; default: all)")
    parser.add_argument("--max-images", type=int, default=DemoConfig.max_images)
    parser.add_argument("--out", type=Path, default=DemoConfig.out)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    config = DemoConfig(
        args.model, args.data, args.out, tuple(args.image), tuple(args.task), args.max_images, args.device
    )
    record = run_demo(config)
    print(f"wrote {config.out / 'demo.png'} and {config.out / 'demo.json'}")
    if record.get("pck@0.1") is not None:
        print(
            f"PCK@0.1 of the prototype detector on {record['visible_keypoints']} visible keypoints: {100 * record['pck@0.1']:.1f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
