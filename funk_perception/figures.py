"""Figures in the style of the paper: Figure 4 (qualitative keypoint transfer) and
Figure 5 (dense correspondence), written as PNG through matplotlib's Agg backend.

All coordinates handed to this module are normalised ``(x, y)`` (x / width,
y / height), the convention of the annotations and of :mod:`funk_perception.matching`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import matplotlib

matplotlib.use("Agg")  # headless: figures are files, never windows

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from funk_perception.atomic import save_figure_atomic  # noqa: E402
from funk_perception.tasks import KEYPOINTS  # noqa: E402

#: One colour per keypoint index p1..p5 (matplotlib's tab10, distinct in print).
KEYPOINT_COLORS: tuple[str, ...] = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd")


@dataclass(frozen=True)
class QualitativeExample:
    """One row of the Figure-4 style plot: a reference and a target for one task."""

    task: str
    reference_image: np.ndarray
    reference_keypoints: np.ndarray  # (5, 2) normalised
    reference_visible: np.ndarray  # (5,) bool
    target_image: np.ndarray
    target_keypoints: np.ndarray  # (5, 2) ground truth, normalised
    target_visible: np.ndarray  # (5,) bool
    predictions: np.ndarray  # (5, 2) normalised
    caption: str = ""


@dataclass(frozen=True)
class DenseExample:
    """One row of the Figure-5 style plot: points on the reference, their matches per method."""

    task: str
    reference_image: np.ndarray
    reference_points: np.ndarray  # (N, 2) normalised
    target_image: np.ndarray
    matches: Mapping[str, np.ndarray]  # method name -> (N, 2) normalised
    caption: str = ""


def _to_pixels(points: np.ndarray, image: np.ndarray) -> np.ndarray:
    return np.asarray(points, dtype=np.float64) * np.array([image.shape[1], image.shape[0]], dtype=np.float64)


def _show(ax: plt.Axes, image: np.ndarray, title: str) -> None:
    ax.imshow(image)
    ax.set_title(title, fontsize=8)
    ax.set_xlim(0, image.shape[1])
    ax.set_ylim(image.shape[0], 0)
    ax.axis("off")


def _numbered(ax: plt.Axes, pixels: np.ndarray, visible: np.ndarray) -> None:
    for k, (x, y) in enumerate(pixels):
        color = KEYPOINT_COLORS[k % len(KEYPOINT_COLORS)]
        alpha = 1.0 if visible[k] else 0.35  # hidden keypoints drawn faint, not dropped
        ax.scatter([x], [y], s=55, marker="o", c=[color], edgecolors="white", linewidths=1.0, alpha=alpha, zorder=3)
        ax.annotate(
            str(k + 1),
            (x, y),
            xytext=(4, -4),
            textcoords="offset points",
            color="white",
            fontsize=7,
            fontweight="bold",
            alpha=alpha,
            zorder=4,
            bbox={"boxstyle": "round,pad=0.1", "fc": color, "ec": "none", "alpha": 0.8 * alpha},
        )


def plot_qualitative(examples: Sequence[QualitativeExample], path: str | Path, title: str = "", dpi: int = 110) -> Path:
    """Figure-4 style: per row the reference with its ground truth (filled, numbered), and
    the target with predictions (filled circles, numbered) and ground truth (hollow squares),
    one colour per keypoint index, a line from each prediction to its ground truth."""
    if not examples:
        raise ValueError("plot_qualitative: expected at least one example, found none")
    path = Path(path)
    fig, axes = plt.subplots(len(examples), 2, figsize=(6.0, 3.0 * len(examples)), squeeze=False)
    for row, ex in enumerate(examples):
        ref_px = _to_pixels(ex.reference_keypoints, ex.reference_image)
        tgt_px = _to_pixels(ex.target_keypoints, ex.target_image)
        pred_px = _to_pixels(ex.predictions, ex.target_image)
        _show(axes[row, 0], ex.reference_image, f"{ex.task}: reference (ground truth)")
        _numbered(axes[row, 0], ref_px, ex.reference_visible)
        _show(axes[row, 1], ex.target_image, f"target: prediction (o) vs truth (\u25a1) {ex.caption}".strip())
        for k in range(len(pred_px)):
            color = KEYPOINT_COLORS[k % len(KEYPOINT_COLORS)]
            if ex.target_visible[k]:
                axes[row, 1].plot(
                    [pred_px[k, 0], tgt_px[k, 0]],
                    [pred_px[k, 1], tgt_px[k, 1]],
                    color=color,
                    linewidth=1.0,
                    alpha=0.8,
                    zorder=2,
                )
                axes[row, 1].scatter(
                    [tgt_px[k, 0]],
                    [tgt_px[k, 1]],
                    s=60,
                    marker="s",
                    facecolors="none",
                    edgecolors=color,
                    linewidths=1.5,
                    zorder=3,
                )
        _numbered(axes[row, 1], pred_px, np.ones(len(pred_px), dtype=bool))
    legend = ", ".join(f"{i + 1}={name}" for i, name in enumerate(KEYPOINTS))
    fig.suptitle(f"{title}\n{legend}".strip(), fontsize=9)
    fig.tight_layout()
    save_figure_atomic(fig, path, dpi)
    return path


def position_colors(points: np.ndarray) -> np.ndarray:
    """RGB colour per point from its position inside the points' bounding box: red grows
    to the right, green downwards, blue towards the top-left, so neighbours look alike
    and a correct dense match reproduces the same colour gradient on the target."""
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2 or len(points) == 0:
        raise ValueError(f"position_colors: expected (N, 2) points with N >= 1, found {points.shape}")
    lo, hi = points.min(axis=0), points.max(axis=0)
    uv = (points - lo) / np.maximum(hi - lo, 1e-9)
    rgb = np.stack([uv[:, 0], uv[:, 1], 1.0 - 0.5 * (uv[:, 0] + uv[:, 1])], axis=1)
    return np.clip(0.15 + 0.85 * rgb, 0.0, 1.0)


def object_region_points(
    keypoints: np.ndarray,
    image_shape: tuple[int, ...],
    count: int = 150,
    mask: np.ndarray | None = None,
    margin: float = 0.1,
) -> np.ndarray:
    """About ``count`` points on a regular grid inside the object, normalised (N, 2).

    With a mask (nonzero = object; any size, resized to the image) the grid is kept
    where the mask is set; without one (a real FunKPoint CSV has no mask), the object
    region is the keypoints' bounding box grown by ``margin`` of the image on each side.
    A regular grid rather than random samples makes the figure reproducible and even.
    """
    height, width = int(image_shape[0]), int(image_shape[1])
    if count < 1:
        raise ValueError(f"object_region_points: expected count >= 1, found {count}")
    keypoints = np.asarray(keypoints, dtype=np.float64)
    if mask is not None:
        mask = np.asarray(mask)
        if mask.ndim == 3:
            mask = mask.max(axis=2)
        if mask.shape != (height, width):
            mask = cv2.resize(mask.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST)
        inside = mask > 0
        if inside.any():
            ys, xs = np.nonzero(inside)
            area = float(inside.sum())
            step = max(1.0, np.sqrt(area / count))
            gx = np.arange(xs.min() + step / 2, xs.max() + 1, step)
            gy = np.arange(ys.min() + step / 2, ys.max() + 1, step)
            px, py = np.meshgrid(gx, gy)
            px, py = px.ravel(), py.ravel()
            keep = inside[np.clip(py.astype(int), 0, height - 1), np.clip(px.astype(int), 0, width - 1)]
            if keep.any():
                return np.stack([px[keep] / width, py[keep] / height], axis=1)
    lo = np.clip(keypoints.min(axis=0) - margin, 0.0, 1.0)
    hi = np.clip(keypoints.max(axis=0) + margin, 0.0, 1.0)
    extent = np.maximum(hi - lo, 1e-3)
    aspect = extent[0] * width / max(extent[1] * height, 1e-9)
    nx = max(1, int(round(np.sqrt(count * aspect))))
    ny = max(1, int(round(count / nx)))
    gx = lo[0] + (np.arange(nx) + 0.5) * extent[0] / nx
    gy = lo[1] + (np.arange(ny) + 0.5) * extent[1] / ny
    px, py = np.meshgrid(gx, gy)
    return np.stack([px.ravel(), py.ravel()], axis=1)


def plot_dense(examples: Sequence[DenseExample], path: str | Path, title: str = "", dpi: int = 110) -> Path:
    """Figure-5 style: the reference with points colour-coded by position, then for each
    method the target with every point's match drawn in the same colour."""
    if not examples:
        raise ValueError("plot_dense: expected at least one example, found none")
    path = Path(path)
    methods = list(examples[0].matches)
    cols = 1 + len(methods)
    fig, axes = plt.subplots(len(examples), cols, figsize=(3.0 * cols, 3.0 * len(examples)), squeeze=False)
    for row, ex in enumerate(examples):
        colors = position_colors(ex.reference_points)
        ref_px = _to_pixels(ex.reference_points, ex.reference_image)
        _show(axes[row, 0], ex.reference_image, f"{ex.task}: reference {ex.caption}".strip())
        axes[row, 0].scatter(ref_px[:, 0], ref_px[:, 1], s=9, c=colors, edgecolors="none")
        for col, method in enumerate(methods, start=1):
            matched = _to_pixels(ex.matches[method], ex.target_image)
            _show(axes[row, col], ex.target_image, method)
            axes[row, col].scatter(matched[:, 0], matched[:, 1], s=9, c=colors, edgecolors="none")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure_atomic(fig, path, dpi)
    return path
