"""Augmented views keep keypoints on the same image content; flips keep keypoint identity."""

import numpy as np
import pytest

from funk_perception.train.augment import AugmentConfig, augment_view

SIZE = 64


def _dotted_image(point_xy, width=80, height=60, seed=0):
    """A dim textured image with one bright 3x3 dot at a normalised point."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 60, size=(height, width, 3), dtype=np.uint8)
    x, y = int(point_xy[0] * width), int(point_xy[1] * height)
    image[y - 1 : y + 2, x - 1 : x + 2] = 255
    # keypoint at the dot's centre in continuous coordinates (pixel x spans [x, x+1))
    return image, np.array([(x + 0.5) / width, (y + 0.5) / height])


def _brightest(view_image):
    grey = view_image.astype(np.float64).sum(axis=2)
    y, x = np.unravel_index(np.argmax(grey), grey.shape)
    return np.array([(x + 0.5) / SIZE, (y + 0.5) / SIZE])


@pytest.mark.parametrize("view", range(1, 9))
def test_keypoint_follows_image_content(view):
    geometric_only = AugmentConfig(
        brightness=0, contrast=0, saturation=0, hue_deg=0, grayscale_prob=0, blur_prob=0, noise_prob=0, jpeg_prob=0
    )
    image, point = _dotted_image((0.3 + 0.05 * view, 0.6), seed=view)
    keypoints = np.tile(point, (5, 1))
    out = augment_view(image, {"pour": keypoints}, {"pour": np.ones(5, bool)}, SIZE, 7, 3, view, geometric_only)
    assert out.image.shape == (SIZE, SIZE, 3) and out.image.dtype == np.uint8
    assert out.visible["pour"].all()
    # within 1.5 output pixels (resampling of a 3-pixel dot)
    assert np.abs(_brightest(out.image) - out.keypoints["pour"][0]).max() <= 1.5 / SIZE


def test_photometric_views_still_mark_the_dot():
    image, point = _dotted_image((0.4, 0.45))
    for view in range(1, 6):
        out = augment_view(image, {"mix": np.tile(point, (5, 1))}, {"mix": np.ones(5, bool)}, SIZE, 1, 0, view)
        blurred = out.image.astype(np.float64).sum(axis=2)
        kx, ky = out.keypoints["mix"][0] * SIZE
        window = blurred[max(0, int(ky) - 2) : int(ky) + 3, max(0, int(kx) - 2) : int(kx) + 3]
        assert window.max() > np.percentile(blurred, 95)


def test_flip_keeps_identity_and_mirrors_x():
    flip_only = AugmentConfig(
        flip_prob=1.0,
        scale_range=(1.0, 1.0),
        max_rotation_deg=0.0,
        max_shift=0.0,
        brightness=0,
        contrast=0,
        saturation=0,
        hue_deg=0,
        grayscale_prob=0,
        blur_prob=0,
        noise_prob=0,
        jpeg_prob=0,
    )
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, size=(SIZE, SIZE, 3), dtype=np.uint8)
    keypoints = np.array([[0.1, 0.2], [0.3, 0.4], [0.5, 0.5], [0.7, 0.6], [0.9, 0.8]])
    out = augment_view(image, {"poke": keypoints}, {"poke": np.ones(5, bool)}, SIZE, 0, 0, 1, flip_only)
    assert out.flipped
    np.testing.assert_array_equal(out.image, image[:, ::-1])
    # p1 stays p1 (working tip), only its x is mirrored
    np.testing.assert_allclose(out.keypoints["poke"], np.stack([1 - keypoints[:, 0], keypoints[:, 1]], 1), atol=1e-6)


def test_clean_view_zero_and_determinism():
    rng = np.random.default_rng(3)
    image = rng.integers(0, 255, size=(48, 96, 3), dtype=np.uint8)
    kp = {"scoop": rng.random((5, 2)), "pour": rng.random((5, 2))}
    vis = {"scoop": np.ones(5, bool), "pour": np.array([1, 1, 0, 1, 1], bool)}
    clean = augment_view(image, kp, vis, SIZE, 5, 2, 0)
    np.testing.assert_allclose(clean.keypoints["scoop"], kp["scoop"], atol=1e-6)
    np.testing.assert_array_equal(clean.visible["pour"], vis["pour"])
    a = augment_view(image, kp, vis, SIZE, 5, 2, 3)
    b = augment_view(image, kp, vis, SIZE, 5, 2, 3)
    c = augment_view(image, kp, vis, SIZE, 5, 2, 4)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.keypoints["pour"], b.keypoints["pour"])
    assert not np.array_equal(a.image, c.image)
    assert not a.visible["pour"][2]  # invisible stays invisible


def test_keypoints_pushed_out_of_frame_become_invisible():
    zoom = AugmentConfig(scale_range=(3.0, 3.0), max_shift=0.0, max_rotation_deg=0.0, geometry_attempts=1)
    image = np.zeros((SIZE, SIZE, 3), np.uint8)
    kp = np.array([[0.5, 0.5], [0.02, 0.02], [0.98, 0.5], [0.5, 0.55], [0.6, 0.6]])
    out = augment_view(image, {"flip": kp}, {"flip": np.ones(5, bool)}, SIZE, 0, 0, 1, zoom)
    np.testing.assert_array_equal(out.visible["flip"], [True, False, False, True, True])


def test_rejects_non_uint8_rgb():
    with pytest.raises(ValueError, match="uint8 RGB"):
        augment_view(np.zeros((8, 8), np.float32), {}, {}, SIZE, 0, 0, 0)
