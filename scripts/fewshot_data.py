"""The samples of the few-shot benchmark: distinct photographs of a CSV, one label each.

A FunKPoint-style CSV lists an image once per task it is labelled for, and a
curated set may hold the same photograph under several file names, some of them
mirrored (funkpoint-real-dev does both). Counting such copies as separate
samples would put one photo on both sides of a train/test split, so images are
merged when they have the same size and their 32 x 32 greyscale thumbnails
(or one's mirror image) differ by less than :data:`DUPLICATE_THRESHOLD` grey
levels on average. Re-encoded or mirrored copies differ by well under one level;
distinct photos of one category in that set differ by 5 or more.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from funk_perception.data.annotations import FunKPointDataset
from funk_perception.tasks import ALL_CATEGORIES

#: Mean absolute difference (grey levels, 0-255) of 32 x 32 thumbnails below which two images are one photo.
DUPLICATE_THRESHOLD = 2.0
THUMBNAIL = 32


@dataclass
class ClassImages:
    """Distinct images with their category, classes in :data:`ALL_CATEGORIES` order."""

    dataset: FunKPointDataset
    paths: list[Path]
    labels: list[str]
    classes: list[str]
    #: Classes left out for having too few distinct images: name -> count.
    dropped: dict[str, int] = field(default_factory=dict)
    duplicates_removed: int = 0

    def load(self, index: int) -> np.ndarray:
        return self.dataset.load_image(self.paths[index])

    def counts(self) -> dict[str, int]:
        return {c: self.labels.count(c) for c in self.classes}


def _thumbnail(image: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey, (THUMBNAIL, THUMBNAIL), interpolation=cv2.INTER_AREA).astype(np.float32)


def find_duplicates(images: list[np.ndarray]) -> list[int]:
    """For each image, the index of the first earlier image it duplicates (itself when none)."""
    thumbs = [_thumbnail(im) for im in images]
    owner = list(range(len(images)))
    for i in range(len(images)):
        for j in range(i):
            if owner[j] != j or images[j].shape != images[i].shape:
                continue
            same = np.abs(thumbs[i] - thumbs[j]).mean()
            mirrored = np.abs(thumbs[i] - thumbs[j][:, ::-1]).mean()
            if min(same, mirrored) < DUPLICATE_THRESHOLD:
                owner[i] = j
                break
    return owner


def distinct_class_images(csv_path: str | Path, images_per_class: int | None, min_images_per_class: int) -> ClassImages:
    """The CSV's distinct images (first copy in CSV order), classes with fewer than ``min_images_per_class`` left out,
    each kept class cut to its first ``images_per_class`` images (classes with fewer are left out too)."""
    dataset = FunKPointDataset(csv_path, check_images=True)
    category: dict[Path, str] = {}
    for a in dataset.annotations:
        if category.setdefault(a.image_path, a.category) != a.category:
            raise ValueError(
                f"{csv_path}, line {a.line}: image {a.relative_path} is labelled {a.category!r} here and "
                f"{category[a.image_path]!r} on an earlier row; expected one category per image"
            )
    paths = list(category)
    owner = find_duplicates([dataset.load_image(p) for p in paths])
    for i, j in enumerate(owner):
        if category[paths[i]] != category[paths[j]]:
            raise ValueError(
                f"{csv_path}: {paths[i].name} ({category[paths[i]]}) is the same photo as "
                f"{paths[j].name} ({category[paths[j]]}); expected one category per photo"
            )
    kept = [p for i, p in enumerate(paths) if owner[i] == i]
    by_class: dict[str, list[Path]] = {}
    for p in kept:
        by_class.setdefault(category[p], []).append(p)
    need = max(min_images_per_class, images_per_class or 0)
    dropped = {c: len(v) for c, v in by_class.items() if len(v) < need}
    classes = [c for c in ALL_CATEGORIES if c in by_class and c not in dropped]
    if len(classes) < 2:
        raise ValueError(
            f"{csv_path}: expected at least 2 classes with >= {need} distinct images, found "
            f"{len(classes)} (distinct images per class: { {c: len(v) for c, v in by_class.items()} })"
        )
    chosen = [(p, c) for c in classes for p in by_class[c][: images_per_class or None]]
    return ClassImages(
        dataset,
        [p for p, _ in chosen],
        [c for _, c in chosen],
        classes,
        dropped,
        duplicates_removed=len(paths) - len(kept),
    )
