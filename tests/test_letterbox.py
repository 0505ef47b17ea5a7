"""Letterbox geometry: the padded image, and points carried into the square input and back."""

from __future__ import annotations

import numpy as np
import pytest

from funk_perception.model.letterbox import LETTERBOX_PADS, MEAN_RGB, Letterbox, letterbox


@pytest.mark.parametrize(("height", "width"), [(120, 160), (300, 100), (224, 224), (37, 500), (1, 3), (500, 499)])
def test_round_trip_and_longer_side_fills_the_input(height: int, width: int) -> None:
    box = Letterbox.fit(height, width, 224)
    assert max(box.scaled_height, box.scaled_width) == 224
    # centred: the two pads of an axis differ by at most one pixel
    assert abs((224 - box.scaled_height - box.top) - box.top) <= 1
    assert abs((224 - box.scaled_width - box.left) - box.left) <= 1
    rng = np.random.default_rng(0)
    points = rng.uniform(0, 1, size=(3, 5, 2))
    inside = box.to_input(points)
    assert inside.shape == points.shape
    np.testing.assert_allclose(box.from_input(inside), points, atol=1e-12)
    # the image's corners land on the content's corners in the input, not on the input's
    corners = box.to_input(np.array([[0.0, 0.0], [1.0, 1.0]])) * 224
    np.testing.assert_allclose(
        corners, [[box.left, box.top], [box.left + box.scaled_width, box.top + box.scaled_height]]
    )


def test_square_image_is_the_identity() -> None:
    box = Letterbox.fit(64, 64, 224)
    points = np.array([[0.1, 0.9], [0.5, 0.25]])
    np.testing.assert_allclose(box.to_input(points), points)
    image = np.random.default_rng(1).integers(0, 256, (224, 224, 3), dtype=np.uint8)
    boxed, same = letterbox(image, 224)
    assert same == Letterbox.fit(224, 224, 224) and np.array_equal(boxed, image)


@pytest.mark.parametrize("pad", LETTERBOX_PADS)
def test_a_marked_spot_lands_where_the_mapping_says(pad: str) -> None:
    # A 100 x 200 (H x W) image with a white square centred at pixel (155, 25): normalised (0.775, 0.25).
    image = np.full((100, 200, 3), 60, np.uint8)
    image[:, 0] = (200, 10, 10)  # a red left column, so the edge pad is recognisable
    image[20:30, 150:160] = 255
    boxed, box = letterbox(image, 224, pad)
    assert boxed.shape == (224, 224, 3) and boxed.dtype == np.uint8
    assert (box.top, box.scaled_height, box.left, box.scaled_width) == (56, 112, 0, 224)
    x, y = box.to_input(np.array([0.775, 0.25])) * 224
    assert (boxed[int(y), int(x)] == 255).all()
    # squashing would have put the spot at y = 0.25 * 224 = 56, which is the pad's edge here
    assert not (boxed[int(0.25 * 224) - 5, int(x)] == 255).all()
    if pad == "mean":
        assert (boxed[:56] == MEAN_RGB).all() and (boxed[168:] == MEAN_RGB).all()
    else:
        assert np.array_equal(boxed[0], boxed[56]) and np.array_equal(boxed[223], boxed[167])
        assert tuple(boxed[0, 0]) == (200, 10, 10)


def test_points_in_the_pad_are_clipped_to_the_image_edge() -> None:
    box = Letterbox.fit(100, 200, 224)  # pad above y < 0.25 and below y > 0.75 of the input
    assert box.from_input(np.array([0.5, 0.1]))[1] == 0.0
    assert box.from_input(np.array([0.5, 0.9]))[1] == 1.0
    assert box.from_input(np.array([0.5, 0.1]), clip=False)[1] < 0.0


def test_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match="expected one of mean, edge, found 'zero'"):
        letterbox(np.zeros((4, 8, 3), np.uint8), 16, pad="zero")
    with pytest.raises(ValueError, match="uint8 \\(H, W, 3\\)"):
        letterbox(np.zeros((4, 8), np.uint8), 16)
    with pytest.raises(ValueError, match="non-empty image"):
        Letterbox.fit(0, 8, 16)
    with pytest.raises(ValueError, match="shape \\(..., 2\\)"):
        Letterbox.fit(4, 8, 16).to_input(np.zeros((5, 3)))
