"""Procedural tool models (funk_perception/data/objects/tools.py): shapes, keypoints, determinism, MuJoCo compile."""

from __future__ import annotations

import itertools

import mujoco
import numpy as np
import pytest
from object_geometry import assert_same_object, compile_object, surface_distance

from funk_perception.data.objects.base import ObjectModel, base_task
from funk_perception.data.objects.tools import BUILDERS
from funk_perception.tasks import tasks_for_category

CATEGORIES = ("hammer", "scraper", "trowel", "screwdriver", "scissors", "scrub_brush", "toothbrush", "letter_opener")
SEEDS = (0, 1, 2, 3, 4)
# a discrete shape choice per category that must not be constant (a category is not one shape at many sizes)
STYLE_PARAMS = {
    "hammer": ("head_sides", "handle_style"),
    "scraper": ("style", "handle_kind"),
    "trowel": ("kind",),
    "screwdriver": ("flutes", "tip_kind"),
    "scissors": ("ring_style", "pointed"),
    "scrub_brush": ("style", "rows"),
    "toothbrush": ("grip_style", "rows", "trim"),
    "letter_opener": ("shape", "handle_kind"),
}


def _build(category: str, seed: int) -> ObjectModel:
    return BUILDERS[category](np.random.default_rng(seed))


# ----------------------------------------------------------------------------- the compiled model's bounds


def _world_aabb(model: mujoco.MjModel, data: mujoco.MjData) -> tuple[np.ndarray, np.ndarray]:
    """The object's axis-aligned box from the compiled model (independent of tools.py's bookkeeping).

    Meshes use their compiled vertices; primitives their geom-frame boxes.
    """
    corners = np.array(list(itertools.product((-1, 1), repeat=3)), dtype=np.float64)
    pts = []
    for i in range(model.ngeom):
        mesh_id = model.geom_dataid[i]
        if model.geom_type[i] == mujoco.mjtGeom.mjGEOM_MESH:
            start, count = model.mesh_vertadr[mesh_id], model.mesh_vertnum[mesh_id]
            local = model.mesh_vert[start : start + count]
        else:
            local = model.geom_aabb[i, :3] + corners * model.geom_aabb[i, 3:]
        pts.append(local @ data.geom_xmat[i].reshape(3, 3).T + data.geom_xpos[i])
    pts = np.vstack(pts)
    return pts.min(axis=0), pts.max(axis=0)


# ----------------------------------------------------------------------------- tests


def test_builders_cover_the_categories() -> None:
    assert set(BUILDERS) == set(CATEGORIES)


@pytest.mark.parametrize("category", CATEGORIES)
def test_deterministic_and_varied(category: str) -> None:
    assert_same_object(_build(category, 7), _build(category, 7))
    params = [_build(category, s).params for s in SEEDS]
    for p, q in itertools.combinations(params, 2):
        assert p != q, f"{category}: two seeds gave identical parameters"
    many = [_build(category, s).params for s in range(12)]
    for name in STYLE_PARAMS[category]:
        values = {m[name] for m in many}
        assert len(values) > 1, f"{category}: {name} never varies over 12 seeds ({values})"
    for m in many:
        assert all(isinstance(v, float) for v in m.values()), f"{category}: params must be floats"


@pytest.mark.parametrize("category", CATEGORIES)
@pytest.mark.parametrize("seed", SEEDS)
def test_keypoints_on_the_object(category: str, seed: int) -> None:
    obj = _build(category, seed)
    assert obj.category == category
    assert {base_task(t) for t in obj.keypoints} == set(tasks_for_category(category))
    model, data = compile_object(obj)
    lo, hi = _world_aabb(model, data)
    assert lo[2] == pytest.approx(0.0, abs=2e-3), f"{category}: should rest on z=0, lowest point {lo[2]:.4f}"
    centre = (lo + hi) / 2
    assert np.all(np.abs(centre[:2]) < 0.01), f"{category}: not centred on the xy origin ({centre[:2]})"
    size = float((hi - lo).max())
    assert 0.08 < size < 0.45, f"{category}: implausible real-world size {size:.3f} m"
    assert hi[0] - lo[0] == pytest.approx(size), f"{category}: should lie along x"
    for task, kps in obj.keypoints.items():
        radii = obj.keypoint_radii[task]
        assert kps.shape == (5, 3) and radii.shape == (5,)
        assert np.all(kps >= lo - 0.005) and np.all(kps <= hi + 0.005), (
            f"{category}/{task}: keypoint outside the object's box"
        )
        for k, (p, r) in enumerate(zip(kps, radii)):
            d = surface_distance(p, obj)
            assert d <= r + 0.01, (
                f"{category}/{task}/p{k + 1}: {d * 1000:.1f} mm from the surface (radius {r * 1000:.1f} mm)"
            )
        # a chain from the working end to the end of the grip
        assert np.linalg.norm(kps[0] - kps[4]) > 0.3 * size, f"{category}/{task}: p1 and p5 too close"
        assert kps[0][0] > kps[4][0], f"{category}/{task}: the working end should be toward +x"
        assert len({tuple(np.round(p, 4)) for p in kps}) == 5, f"{category}/{task}: repeated keypoints"


@pytest.mark.parametrize("category", CATEGORIES)
def test_tasks_differ_where_function_differs(category: str) -> None:
    obj = _build(category, 1)
    tasks = [t for t in obj.keypoints if t == base_task(t)]  # a task's second placement shares its working points
    for t1, t2 in itertools.combinations(tasks, 2):
        assert not np.allclose(obj.keypoints[t1][:3], obj.keypoints[t2][:3]), (
            f"{category}: {t1} and {t2} share their working points"
        )


@pytest.mark.parametrize("category", CATEGORIES)
def test_meshes_modest_and_closed(category: str) -> None:
    for seed in SEEDS:
        obj = _build(category, seed)
        n_verts = sum(len(g.mesh.vertices) for g in obj.geoms if g.kind == "mesh")
        assert 100 < n_verts <= 3500, f"{category} seed {seed}: {n_verts} mesh vertices"
        for g in obj.geoms:
            if g.kind != "mesh":
                continue
            v, f = g.mesh.vertices, g.mesh.faces
            vol = np.einsum("ij,ij->i", v[f[:, 0]], np.cross(v[f[:, 1]], v[f[:, 2]])).sum() / 6
            assert vol > 0, f"{category}/{g.part}: faces wound inward (signed volume {vol:.3g})"
