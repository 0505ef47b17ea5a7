"""Procedural utensils (funk_perception.data.objects.utensils): geometry, variation, keypoints, MuJoCo."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from funk_perception.data.objects.base import ObjectModel
from funk_perception.data.objects.utensils import BUILDERS
from funk_perception.tasks import NUM_KEYPOINTS, tasks_for_category

CATEGORIES = ("spoon", "tablefork", "spatula", "tongs", "whisk", "ladle", "shovel")
SEEDS = tuple(range(8))
SURFACE_SLACK = 0.003  # m beyond a keypoint's radius (the brief allows 1 cm; real placement is much tighter)


def _build(category: str, seed: int) -> ObjectModel:
    return BUILDERS[category](np.random.default_rng(seed))


_CACHE = {(c, s): _build(c, s) for c in CATEGORIES for s in SEEDS}


def _bounds(obj: ObjectModel) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = np.full(3, np.inf), np.full(3, -np.inf)
    for g in obj.geoms:
        if g.kind == "mesh":
            pts, r = g.mesh.vertices, 0.0
        elif g.fromto is not None:
            pts, r = np.reshape(g.fromto, (2, 3)), g.size[0]
        else:
            assert g.kind == "sphere", f"unexpected geom kind {g.kind}"
            pts, r = np.reshape(g.pos, (1, 3)), g.size[0]
        lo, hi = np.minimum(lo, pts.min(0) - r), np.maximum(hi, pts.max(0) + r)
    return lo, hi


def _segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ab = b - a
    t = np.clip(np.einsum("ij,ij->i", p - a, ab) / np.maximum(np.einsum("ij,ij->i", ab, ab), 1e-18), 0.0, 1.0)
    return np.linalg.norm(p - (a + t[:, None] * ab), axis=1)


def _triangle_distance(p: np.ndarray, verts: np.ndarray, faces: np.ndarray) -> float:
    """Exact distance from point p to a triangle mesh (projection inside the triangle, else nearest edge)."""
    a, b, c = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    n = np.cross(b - a, c - a)
    nn = np.linalg.norm(n, axis=1)
    ok = nn > 1e-14
    unit = np.where(ok[:, None], n / np.maximum(nn, 1e-14)[:, None], 0.0)
    h = np.einsum("ij,ij->i", p - a, unit)
    q = p - h[:, None] * unit
    inside = ok.copy()
    for u, v in ((a, b), (b, c), (c, a)):
        inside &= np.einsum("ij,ij->i", np.cross(v - u, q - u), n) >= 0
    pp = np.broadcast_to(p, a.shape)
    edge = np.minimum(np.minimum(_segment_distance(pp, a, b), _segment_distance(pp, b, c)), _segment_distance(pp, c, a))
    return float(np.min(np.where(inside, np.abs(h), edge)))


def _surface_distance(obj: ObjectModel, p: np.ndarray) -> float:
    best = np.inf
    for g in obj.geoms:
        if g.kind == "mesh":
            d = _triangle_distance(p, g.mesh.vertices, g.mesh.faces)
        elif g.fromto is not None:
            ends = np.reshape(g.fromto, (2, 3))
            d = abs(float(_segment_distance(p[None], ends[:1], ends[1:])[0]) - g.size[0])
        else:
            d = abs(float(np.linalg.norm(p - np.asarray(g.pos))) - g.size[0])
        best = min(best, d)
    return best


def test_builders_cover_exactly_the_utensil_categories() -> None:
    assert set(BUILDERS) == set(CATEGORIES)


@pytest.mark.parametrize("category", CATEGORIES)
def test_same_seed_same_object(category: str) -> None:
    a, b = _build(category, 3), _CACHE[(category, 3)]
    assert a.params == b.params
    assert len(a.geoms) == len(b.geoms)
    for ga, gb in zip(a.geoms, b.geoms):
        assert ga.kind == gb.kind and ga.part == gb.part
        if ga.kind == "mesh":
            np.testing.assert_array_equal(ga.mesh.vertices, gb.mesh.vertices)
    for task in a.keypoints:
        np.testing.assert_array_equal(a.keypoints[task], b.keypoints[task])


@pytest.mark.parametrize("category", CATEGORIES)
def test_seeds_vary_shape_not_just_size(category: str) -> None:
    objs = [_CACHE[(category, s)] for s in SEEDS]
    assert all(o.params and all(isinstance(v, float) for v in o.params.values()) for o in objs)
    assert len({tuple(sorted(o.params.items())) for o in objs}) == len(objs)
    # a discrete shape choice (style, tine count, grip, ...) must take several values across seeds
    discrete = [k for k in objs[0].params if all(float(o.params[k]).is_integer() for o in objs)]
    assert any(len({o.params[k] for o in objs}) >= 2 for k in discrete), f"{category}: no discrete shape variation"


@pytest.mark.parametrize("category", CATEGORIES)
@pytest.mark.parametrize("seed", SEEDS)
def test_keypoints_cover_tasks_and_lie_on_the_object(category: str, seed: int) -> None:
    obj = _CACHE[(category, seed)]
    assert obj.category == category
    assert set(obj.keypoints) == set(tasks_for_category(category))
    lo, hi = _bounds(obj)
    size = float(np.max(hi - lo))
    for task, pts in obj.keypoints.items():
        assert pts.shape == (NUM_KEYPOINTS, 3) and np.isfinite(pts).all()
        radii = obj.keypoint_radii[task]
        assert (radii > 0).all()
        assert (pts >= lo - 0.005).all() and (pts <= hi + 0.005).all(), f"{category}/{task} keypoint outside the bounding box"
        for k, p in enumerate(pts):
            d = _surface_distance(obj, p)
            assert d <= radii[k] + SURFACE_SLACK, f"{category} seed {seed} {task} p{k + 1}: {d * 1000:.1f} mm from the surface"
        # elongated tools: the working tip and the end of the grip are far apart
        assert np.linalg.norm(pts[0] - pts[4]) > 0.3 * size, f"{category}/{task}: p1 and p5 too close"
        assert min(np.linalg.norm(pts[i] - pts[j]) for i in range(5) for j in range(i + 1, 5)) > 0.002
        # p1 is on the working end (+x) and p5 on the grip end (-x) of the object's natural pose
        assert pts[0, 0] > pts[4, 0]


@pytest.mark.parametrize("category", CATEGORIES)
@pytest.mark.parametrize("seed", SEEDS[:4])
def test_rests_on_the_table_along_x(category: str, seed: int) -> None:
    obj = _CACHE[(category, seed)]
    lo, hi = _bounds(obj)
    assert abs(lo[2]) < 1e-6, "object must rest on z = 0"
    assert np.allclose((lo[:2] + hi[:2]) / 2, 0.0, atol=1e-6), "object must be centred in xy"
    ext = hi - lo
    assert ext[0] == ext.max(), f"{category} should lie along x, extents {ext}"
    assert 0.1 < ext[0] < 1.6, f"{category} length {ext[0]:.3f} m is not a real-world size"


@pytest.mark.parametrize("category", CATEGORIES)
def test_compiles_in_mujoco_within_vertex_budget(category: str) -> None:
    for seed in SEEDS[:3]:
        obj = _CACHE[(category, seed)]
        n_vert = sum(len(g.mesh.vertices) for g in obj.geoms if g.kind == "mesh")
        assert 200 <= n_vert <= 3000, f"{category} seed {seed}: {n_vert} mesh vertices"
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
        data = mujoco.MjData(model)
        mujoco.mj_forward(model, data)
        assert np.isfinite(data.geom_xpos).all()
