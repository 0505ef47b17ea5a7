"""One product path: ``evaluate`` measures what ``detect`` and ``transfer`` do, and the batched calls (the RL
loop's) give the single-image calls' keypoints, on camera-shaped (non-square) frames with the shipped model."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from funk_perception.data.annotations import FunKPointDataset, write_annotations
from funk_perception.data.pairs import evaluation_pairs
from funk_perception.detector import FunctionalKeypointDetector, available_methods
from funk_perception.eval_config import EvalConfig
from funk_perception.eval_methods import compute_features, letterbox_frames, load_methods, predict_pairs
from funk_perception.shipped import default_checkpoint

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples" / "synth"


@pytest.fixture(scope="module")
def detector() -> FunctionalKeypointDetector:
    torch.manual_seed(0)
    return FunctionalKeypointDetector.load(default_checkpoint(), device="cpu")


def _camera_frames(count: int) -> list[np.ndarray]:
    """Sample renders placed in 4:3 frames of two sizes (as a camera would see them), seeded."""
    dataset = FunKPointDataset(SAMPLES / "annotations.csv")
    paths = sorted({a.image_path for a in dataset.annotations})[:count]
    frames = []
    for i, path in enumerate(paths):
        image = dataset.load_image(path)
        w, h = (640, 480) if i % 2 == 0 else (320, 240)
        canvas = np.full((h, w, 3), 90, np.uint8)
        side = h
        canvas[:, (w - side) // 2 : (w + side) // 2] = cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA)
        frames.append(canvas)
    return frames


@pytest.mark.parametrize("mirror_maps", [False, True])
def test_keypoints_batch_gives_detects_keypoints_on_camera_frames(
    detector: FunctionalKeypointDetector, mirror_maps: bool
) -> None:
    detector.mirror_maps = mirror_maps
    try:
        frames = [f for f in _camera_frames(4) if f.shape[:2] == (480, 640)]
        tasks = ["pour", "mash_pound"]
        points, confidence = detector.keypoints_batch(np.stack(frames), tasks)
        for frame, p, c in zip(frames, points, confidence):
            single = detector.detect(frame, tasks)
            for t, task in enumerate(tasks):
                pixels = p[t].numpy() * [frame.shape[1], frame.shape[0]]
                assert np.abs(pixels - single[task].points).max() < 0.5, task
                assert np.abs(c[t].numpy() - single[task].confidence).max() < 1e-3
    finally:
        detector.mirror_maps = False


def test_batched_frames_at_the_model_size_skip_no_preprocessing(detector: FunctionalKeypointDetector) -> None:
    frames = np.stack([cv2.resize(f, (224, 224), interpolation=cv2.INTER_AREA) for f in _camera_frames(2)])
    points, _ = detector.keypoints_batch(frames, ["scoop"])
    for frame, p in zip(frames, points):
        assert np.abs(p[0].numpy() * 224 - detector.detect(frame, ["scoop"])["scoop"].points).max() < 0.5


def test_evaluate_transfer_equals_detector_transfer(detector: FunctionalKeypointDetector, tmp_path: Path) -> None:
    # a FunKPoint-style CSV of the camera frames: the render's keypoints mapped into each canvas
    source = FunKPointDataset(SAMPLES / "annotations.csv")
    paths = sorted({a.image_path for a in source.annotations})[:6]
    frames = _camera_frames(6)
    rows = []
    for i, (path, frame) in enumerate(zip(paths, frames)):
        h, w = frame.shape[:2]
        name = f"frame{i}.png"
        cv2.imwrite(str(tmp_path / name), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        for a in source.annotations:
            if a.image_path == path:
                kp = a.keypoints * [h / w, 1.0] + [(w - h) / 2 / w, 0.0]
                rows.append(
                    replace(
                        a,
                        image_path=tmp_path / name,
                        relative_path=name,
                        keypoints=kp,
                        extras={},
                        role="test" if i % 2 else "train",
                    )
                )
    csv = tmp_path / "annotations.csv"
    write_annotations(csv, rows)
    dataset = FunKPointDataset(csv)
    annotations = list(dataset.annotations)
    pairs = [p for p in evaluation_pairs(annotations, seed=0, references_per_task=3)]
    assert len(pairs) >= 3
    config = EvalConfig(data=csv, models=[default_checkpoint()], device="cpu")
    method = next(m for m in load_methods(config, torch.device("cpu")) if m.kind == "model")
    needs: dict[Path, set[str]] = {}
    for p in pairs:
        for i in (p.source, p.target):
            needs.setdefault(annotations[i].image_path, set()).add(p.task)
    cache = compute_features(method, dataset, needs, letterbox_pad="mean")
    frames_of = letterbox_frames(dataset, list(needs), method.image_size)
    predicted = predict_pairs(method, annotations, pairs, cache, frames=frames_of)["refined"]
    for p, normalised in zip(pairs, predicted):
        ref, tgt = annotations[p.source], annotations[p.target]
        ref_image, tgt_image = dataset.load_image(ref.image_path), dataset.load_image(tgt.image_path)
        size = np.array([ref_image.shape[1], ref_image.shape[0]])
        moved = detector.transfer(ref_image, ref.keypoints * size, tgt_image, p.task)
        size = np.array([tgt_image.shape[1], tgt_image.shape[0]])
        assert np.abs(moved.points / size - normalised).max() < 0.01, p  # the cache is float16: not to the bit
    assert "bank_heatmap" in available_methods(method.encoder.loaded_extra)
