"""FunctionalKeypointDetector: loading, input validation, detect, transfer, detect/transfer consistency."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from funk_perception.detector import FunctionalKeypointDetector, TaskKeypoints
from funk_perception.matching import cell_to_normalized, sample_features
from funk_perception.model import FunctionalEncoder, named_config
from funk_perception.tasks import KEYPOINTS, TASKS


def _image(seed: int, height: int, width: int) -> np.ndarray:
    """Textured noise with a few coloured blobs, so features vary from place to place."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    for _ in range(6):
        y, x = rng.integers(0, height), rng.integers(0, width)
        image[max(0, y - 12) : y + 12, max(0, x - 12) : x + 12] = rng.integers(0, 256, size=3, dtype=np.uint8)
    return image


def _encoder() -> FunctionalEncoder:
    torch.manual_seed(0)
    config = named_config("tiny")
    # Without the final ReLU the untrained embedding uses the whole sphere, so cells rarely tie.
    config.modular.final_relu = False
    return FunctionalEncoder(config).eval()


@pytest.fixture(scope="module")
def encoder() -> FunctionalEncoder:
    return _encoder()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory, encoder: FunctionalEncoder) -> Path:
    """Prototypes from real embeddings: the mean feature at fixed points of a few images, per task."""
    path = tmp_path_factory.mktemp("detector") / "tiny.pt"
    detector = FunctionalKeypointDetector(encoder)
    points = torch.tensor([[0.2, 0.2], [0.35, 0.3], [0.5, 0.5], [0.65, 0.6], [0.8, 0.8]])
    prototypes = {}
    for task in TASKS[:4]:
        samples = [sample_features(detector.features(_image(s, 120, 160), [task]), points[None])[0] for s in range(3)]
        prototypes[task] = F.normalize(torch.stack(samples).mean(0), dim=-1)
    encoder.save(path, extra={"prototypes": prototypes})
    return path


@pytest.fixture(scope="module")
def detector(checkpoint: Path) -> FunctionalKeypointDetector:
    return FunctionalKeypointDetector.load(checkpoint, device="cpu")


def test_load_keeps_prototypes_and_rejects_checkpoint_without_them(
    detector: FunctionalKeypointDetector, encoder: FunctionalEncoder, tmp_path: Path
) -> None:
    assert detector.tasks == TASKS[:4]
    assert detector.logit_scale == pytest.approx(float(encoder.logit_scale.detach()))
    bare = tmp_path / "bare.pt"
    encoder.save(bare)
    with pytest.raises(ValueError, match="prototypes"):
        FunctionalKeypointDetector.load(bare, device="cpu")


@pytest.mark.parametrize(
    ("bad", "error", "message"),
    [
        ([[0, 0, 0]], TypeError, "found list"),
        (np.zeros((32, 32, 3), np.float32), TypeError, "expected dtype uint8, found float32"),
        (np.zeros((32, 32), np.uint8), ValueError, "grayscale"),
        (np.zeros((32, 32, 4), np.uint8), ValueError, "RGBA"),
        (np.zeros((3, 32, 40), np.uint8), ValueError, "transpose"),
        (np.zeros((0, 32, 3), np.uint8), ValueError, "non-empty"),
        (np.zeros((2, 32, 32, 3), np.uint8), ValueError, "expected shape \\(H, W, 3\\)"),
    ],
)
def test_detect_rejects_bad_images(
    detector: FunctionalKeypointDetector, bad: object, error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        detector.detect(bad)  # type: ignore[arg-type]
    with pytest.raises(error, match=message):
        detector.transfer(_image(0, 64, 64), np.zeros((5, 2)), bad, "pour")  # type: ignore[arg-type]


def test_task_names_are_checked_and_any_accepted_spelling_works(detector: FunctionalKeypointDetector) -> None:
    image = _image(1, 64, 64)
    with pytest.raises(ValueError, match="unknown task 'stir'.*pour, scoop, mix, mash_pound"):
        detector.detect(image, ["stir"])
    with pytest.raises(ValueError, match="no keypoint prototype.*expected one of pour, scoop, mix, mash_pound$"):
        detector.detect(image, ["flip"])  # a real task, but this model has no prototype for it
    with pytest.raises(ValueError, match="unknown task"):
        detector.features(image, ["hammering"])
    found = detector.detect(image, ["Mash/Pound", "POUR"])
    assert list(found) == ["mash_pound", "pour"]


@pytest.mark.parametrize(("height", "width"), [(224, 224), (480, 640), (37, 100)])
def test_detect_returns_five_points_per_task_inside_the_image(
    detector: FunctionalKeypointDetector, height: int, width: int
) -> None:
    found = detector.detect(_image(2, height, width))
    assert list(found) == list(TASKS[:4])
    for task, result in found.items():
        assert isinstance(result, TaskKeypoints) and result.task == task and result.names == KEYPOINTS
        assert result.points.shape == (5, 2) and result.confidence.shape == (5,)
        assert ((result.points[:, 0] >= 0) & (result.points[:, 0] <= width)).all()
        assert ((result.points[:, 1] >= 0) & (result.points[:, 1] <= height)).all()
        assert ((result.confidence >= 0) & (result.confidence <= 1)).all()
    assert detector.features(_image(2, height, width)).shape == (10, 16, 14, 14)


def test_transfer_onto_itself_returns_the_reference_keypoints(checkpoint: Path) -> None:
    detector = FunctionalKeypointDetector.load(checkpoint, device="cpu", letterbox=False)  # the squashed grid
    height, width = 150, 260
    image = _image(3, height, width)
    cells = torch.tensor([[2, 3], [5, 9], [7, 7], [10, 4], [12, 11]])  # (row, col) of the 14 x 14 grid
    normalized = cell_to_normalized(cells[:, 0], cells[:, 1], 14, 14).numpy()
    reference = normalized * np.array([width, height])
    for task in ("pour", "mix", "flip"):  # transfer needs no prototype
        result = detector.transfer(image, reference, image, task)
        cell_px = np.array([width, height]) / 14
        # The query is the cell's own embedding, so the argmax is that cell; refinement moves < half a cell.
        assert (np.abs(result.points - reference) <= 0.5 * cell_px + 1e-6).all()
        assert result.names == KEYPOINTS


def test_transfer_checks_reference_keypoints(detector: FunctionalKeypointDetector) -> None:
    image = _image(4, 50, 80)
    with pytest.raises(ValueError, match="expected shape \\(K, 2\\)"):
        detector.transfer(image, np.zeros(5), image, "pour")
    with pytest.raises(ValueError, match="inside the 80x50 reference image"):
        detector.transfer(image, np.array([[10.0, 10.0], [90.0, 10.0]]), image, "pour")
    three = detector.transfer(image, np.array([[10.0, 10.0], [40.0, 20.0], [70.0, 45.0]]), image, "Scoop")
    assert three.points.shape == (3, 2) and three.names == ("p1", "p2", "p3") and three.task == "scoop"


@pytest.mark.parametrize("letterbox", [False, True])
def test_detect_equals_transfer_when_prototypes_are_the_reference_features(
    encoder: FunctionalEncoder, letterbox: bool
) -> None:
    from funk_perception.model import Letterbox

    reference = _image(5, 200, 300)
    target = _image(6, 180, 120)
    keypoints_px = np.array([[30.0, 40.0], [100.5, 60.25], [150.0, 100.0], [210.0, 150.0], [280.0, 190.0]])
    plain = FunctionalKeypointDetector(encoder, letterbox=letterbox)
    feats = plain.features(reference, ["scrape"])
    normalized = keypoints_px / np.array([300, 200])
    if letterbox:  # features() covers the padded input: sample where the points sit in it
        normalized = Letterbox.fit(200, 300, plain.image_size).to_input(normalized)
    prototypes = {"scrape": sample_features(feats, torch.from_numpy(normalized).float()[None])[0]}
    detected = FunctionalKeypointDetector(encoder, prototypes, letterbox=letterbox).detect(target, ["scrape"])["scrape"]
    transferred = plain.transfer(reference, keypoints_px, target, "scrape")
    assert np.allclose(detected.points, transferred.points, atol=1e-4)
    assert np.allclose(detected.confidence, transferred.confidence, atol=1e-5)
    assert not np.allclose(detected.points, detected.points.mean(axis=0))  # not a degenerate answer


# --------------------------------------------------------------------------- letterbox=True


def test_letterboxed_transfer_onto_itself_returns_the_reference_keypoints(encoder: FunctionalEncoder) -> None:
    """Reference points are carried into the padded input and the matches back: a point at an input cell
    centre, matched onto its own image, comes back within half an input cell, in the image's pixels."""
    from funk_perception.model import Letterbox
    from funk_perception.model.letterbox import letterbox

    boxed = FunctionalKeypointDetector(encoder)  # letterbox=True is the default
    height, width = 120, 260  # pads above and below: 224 x 103 content in the 224 x 224 input
    image = _image(3, height, width)
    frame = Letterbox.fit(height, width, boxed.image_size)
    cells = torch.tensor([[5, 2], [6, 9], [7, 7], [8, 4], [7, 12]])  # (row, col): rows 4-9 are the content's
    inside = cell_to_normalized(cells[:, 0], cells[:, 1], 14, 14).numpy()
    reference = frame.from_input(inside) * np.array([width, height])
    half_cell_px = 0.5 * (boxed.image_size / 14) / (frame.scale * boxed.image_size) * np.array([width, height])
    # onto the image's own letterboxed copy, a square image: the frames differ, so a missing mapping either
    # way would put the points tens of pixels off (the pads are 60 px), not within half a cell (8 px)
    copy, _ = letterbox(image, boxed.image_size, boxed.letterbox_pad)
    in_copy = inside * boxed.image_size
    for task in ("pour", "flip"):
        result = boxed.transfer(image, reference, image, task)
        assert (np.abs(result.points - reference) <= half_cell_px + 1e-6).all(), (result.points, reference)
        onto_copy = boxed.transfer(image, reference, copy, task)
        assert (np.abs(onto_copy.points - in_copy) <= 0.5 * boxed.image_size / 14 + 1e-6).all(), onto_copy.points


def test_letterbox_is_the_default_changes_nothing_on_square_images_and_keeps_points_inside(
    detector: FunctionalKeypointDetector, checkpoint: Path
) -> None:
    assert detector.letterbox and detector.letterbox_pad == "mean"  # the default (docs/EXPERIMENTS.md, variant 10)
    boxed = FunctionalKeypointDetector.load(checkpoint, device="cpu", letterbox_pad="edge")
    squashed = FunctionalKeypointDetector.load(checkpoint, device="cpu", letterbox=False)
    assert boxed.letterbox and boxed.letterbox_pad == "edge" and not squashed.letterbox
    square = _image(8, 300, 300)
    for task, result in boxed.detect(square).items():
        np.testing.assert_allclose(result.points, squashed.detect(square)[task].points, atol=1e-6)
    height, width = 90, 250
    wide = _image(9, height, width)
    for result in boxed.detect(wide).values():
        assert ((result.points >= 0) & (result.points <= [width, height])).all()
    # the features of a letterboxed image are no longer those of the squashed one
    assert not torch.allclose(boxed.features(wide, ["pour"]), squashed.features(wide, ["pour"]))
    with pytest.raises(ValueError, match="letterbox_pad: expected one of mean, edge, found 'black'"):
        FunctionalKeypointDetector(detector.encoder, letterbox=True, letterbox_pad="black")
