"""Image-space augmentations applied before caching, with keypoints carried along.

The trunk is frozen and its features are cached, so augmentation happens once per
cached view rather than per step. The shipped model meets real photographs it never
trained on, so views differ in geometry (flip, zoom/crop, small rotation) and in
sensor appearance (colour, blur, noise, JPEG, grayscale).

Geometry is one affine warp built in continuous image coordinates (a pixel ``i``
spans ``[i, i + 1)``, so normalised ``k`` is at ``k * size``); keypoints go through
the same matrix. A horizontal flip keeps each keypoint's identity: the labels are
semantic, not left/right (docs/DESIGN.md, "Keypoint meanings"). Keypoints that leave the frame are
marked invisible; the sampler retries so that normally none do.

Every random draw comes from ``numpy.random.default_rng([seed, image, view])``,
so a view is reproducible on its own (which is what makes the cache resumable).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass
class AugmentConfig:
    """Augmentation strengths. ``clean_first_view`` keeps view 0 as the plain resized image."""

    clean_first_view: bool = True
    flip_prob: float = 0.5
    scale_range: tuple[float, float] = (0.75, 1.35)  # zoom factor; >1 crops in
    max_rotation_deg: float = 15.0
    max_shift: float = 0.15  # crop centre offset, fraction of the image size
    keep_margin: float = 0.02  # keypoints must stay this far (normalised) inside the frame
    geometry_attempts: int = 12
    brightness: float = 0.3  # multiplicative, +-
    contrast: float = 0.3
    saturation: float = 0.4
    hue_deg: float = 12.0
    grayscale_prob: float = 0.1
    blur_prob: float = 0.3
    blur_sigma: tuple[float, float] = (0.3, 1.6)
    noise_prob: float = 0.4
    noise_sigma: tuple[float, float] = (2.0, 10.0)  # in 0..255 grey levels
    jpeg_prob: float = 0.4
    jpeg_quality: tuple[int, int] = (30, 90)


@dataclass
class AugmentedView:
    image: np.ndarray  # (S, S, 3) uint8 RGB
    keypoints: dict[str, np.ndarray]  # task -> (5, 2) normalised (x, y) in the view
    visible: dict[str, np.ndarray]  # task -> (5,) bool
    flipped: bool


def view_rng(seed: int, image_index: int, view: int) -> np.random.Generator:
    """The generator for one (seed, image, view): independent of every other view."""
    return np.random.default_rng([int(seed), int(image_index), int(view)])


def _affine(
    width: int, height: int, size: int, scale: float, angle_deg: float, shift: tuple[float, float], flip: bool
) -> np.ndarray:
    """3x3 matrix from continuous source pixels to continuous output pixels."""
    cx, cy = width * (0.5 + shift[0]), height * (0.5 + shift[1])
    to_centre = np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1]], dtype=np.float64)
    resize = np.diag([size / width * scale, size / height * scale, 1.0])
    a = math.radians(angle_deg)
    rotate = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    mirror = np.diag([-1.0 if flip else 1.0, 1.0, 1.0])
    to_output = np.array([[1, 0, size / 2], [0, 1, size / 2], [0, 0, 1]], dtype=np.float64)
    return to_output @ mirror @ rotate @ resize @ to_centre


def _transform_keypoints(matrix: np.ndarray, keypoints: np.ndarray, width: int, height: int, size: int) -> np.ndarray:
    pixels = keypoints * np.array([width, height], dtype=np.float64)
    homogeneous = np.concatenate([pixels, np.ones((len(pixels), 1))], axis=1)
    return (homogeneous @ matrix.T)[:, :2] / size


def _inside(points: np.ndarray, margin: float) -> np.ndarray:
    return np.all((points >= margin) & (points <= 1.0 - margin), axis=-1)


def _photometric(image: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    out = image.astype(np.float32)
    # Colour jitter in a random order, like torchvision's ColorJitter.
    for op in rng.permutation(4):
        if op == 0 and cfg.brightness > 0:
            out *= rng.uniform(1 - cfg.brightness, 1 + cfg.brightness)
        elif op == 1 and cfg.contrast > 0:
            mean = out.mean()
            out = (out - mean) * rng.uniform(1 - cfg.contrast, 1 + cfg.contrast) + mean
        elif op == 2 and cfg.saturation > 0:
            grey = out @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
            out = (out - grey[..., None]) * rng.uniform(1 - cfg.saturation, 1 + cfg.saturation) + grey[..., None]
        elif op == 3 and cfg.hue_deg > 0:
            hsv = cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_RGB2HSV)
            shift = int(round(rng.uniform(-cfg.hue_deg, cfg.hue_deg) / 2))  # OpenCV hue is 0..179
            hsv[..., 0] = ((hsv[..., 0].astype(np.int32) + shift) % 180).astype(np.uint8)
            out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB).astype(np.float32)
        out = np.clip(out, 0, 255)
    if rng.random() < cfg.grayscale_prob:
        grey = out @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        out = np.repeat(grey[..., None], 3, axis=-1)
    if rng.random() < cfg.blur_prob:
        out = cv2.GaussianBlur(out, (0, 0), sigmaX=float(rng.uniform(*cfg.blur_sigma)))
    if rng.random() < cfg.noise_prob:
        out = out + rng.normal(0.0, rng.uniform(*cfg.noise_sigma), size=out.shape).astype(np.float32)
    result = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    if rng.random() < cfg.jpeg_prob:
        quality = int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1))
        ok, buffer = cv2.imencode(".jpg", cv2.cvtColor(result, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise RuntimeError("augment: OpenCV failed to JPEG-encode a view")
        result = cv2.cvtColor(cv2.imdecode(buffer, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return result


def augment_view(
    image: np.ndarray,
    keypoints: dict[str, np.ndarray],
    visible: dict[str, np.ndarray],
    size: int,
    seed: int,
    image_index: int,
    view: int,
    config: AugmentConfig | None = None,
) -> AugmentedView:
    """One (size x size) view of ``image`` with its keypoints, deterministic per (seed, image_index, view).

    ``keypoints`` maps each task labelled on the image to (5, 2) normalised (x, y);
    ``visible`` to (5,) bool. View 0 is the plain resize when ``clean_first_view``.
    """
    cfg = config or AugmentConfig()
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"augment_view: expected an HxWx3 uint8 RGB image, found {image.shape} {image.dtype}")
    height, width = image.shape[:2]
    rng = view_rng(seed, image_index, view)
    tasks = sorted(keypoints)
    src = {t: np.asarray(keypoints[t], dtype=np.float64).reshape(-1, 2) for t in tasks}
    vis = {t: np.asarray(visible[t], dtype=bool).reshape(-1) for t in tasks}

    clean = cfg.clean_first_view and view == 0
    if clean:
        matrix = _affine(width, height, size, 1.0, 0.0, (0.0, 0.0), False)
        flip = False
    else:
        flip = bool(rng.random() < cfg.flip_prob)
        best, best_kept = None, -1
        for _ in range(max(1, cfg.geometry_attempts)):
            candidate = _affine(
                width,
                height,
                size,
                float(rng.uniform(*cfg.scale_range)),
                float(rng.uniform(-cfg.max_rotation_deg, cfg.max_rotation_deg)),
                (float(rng.uniform(-cfg.max_shift, cfg.max_shift)), float(rng.uniform(-cfg.max_shift, cfg.max_shift))),
                flip,
            )
            kept = sum(
                int(
                    np.sum(
                        _inside(_transform_keypoints(candidate, src[t], width, height, size), cfg.keep_margin) & vis[t]
                    )
                )
                for t in tasks
            )
            if kept > best_kept:
                best, best_kept = candidate, kept
            if kept == sum(int(v.sum()) for v in vis.values()):
                break
        matrix = best

    # cv2 works in pixel-centre coordinates (pixel i at i); ours put it at i + 0.5.
    shift_in = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]])
    shift_out = np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1]])
    cv_matrix = (shift_out @ matrix @ shift_in)[:2]
    interpolation = cv2.INTER_AREA if clean and (width > size or height > size) else cv2.INTER_LINEAR
    if clean:
        warped = cv2.resize(image, (size, size), interpolation=interpolation)
    else:
        warped = cv2.warpAffine(image, cv_matrix, (size, size), flags=interpolation, borderMode=cv2.BORDER_REPLICATE)

    out_kp: dict[str, np.ndarray] = {}
    out_vis: dict[str, np.ndarray] = {}
    for t in tasks:
        points = _transform_keypoints(matrix, src[t], width, height, size)
        out_kp[t] = points.astype(np.float32)
        out_vis[t] = vis[t] & _inside(points, 0.0)
    if not clean:
        warped = _photometric(warped, rng, cfg)
    return AugmentedView(image=np.ascontiguousarray(warped), keypoints=out_kp, visible=out_vis, flipped=flip)
