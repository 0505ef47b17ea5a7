"""Geometry helpers shared by the procedural-object tests (test_objects_*.py); not a test file.

Distances from a point to an object's surface, computed independently of the
builders' own bookkeeping, and compiling an object into a MuJoCo model.
(conftest.py has already imported torch before this module imports mujoco.)
"""

from __future__ import annotations

import mujoco
import numpy as np

from funk_perception.data.objects.base import Geom, ObjectModel


def segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance from ``p`` to the segments ``a``-``b`` (arrays ``(..., 3)``, broadcast)."""
    ab = b - a
    t = np.clip(((p - a) * ab).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-18), 0.0, 1.0)
    return np.linalg.norm(p - (a + t[..., None] * ab), axis=-1)


def mesh_distance(p: np.ndarray, verts: np.ndarray, faces: np.ndarray) -> float:
    """Exact distance from ``p`` to a triangle mesh: to the plane where ``p`` projects inside a triangle, else its edges."""
    a, b, c = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    n = np.cross(b - a, c - a)
    nn = np.linalg.norm(n, axis=1)
    ok = nn > 1e-14  # degenerate triangles count through their edges only
    unit = np.where(ok[:, None], n / np.maximum(nn, 1e-14)[:, None], 0.0)
    h = ((p - a) * unit).sum(1)
    q = p - h[:, None] * unit
    inside = ok.copy()
    for u, v in ((a, b), (b, c), (c, a)):
        inside &= (np.cross(v - u, q - u) * n).sum(1) >= 0
    edges = np.minimum(np.minimum(segment_distance(p, a, b), segment_distance(p, b, c)), segment_distance(p, c, a))
    return float(np.min(np.where(inside, np.abs(h), edges)))


def rotation(g: Geom) -> np.ndarray:
    """The geom's rotation matrix (local -> world) from its (normalised) quaternion ``(w, x, y, z)``."""
    w, x, y, z = np.asarray(g.quat, dtype=np.float64) / np.linalg.norm(g.quat)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def geom_distance(p: np.ndarray, g: Geom) -> float:
    """Unsigned distance from ``p`` to the surface of one geom (ellipsoid: the usual first-order estimate)."""
    if g.kind == "mesh":
        return mesh_distance(p, g.mesh.vertices, g.mesh.faces)
    r = g.size[0]
    if g.fromto is not None:
        a, b = np.asarray(g.fromto[:3]), np.asarray(g.fromto[3:])
        if g.kind == "capsule":
            return abs(float(segment_distance(p, a, b)) - r)
        if g.kind != "cylinder":
            raise AssertionError(f"unexpected fromto geom kind {g.kind}")
        # cylinder: distance in (radial, axial) coordinates to a rectangle's boundary
        axis = (b - a) / np.linalg.norm(b - a)
        d = p - (a + b) / 2
        along = float(d @ axis)
        radial = float(np.linalg.norm(d - along * axis))
        q = np.array([radial - r, abs(along) - np.linalg.norm(b - a) / 2])
        return abs(float(np.linalg.norm(np.maximum(q, 0)) + min(q.max(), 0.0)))
    local = rotation(g).T @ (p - np.asarray(g.pos))
    if g.kind == "sphere":
        return abs(float(np.linalg.norm(local)) - r)
    half = np.asarray(g.size[:3], dtype=np.float64)
    if g.kind == "box":
        q = np.abs(local) - half
        return abs(float(np.linalg.norm(np.maximum(q, 0)) + min(q.max(), 0.0)))
    if g.kind == "ellipsoid":
        k0 = np.linalg.norm(local / half)
        k1 = np.linalg.norm(local / half**2)
        return abs(float(k0 * (k0 - 1) / k1))
    raise AssertionError(f"unexpected geom kind {g.kind}")


def surface_distance(p: np.ndarray, obj: ObjectModel) -> float:
    """Unsigned distance from ``p`` to the nearest geom surface of ``obj``."""
    return min(geom_distance(p, g) for g in obj.geoms)


def compile_object(obj: ObjectModel) -> tuple[mujoco.MjModel, mujoco.MjData]:
    """``obj`` alone in a MuJoCo model (one material per part), compiled and forwarded."""
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
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    return model, data


def assert_same_object(a: ObjectModel, b: ObjectModel) -> None:
    """Two builds are the same object: parameters, geoms (kind, part, mesh vertices) and keypoints."""
    assert a.params == b.params
    assert len(a.geoms) == len(b.geoms)
    for ga, gb in zip(a.geoms, b.geoms):
        assert ga.kind == gb.kind and ga.part == gb.part
        if ga.kind == "mesh":
            np.testing.assert_array_equal(ga.mesh.vertices, gb.mesh.vertices)
    assert set(a.keypoints) == set(b.keypoints)
    for task in a.keypoints:
        np.testing.assert_array_equal(a.keypoints[task], b.keypoints[task])
