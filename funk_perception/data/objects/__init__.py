"""Procedural 3D object models for every category, one module per family of shapes.

``build_object("watering_can", rng)`` returns a fresh random instance of a
category as an :class:`~funk_perception.data.objects.base.ObjectModel`.
"""

from __future__ import annotations

from types import MappingProxyType

import numpy as np

from funk_perception.data.objects.base import Builder, ObjectModel
from funk_perception.data.objects.containers import BUILDERS as _CONTAINERS
from funk_perception.data.objects.tools import BUILDERS as _TOOLS
from funk_perception.data.objects.utensils import BUILDERS as _UTENSILS
from funk_perception.tasks import normalize_category

CATEGORY_BUILDERS: MappingProxyType[str, Builder] = MappingProxyType({**_CONTAINERS, **_UTENSILS, **_TOOLS})


def build_object(category: str, rng: np.random.Generator) -> ObjectModel:
    """A random instance of ``category`` (any accepted spelling), keypoints for every task it is labelled for."""
    category = normalize_category(category)
    if category not in CATEGORY_BUILDERS:
        raise ValueError(f"no procedural model for category {category!r}")
    return CATEGORY_BUILDERS[category](rng)


__all__ = ["CATEGORY_BUILDERS", "ObjectModel", "build_object"]
