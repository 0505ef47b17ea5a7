"""Procedural containers (funk_perception.data.objects.containers): geometry, keypoints, MuJoCo compile."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from funk_perception.data.objects.base import Geom, ObjectModel
from funk_perception.data.objects.containers import BUILDERS, geoms_bounds
from funk_perception.tasks import tasks_for_category

CATEGORIES = ("bottle", "frying_pan", "watering_can", "cup", "dustpan", "basket", "shoe", "water_jug", "coffee_mug", "wok")
SEEDS = (0, 1, 2, 3, 4, 5)
# objects whose working end and grip end lie at opposite ends of a long shape
ELONGATED = ("bottle", "frying_pan", "watering_can", "dustpan", "shoe", "wok", "water_jug")


def _point_triangle_distance(p: np.ndarray, tri: np.ndarray) -> np.ndarray:
    """Distance from point ``p`` to each triangle (M, 3, 3): exact, via the closest point on the triangle."""
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    ab, ac = b - a, c - a
    n = np.cross(ab, ac)
    nn = np.einsum("ij,ij->i", n, n)
    ok = nn > 1e-20
    # barycentric coordinates of the projection onto each plane
    ap = p - a
    d00, d01, d11 = (np.einsum("ij,ij->i", ab, ab), np.einsum("ij,ij->i", ab, ac), np.einsum("ij,ij->i", ac, ac))
    d20, d21 = np.einsum("ij,ij->i", ap, ab), np.einsum("ij,ij->i", ap, ac)
    denom = np.where(ok, d00 * d11 - d01 * d01, 1.0)
    v = (d11 * d20 - d01 * d21) / denom
    w = (d00 * d21 - d01 * d20) / denom
    inside = ok & (v >= 0) & (w >= 0) & (v + w <= 1)
    plane = np.abs(np.einsum("ij,ij->i", ap, n)) / np.sqrt(np.where(ok, nn, 1.0))

    def seg(q0: np.ndarray, q1: np.ndarray) -> np.ndarray:
        d = q1 - q0
        t = np.clip(np.einsum("ij,ij->i", p - q0, d) / np.maximum(np.einsum("ij,ij->i", d, d), 1e-20), 0, 1)
        return np.linalg.norm(q0 + t[:, None] * d - p, axis=1)

    edges = np.minimum(np.minimum(seg(a, b), seg(b, c)), seg(c, a))
    return np.where(inside, plane, edges)


def _surface_distance(p: np.ndarray, g: Geom) -> float:
    """Unsigned distance from ``p`` to the surface of one geom (ellipsoids approximately)."""
    if g.kind == "mesh":
        tri = g.mesh.vertices[g.mesh.faces]
        return float(_point_triangle_distance(p, tri).min())
    if g.fromto is not None:
        a, b = np.asarray(g.fromto[:3]), np.asarray(g.fromto[3:])
        r = g.size[0]
        d = b - a
        t = float(np.clip(np.dot(p - a, d) / np.dot(d, d), 0, 1))
        if g.kind == "capsule":
            return abs(float(np.linalg.norm(a + t * d - p)) - r)
        # cylinder: distance in (radial, axial) coordinates to a rectangle's boundary
        axis = d / np.linalg.norm(d)
        half = np.linalg.norm(d) / 2
        rel = p - (a + b) / 2
        h = float(np.dot(rel, axis))
        rad = float(np.linalg.norm(rel - h * axis))
        q = np.array([rad - r, abs(h) - half])
        outside = float(np.linalg.norm(np.maximum(q, 0)))
        return outside if outside > 0 else float(-q.max())
    pos = np.asarray(g.pos)
    if g.kind == "sphere":
        return abs(float(np.linalg.norm(p - pos)) - g.size[0])
    w, x, y, z = np.asarray(g.quat) / np.linalg.norm(g.quat)
    rot = np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )
    local = rot.T @ (p - pos)
    size = np.asarray(g.size)
    if g.kind == "box":
        q = np.abs(local) - size
        outside = float(np.linalg.norm(np.maximum(q, 0)))
        return outside if outside > 0 else float(-q.max())
    if g.kind == "ellipsoid":
        k = float(np.linalg.norm(local / size))
        return abs(k - 1) * float(size.min()) if k < 1 else abs(k - 1) * float(size.max())
    raise AssertionError(f"unexpected geom kind {g.kind}")


def _build(category: str, seed: int) -> ObjectModel:
    return BUILDERS[category](np.random.default_rng(seed))


def test_builders_cover_exactly_the_family() -> None:
    assert set(BUILDERS) == set(CATEGORIES)


@pytest.mark.parametrize("category", CATEGORIES)
def test_deterministic_and_varied(category: str) -> None:
    a, b = _build(category, 7), _build(category, 7)
    assert a.params == b.params
    for t in a.keypoints:
        np.testing.assert_array_equal(a.keypoints[t], b.keypoints[t])
    for ga, gb in zip(a.geoms, b.geoms, strict=True):
        if ga.kind == "mesh":
            np.testing.assert_array_equal(ga.mesh.vertices, gb.mesh.vertices)
    params = [tuple(sorted(_build(category, s).params.items())) for s in SEEDS]
    assert len(set(params)) == len(SEEDS), "different seeds must give different shapes"
    assert all(isinstance(v, float) for v in a.params.values())


@pytest.mark.parametrize("category", CATEGORIES)
def test_keypoints_on_the_object(category: str) -> None:
    for seed in SEEDS:
        obj = _build(category, seed)
        assert obj.category == category
        assert set(obj.keypoints) == set(tasks_for_category(category))
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
            assert np.all(pts >= lo - 0.004) and np.all(pts <= hi + 0.004), f"{category}/{task} seed {seed}: keypoint outside the bounds"
            for k, p in enumerate(pts):
                d = min(_surface_distance(p, g) for g in obj.geoms)
                assert d <= radii[k] + 0.01, f"{category}/{task} p{k + 1} seed {seed}: {d * 1000:.1f} mm from the surface"
            if category in ELONGATED:
                assert np.linalg.norm(pts[0] - pts[4]) > 0.3 * size, f"{category}/{task} seed {seed}: p1 and p5 too close"
            # a chain, not a heap: the five points are distinct
            gaps = np.linalg.norm(pts[:, None] - pts[None], axis=2)[np.triu_indices(5, 1)]
            assert gaps.min() > 0.003, f"{category}/{task} seed {seed}: coincident keypoints"


@pytest.mark.parametrize("category", CATEGORIES)
def test_compiles_in_mujoco(category: str) -> None:
    for seed in SEEDS[:3]:
        obj = _build(category, seed)
        spec = mujoco.MjSpec()
        materials = {}
        for i, part in enumerate(obj.parts):
            mat = spec.add_material()
            mat.name = f"mat{i}"
            materials[part] = mat.name
        body = spec.worldbody.add_body()
        body.name = "object"
        obj.add_to_spec(spec, body, materials)
        model = spec.compile()
        assert model.ngeom == len(obj.geoms)
        assert model.nmesh == sum(g.kind == "mesh" for g in obj.geoms)


def test_distance_helper_detects_off_surface_points() -> None:
    obj = _build("cup", 0)
    far = obj.keypoints["pour"][0] + np.array([0.0, 0.0, 0.05])
    assert min(_surface_distance(far, g) for g in obj.geoms) > 0.04


def test_keypoints_move_with_the_shape() -> None:
    a, b = _build("watering_can", 0), _build("watering_can", 1)
    assert not np.allclose(a.keypoints["pour"][0], b.keypoints["pour"][0])
