"""Bootstrap intervals of PCK over images, and paired differences between two rows."""

import numpy as np
import pytest

from funk_perception.intervals import pck_difference, pck_interval, per_image


def _rows(rate: float, images: int, rows_per_image: int, seed: int, whole_images: bool) -> tuple:
    """(hit, valid, keys): 5 keypoints per row; ``whole_images``: every keypoint of an image hits or misses together."""
    rng = np.random.default_rng(seed)
    keys = np.repeat(np.arange(images), rows_per_image)
    if whole_images:
        per = rng.random(images) < rate
        hit = np.repeat(per[keys][:, None], 5, axis=1)
    else:
        hit = rng.random((len(keys), 5)) < rate
    return hit, np.ones_like(hit), keys.tolist()


def test_per_image_sums_the_rows_of_each_image_and_skips_invisible_keypoints() -> None:
    hit = np.array([[1, 1, 0], [0, 1, 1], [1, 0, 0]], dtype=bool)
    valid = np.array([[1, 1, 1], [1, 0, 1], [1, 1, 1]], dtype=bool)
    hits, seen = per_image(hit, valid, ["b.jpg", "a.jpg", "b.jpg"])  # grouped by key, sorted: a, b
    assert hits.tolist() == [1, 3] and seen.tolist() == [2, 6]
    with pytest.raises(ValueError, match="N image keys"):
        per_image(hit, valid, ["a.jpg"])


def test_interval_holds_the_estimate_narrows_with_more_images_and_is_seeded() -> None:
    small = _rows(0.45, 20, 2, 0, False)
    large = _rows(0.45, 400, 2, 0, False)
    lo_s, hi_s = pck_interval(*small)
    lo_l, hi_l = pck_interval(*large)
    for (hit, valid, _), (lo, hi) in ((small, (lo_s, hi_s)), (large, (lo_l, hi_l))):
        assert lo <= 100 * hit[valid].mean() <= hi
    assert hi_l - lo_l < 0.5 * (hi_s - lo_s)  # about sqrt(20) narrower
    assert pck_interval(*small, seed=4) == pck_interval(*small, seed=4)
    assert pck_interval(*small, seed=4) != pck_interval(*small, seed=5)
    assert pck_interval(np.ones((3, 5), bool), np.ones((3, 5), bool), ["x"] * 3) is None  # one image: nothing to draw


def test_images_not_keypoints_are_resampled() -> None:
    # when an image's keypoints hit or miss together, treating them as independent would understate the spread
    hit, valid, keys = _rows(0.5, 100, 2, 1, True)
    lo_img, hi_img = pck_interval(hit, valid, keys)
    lo_kp, hi_kp = pck_interval(hit.reshape(-1, 1), valid.reshape(-1, 1), list(range(hit.size)))
    assert hi_img - lo_img > 2.0 * (hi_kp - lo_kp)


def test_paired_difference_cancels_what_both_rows_share() -> None:
    hit, valid, keys = _rows(0.45, 100, 2, 2, False)
    same = pck_difference(hit, hit, valid, keys)
    assert same == {"difference": 0.0, "low": 0.0, "high": 0.0}
    better = hit.copy()
    better[::10, 0] = True  # a few more hits, on the same hard and easy images
    diff = pck_difference(better, hit, valid, keys)
    assert diff["difference"] == pytest.approx(100 * (better.mean() - hit.mean()))
    assert 0.0 <= diff["low"] <= diff["difference"] <= diff["high"]
    lo, hi = pck_interval(hit, valid, keys)
    assert diff["high"] - diff["low"] < 0.5 * (hi - lo)  # far narrower than either row's own interval
    with pytest.raises(ValueError, match="one shape"):
        pck_difference(hit[:10], hit, valid, keys)
