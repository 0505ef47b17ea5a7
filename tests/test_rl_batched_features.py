"""The detector's batched, device-resident calls agree with the per-image API on the shipped checkpoint."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from funk_perception.detector import FunctionalKeypointDetector
from funk_perception.model import preprocess

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "funk-lite0-synth.pt"
TASKS = ["mash_pound", "pull_out_nail"]


@pytest.fixture(scope="module")
def detector() -> FunctionalKeypointDetector:
    torch.set_num_threads(1)
    return FunctionalKeypointDetector.load(MODEL, device="cpu")


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    paths = sorted((ROOT / "samples" / "synth" / "images").rglob("*.jpg"))[:3]
    images = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths]
    return np.stack([cv2.resize(im, (224, 224), interpolation=cv2.INTER_AREA) for im in images])


def test_features_batch_equals_features_per_image(detector: FunctionalKeypointDetector, frames: np.ndarray) -> None:
    batch = detector.features_batch(frames, TASKS)
    assert batch.shape == (3, 2, detector.encoder.embedding_dim, 14, 14)
    assert batch.device == detector.device and batch.dtype == torch.float32
    for i, frame in enumerate(frames):
        assert torch.allclose(batch[i], detector.features(frame, TASKS), atol=1e-5)
    # torch input gives the same numbers as numpy input
    assert torch.allclose(detector.features_batch(torch.from_numpy(frames), TASKS), batch, atol=1e-6)
    # without mirror-averaging: the encoder's plain forward pass
    plain = detector.features_batch(frames, TASKS, flip=False)
    with torch.inference_mode():
        expected = detector.encoder(preprocess(frames), TASKS)
    assert torch.allclose(plain, expected, atol=1e-6)


def test_pooling_averages_regions(detector: FunctionalKeypointDetector, frames: np.ndarray) -> None:
    full = detector.features_batch(frames, TASKS)
    pooled = detector.features_batch(frames, TASKS, pool=1)
    assert pooled.shape == (3, 2, full.shape[2], 1, 1)
    assert torch.allclose(pooled[..., 0, 0], full.mean(dim=(-2, -1)), atol=1e-6)
    trunk = detector.trunk_features_batch(frames, pool=2)
    assert trunk.shape == (3, detector.encoder.trunk.out_channels, 2, 2)
    # Different images give different pooled features (the pooling keeps image content).
    assert (pooled[0] - pooled[1]).abs().max() > 1e-3


def test_keypoints_batch_equals_detect(detector: FunctionalKeypointDetector, frames: np.ndarray) -> None:
    points, confidence = detector.keypoints_batch(frames, TASKS)
    assert points.shape == (3, 2, 5, 2) and confidence.shape == (3, 2, 5)
    for i, frame in enumerate(frames):
        found = detector.detect(frame, TASKS)
        for t, task in enumerate(TASKS):
            np.testing.assert_allclose(points[i, t].numpy() * 224, found[task].points, atol=1e-3)
            np.testing.assert_allclose(confidence[i, t].numpy(), found[task].confidence, atol=1e-5)


def test_frames_of_another_size_are_resized_on_the_device(
    detector: FunctionalKeypointDetector, frames: np.ndarray
) -> None:
    big = np.stack([cv2.resize(f, (448, 448), interpolation=cv2.INTER_NEAREST) for f in frames])
    direct = detector.features_batch(frames, TASKS, pool=1).flatten(1)
    resized = detector.features_batch(big, TASKS, pool=1).flatten(1)
    assert F.cosine_similarity(direct, resized).min() > 0.98


def test_bf16_autocast_stays_close(detector: FunctionalKeypointDetector, frames: np.ndarray) -> None:
    fp32 = detector.features_batch(frames, TASKS, pool=1).flatten(1)
    bf16 = detector.features_batch(frames, TASKS, pool=1, dtype=torch.bfloat16).flatten(1)
    assert bf16.dtype == torch.float32
    assert ((bf16 - fp32).norm(dim=1) / fp32.norm(dim=1)).max() < 0.05


@pytest.mark.parametrize(
    "bad, kind, words",
    [
        (np.zeros((2, 32, 32, 3), np.float32), TypeError, "uint8"),
        (np.zeros((32, 32, 3), np.uint8), ValueError, "(N, H, W, 3)"),
        (np.zeros((2, 32, 32, 4), np.uint8), ValueError, "(2, 32, 32, 4)"),
        ([np.zeros((32, 32, 3), np.uint8)], TypeError, "list"),
    ],
)
def test_bad_batches_are_named(detector: FunctionalKeypointDetector, bad: object, kind: type, words: str) -> None:
    with pytest.raises(kind, match="features_batch") as info:
        detector.features_batch(bad)  # type: ignore[arg-type]
    assert words in str(info.value)
