"""Procedural 3D object models for every category, one module per family of shapes.

``build_object("watering_can", rng)`` returns a fresh random instance of a
category as an :class:`~funk_perception.data.objects.base.ObjectModel`, its
keypoints numbered as FunKPoint numbers them (:data:`FUNKPOINT_ORDER`).
"""

from __future__ import annotations

import dataclasses
from types import MappingProxyType

import numpy as np

from funk_perception.data.objects.base import PLACEMENTS, Builder, ObjectModel
from funk_perception.data.objects.containers import BUILDERS as _CONTAINERS
from funk_perception.data.objects.tools import BUILDERS as _TOOLS
from funk_perception.data.objects.utensils import BUILDERS as _UTENSILS
from funk_perception.tasks import normalize_category

CATEGORY_BUILDERS: MappingProxyType[str, Builder] = MappingProxyType({**_CONTAINERS, **_UTENSILS, **_TOOLS})

FUNKPOINT_ORDER: MappingProxyType[str, tuple[int, ...]] = MappingProxyType(
    {task: (0, 2, 1, 3, 4) for task in ("scoop", "lift_something", "scrape", "brush_dust", "flip")}
)
"""Per task, which builder point (0-based) becomes FunKPoint's p1..p5, where the two differ.

The builders list a chain's points in the order they lie along the object (tip,
middle of the working part, where it meets the grip, ...; for scrape: a corner, the
edge's middle, the other corner). In the real FunKPoint annotations of these five
tasks p2 is the far end of the working part and p3 lies between p1 and p2 (its
middle): on the real dev photos p3 is nearer p1 than p2 is in 92-100 % of the rows
of each of these tasks, against 0-34 % in generator 1.2.0's labels
(docs/EXPERIMENTS.md, variant 37). Tasks not listed keep the builders' order, which
already agrees. Only the numbering changes, not where any point is.
"""


def funkpoint_numbering(obj: ObjectModel) -> ObjectModel:
    """``obj`` with each task's keypoints (and radii) renumbered by :data:`FUNKPOINT_ORDER`."""
    keypoints, radii = dict(obj.keypoints), dict(obj.keypoint_radii)
    for task, order in FUNKPOINT_ORDER.items():
        if task in keypoints:
            keypoints[task] = keypoints[task][list(order)]
            radii[task] = radii[task][list(order)]
    return dataclasses.replace(obj, keypoints=keypoints, keypoint_radii=radii)


def build_object(category: str, rng: np.random.Generator, placement: str = "builder") -> ObjectModel:
    """A random instance of ``category`` (any accepted spelling), keypoints for every task it is labelled for.

    ``placement`` (:data:`~funk_perception.data.objects.base.PLACEMENTS`) picks where the middle points of
    a chain go; the geometry is the same either way.
    """
    category = normalize_category(category)
    if category not in CATEGORY_BUILDERS:
        raise ValueError(f"no procedural model for category {category!r}")
    return funkpoint_numbering(CATEGORY_BUILDERS[category](rng)).with_placement(placement)


__all__ = ["CATEGORY_BUILDERS", "FUNKPOINT_ORDER", "PLACEMENTS", "ObjectModel", "build_object", "funkpoint_numbering"]
