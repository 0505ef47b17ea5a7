"""models/funk-lite2-synth.pt, the shipped recipe on the EfficientNet-Lite2 trunk: what it holds, and that it
transfers and detects (model card variant 44)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from funk_perception.data.annotations import FunKPointDataset
from funk_perception.detector import FunctionalKeypointDetector
from funk_perception.metrics import pck
from funk_perception.tasks import TASKS

ROOT = Path(__file__).resolve().parents[1]
LITE2 = ROOT / "models" / "funk-lite2-synth.pt"
SAMPLES = ROOT / "samples" / "synth" / "annotations.csv"


@pytest.fixture(scope="module")
def detector() -> FunctionalKeypointDetector:
    return FunctionalKeypointDetector.load(LITE2, device="cpu")


def test_holds_the_shipped_recipe_on_lite2(detector: FunctionalKeypointDetector) -> None:
    config = detector.encoder.config
    assert (config.trunk, config.members, config.trunk_weight) == ("lite2", 2, 0.5)
    assert detector.encoder.trunk.out_channels == 120
    assert detector.method == "bank_heatmap" and set(detector.bank) == set(TASKS)
    assert detector.heatmap_head is not None


def test_transfers_between_instances_of_a_category(detector: FunctionalKeypointDetector) -> None:
    # the samples' keypoint numbering is generator 1.1.0's; transfer does not depend on numbering
    dataset = FunKPointDataset(SAMPLES, roles=["train", "test"])
    groups: dict[tuple[str, str], list] = defaultdict(list)
    for a in dataset.annotations:
        groups[(a.task, a.category)].append(a)
    pairs = [rows[:2] for rows in groups.values() if len(rows) >= 2 and (rows[0].visible & rows[1].visible).any()][:32]
    predicted, truth = [], []
    for reference, target in pairs:
        ref_image, target_image = dataset.load_image(reference.image_path), dataset.load_image(target.image_path)
        size = np.array([ref_image.shape[1], ref_image.shape[0]])
        shared = reference.visible & target.visible
        found = detector.transfer(ref_image, reference.keypoints[shared] * size, target_image, reference.task)
        predicted.append(found.points / np.array([target_image.shape[1], target_image.shape[0]]))
        truth.append(target.keypoints[shared])
    truth_all = np.concatenate(truth)[None]  # (1, N, 2): every shared keypoint of every pair
    valid = np.ones(truth_all.shape[:2], bool)
    ours = pck(np.concatenate(predicted)[None], truth_all, valid, 0.1)
    centre = pck(np.full_like(truth_all, 0.5), truth_all, valid, 0.1)
    assert ours > centre + 10, (ours, centre)


def test_detects_every_task_inside_the_image(detector: FunctionalKeypointDetector) -> None:
    dataset = FunKPointDataset(SAMPLES, roles=["test"])
    image = dataset.load_image(dataset.annotations[0].image_path)[:, 16:]  # not square: the letterbox is undone
    found = detector.detect(image)
    assert set(found) == set(TASKS)
    for result in found.values():
        assert result.points.shape == (5, 2) and np.isfinite(result.points).all()
        assert (result.points >= 0).all() and (result.points[:, 0] <= image.shape[1]).all()
        assert (result.points[:, 1] <= image.shape[0]).all()
        assert ((result.confidence >= 0) & (result.confidence <= 1)).all()
