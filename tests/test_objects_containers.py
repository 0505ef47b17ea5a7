"""Procedural containers (funk_perception.data.objects.containers): geometry, keypoints, MuJoCo compile."""

from __future__ import annotations

import numpy as np
import pytest
from object_geometry import assert_same_object, compile_object, surface_distance

from funk_perception.data.objects.base import ObjectModel, base_task
from funk_perception.data.objects.containers import BUILDERS, geoms_bounds
from funk_perception.tasks import tasks_for_category

CATEGORIES = (
    "bottle",
    "frying_pan",
    "watering_can",
    "cup",
    "dustpan",
    "basket",
    "shoe",
    "water_jug",
    "coffee_mug",
    "wok",
)
SEEDS = (0, 1, 2, 3, 4, 5)
# objects whose working end and grip end lie at opposite ends of a long shape
ELONGATED = ("bottle", "frying_pan", "watering_can", "dustpan", "shoe", "wok", "water_jug")


def _build(category: str, seed: int) -> ObjectModel:
    return BUILDERS[category](np.random.default_rng(seed))


def test_builders_cover_exactly_the_family() -> None:
    assert set(BUILDERS) == set(CATEGORIES)


@pytest.mark.parametrize("category", CATEGORIES)
def test_deterministic_and_varied(category: str) -> None:
    a = _build(category, 7)
    assert_same_object(a, _build(category, 7))
    params = [tuple(sorted(_build(category, s).params.items())) for s in SEEDS]
    assert len(set(params)) == len(SEEDS), "different seeds must give different shapes"
    assert all(isinstance(v, float) for v in a.params.values())


@pytest.mark.parametrize("category", CATEGORIES)
def test_keypoints_on_the_object(category: str) -> None:
    for seed in SEEDS:
        obj = _build(category, seed)
        assert obj.category == category
        assert {base_task(t) for t in obj.keypoints} == set(tasks_for_category(category))
        lo, hi = geoms_bounds(obj.geoms)
        assert abs(lo[2]) < 1e-9, "the object must rest on z = 0"
        centre = (lo + hi) / 2
        assert np.all(np.abs(centre[:2]) < 1e-6), "the object must be centred on the xy origin"
        size = float(np.linalg.norm(hi - lo))
        verts = sum(len(g.mesh.vertices) for g in obj.geoms if g.kind == "mesh")
        assert verts <= 4000, f"{category} seed {seed}: {verts} mesh vertices, keep meshes modest"
        for task, pts in obj.keypoints.items():
            radii = obj.keypoint_radii[task]
            assert pts.shape == (5, 3) and np.all(radii > 0)
            assert np.all(pts >= lo - 0.004) and np.all(pts <= hi + 0.004), (
                f"{category}/{task} seed {seed}: keypoint outside the bounds"
            )
            for k, p in enumerate(pts):
                d = surface_distance(p, obj)
                assert d <= radii[k] + 0.01, (
                    f"{category}/{task} p{k + 1} seed {seed}: {d * 1000:.1f} mm from the surface"
                )
            if category in ELONGATED:
                assert np.linalg.norm(pts[0] - pts[4]) > 0.3 * size, (
                    f"{category}/{task} seed {seed}: p1 and p5 too close"
                )
            # a chain, not a heap: the five points are distinct
            gaps = np.linalg.norm(pts[:, None] - pts[None], axis=2)[np.triu_indices(5, 1)]
            assert gaps.min() > 0.003, f"{category}/{task} seed {seed}: coincident keypoints"


@pytest.mark.parametrize("category", CATEGORIES)
def test_compiles_in_mujoco(category: str) -> None:
    for seed in SEEDS[:3]:
        obj = _build(category, seed)
        model, _ = compile_object(obj)
        assert model.ngeom == len(obj.geoms)
        assert model.nmesh == sum(g.kind == "mesh" for g in obj.geoms)


def test_distance_helper_detects_off_surface_points() -> None:
    obj = _build("cup", 0)
    far = obj.keypoints["pour"][0] + np.array([0.0, 0.0, 0.05])
    assert surface_distance(far, obj) > 0.04


def test_keypoints_move_with_the_shape() -> None:
    a, b = _build("watering_can", 0), _build("watering_can", 1)
    assert not np.allclose(a.keypoints["pour"][0], b.keypoints["pour"][0])
