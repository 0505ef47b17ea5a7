"""Keypoint metrics: PCK (the paper's measure, docs/DESIGN.md) and the confidence AUC of reference-free ``detect``.

Coordinates are normalised to the image, ``(x / W, y / H)``; a keypoint counts as correct when it lies within
``threshold`` of the truth (0.1 for PCK@0.1).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import mannwhitneyu

#: Tolerance so that a distance exactly at the threshold counts as correct despite rounding.
BOUNDARY_TOLERANCE = 1e-9


def keypoint_distances(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Euclidean distance in normalised coordinates, (..., K, 2) x 2 -> (..., K)."""
    predicted = np.asarray(predicted, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    if predicted.shape != truth.shape or predicted.shape[-1] != 2:
        raise ValueError(
            f"keypoint_distances: expected two (..., 2) arrays of one shape, found {predicted.shape} and {truth.shape}"
        )
    return np.sqrt(((predicted - truth) ** 2).sum(axis=-1))


def pck_correct(predicted: np.ndarray, truth: np.ndarray, threshold: float) -> np.ndarray:
    """Boolean (..., K): prediction within ``threshold`` of the truth (normalised coordinates)."""
    return keypoint_distances(predicted, truth) <= threshold + BOUNDARY_TOLERANCE


def pck(predicted: np.ndarray, truth: np.ndarray, valid: np.ndarray, threshold: float) -> float:
    """PCK in percent over the ``valid`` keypoints; NaN when none is valid."""
    valid = np.asarray(valid, dtype=bool)
    correct = pck_correct(predicted, truth, threshold)
    if correct.shape != valid.shape:
        raise ValueError(f"pck: expected valid of shape {correct.shape}, found {valid.shape}")
    count = int(valid.sum())
    if count == 0:
        return float("nan")
    return 100.0 * float((correct & valid).sum()) / count


def pixels_to_normalized(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """Pixel ``(x, y)`` -> normalised ``(x / W, y / H)``."""
    return np.asarray(points, dtype=np.float64) / np.array([width, height], dtype=np.float64)


def confidence_auc(confidence: np.ndarray, hit: np.ndarray) -> dict:
    """ROC AUC of ``confidence`` for hit vs miss (Mann-Whitney U / (hits x misses)), with the means."""
    confidence, hit = np.asarray(confidence, dtype=np.float64), np.asarray(hit, dtype=bool)
    hits, misses = confidence[hit], confidence[~hit]
    auc = float("nan")
    if len(hits) and len(misses):
        auc = float(mannwhitneyu(hits, misses, alternative="two-sided").statistic) / (len(hits) * len(misses))
    return {
        "auc": auc,
        "mean_hit": float(hits.mean()) if len(hits) else float("nan"),
        "mean_miss": float(misses.mean()) if len(misses) else float("nan"),
        "hits": int(len(hits)),
        "misses": int(len(misses)),
    }
