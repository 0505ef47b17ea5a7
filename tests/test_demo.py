"""The README's main job: the shipped model on the shipped samples."""

import json

import cv2
import numpy as np
import pytest

from funk_perception.data.annotations import FunKPointDataset
from funk_perception.demo import DEFAULT_DATA, DEFAULT_MODEL, DemoConfig, run_demo
from funk_perception.detector import FunctionalKeypointDetector
from funk_perception.tasks import TASKS


@pytest.fixture(scope="module")
def detector():
    return FunctionalKeypointDetector.load(DEFAULT_MODEL, device="cpu")


def test_shipped_model_has_prototypes_for_every_task(detector):
    assert detector.tasks == TASKS


def test_demo_on_the_samples_writes_a_sheet_and_detections(tmp_path):
    record = run_demo(DemoConfig(out=tmp_path, max_images=3, device="cpu"))
    sheet = cv2.imread(str(tmp_path / "demo.png"))
    assert sheet is not None and sheet.shape[0] > 200
    saved = json.loads((tmp_path / "demo.json").read_text())
    assert saved["images"] and saved == json.loads(json.dumps(record))
    for entry in saved["images"]:
        for task, found in entry["detections"].items():
            points = np.asarray(found["points"])
            assert task in TASKS and points.shape == (5, 2)
            assert np.all((points >= 0) & (points <= 224)) and len(found["confidence"]) == 5


def test_demo_on_a_user_image_detects_the_requested_task(tmp_path):
    path = FunKPointDataset(DEFAULT_DATA, roles=["test"]).image_paths[0]
    record = run_demo(DemoConfig(out=tmp_path, images=(path,), tasks=("Mash/Pound",), device="cpu"))
    assert list(record["images"][0]["detections"]) == ["mash_pound"]


def test_detect_is_deterministic_and_beats_chance_on_the_samples(detector):
    """Prototype detection on the held-out sample instances: far better than a random guess.

    A uniformly random point lands within 0.1 of a keypoint about 3 % of the time.
    """
    dataset = FunKPointDataset(DEFAULT_DATA, roles=["test"])
    hits, total = 0, 0
    for path in dataset.image_paths:
        image = dataset.load_image(path)
        rows = [a for a in dataset.annotations if a.image_path == path]
        found = detector.detect(image, [a.task for a in rows])
        again = detector.detect(image, [a.task for a in rows])
        for ann in rows:
            assert np.array_equal(found[ann.task].points, again[ann.task].points)
            error = np.linalg.norm(found[ann.task].points / 224.0 - ann.keypoints, axis=1)
            hits += int((error[ann.visible] <= 0.1).sum())
            total += int(ann.visible.sum())
    assert total > 50
    assert hits / total > 0.25
