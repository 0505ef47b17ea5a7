"""Procedural hand tools: hammer, scraper, trowel, screwdriver, scissors, scrub brush, toothbrush, letter opener.

Every tool lies along +x with its working end toward +x and its grip toward -x,
resting on the plane z = 0 (tilted about y onto its lowest support, as it would
lie on a table) and centred on the xy origin. Keypoints follow docs/DESIGN.md, "Keypoint meanings":
p1 the extreme working point, p2 and p3 over the working part (p3 nearest the
grip), p4 the grip near the working part, p5 the far end of the grip. They are
computed from the same sampled numbers as the surfaces, so they move with them.

Shared keypoint meanings within a task across this module:

- poke: p1 the point that touches first (tip or corner), p2/p3 back along the
  working part's centre line or side edge, p4/p5 along the grip.
- scrape: p1 one corner of the scraping edge, p2 the middle of that edge, p3
  the other corner (the same chain as spoon, fork, spatula and shovel in
  utensils.py, so an index means one thing across every scrape category).
- brush_dust: p1 the front bristle tips (the flat blade's edge for a scraper),
  p2 the middle of the brushing surface, p3 its back end.
- mash_pound: p1..p3 across the striking face.
- pull_out_nail: p1 the claw (or blade) tip, p2 along it, p3 the crotch of
  the V that grips the nail.

The builders list points in their order along the object; :func:`funk_perception.data.objects.build_object`
then renumbers p2 and p3 of scoop, lift_something, scrape, brush_dust and flip to FunKPoint's
numbering (``FUNKPOINT_ORDER``): there p2 is the far end of the working part and p3 its middle.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import mujoco
import numpy as np

from funk_perception.data.objects.base import (
    Builder,
    Geom,
    Mesh,
    ObjectModel,
    base_task,
    capsule,
    cylinder,
    ellipsoid,
    extrude,
    grid_faces,
    sphere,
    tube,
)
from funk_perception.tasks import tasks_for_category

# ----------------------------------------------------------------------------- mesh helpers


def _signed_volume(verts: np.ndarray, faces: np.ndarray) -> float:
    a, b, c = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)


def _rings_mesh(rings: np.ndarray, part: str, caps: bool = True) -> Geom:
    """A closed surface through a stack of closed cross-section loops (n, m, 3), outward-facing."""
    rings = np.asarray(rings, dtype=np.float64)
    n, m, _ = rings.shape
    verts = rings.reshape(-1, 3)
    faces = grid_faces(n, m, wrap_cols=True)
    if caps:
        verts = np.vstack([verts, rings[0].mean(axis=0), rings[-1].mean(axis=0)])
        i0, i1, last = n * m, n * m + 1, (n - 1) * m
        cap0 = [(i0, (j + 1) % m, j) for j in range(m)]
        cap1 = [(i1, last + j, last + (j + 1) % m) for j in range(m)]
        faces = np.vstack([faces, cap0, cap1])
    # loops may run either way round; the sign of the enclosed volume tells which
    if _signed_volume(verts, faces) < 0:
        faces = faces[:, ::-1]
    return Geom("mesh", part, mesh=Mesh(verts, faces))


def _merge(geoms: Sequence[Geom], part: str) -> Geom:
    """One mesh geom from several (many bristle tufts render as one draw call)."""
    verts, faces, offset = [], [], 0
    for g in geoms:
        verts.append(g.mesh.vertices)
        faces.append(g.mesh.faces + offset)
        offset += len(g.mesh.vertices)
    return Geom("mesh", part, mesh=Mesh(np.vstack(verts), np.vstack(faces)))


def _superellipse(segments: int, power: float) -> tuple[np.ndarray, np.ndarray]:
    theta = np.linspace(0.0, 2 * np.pi, segments, endpoint=False)
    c, s = np.cos(theta), np.sin(theta)
    e = 2.0 / power
    return np.sign(c) * np.abs(c) ** e, np.sign(s) * np.abs(s) ** e


def _frames(path: np.ndarray, up: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Per-point side and normal vectors of a path; ``up`` fixes the roll (normal ~ up)."""
    t = np.gradient(path, axis=0)
    t /= np.linalg.norm(t, axis=1, keepdims=True) + 1e-12
    side = np.cross(np.asarray(up, dtype=np.float64), t)
    side /= np.linalg.norm(side, axis=1, keepdims=True) + 1e-12
    normal = np.cross(t, side)
    return side, normal


def _loft(
    path: Sequence[Sequence[float]],
    half_w: float | Sequence[float],
    half_h: float | Sequence[float],
    part: str,
    segments: int = 16,
    up: Sequence[float] = (0, 0, 1),
    power: float = 2.0,
) -> Geom:
    """A capped tube of (super)elliptic section along ``path``: half_w across (side), half_h along ``up``."""
    path = np.asarray(path, dtype=np.float64)
    n = len(path)
    hw = np.broadcast_to(np.asarray(half_w, dtype=np.float64), (n,))
    hh = np.broadcast_to(np.asarray(half_h, dtype=np.float64), (n,))
    side, normal = _frames(path, up)
    cs, sn = _superellipse(segments, power)
    rings = (
        path[:, None, :]
        + (hw[:, None] * cs[None, :])[..., None] * side[:, None, :]
        + (hh[:, None] * sn[None, :])[..., None] * normal[:, None, :]
    )
    return _rings_mesh(rings, part)


def _lathe_axis(
    profile: Sequence[Sequence[float]],
    part: str,
    start: Sequence[float],
    axis: Sequence[float] = (1, 0, 0),
    segments: int = 24,
    phase: float = 0.0,
    radius_fn: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> Geom:
    """Surface of revolution about ``axis`` from ``start``: profile (radius, distance along axis).

    ``phase`` turns the polygon (a 4- or 8-sided lathe is a square or octagonal
    prism); ``radius_fn(s, theta)`` may scale the radius around the section
    (flutes on a screwdriver handle). theta = pi/2 points to +z for an axis in the xy plane.
    """
    prof = np.asarray(profile, dtype=np.float64)
    e3 = np.asarray(axis, dtype=np.float64) / np.linalg.norm(axis)
    e2 = np.array([0.0, 0.0, 1.0]) if abs(e3[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    e2 = e2 - e3 * np.dot(e2, e3)
    e2 /= np.linalg.norm(e2)
    e1 = np.cross(e2, e3)
    theta = np.linspace(0.0, 2 * np.pi, segments, endpoint=False) + phase
    r = prof[:, 0:1] * np.ones_like(theta)[None, :]
    if radius_fn is not None:
        r = r * radius_fn(prof[:, 1:2], theta[None, :])
    rings = (
        np.asarray(start, dtype=np.float64)
        + prof[:, 1, None, None] * e3
        + (r * np.cos(theta))[..., None] * e1
        + (r * np.sin(theta))[..., None] * e2
    )
    return _rings_mesh(rings, part, caps=True)


def _sheet(
    x: np.ndarray,
    y_lo: np.ndarray,
    y_hi: np.ndarray,
    thickness: np.ndarray | float,
    part: str,
    z_mid: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    across: int = 9,
    ridge: float = 0.0,
) -> Geom:
    """A thin plate over stations ``x`` spanning [y_lo, y_hi]; optional mid-surface height and central ridge.

    ``ridge`` in [0, 1) thins the plate toward its two long edges (a bevelled blade).
    """
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    th = np.broadcast_to(np.asarray(thickness, dtype=np.float64), (n,))
    v = np.linspace(-1.0, 1.0, across)
    y = y_lo[:, None] + (v[None, :] + 1) / 2 * (y_hi - y_lo)[:, None]
    xx = np.repeat(x[:, None], across, axis=1)
    zm = np.zeros_like(y) if z_mid is None else z_mid(xx, y)
    half = th[:, None] / 2 * (1 - ridge * v[None, :] ** 2)
    top = np.stack([xx, y, zm + half], axis=-1)
    bottom = np.stack([xx, y, zm - half], axis=-1)[:, ::-1]
    # each station's loop: across the top, back across the bottom
    rings = np.concatenate([top, bottom], axis=1)
    return _rings_mesh(rings, part)


def _tufts(bases: np.ndarray, tips: np.ndarray, radius: float, part: str, splay: float = 1.2) -> Geom:
    """Bristle tufts as hexagonal prisms from each base to each tip, merged into one mesh."""
    pieces = []
    for a, b in zip(bases, tips):
        pieces.append(
            _loft(
                [a, b],
                [radius, radius * splay],
                [radius, radius * splay],
                part,
                segments=6,
                up=(1, 0, 0) if abs((b - a)[2]) > abs((b - a)[0]) else (0, 0, 1),
            )
        )
    return _merge(pieces, part)


def _smooth_interp(s: np.ndarray | float, knots: Sequence[float], values: Sequence[float]) -> np.ndarray:
    """Piecewise-linear control values, then a smoothstep within each span (no kinks in silhouettes)."""
    s = np.atleast_1d(np.asarray(s, dtype=np.float64))
    k = np.asarray(knots, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    i = np.clip(np.searchsorted(k, s, side="right") - 1, 0, len(k) - 2)
    t = np.clip((s - k[i]) / (k[i + 1] - k[i]), 0.0, 1.0)
    t = t * t * (3 - 2 * t)
    return v[i] + (v[i + 1] - v[i]) * t


# ----------------------------------------------------------------------------- placing an object on the table


def _quat_of(rot: np.ndarray) -> np.ndarray:
    q = np.zeros(4)
    mujoco.mju_mat2Quat(q, np.ascontiguousarray(rot, dtype=np.float64).ravel())
    return q


def _transform_geom(g: Geom, rot: np.ndarray, shift: np.ndarray) -> Geom:
    if g.kind == "mesh":
        return Geom("mesh", g.part, mesh=Mesh(g.mesh.vertices @ rot.T + shift, g.mesh.faces))
    if g.fromto is not None:
        a = np.asarray(g.fromto[:3]) @ rot.T + shift
        b = np.asarray(g.fromto[3:]) @ rot.T + shift
        return Geom(g.kind, g.part, size=g.size, fromto=tuple(np.r_[a, b].astype(float)))
    q = np.zeros(4)
    mujoco.mju_mulQuat(q, _quat_of(rot), np.asarray(g.quat, dtype=np.float64))
    pos = np.asarray(g.pos) @ rot.T + shift
    return Geom(g.kind, g.part, size=g.size, pos=tuple(map(float, pos)), quat=tuple(map(float, q)))


def _geom_rotation(g: Geom) -> np.ndarray:
    m = np.zeros(9)
    mujoco.mju_quat2Mat(m, np.asarray(g.quat, dtype=np.float64))
    return m.reshape(3, 3)


def _support_points(g: Geom) -> np.ndarray:
    """Points whose hull bounds the geom (exact for meshes, boxes, spheres; axis-aligned bound for the rest)."""
    if g.kind == "mesh":
        return g.mesh.vertices
    offsets = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=np.float64)
    if g.fromto is not None:
        r = g.size[0]
        ends = np.asarray(g.fromto, dtype=np.float64).reshape(2, 3)
        return (ends[:, None, :] + r * offsets[None]).reshape(-1, 3)
    pos = np.asarray(g.pos, dtype=np.float64)
    if g.kind == "sphere":
        return pos + g.size[0] * offsets
    rot = _geom_rotation(g)
    half = np.asarray(g.size[:3], dtype=np.float64)
    if g.kind == "box":
        return pos + (offsets * half) @ rot.T
    # ellipsoid: its axis-aligned bounding box
    ext = np.sqrt(((rot * half[None, :]) ** 2).sum(axis=1))
    return pos + offsets * ext


def _cross2(a: np.ndarray, b: np.ndarray) -> float:
    return float(a[0] * b[1] - a[1] * b[0])


def _lower_hull(xz: np.ndarray) -> np.ndarray:
    pts = xz[np.lexsort((xz[:, 1], xz[:, 0]))]
    hull: list[np.ndarray] = []
    for p in pts:
        while len(hull) >= 2 and _cross2(hull[-1] - hull[-2], p - hull[-2]) <= 0:
            hull.pop()
        hull.append(p)
    return np.asarray(hull)


def _finish(
    category: str,
    geoms: list[Geom],
    keypoints: dict[str, np.ndarray],
    params: dict[str, float],
    radii: dict[str, np.ndarray] | None = None,
    tilt_to_rest: bool = True,
) -> ObjectModel:
    """Tilt the object about y onto the table edge under its middle, then centre it on the xy origin at z = 0."""
    kps = {t: np.asarray(p, dtype=np.float64) for t, p in keypoints.items()}
    if tilt_to_rest:
        pts = np.vstack([_support_points(g) for g in geoms])
        hull = _lower_hull(pts[:, [0, 2]])
        mid_x = (pts[:, 0].min() + pts[:, 0].max()) / 2
        k = int(np.clip(np.searchsorted(hull[:, 0], mid_x) - 1, 0, len(hull) - 2))
        dx, dz = hull[k + 1] - hull[k]
        angle = float(np.arctan2(dz, dx))
        c, s = np.cos(angle), np.sin(angle)
        rot = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
        geoms = [_transform_geom(g, rot, np.zeros(3)) for g in geoms]
        kps = {t: p @ rot.T for t, p in kps.items()}
        params["rest_tilt_deg"] = float(np.degrees(angle))
    pts = np.vstack([_support_points(g) for g in geoms])
    shift = np.array(
        [-(pts[:, 0].min() + pts[:, 0].max()) / 2, -(pts[:, 1].min() + pts[:, 1].max()) / 2, -pts[:, 2].min()]
    )
    geoms = [_transform_geom(g, np.eye(3), shift) for g in geoms]
    kps = {t: p + shift for t, p in kps.items()}
    expected = set(tasks_for_category(category))
    if {base_task(t) for t in kps} != expected:
        raise ValueError(f"tools.py/{category}: keypoints for {sorted(kps)}, expected {sorted(expected)}")
    return ObjectModel(category, geoms, kps, dict(radii or {}), {k: float(v) for k, v in params.items()})


def _pts(*points: Sequence[float]) -> np.ndarray:
    return np.asarray(points, dtype=np.float64)


# ----------------------------------------------------------------------------- handles shared by several tools


def _round_handle(
    rng: np.random.Generator,
    length: float,
    radius: float,
    front_x: float,
    part: str = "handle",
    segments: int = 20,
    flutes: int = 0,
    flute_depth: float = 0.0,
) -> tuple[Geom, Callable[[float], np.ndarray], dict[str, float]]:
    """A turned handle along -x from ``front_x``; returns the geom, top-surface point at fraction u (0 butt, 1 front), params."""
    style = int(rng.integers(3))
    if style == 0:  # classic: domed butt, slight waist, collar at the front
        knots, vals = [0, 0.03, 0.12, 0.55, 0.82, 0.9, 0.97, 1.0], [0.0, 0.75, 1.0, 0.92, 0.82, 0.88, 0.6, 0.5]
    elif style == 1:  # pear: widest near the butt, tapering forward
        knots, vals = [0, 0.03, 0.25, 0.6, 0.95, 1.0], [0.0, 0.8, 1.0, 0.8, 0.62, 0.5]
    else:  # cylinder with rounded ends
        knots, vals = [0, 0.025, 0.08, 0.92, 0.98, 1.0], [0.0, 0.8, 1.0, 1.0, 0.8, 0.55]
    vals = np.asarray(vals) * (1 + rng.uniform(-0.06, 0.06, len(vals)))
    vals[0] = 0.0
    s = np.linspace(0, 1, 22)
    r = _smooth_interp(s, knots, vals) * radius
    profile = np.c_[np.r_[r, 0.0], np.r_[s * length, length]]
    start = (front_x - length, 0.0, 0.0)

    def flute_scale(s_abs: np.ndarray, theta: np.ndarray) -> np.ndarray:
        if flutes == 0:
            return np.ones_like(s_abs * theta)
        u = s_abs / length
        fade = np.clip(np.minimum((u - 0.12) / 0.1, (0.8 - u) / 0.1), 0.0, 1.0)
        return 1.0 - flute_depth * fade * np.maximum(np.cos(flutes * (theta - np.pi / 2) + np.pi), 0.0) ** 2

    geom = _lathe_axis(profile, part, start, (1, 0, 0), segments=segments, radius_fn=flute_scale)

    def top(u: float) -> np.ndarray:
        rr = (
            float(_smooth_interp(u, knots, vals)[0])
            * radius
            * float(flute_scale(np.array([u * length]), np.array([np.pi / 2]))[0])
        )
        return np.array([front_x - length + u * length, 0.0, rr])

    return geom, top, {"handle_style": float(style)}


# ----------------------------------------------------------------------------- hammer


def build_hammer(rng: np.random.Generator) -> ObjectModel:
    """Claw hammer lying on its side: handle along x, head across y (face +y, claw -y curling back toward -x)."""
    handle_len = rng.uniform(0.24, 0.34)
    grip_r = rng.uniform(0.011, 0.016)
    head_len = rng.uniform(0.10, 0.14)
    face_r = rng.uniform(0.011, 0.016)
    sides = int(rng.choice([4, 8, 24]))  # square, octagonal or round head
    face_len = head_len * rng.uniform(0.42, 0.55)
    claw_len = head_len - face_len
    claw_curl = rng.uniform(0.0, 1.0)  # 0 straight rip claw, 1 curled claw
    handle_style = int(rng.integers(3))  # 0 flared wood, 1 shaft + rubber grip, 2 straight with knob
    eye_hx = max(face_r * 0.85, grip_r * 1.15)
    eye_hy = rng.uniform(0.012, 0.017)
    eye_hz = face_r * 0.85

    geoms: list[Geom] = []
    corner = 1.0 / np.cos(np.pi / sides)  # so flat polygon sides sit at the nominal radius
    neck = rng.uniform(0.62, 0.8)
    prof = [
        (0.8 * face_r * corner, 0.0),
        (neck * face_r * corner, 0.45 * face_len),
        (neck * face_r * corner, 0.62 * face_len),
        (face_r * corner, 0.85 * face_len),
        (face_r * corner, face_len - 0.004),
        (0.9 * face_r * corner, face_len),
        (0.0, face_len),
    ]
    geoms.append(_lathe_axis(prof, "head", (0, 0, 0), (0, 1, 0), segments=sides, phase=np.pi / sides))
    geoms.append(Geom("box", "head", size=(eye_hx, eye_hy, eye_hz)))

    # claw: two prongs curving from the head's -y end back toward -x, with a V slot between them
    phi_max = np.radians(20 + 60 * claw_curl)
    rho = claw_len / phi_max
    u = np.linspace(0, 1, 14)
    phi = u * phi_max
    path = np.stack([-rho * (1 - np.cos(phi)), -eye_hy * 0.8 - rho * np.sin(phi), np.zeros_like(phi)], axis=1)
    width = (0.95 * face_r) * (1 - u) + 0.004 * u
    half_t = (0.42 * face_r) * (1 - u) + 0.0018 * u
    gap = 0.0006 + 0.004 * u**1.2
    prong_z = half_t + gap / 2
    for sign in (1.0, -1.0):
        geoms.append(_loft(path + np.c_[0 * u, 0 * u, sign * prong_z], width, half_t, "head", segments=12))

    # handle through the eye
    x0, x1 = -handle_len, eye_hx + 0.002
    hu = np.linspace(0, 1, 24)
    hx = x0 + hu * (x1 - x0)
    knob = None
    if handle_style == 0:
        w = grip_r * _smooth_interp(hu, [0, 0.04, 0.2, 0.65, 0.88, 1.0], [0.75, 1.12, 1.0, 0.82, 0.72, 0.82])
    elif handle_style == 1:
        w = grip_r * np.full_like(hu, 0.72)
    else:
        w = grip_r * _smooth_interp(hu, [0, 0.05, 0.5, 1.0], [0.8, 0.9, 0.88, 0.85])
        knob = ellipsoid((x0 + 0.004, 0, 0), (0.012, grip_r * 1.15, grip_r * 0.95), "handle")
    flat = rng.uniform(0.68, 0.85)  # oval section, the long axis in the plane of the head
    path_h = np.c_[hx, 0 * hx, 0 * hx]
    geoms.append(_loft(path_h, w, w * flat, "handle", segments=16))
    if knob is not None:
        geoms.append(knob)
    grip_frac = rng.uniform(0.35, 0.5)
    if handle_style == 1:
        gu = np.linspace(0, grip_frac, 14)
        gw = grip_r * _smooth_interp(gu / grip_frac, [0, 0.05, 0.5, 0.95, 1.0], [0.8, 1.1, 1.0, 1.02, 0.78])
        geoms.append(_loft(np.c_[x0 - 0.002 + gu * (x1 - x0), 0 * gu, 0 * gu], gw, gw * flat, "grip", segments=16))

    def handle_top(uu: float) -> np.ndarray:
        x = x0 + uu * (x1 - x0)
        ww = float(np.interp(uu, hu, w)) * flat
        if handle_style == 1 and uu <= grip_frac:
            ww = max(
                ww,
                float(
                    grip_r * _smooth_interp(uu / grip_frac, [0, 0.05, 0.5, 0.95, 1.0], [0.8, 1.1, 1.0, 1.02, 0.78])[0]
                )
                * flat,
            )
        return np.array([x, 0.0, ww])

    p4 = handle_top(0.62)
    # the butt end: the knob's end, the grip sleeve's end cap, or the handle's own
    butt_x = {0: x0, 1: x0 - 0.002, 2: x0 + 0.004 - 0.012}[handle_style]
    p5 = np.array([butt_x, 0.0, 0.0])
    face_c = np.array([0.0, face_len, 0.0])
    off = 0.55 * face_r
    pound = _pts(face_c + (off, 0, 0), face_c, face_c - (off, 0, 0), p4, p5)
    top_of = lambda i: path[i] + np.array([0, 0, prong_z[i] + half_t[i]])  # noqa: E731
    nail = _pts(top_of(len(u) - 1), top_of(len(u) // 2), top_of(1), p4, p5)
    params = {
        "handle_len": handle_len,
        "grip_r": grip_r,
        "head_len": head_len,
        "face_r": face_r,
        "head_sides": sides,
        "face_len": face_len,
        "claw_curl": claw_curl,
        "handle_style": handle_style,
        "handle_flat": flat,
        "neck": neck,
    }
    # FunKPoint's pull_out_nail: p3, p4 along the lever arm (objects.base.PLACEMENTS)
    nail_fp = _pts(*nail[:2], handle_top(0.55), handle_top(0.27), p5)
    return _finish(
        "hammer", geoms, {"mash_pound": pound, "pull_out_nail": nail, "pull_out_nail@funkpoint": nail_fp}, params
    )


# ----------------------------------------------------------------------------- flat-bladed tools


def _blade_profile(u: np.ndarray, base_hw: float, edge_hw: float, style: int, corner: float) -> np.ndarray:
    if style == 0:  # putty knife: straight flare
        w = base_hw + (edge_hw - base_hw) * u
    elif style == 1:  # shouldered: widens quickly then parallel sides
        w = base_hw + (edge_hw - base_hw) * _smooth_interp(u, [0, 0.25, 1], [0, 1, 1])
    else:  # wall scraper: curved shoulders to a wide edge
        w = base_hw + (edge_hw - base_hw) * _smooth_interp(u, [0, 0.15, 0.6, 1], [0, 0.1, 0.95, 1])
    # rounded corners at the working edge
    tail = np.clip((u - (1 - corner)) / max(corner, 1e-6), 0, 1)
    return w * (1 - 0.25 * (1 - np.sqrt(1 - tail**2))) if corner > 0 else w


def build_scraper(rng: np.random.Generator) -> ObjectModel:
    """Putty knife / paint scraper: a flat steel blade in a ferrule on a wooden or plastic handle."""
    style = int(rng.integers(3))
    blade_len = rng.uniform(0.05, 0.10) if style < 2 else rng.uniform(0.04, 0.065)
    base_hw = rng.uniform(0.011, 0.017)
    edge_hw = {0: rng.uniform(0.022, 0.04), 1: rng.uniform(0.016, 0.028), 2: rng.uniform(0.04, 0.06)}[style]
    corner = rng.uniform(0.0, 0.12)
    thick = rng.uniform(0.0013, 0.0022)
    ferrule_len = rng.uniform(0.008, 0.02)
    handle_len = rng.uniform(0.08, 0.12)
    handle_r = rng.uniform(0.011, 0.016)
    handle_kind = int(rng.integers(2))  # 0 turned round handle, 1 flat oval riveted handle

    u = np.linspace(0, 1, 18)
    xs = -ferrule_len * 0.6 + u * (blade_len + ferrule_len * 0.6)
    hw = _blade_profile(u, base_hw, edge_hw, style, corner)
    taper = thick * (1 - 0.45 * u)  # blades thin toward the edge
    geoms = [_sheet(xs, -hw, hw, taper, "blade", across=7)]
    fr = max(handle_r * 0.8, base_hw * 0.75)
    geoms.append(
        _lathe_axis(
            [(0, 0), (fr, 0), (fr * 1.05, ferrule_len * 0.5), (fr * 0.85, ferrule_len), (0, ferrule_len)],
            "ferrule",
            (-ferrule_len, 0, 0),
            (1, 0, 0),
            segments=16 if rng.random() < 0.6 else 4,
            phase=np.pi / 4,
        )
    )
    if handle_kind == 0:
        hgeom, htop, hparams = _round_handle(rng, handle_len, handle_r, -ferrule_len + 0.002)
        geoms.append(hgeom)
    else:
        hu = np.linspace(0, 1, 20)
        hx = -ferrule_len + 0.002 - handle_len + hu * handle_len
        w = handle_r * 1.05 * _smooth_interp(hu, [0, 0.04, 0.3, 0.8, 1], [0.6, 1.0, 1.05, 0.85, 0.75])
        h = handle_r * 0.62 * np.ones_like(hu)
        geoms.append(_loft(np.c_[hx, 0 * hu, 0 * hu], w, h, "handle", segments=16, power=2.6))
        rivet_r = rng.uniform(0.002, 0.0035)
        for ur in (0.45, 0.72):
            xr = -ferrule_len - handle_len * (1 - ur)
            geoms.append(cylinder((xr, 0, -h[0] - 0.0006), (xr, 0, h[0] + 0.0006), rivet_r, "ferrule"))

        def htop(uu: float) -> np.ndarray:
            return np.array([-ferrule_len + 0.002 - handle_len + uu * handle_len, 0.0, float(h[0])])

        hparams = {"handle_style": 3.0}

    def blade_top(uu: float, v: float) -> np.ndarray:
        w = float(np.interp(uu, u, hw))
        return np.array([float(np.interp(uu, u, xs)), v * w, float(np.interp(uu, u, taper)) / 2])

    p4, p5 = htop(0.8), htop(0.0)
    p5 = p5 - np.array([0, 0, p5[2]])  # the butt end lies on the axis
    kps = {
        "scrape": _pts(blade_top(0.995, 0.85), blade_top(0.995, 0.0), blade_top(0.995, -0.85), p4, p5),
        "poke": _pts(blade_top(0.995, 0.92), blade_top(0.55, 0.92), blade_top(0.12, 0.9), p4, p5),
        # FunKPoint's poke: the blade's base, the grip's front, its middle (objects.base.PLACEMENTS)
        "poke@funkpoint": _pts(blade_top(0.995, 0.92), blade_top(0.25, 0.92), htop(0.97), htop(0.5), p5),
        "brush_dust": _pts(blade_top(0.995, 0.0), blade_top(0.55, 0.0), blade_top(0.2, 0.0), p4, p5),
    }
    params = {
        "style": style,
        "blade_len": blade_len,
        "base_hw": base_hw,
        "edge_hw": edge_hw,
        "corner": corner,
        "thickness": thick,
        "ferrule_len": ferrule_len,
        "handle_len": handle_len,
        "handle_r": handle_r,
        "handle_kind": handle_kind,
        **hparams,
    }
    return _finish("scraper", geoms, kps, params)


def build_letter_opener(rng: np.random.Generator) -> ObjectModel:
    """Letter opener: a slim, blunt, pointed blade (dagger, leaf or sabre) with a guard and a decorative handle."""
    blade_len = rng.uniform(0.10, 0.15)
    blade_hw = rng.uniform(0.008, 0.014)
    shape = int(rng.integers(3))  # 0 dagger, 1 leaf, 2 sabre
    thick = rng.uniform(0.0018, 0.003)
    curve = rng.uniform(0.004, 0.012) if shape == 2 else 0.0
    has_guard = rng.random() < 0.65
    handle_len = rng.uniform(0.07, 0.11)
    handle_r = rng.uniform(0.006, 0.01)
    handle_kind = int(rng.integers(3))  # 0 turned with pommel, 1 flat oval, 2 flat metal with a ring end

    u = np.linspace(0, 1, 20)
    xs = u * blade_len
    if shape == 0:
        hw = blade_hw * _smooth_interp(u, [0, 0.55, 1.0], [1.0, 0.85, 0.0])
    elif shape == 1:
        hw = blade_hw * _smooth_interp(u, [0, 0.35, 1.0], [0.75, 1.15, 0.0])
    else:
        hw = blade_hw * _smooth_interp(u, [0, 0.7, 1.0], [1.0, 0.8, 0.0])
    yc = curve * u**2
    geoms = [_sheet(np.r_[-0.004, xs[1:]], yc - hw, yc + hw, thick, "blade", across=7, ridge=0.75)]
    if has_guard:
        g_hw = rng.uniform(0.012, 0.022)
        g_r = rng.uniform(0.0025, 0.004)
        geoms.append(capsule((-g_r, -g_hw, 0), (-g_r, g_hw, 0), g_r, "guard"))
        front = -2 * g_r
    else:
        front = -0.001
    if handle_kind == 0:
        hgeom, htop, _ = _round_handle(rng, handle_len, handle_r, front)
        geoms.append(hgeom)
        pommel_r = handle_r * rng.uniform(1.0, 1.4)
        geoms.append(sphere((front - handle_len - pommel_r * 0.6, 0, 0), pommel_r, "guard"))
        p5 = np.array([front - handle_len - pommel_r * 1.6, 0, 0])
    else:
        hu = np.linspace(0, 1, 18)
        hx = front - handle_len + hu * handle_len
        flat_h = 0.45 if handle_kind == 2 else 0.7
        w = handle_r * _smooth_interp(hu, [0, 0.1, 0.5, 0.9, 1], [0.9, 1.15, 0.9, 1.0, 0.8])
        geoms.append(_loft(np.c_[hx, 0 * hu, 0 * hu], w, w * flat_h, "handle", segments=16, power=2.4))

        def htop(uu: float) -> np.ndarray:
            return np.array([front - handle_len + uu * handle_len, 0.0, float(np.interp(uu, hu, w)) * flat_h])

        p5 = np.array([front - handle_len, 0, 0])
        if handle_kind == 2:  # a ring at the end of a flat metal handle
            ring_r = rng.uniform(0.008, 0.013)
            t = np.linspace(0, 2 * np.pi, 24, endpoint=False)
            cx = front - handle_len - ring_r + 0.002
            ring = np.c_[cx + ring_r * np.cos(t), ring_r * np.sin(t), 0 * t]
            geoms.append(tube(ring, handle_r * 0.35, "handle", segments=8, closed=True))
            p5 = np.array([cx - ring_r - handle_r * 0.35, 0, 0])

    def blade_top(uu: float, v: float) -> np.ndarray:
        w = float(np.interp(uu, u, hw))
        return np.array([uu * blade_len, float(np.interp(uu, u, yc)) + v * w, thick / 2 * (1 - 0.75 * v**2)])

    p4 = htop(0.85)
    kps = {
        "poke": _pts((blade_len, 0.0 + curve, 0.0), blade_top(0.5, 0), blade_top(0.08, 0), p4, p5),
        "poke@funkpoint": _pts((blade_len, 0.0 + curve, 0.0), blade_top(0.25, 0), htop(0.97), htop(0.5), p5),
        "scrape": _pts(blade_top(0.75, 0.9), blade_top(0.97, 0.0), blade_top(0.75, -0.9), p4, p5),
    }
    params = {
        "blade_len": blade_len,
        "blade_hw": blade_hw,
        "shape": shape,
        "thickness": thick,
        "curve": curve,
        "guard": float(has_guard),
        "handle_len": handle_len,
        "handle_r": handle_r,
        "handle_kind": handle_kind,
    }
    return _finish("letter_opener", geoms, kps, params)


def build_trowel(rng: np.random.Generator) -> ObjectModel:
    """Garden trowel (dished pointed scoop, neck rising to the handle) or pointing trowel (flat diamond, cranked tang)."""
    kind = int(rng.integers(2))
    handle_len = rng.uniform(0.10, 0.13)
    handle_r = rng.uniform(0.013, 0.018)
    thick = rng.uniform(0.0018, 0.0028)
    u = np.linspace(0, 1, 20)
    if kind == 0:
        blade_len = rng.uniform(0.11, 0.16)
        heel_hw = rng.uniform(0.022, 0.035)
        max_hw = heel_hw * rng.uniform(1.05, 1.35)
        tip_round = rng.uniform(0.0, 0.35)
        hw = _smooth_interp(u, [0, 0.3, 1.0], [heel_hw, max_hw, max_hw * 0.12 * tip_round])
        depth = rng.uniform(0.012, 0.025)
        lift = rng.uniform(0.0, 0.012)  # the heel turns up into the neck

        def z_mid(x: np.ndarray, y: np.ndarray) -> np.ndarray:
            w = np.interp(x / blade_len, u, hw) + 1e-9
            uu = x / blade_len
            return (
                depth * (np.clip(y / w, -1, 1) ** 2) * (0.4 + 0.6 * np.sin(np.pi * np.clip(uu, 0, 1)) ** 0.5)
                + lift * (1 - uu) ** 3
            )

        geoms = [_sheet(u * blade_len, -hw, hw, thick, "blade", z_mid=z_mid, across=11)]
        handle_z = rng.uniform(0.02, 0.04)
        neck_len = rng.uniform(0.025, 0.045)
        neck = np.array(
            [
                [0.015, 0, z_mid(np.array(0.015), np.array(0.0)) + thick],
                [-0.005, 0, handle_z * 0.6],
                [-neck_len * 0.7, 0, handle_z * 0.97],
                [-neck_len, 0, handle_z],
            ]
        )
        geoms.append(tube(neck, rng.uniform(0.004, 0.0065), "neck", segments=10))
        front = -neck_len + 0.004
    else:
        blade_len = rng.uniform(0.12, 0.19)
        heel_hw = rng.uniform(0.03, 0.045)
        shoulder = rng.uniform(0.0, 0.3)
        hw = _smooth_interp(u, [0, shoulder + 1e-3, 1.0], [heel_hw * rng.uniform(0.7, 1.0), heel_hw, 0.0])
        depth, tip_round, lift = 0.0, 0.0, 0.0
        z_mid = None
        geoms = [_sheet(u * blade_len, -hw, hw, thick, "blade", across=7)]
        handle_z = rng.uniform(0.035, 0.06)
        tang_x = blade_len * rng.uniform(0.08, 0.2)
        neck = np.array(
            [
                [tang_x, 0, 0],
                [tang_x - 0.004, 0, handle_z * 0.7],
                [tang_x - 0.012, 0, handle_z],
                [tang_x - 0.03, 0, handle_z],
            ]
        )
        geoms.append(tube(neck, rng.uniform(0.0035, 0.005), "neck", segments=10))
        front = tang_x - 0.025
    hgeom, htop, hparams = _round_handle(rng, handle_len, handle_r, front)
    geoms.append(_transform_geom(hgeom, np.eye(3), np.array([0, 0, handle_z])))

    def blade_top(uu: float, v: float) -> np.ndarray:
        w = float(np.interp(uu, u, hw))
        x = uu * blade_len
        z = 0.0 if z_mid is None else float(z_mid(np.array(x), np.array(v * w)))
        return np.array([x, v * w, z + thick / 2])

    handle_offset = np.array([0, 0, handle_z])
    p4 = htop(0.85) + handle_offset
    p5 = htop(0.0) * np.array([1, 0, 0]) + handle_offset
    tip = blade_top(1.0, 0.0)
    kps = {
        "scrape": _pts(blade_top(0.85, 0.9), blade_top(1.0, 0.0), blade_top(0.85, -0.9), p4, p5),
        "poke": _pts(tip, blade_top(0.55, 0.0), blade_top(0.12, 0.0), p4, p5),
        "poke@funkpoint": _pts(tip, blade_top(0.3, 0.0), htop(0.97) + handle_offset, htop(0.5) + handle_offset, p5),
    }
    params = {
        "kind": kind,
        "blade_len": blade_len,
        "heel_hw": heel_hw,
        "depth": depth,
        "tip_round": tip_round,
        "lift": lift,
        "thickness": thick,
        "handle_len": handle_len,
        "handle_r": handle_r,
        "handle_z": handle_z,
        **hparams,
    }
    return _finish("trowel", geoms, kps, params)


# ----------------------------------------------------------------------------- screwdriver


def build_screwdriver(rng: np.random.Generator) -> ObjectModel:
    """Screwdriver: turned (often fluted) handle, optional hex bolster, round shaft, flat or Phillips tip."""
    handle_len = rng.uniform(0.08, 0.12)
    handle_r = rng.uniform(0.012, 0.019)
    stubby = rng.random() < 0.15
    shaft_len = rng.uniform(0.025, 0.045) if stubby else rng.uniform(0.06, 0.2)
    shaft_r = rng.uniform(0.0025, 0.004)
    tip_kind = int(rng.integers(2))  # 0 flat, 1 Phillips
    flutes = int(rng.choice([0, 5, 6, 8]))
    flute_depth = rng.uniform(0.08, 0.18) if flutes else 0.0
    bolster = rng.random() < 0.4
    geoms: list[Geom] = []
    front = 0.0
    if bolster:
        bl = rng.uniform(0.008, 0.014)
        br = max(handle_r * 0.55, shaft_r * 2.2)
        geoms.append(
            _lathe_axis(
                [(0, 0), (br, 0), (br, bl), (0, bl)], "bolster", (0, 0, 0), (1, 0, 0), segments=6, phase=np.pi / 6
            )
        )
        shaft_start = bl
    else:
        shaft_start = 0.0
    hgeom, htop, hparams = _round_handle(
        rng, handle_len, handle_r, front + 0.001, segments=48 if flutes else 24, flutes=flutes, flute_depth=flute_depth
    )
    geoms.append(hgeom)
    geoms.append(cylinder((shaft_start - 0.004, 0, 0), (shaft_start + shaft_len, 0, 0), shaft_r, "shaft"))
    tip_len = rng.uniform(0.007, 0.012)
    x_tip = shaft_start + shaft_len
    if tip_kind == 0:
        tu = np.linspace(0, 1, 6)
        geoms.append(
            _loft(
                np.c_[x_tip - 0.001 + tu * (tip_len + 0.001), 0 * tu, 0 * tu],
                shaft_r * (1 + 0.2 * tu),
                shaft_r * (1 - 0.85 * tu) + 0.0003,
                "shaft",
                segments=12,
                power=2.5,
            )
        )
    else:
        geoms.append(
            _lathe_axis(
                [(shaft_r * 0.98, 0), (shaft_r * 0.9, tip_len * 0.3), (0.0006, tip_len), (0, tip_len)],
                "shaft",
                (x_tip, 0, 0),
                (1, 0, 0),
                segments=4,
            )
        )
    p1 = np.array([x_tip + tip_len, 0, 0])
    shaft_top = lambda uu: np.array([shaft_start + uu * shaft_len, 0, shaft_r])  # noqa: E731
    butt = np.array([front + 0.001 - handle_len, 0, 0])
    kps = {
        "poke": _pts(p1, shaft_top(0.5), shaft_top(0.1), htop(0.85), butt),
        "poke@funkpoint": _pts(p1, shaft_top(0.15), htop(0.97), htop(0.5), butt),
    }
    params = {
        "handle_len": handle_len,
        "handle_r": handle_r,
        "shaft_len": shaft_len,
        "shaft_r": shaft_r,
        "tip_kind": tip_kind,
        "flutes": flutes,
        "flute_depth": flute_depth,
        "bolster": float(bolster),
        "tip_len": tip_len,
        **hparams,
    }
    return _finish("screwdriver", geoms, kps, params)


# ----------------------------------------------------------------------------- scissors


def build_scissors(rng: np.random.Generator) -> ObjectModel:
    """Scissors lying flat, blades toward +x, two finger rings toward -x, opened by a random angle."""
    blade_len = rng.uniform(0.05, 0.12)
    blade_w = rng.uniform(0.009, 0.015)
    pointed = rng.random() < 0.7
    opening = np.radians(rng.uniform(0.0, 30.0))
    shank_len = rng.uniform(0.012, 0.03)
    ring_style = int(rng.integers(3))  # 0 two small rings, 1 thumb ring + long finger loop, 2 two large plastic loops
    tube_r = rng.uniform(0.0028, 0.0048)
    thick = rng.uniform(0.0015, 0.0022)
    base_r = rng.uniform(0.009, 0.012)
    ring_shapes = {
        0: [(base_r, base_r), (base_r, base_r)],
        1: [(base_r, base_r), (base_r * rng.uniform(1.0, 1.3), base_r * rng.uniform(1.5, 2.2))],
        2: [(base_r * 1.2, base_r * 1.5), (base_r * 1.2, base_r * rng.uniform(1.5, 2.0))],
    }[ring_style]

    u = np.linspace(0, 1, 16)
    tip_w = 0.0006 if pointed else blade_w * 0.35
    w = (blade_w - tip_w) * (1 - u**1.6) + tip_w
    if not pointed:  # round the blunt tip off in the last stations
        end = np.clip((u - 0.9) / 0.1, 0, 1)
        w = w * np.sqrt(1 - 0.9 * end**2)
    xs = -0.012 + u * (blade_len + 0.012)
    geoms: list[Geom] = []
    kp_half: dict[str, np.ndarray] = {}
    for half, sign in (("a", 1.0), ("b", -1.0)):
        z = 0.0 if half == "b" else thick + 0.0003
        ang = sign * opening / 2
        rot = np.array([[np.cos(ang), -np.sin(ang), 0], [np.sin(ang), np.cos(ang), 0], [0, 0, 1.0]])
        shift = np.array([0, 0, z])
        # each half: blade body to one side of its cutting edge (its edge faces the other blade)
        y_lo, y_hi = (-0.2 * w, 0.8 * w) if sign > 0 else (-0.8 * w, 0.2 * w)
        parts = [_sheet(xs, y_lo, y_hi, thick, "blade", across=5, ridge=0.3)]
        rx, ry = ring_shapes[0] if sign > 0 else ring_shapes[1]
        dy = -sign * (ry + tube_r + 0.001) * 0.75
        ring_c = np.array([-shank_len - rx - tube_r * 0.5, dy, 0.0])
        t = np.linspace(0, 2 * np.pi, 28, endpoint=False)
        ring = ring_c + np.c_[rx * np.cos(t), ry * np.sin(t), 0 * t]
        parts.append(tube(ring, tube_r, "handle", segments=10, closed=True))
        shank = np.array([[-0.006, -sign * 0.001, 0], [-shank_len * 0.5, dy * 0.5, 0], [ring_c[0] + rx, dy, 0]])
        parts.append(
            _loft(
                shank, np.linspace(0.0045, tube_r * 1.1, 3), np.linspace(thick * 0.6, tube_r, 3), "handle", segments=10
            )
        )
        geoms += [_transform_geom(g, rot, shift) for g in parts]
        top = thick / 2

        def on_blade(uu: float, side: float, rot=rot, shift=shift, y_lo=y_lo, y_hi=y_hi) -> np.ndarray:
            lo, hi = float(np.interp(uu, u, y_lo)), float(np.interp(uu, u, y_hi))
            y = (lo + hi) / 2 + side * (hi - lo) / 2
            return rot @ np.array([float(np.interp(uu, u, xs)), y, top]) + shift

        kp_half[f"{half}_tip"] = on_blade(1.0, 0.0)
        kp_half[f"{half}_mid"] = on_blade(0.5, 0.0)
        kp_half[f"{half}_base"] = on_blade(0.25, 0.0)
        edge = -sign  # the cutting edge faces the other blade
        kp_half[f"{half}_edge_mid"] = on_blade(0.5, edge * 0.9)
        kp_half[f"{half}_crotch"] = on_blade(0.2, edge * 0.9)
        kp_half[f"{half}_ring_front"] = rot @ (ring_c + np.array([rx, 0, tube_r])) + shift
        kp_half[f"{half}_ring_back"] = rot @ (ring_c + np.array([-rx, 0, tube_r])) + shift
    geoms.append(cylinder((0, 0, -thick), (0, 0, 2 * thick + 0.0012), rng.uniform(0.0025, 0.0038), "pivot"))
    k = kp_half
    kps = {
        "poke": _pts(k["a_tip"], k["a_mid"], k["a_base"], k["a_ring_front"], k["a_ring_back"]),
        "pull_out_nail": _pts(k["a_tip"], k["a_edge_mid"], k["a_crotch"], k["a_ring_front"], k["a_ring_back"]),
    }
    params = {
        "blade_len": blade_len,
        "blade_w": blade_w,
        "pointed": float(pointed),
        "opening_deg": float(np.degrees(opening)),
        "shank_len": shank_len,
        "ring_style": ring_style,
        "tube_r": tube_r,
        "thickness": thick,
        "ring_r": base_r,
    }
    return _finish("scissors", geoms, kps, params, tilt_to_rest=False)


# ----------------------------------------------------------------------------- brushes


def _inside(poly: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Even-odd point-in-polygon test for many points (k, 2)."""
    x, y = p[:, 0:1], p[:, 1:2]
    x0, y0 = poly[:, 0][None], poly[:, 1][None]
    x1, y1 = np.roll(poly[:, 0], -1)[None], np.roll(poly[:, 1], -1)[None]
    cross = ((y0 > y) != (y1 > y)) & (x < (x1 - x0) * (y - y0) / (y1 - y0 + 1e-12) + x0)
    return cross.sum(axis=1) % 2 == 1


def build_scrub_brush(rng: np.random.Generator) -> ObjectModel:
    """Scrub brush resting on its bristles: a block (plain or with a loop handle) or a small head on a long handle."""
    style = int(rng.integers(3))  # 0 block, 1 block + loop handle, 2 head + long handle
    if style < 2:
        a, b = rng.uniform(0.06, 0.1), rng.uniform(0.025, 0.04)
    else:
        a, b = rng.uniform(0.035, 0.05), rng.uniform(0.02, 0.03)
    body_h = rng.uniform(0.016, 0.028)
    iron = rng.uniform(0, 0.6) if rng.random() < 0.5 else 0.0  # pointed "iron" front
    pinch = rng.uniform(0, 0.2) if style == 0 else 0.0  # hour-glass waist to grip
    power = rng.uniform(2.5, 6.0)
    bristle_len = rng.uniform(0.015, 0.03)
    rows = int(rng.integers(4, 8))
    pitch = 2 * b * 0.8 / rows
    tuft_r = pitch / rng.uniform(2.2, 2.8)  # dense tufts read as a brush, sparse ones as a bed of nails

    t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    cs, sn = (
        np.sign(np.cos(t)) * np.abs(np.cos(t)) ** (2 / power),
        np.sign(np.sin(t)) * np.abs(np.sin(t)) ** (2 / power),
    )
    ox = a * cs
    oy = b * sn * (1 - iron * np.clip(ox / a, 0, 1) ** 2) * (1 - pinch * np.exp(-((ox / (0.35 * a)) ** 2)))
    outline = np.c_[ox, oy]
    z_body = bristle_len + body_h / 2
    geoms = [extrude(outline, body_h, "body", center=(0, 0, z_body))]

    # tufts on a grid inside the outline (shrunk so they stay under the body)
    margin = tuft_r * 1.8
    ys = (np.arange(rows) - (rows - 1) / 2) * pitch
    xs = np.arange(-a + margin, a - margin + 1e-9, pitch)
    grid = np.array([(x, y) for x in xs for y in ys])
    shrunk = outline * (1 - margin / np.maximum(np.linalg.norm(outline, axis=1, keepdims=True), 1e-9))
    grid = grid[_inside(shrunk, grid)]
    bases = np.c_[grid, np.full(len(grid), bristle_len + 0.002)]
    tips = np.c_[grid, np.zeros(len(grid))]
    geoms.append(_tufts(bases, tips, tuft_r, "bristles"))
    top = bristle_len + body_h

    mid_row = ys[np.argmin(np.abs(ys))]
    on_row = grid[np.isclose(grid[:, 1], mid_row)]
    p1 = np.array([on_row[:, 0].max() + tuft_r * 1.1, mid_row, 0.003])
    p2 = np.array([on_row[np.argmin(np.abs(on_row[:, 0]))][0], mid_row, 0.0])
    p3 = np.array([on_row[:, 0].min(), mid_row, 0.0])
    if style == 0:
        p4, p5 = np.array([0.2 * a, 0, top]), np.array([-0.85 * a, 0, top])
        extra: dict[str, float] = {}
    elif style == 1:
        h = rng.uniform(0.025, 0.04)
        hr = rng.uniform(0.006, 0.01)
        span = a * rng.uniform(0.55, 0.8)
        s = np.linspace(0, 1, 16)
        arch = np.c_[span * (1 - 2 * s), 0 * s, top - hr + (h + hr) * np.sin(np.pi * s) ** 0.7]
        geoms.append(tube(arch, hr, "handle", segments=10))
        p4 = arch[4] + np.array([0, 0, hr])
        p5 = arch[12] + np.array([0, 0, hr])
        extra = {"loop_h": h, "loop_r": hr, "loop_span": span}
    else:
        hl = rng.uniform(0.12, 0.2)
        rise = np.radians(rng.uniform(8, 25))
        hw = rng.uniform(0.009, 0.013)
        s = np.linspace(0, 1, 16)
        start = np.array([-a * 0.7, 0, z_body])
        path = start + np.c_[-hl * s * np.cos(rise), 0 * s, hl * s * np.sin(rise) + 0.004 * np.sin(np.pi * s)]
        w = hw * _smooth_interp(s, [0, 0.2, 0.85, 1], [0.9, 0.75, 1.1, 0.9])
        hh = body_h * 0.35 * np.ones_like(s)
        geoms.append(_loft(path, w, hh, "handle", segments=14, power=2.5))
        _, normal = _frames(path, (0, 0, 1))
        p4 = path[4] + normal[4] * hh[4]
        p5 = path[-1]
        extra = {"handle_len": hl, "handle_rise_deg": float(np.degrees(rise)), "handle_w": hw}
    params = {
        "style": style,
        "body_half_len": a,
        "body_half_w": b,
        "body_h": body_h,
        "iron": iron,
        "pinch": pinch,
        "corner_power": power,
        "bristle_len": bristle_len,
        "tuft_r": tuft_r,
        "tuft_pitch": pitch,
        "rows": rows,
        "tufts": len(grid),
        **extra,
    }
    # the bristle field is flat and carries the weight: it stands on it, a long handle held up in the air
    return _finish("scrub_brush", geoms, {"brush_dust": _pts(p1, p2, p3, p4, p5)}, params, tilt_to_rest=False)


def build_toothbrush(rng: np.random.Generator) -> ObjectModel:
    """Toothbrush on its back: a flat handle, a thin (often raised) neck, a head with rows of tufts pointing up."""
    length = rng.uniform(0.16, 0.19)
    head_len = rng.uniform(0.022, 0.032)
    neck_len = rng.uniform(0.025, 0.045)
    head_hw = rng.uniform(0.0045, 0.0062)
    head_hh = rng.uniform(0.0022, 0.003)
    neck_hw = rng.uniform(0.0025, 0.0035)
    grip_hw = rng.uniform(0.005, 0.0075)
    grip_hh = rng.uniform(0.0035, 0.0065)
    grip_style = int(rng.integers(3))  # 0 straight, 1 bulge, 2 waisted
    raise_z = rng.uniform(0.0, 0.01)
    rows = int(rng.integers(2, 5))
    tuft_r = rng.uniform(0.0011, 0.0015)
    bristle_h = rng.uniform(0.008, 0.012)
    trim = int(rng.integers(3))  # 0 flat, 1 wave, 2 raised tip tuft
    rubber = rng.random() < 0.5

    x_head0 = length - head_len
    x_neck0 = x_head0 - neck_len
    s = np.linspace(0, length, 44)
    grip_shape = {0: [1.0, 1.0, 1.0], 1: [0.85, 1.2, 0.9], 2: [1.1, 0.8, 1.0]}[grip_style]
    knots = [
        0,
        0.004,
        x_neck0 * 0.3,
        x_neck0 * 0.65,
        x_neck0,
        x_neck0 + neck_len * 0.6,
        x_head0 + 0.002,
        length - 0.003,
        length,
    ]
    hw = _smooth_interp(
        s,
        knots,
        [
            grip_hw * 0.7,
            grip_hw * grip_shape[0],
            grip_hw * grip_shape[1],
            grip_hw * grip_shape[2],
            neck_hw * 1.3,
            neck_hw,
            head_hw,
            head_hw,
            head_hw * 0.6,
        ],
    )
    hh = _smooth_interp(
        s,
        knots,
        [grip_hh * 0.7, grip_hh, grip_hh, grip_hh * 0.9, head_hh * 1.2, head_hh, head_hh, head_hh, head_hh * 0.7],
    )
    zc = raise_z * _smooth_interp(s, [0, x_neck0, x_head0, length], [0, 0, 1, 1])
    path = np.c_[s, 0 * s, zc]
    geoms = [_loft(path, hw, hh, "handle", segments=16, power=2.4)]
    if rubber:
        gs = np.linspace(x_neck0 * 0.25, x_neck0 * 0.8, 14)
        ghw = np.interp(gs, s, hw) * 1.08
        ghh = np.interp(gs, s, hh) * 1.12
        geoms.append(_loft(np.c_[gs, 0 * gs, np.interp(gs, s, zc)], ghw, ghh, "grip", segments=16, power=2.4))

    pitch_x = tuft_r * 2.5
    tx = np.arange(x_head0 + tuft_r * 1.6, length - tuft_r * 1.8, pitch_x)
    ty = np.linspace(-(head_hw - tuft_r * 1.5), head_hw - tuft_r * 1.5, rows) if rows > 1 else np.zeros(1)
    grid = np.array([(x, y) for x in tx for y in ty])
    base_z = raise_z + head_hh - 0.0008

    def tip_h(x: np.ndarray) -> np.ndarray:
        f = (x - x_head0) / head_len
        if trim == 1:
            return bristle_h * (1 + 0.12 * np.sin(2 * np.pi * 2 * f))
        if trim == 2:
            return bristle_h * (1 + 0.25 * np.clip((f - 0.75) / 0.25, 0, 1))
        return bristle_h * np.ones_like(f)

    bases = np.c_[grid, np.full(len(grid), base_z)]
    tips = np.c_[grid, base_z + tip_h(grid[:, 0])]
    geoms.append(_tufts(bases, tips, tuft_r, "bristles", splay=1.1))

    def bristle_tip(x: float) -> np.ndarray:
        return np.array([x, 0.0, base_z + float(tip_h(np.array([x]))[0])])

    p1 = bristle_tip(tx[-1]) + np.array([tuft_r, 0, 0])
    p2 = bristle_tip(tx[len(tx) // 2])
    p3 = bristle_tip(tx[0])
    x4 = x_neck0 * 0.85
    p4 = np.array(
        [x4, 0, float(np.interp(x4, s, zc) + np.interp(x4, s, hh) * (1.12 if rubber and x4 <= x_neck0 * 0.8 else 1.0))]
    )
    p5 = np.array([0.0, 0.0, 0.0])
    params = {
        "length": length,
        "head_len": head_len,
        "neck_len": neck_len,
        "head_hw": head_hw,
        "neck_hw": neck_hw,
        "grip_hw": grip_hw,
        "grip_hh": grip_hh,
        "grip_style": grip_style,
        "raise_z": raise_z,
        "rows": rows,
        "cols": len(tx),
        "tuft_r": tuft_r,
        "bristle_h": bristle_h,
        "trim": trim,
        "rubber_grip": float(rubber),
    }
    return _finish("toothbrush", geoms, {"brush_dust": _pts(p1, p2, p3, p4, p5)}, params)


BUILDERS: dict[str, Builder] = {
    "hammer": build_hammer,
    "scraper": build_scraper,
    "trowel": build_trowel,
    "screwdriver": build_screwdriver,
    "scissors": build_scissors,
    "scrub_brush": build_scrub_brush,
    "toothbrush": build_toothbrush,
    "letter_opener": build_letter_opener,
}

__all__ = [
    "BUILDERS",
    "build_hammer",
    "build_scraper",
    "build_trowel",
    "build_screwdriver",
    "build_scissors",
    "build_scrub_brush",
    "build_toothbrush",
    "build_letter_opener",
]
