"""What a procedural object is: geometry in the object's own frame plus functional keypoints.

Each object family module (``containers.py``, ``utensils.py``, ``tools.py``)
turns a random generator into an :class:`ObjectModel`. The scene places the
model in the world, so everything here is in metres in the object frame, with
no camera, lighting or material decisions. Geometry helpers that several
families share (surfaces of revolution, swept tubes, extruded outlines) live
here too.

Keypoints are 3D points with a *radius*: how far inside the surface the point
may lie. A point on a surface has a radius of a few millimetres; "the centre of
the bottle body" lies on the body's axis with the body's radius. The renderer
marks a keypoint visible when the first surface seen along its pixel ray is this
object and lies no more than ``radius`` in front of the point, so a point
hidden behind another part (a handle in front of a spout) is marked occluded
rather than dropped or moved.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import mujoco
import numpy as np

from funk_perception.tasks import NUM_KEYPOINTS

SURFACE_RADIUS = 0.004
"""Default keypoint radius (m) for points placed on a surface."""

PLACEMENTS: tuple[str, ...] = ("builder", "funkpoint")
"""Where the middle points of a chain go. ``builder``: each builder's own reading of the keypoint meanings
(docs/DESIGN.md, "Keypoint meanings"; generator 1.3.0). ``funkpoint``: on mix, poke and pull_out_nail, p2-p4 further toward the grip, as the
real FunKPoint annotations place them (docs/EXPERIMENTS.md, variant 60). A builder gives the second
reading of a task under :data:`PLACEMENT_SEP` (``"mix@funkpoint"``); both come from the same random
draws, so the geometry and the renders do not depend on the choice."""

PLACEMENT_SEP = "@"


def base_task(key: str) -> str:
    """``"mix@funkpoint"`` -> ``"mix"``: the task a keypoint entry labels."""
    return key.split(PLACEMENT_SEP, 1)[0]


GEOM_TYPES = {
    "box": mujoco.mjtGeom.mjGEOM_BOX,
    "sphere": mujoco.mjtGeom.mjGEOM_SPHERE,
    "capsule": mujoco.mjtGeom.mjGEOM_CAPSULE,
    "cylinder": mujoco.mjtGeom.mjGEOM_CYLINDER,
    "ellipsoid": mujoco.mjtGeom.mjGEOM_ELLIPSOID,
    "mesh": mujoco.mjtGeom.mjGEOM_MESH,
}


@dataclass(frozen=True)
class Mesh:
    vertices: np.ndarray  # (N, 3) float, metres, object frame
    faces: np.ndarray  # (M, 3) int, counter-clockwise seen from outside

    def __post_init__(self) -> None:
        v = np.asarray(self.vertices, dtype=np.float64)
        f = np.asarray(self.faces, dtype=np.int64)
        if v.ndim != 2 or v.shape[1] != 3 or f.ndim != 2 or f.shape[1] != 3:
            raise ValueError(f"mesh needs (N,3) vertices and (M,3) faces, got {v.shape} and {f.shape}")
        if f.size and (f.min() < 0 or f.max() >= len(v)):
            raise ValueError("mesh face index out of range")
        object.__setattr__(self, "vertices", v)
        object.__setattr__(self, "faces", f)


@dataclass(frozen=True)
class Geom:
    """One MuJoCo geom. ``size`` follows MuJoCo (half sizes; capsule/cylinder: radius, half length).

    ``fromto`` (6 floats) may replace ``pos``/``quat`` for capsules and cylinders.
    ``part`` names the functional part (``"handle"``, ``"body"``, ``"spout"``); the
    scene gives every part of an object its own material.
    """

    kind: str
    part: str
    size: tuple[float, ...] = (0.0, 0.0, 0.0)
    pos: tuple[float, float, float] = (0.0, 0.0, 0.0)
    quat: tuple[float, float, float, float] = (1.0, 0.0, 0.0, 0.0)
    fromto: tuple[float, ...] | None = None
    mesh: Mesh | None = None

    def __post_init__(self) -> None:
        if self.kind not in GEOM_TYPES:
            raise ValueError(f"unknown geom kind {self.kind!r}; expected one of {sorted(GEOM_TYPES)}")
        if (self.kind == "mesh") != (self.mesh is not None):
            raise ValueError("a mesh geom needs a mesh, and only a mesh geom may have one")


@dataclass
class ObjectModel:
    """A procedural object instance: geoms and, per task, 5 keypoints (p1..p5)."""

    category: str
    geoms: list[Geom]
    keypoints: dict[str, np.ndarray]  # task -> (5, 3) positions in the object frame
    keypoint_radii: dict[str, np.ndarray] = field(default_factory=dict)  # task -> (5,)
    params: dict[str, float] = field(default_factory=dict)  # the sampled shape parameters
    #: the points the camera frames besides the geometry: the builder placement's keypoints whatever
    #: placement labels the object, so that the placement changes the labels and not the images
    framing_keypoints: dict[str, np.ndarray] | None = None

    def __post_init__(self) -> None:
        for task, pts in list(self.keypoints.items()):
            pts = np.asarray(pts, dtype=np.float64)
            if pts.shape != (NUM_KEYPOINTS, 3):
                raise ValueError(f"{self.category}/{task}: keypoints must be (5, 3), got {pts.shape}")
            self.keypoints[task] = pts
            radii = np.asarray(self.keypoint_radii.get(task, np.full(NUM_KEYPOINTS, SURFACE_RADIUS)), dtype=np.float64)
            if radii.shape != (NUM_KEYPOINTS,):
                raise ValueError(f"{self.category}/{task}: keypoint radii must be (5,), got {radii.shape}")
            self.keypoint_radii[task] = radii

    def with_placement(self, placement: str) -> ObjectModel:
        """This object with one reading of every task's keypoints (:data:`PLACEMENTS`) and no alternatives left."""
        if placement not in PLACEMENTS:
            raise ValueError(f"{self.category}: unknown keypoint placement {placement!r}; expected one of {PLACEMENTS}")
        framing = {t: p for t, p in self.keypoints.items() if PLACEMENT_SEP not in t}
        keypoints, radii = dict(framing), {t: self.keypoint_radii[t] for t in framing}
        suffix = PLACEMENT_SEP + placement
        for key, pts in self.keypoints.items():
            if key.endswith(suffix):
                keypoints[base_task(key)], radii[base_task(key)] = pts, self.keypoint_radii[key]
        return dataclasses.replace(self, keypoints=keypoints, keypoint_radii=radii, framing_keypoints=framing)

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(g.part for g in self.geoms))

    def add_to_spec(
        self, spec: mujoco.MjSpec, body: mujoco.MjsBody, materials: dict[str, str], prefix: str = "obj"
    ) -> None:
        """Add this object's geoms to ``body`` of ``spec``; ``materials`` maps part -> material name."""
        for i, g in enumerate(self.geoms):
            mg = body.add_geom()
            mg.name = f"{prefix}_{g.part}_{i}"
            mg.type = GEOM_TYPES[g.kind]
            mg.contype = 0
            mg.conaffinity = 0
            if g.part in materials:
                mg.material = materials[g.part]
            if g.kind == "mesh":
                mesh = spec.add_mesh()
                mesh.name = f"{prefix}_mesh_{i}"
                mesh.uservert = g.mesh.vertices.astype(np.float32).ravel().tolist()
                mesh.userface = g.mesh.faces.astype(np.int32).ravel().tolist()
                mesh.inertia = mujoco.mjtMeshInertia.mjMESH_INERTIA_SHELL
                mg.meshname = mesh.name
                continue
            size = list(g.size) + [0.0] * (3 - len(g.size))
            mg.size = size
            if g.fromto is not None:
                mg.fromto = list(g.fromto)
            else:
                mg.pos = list(g.pos)
                mg.quat = list(g.quat)


Builder = Callable[[np.random.Generator], ObjectModel]


# ----------------------------------------------------------------------------- geometry helpers


def capsule(a: Sequence[float], b: Sequence[float], radius: float, part: str) -> Geom:
    return Geom("capsule", part, size=(radius, 0.0, 0.0), fromto=tuple(np.r_[a, b].astype(float)))


def cylinder(a: Sequence[float], b: Sequence[float], radius: float, part: str) -> Geom:
    return Geom("cylinder", part, size=(radius, 0.0, 0.0), fromto=tuple(np.r_[a, b].astype(float)))


def box(center: Sequence[float], half_sizes: Sequence[float], part: str, quat: Sequence[float] = (1, 0, 0, 0)) -> Geom:
    return Geom(
        "box", part, size=tuple(map(float, half_sizes)), pos=tuple(map(float, center)), quat=tuple(map(float, quat))
    )


def ellipsoid(center: Sequence[float], radii: Sequence[float], part: str, quat: Sequence[float] = (1, 0, 0, 0)) -> Geom:
    return Geom(
        "ellipsoid", part, size=tuple(map(float, radii)), pos=tuple(map(float, center)), quat=tuple(map(float, quat))
    )


def sphere(center: Sequence[float], radius: float, part: str) -> Geom:
    return Geom("sphere", part, size=(float(radius), 0.0, 0.0), pos=tuple(map(float, center)))


def grid_faces(rows: int, cols: int, wrap_cols: bool, wrap_rows: bool = False) -> np.ndarray:
    """Triangles of a rows x cols vertex grid (row-major), optionally closed around either direction."""
    faces = []
    r_max = rows if wrap_rows else rows - 1
    c_max = cols if wrap_cols else cols - 1
    for r in range(r_max):
        r2 = (r + 1) % rows
        for c in range(c_max):
            c2 = (c + 1) % cols
            a, b, cc, d = r * cols + c, r * cols + c2, r2 * cols + c2, r2 * cols + c
            faces.append((a, b, cc))
            faces.append((a, cc, d))
    return np.asarray(faces, dtype=np.int64)


def lathe(
    profile: Sequence[Sequence[float]],
    part: str,
    segments: int = 32,
    closed: bool = False,
    axis_frame: np.ndarray | None = None,
    center: Sequence[float] = (0, 0, 0),
) -> Geom:
    """Surface of revolution about the local z axis from a (radius, z) polyline.

    For a thin-walled container give the profile outside-up then inside-down so
    the wall has thickness (e.g. base centre -> outer wall -> lip -> inner wall ->
    inner base centre). ``closed`` joins the last profile point back to the first.
    ``axis_frame`` (3x3, columns = local x, y, z in the object frame) orients the axis.
    """
    prof = np.asarray(profile, dtype=np.float64)
    theta = np.linspace(0.0, 2 * np.pi, segments, endpoint=False)
    rings = []
    for r, z in prof:
        rings.append(np.stack([r * np.cos(theta), r * np.sin(theta), np.full_like(theta, z)], axis=1))
    verts = np.concatenate(rings, axis=0)
    faces = grid_faces(len(prof), segments, wrap_cols=True, wrap_rows=closed)
    return mesh_geom(verts, faces, part, axis_frame, center)


def tube(
    path: Sequence[Sequence[float]],
    radius: float | Sequence[float],
    part: str,
    segments: int = 12,
    closed: bool = False,
    caps: bool = True,
) -> Geom:
    """A tube swept along a 3D polyline (handles, wire loops, spouts), radius constant or per point."""
    path = np.asarray(path, dtype=np.float64)
    n = len(path)
    radii = np.broadcast_to(np.asarray(radius, dtype=np.float64), (n,))
    tangents = np.gradient(path, axis=0) if not closed else (np.roll(path, -1, 0) - np.roll(path, 1, 0))
    tangents /= np.linalg.norm(tangents, axis=1, keepdims=True) + 1e-12
    # parallel-transport a normal along the path so the tube does not twist
    ref = np.array([0.0, 0.0, 1.0]) if abs(tangents[0][2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    normal = np.cross(tangents[0], ref)
    normal /= np.linalg.norm(normal)
    theta = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    verts = []
    for i in range(n):
        t = tangents[i]
        normal = normal - t * np.dot(normal, t)
        normal /= np.linalg.norm(normal) + 1e-12
        binormal = np.cross(t, normal)
        ring = path[i] + radii[i] * (np.outer(np.cos(theta), normal) + np.outer(np.sin(theta), binormal))
        verts.append(ring)
    verts = np.concatenate(verts, axis=0)
    faces = grid_faces(n, segments, wrap_cols=True, wrap_rows=closed)
    if caps and not closed:
        verts = np.vstack([verts, path[0], path[-1]])
        c0, c1 = len(verts) - 2, len(verts) - 1
        cap0 = [(c0, (j + 1) % segments, j) for j in range(segments)]
        last = (n - 1) * segments
        cap1 = [(c1, last + j, last + (j + 1) % segments) for j in range(segments)]
        faces = np.vstack([faces, cap0, cap1])
    return Geom("mesh", part, mesh=Mesh(verts, faces))


def extrude(
    outline: Sequence[Sequence[float]],
    thickness: float,
    part: str,
    axis_frame: np.ndarray | None = None,
    center: Sequence[float] = (0, 0, 0),
) -> Geom:
    """A flat plate: a simple 2D outline (x, y; either winding, may be non-convex) extruded along z."""
    pts = np.asarray(outline, dtype=np.float64)
    if _signed_area(pts) < 0:
        pts = pts[::-1]
    tri = ear_clip(pts)
    n = len(pts)
    h = thickness / 2
    verts = np.vstack([np.c_[pts, np.full(n, -h)], np.c_[pts, np.full(n, h)]])
    faces = [(c, b, a) for a, b, c in tri] + [(a + n, b + n, c + n) for a, b, c in tri]
    for i in range(n):
        j = (i + 1) % n
        faces += [(i, j, j + n), (i, j + n, i + n)]
    return mesh_geom(verts, np.asarray(faces), part, axis_frame, center)


def mesh_geom(
    verts: np.ndarray,
    faces: np.ndarray,
    part: str,
    axis_frame: np.ndarray | None = None,
    center: Sequence[float] = (0, 0, 0),
) -> Geom:
    verts = np.asarray(verts, dtype=np.float64)
    if axis_frame is not None:
        verts = verts @ np.asarray(axis_frame, dtype=np.float64).T
    verts = verts + np.asarray(center, dtype=np.float64)
    return Geom("mesh", part, mesh=Mesh(verts, faces))


def frame_from_z(z_axis: Sequence[float], x_hint: Sequence[float] = (1, 0, 0)) -> np.ndarray:
    """A rotation matrix whose third column is ``z_axis`` (columns: local x, y, z)."""
    z = np.asarray(z_axis, dtype=np.float64)
    z = z / np.linalg.norm(z)
    x = np.asarray(x_hint, dtype=np.float64)
    x = x - z * np.dot(x, z)
    if np.linalg.norm(x) < 1e-6:
        x = np.array([0.0, 1.0, 0.0]) - z * z[1]
    x /= np.linalg.norm(x)
    return np.stack([x, np.cross(z, x), z], axis=1)


def _signed_area(pts: np.ndarray) -> float:
    x, y = pts[:, 0], pts[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def _cross2(u: np.ndarray, v: np.ndarray) -> float:
    """z of the cross product of two 2D vectors (numpy 2 deprecates np.cross on 2D vectors)."""
    return float(u[0] * v[1] - u[1] * v[0])


def ear_clip(pts: np.ndarray) -> list[tuple[int, int, int]]:
    """Triangulate a simple counter-clockwise polygon (ear clipping, O(n^2); outlines are small)."""
    idx = list(range(len(pts)))
    tris: list[tuple[int, int, int]] = []

    def inside(p, a, b, c) -> bool:
        d1 = _cross2(b - a, p - a)
        d2 = _cross2(c - b, p - b)
        d3 = _cross2(a - c, p - c)
        return d1 >= 0 and d2 >= 0 and d3 >= 0

    guard = 0
    while len(idx) > 3 and guard < 10 * len(pts) ** 2:
        guard += 1
        for k in range(len(idx)):
            i0, i1, i2 = idx[k - 1], idx[k], idx[(k + 1) % len(idx)]
            a, b, c = pts[i0], pts[i1], pts[i2]
            if _cross2(b - a, c - b) <= 1e-14:
                continue
            if any(inside(pts[j], a, b, c) for j in idx if j not in (i0, i1, i2)):
                continue
            tris.append((i0, i1, i2))
            idx.pop(k)
            break
        else:
            break
    if len(idx) == 3:
        tris.append(tuple(idx))
    return tris
