"""Angle bins and the Pinto-Gupta patch reader (tests/fixtures/grasp_pinto is written in that layout)."""

import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from funk_grasp.data import (
    ANGLE_BINS,
    angle_to_bin,
    bin_to_angle,
    crop_patch,
    load_patches,
    one_hot,
    read_split,
    write_split,
)

FIXTURE = Path(__file__).parent / "fixtures" / "grasp_pinto"


def test_bins_cover_180_degrees_in_10_degree_steps():
    assert ANGLE_BINS == 18
    assert angle_to_bin(0.0) == 0
    assert angle_to_bin(math.radians(9.99)) == 0
    assert angle_to_bin(math.radians(10.0)) == 1
    assert angle_to_bin(math.radians(179.9)) == 17
    # a parallel-jaw grasp at a and a + pi is the same grasp
    assert angle_to_bin(math.radians(185.0)) == 0
    assert angle_to_bin(math.radians(-5.0)) == 17


def test_bin_one_hot_round_trip():
    bins = np.arange(ANGLE_BINS)
    assert [angle_to_bin(bin_to_angle(k)) for k in bins] == list(bins)
    hot = one_hot(bins)
    assert hot.shape == (ANGLE_BINS, ANGLE_BINS)
    assert np.array_equal(hot.argmax(1), bins)
    assert np.array_equal(hot.sum(1), np.ones(ANGLE_BINS))
    with pytest.raises(ValueError, match="0..17"):
        one_hot([18])
    with pytest.raises(ValueError, match="finite"):
        angle_to_bin(float("nan"))


def test_reader_reads_the_fixture_splits():
    for split in ("Train", "Validation", "Test"):
        patches = read_split(FIXTURE / split)
        assert patches and any(p.success for p in patches) and not all(p.success for p in patches)
        assert all(p.path.is_file() for p in patches)
    loaded = load_patches(read_split(FIXTURE / "Train"))
    assert loaded.images.dtype == np.uint8 and loaded.images.ndim == 4
    assert set(loaded.labels.tolist()) == {0.0, 1.0}
    assert loaded.bins.min() >= 0 and loaded.bins.max() < ANGLE_BINS


def test_writer_and_reader_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    rows = [(f"p{i}.png", rng.integers(0, 255, (20, 20, 3), dtype=np.uint8), 0.1 * i, i % 2 == 0) for i in range(6)]
    write_split(tmp_path / "Train", rows)
    back = read_split(tmp_path / "Train")
    assert sorted((p.path.name, round(p.angle, 6), p.success) for p in back) == sorted(
        (name, round(angle, 6), ok) for name, _, angle, ok in rows
    )
    assert np.array_equal(load_patches([p for p in back if p.path.name == "p1.png"]).images[0], rows[1][1])


def test_crop_is_centred_and_padded_at_the_border():
    image = np.zeros((50, 60, 3), np.uint8)
    image[20, 30] = 255
    patch = crop_patch(image, 30.5, 20.5, 11)
    assert patch.shape == (11, 11, 3)
    assert patch[5, 5, 0] == 255 or patch[6, 6, 0] == 255
    assert crop_patch(image, 0, 0, 16).shape == (16, 16, 3)


@pytest.fixture
def split(tmp_path) -> Path:
    shutil.copytree(FIXTURE / "Train", tmp_path / "Train")
    return tmp_path / "Train"


def _edit(info: Path, lines):
    info.write_text("\n".join(lines) + "\n")


def test_missing_header_is_named(split):
    info = split / "positive" / "dataInfo.txt"
    _edit(info, info.read_text().splitlines()[1:])
    with pytest.raises(ValueError, match=r"dataInfo.txt:1: missing header"):
        read_split(split)


def test_bad_angle_is_named_with_its_line(split):
    info = split / "negative" / "dataInfo.txt"
    lines = info.read_text().splitlines()
    name = lines[2].split(",")[0]
    lines[2] = f"{name},ninety"
    _edit(info, lines)
    with pytest.raises(
        ValueError, match=r"negative/dataInfo.txt:3: angle: expected a number of radians, found 'ninety'"
    ):
        read_split(split)


def test_missing_image_is_named_with_its_line(split):
    info = split / "positive" / "dataInfo.txt"
    lines = info.read_text().splitlines()
    (split / "positive" / "Images" / lines[1].split(",")[0]).unlink()
    with pytest.raises(FileNotFoundError, match=r"positive/dataInfo.txt:2: image .* not found"):
        read_split(split)


def test_wrong_field_count_and_missing_files_are_named(split):
    info = split / "positive" / "dataInfo.txt"
    lines = info.read_text().splitlines()
    lines[1] = lines[1] + ",extra"
    _edit(info, lines)
    with pytest.raises(ValueError, match=r"dataInfo.txt:2: expected 2 fields patchname,angle, found 3"):
        read_split(split)
    info.unlink()
    with pytest.raises(FileNotFoundError, match=r"positive/dataInfo.txt: missing"):
        read_split(split)
    shutil.rmtree(split / "positive")
    with pytest.raises(FileNotFoundError, match=r"positive: missing \(a split folder"):
        read_split(split)
