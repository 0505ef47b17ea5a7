"""Containers and other hollow things: bottle, frying pan, watering can, cup, dustpan,
basket, shoe, and the held-out water jug, coffee mug and wok.

Every builder samples a handful of shape parameters (proportions, body section,
handle style, wall thickness, ...) from the generator, builds the geometry from
them and computes the keypoints from the *same* numbers, so keypoints move with
the shape. Conventions shared by the whole family (object frame, metres, z up,
resting on z = 0, then centred on the xy origin):

- The working side faces +x: the spout, the pouring lip, the dustpan's front
  edge. A long grip (pan handle, dustpan handle) runs toward -x; a side handle
  (cup, mug, jug) sits on the -x side of the body.
- Keypoint chains follow docs/DESIGN.md, "Keypoint meanings", with one meaning per index and task
  across categories. Pour: p1 the lip or spout tip, p2 just behind it (spout
  base, wall below the lip), p3 the body / bowl centre, p4 the grip near the
  body (top of the handle, upper body), p5 the far end of the grip (back of the
  handle, base of a handle-less vessel). Scoop: p1 the leading rim, p2 the bowl
  bottom, p3 the bowl wall on the grip side, p4 / p5 along the grip. Pound:
  p1..p3 across the striking bottom, p4 / p5 along the grip.

The builders list points in their order along the object; :func:`funk_perception.data.objects.build_object`
then renumbers p2 and p3 of scoop, lift_something, scrape, brush_dust and flip to FunKPoint's
numbering (``FUNKPOINT_ORDER``): there p2 is the far end of the working part and p3 its middle.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from funk_perception.data.objects.base import (
    SURFACE_RADIUS,
    Builder,
    Geom,
    Mesh,
    ObjectModel,
    base_task,
    box,
    capsule,
    cylinder,
    extrude,
    frame_from_z,
    grid_faces,
    mesh_geom,
    tube,
)
from funk_perception.tasks import tasks_for_category

Keypoint = tuple[np.ndarray, float]  # (position, radius)
ShapeFn = Callable[[float], tuple[float, float]]  # z -> (superellipse exponent, y/x aspect)
BumpFn = Callable[[np.ndarray, float], np.ndarray]  # (theta, z) -> extra radius

SR = SURFACE_RADIUS


# ----------------------------------------------------------------------------- shared helpers


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _p(*xyz: float) -> np.ndarray:
    return np.asarray(xyz, dtype=np.float64)


def _on(point: Sequence[float], radius: float = SR) -> Keypoint:
    """A keypoint on a visible surface.

    On a thin wall give ``radius`` under the wall thickness, or the renderer's depth
    test would call the point visible through the wall from the other side.
    """
    return np.asarray(point, dtype=np.float64), float(radius)


def _thin(wall: float) -> float:
    """Keypoint radius for points on a wall ``wall`` thick (see :func:`_on`)."""
    return min(SR, 0.45 * wall)


def _inside(point: Sequence[float], radius: float) -> Keypoint:
    """A keypoint meaning "the centre of a part": inside it, radius = the part's local radius."""
    return np.asarray(point, dtype=np.float64), float(radius)


def _section(theta: np.ndarray, exponent: float, aspect: float) -> tuple[np.ndarray, np.ndarray]:
    """Unit superellipse |x|^n + |y/aspect|^n = 1 sampled at ``theta`` (n = 2: circle, n >= 4: rounded square)."""
    e = 2.0 / exponent
    c, s = np.cos(theta), np.sin(theta)
    return np.sign(c) * np.abs(c) ** e, aspect * np.sign(s) * np.abs(s) ** e


def _revolve(
    profile: Sequence[Sequence[float]],
    part: str,
    segments: int = 32,
    shape: ShapeFn | None = None,
    bump: BumpFn | None = None,
) -> Geom:
    """Like ``base.lathe`` but the section may be a superellipse (square / oval bodies) and may carry a bump (jug spout).

    At theta = 0 the section point is (r, 0) and at theta = pi it is (-r, 0) for every
    shape, so keypoints on the +-x sides of a body are simply (+-r, 0, z).
    """
    prof = np.asarray(profile, dtype=np.float64)
    theta = np.linspace(0.0, 2 * np.pi, segments, endpoint=False)
    rings = []
    for r, z in prof:
        n, aspect = shape(z) if shape is not None else (2.0, 1.0)
        sx, sy = _section(theta, n, aspect)
        extra = bump(theta, z) if bump is not None and r > 0 else np.zeros_like(theta)
        # a bump also lifts the wall by a third of its reach, so a pulled spout rises like a real lip
        rings.append(np.stack([(r + extra) * sx, (r + extra) * sy, z + extra / 3], axis=1))
    faces = grid_faces(len(prof), segments, wrap_cols=True)
    return mesh_geom(np.concatenate(rings, axis=0), faces, part)


def _vessel(outer: Sequence[Sequence[float]], wall: float) -> list[tuple[float, float]]:
    """Thin-walled vessel profile from the outer wall (base centre (0, z0) first, rim last).

    Returns outer wall -> rounded lip -> inner wall (offset by ``wall`` inward) -> inner
    base centre, the order ``base.lathe`` needs for outward-facing triangles.
    """
    out = np.asarray(outer, dtype=np.float64)
    tang = np.gradient(out, axis=0)
    tang /= np.linalg.norm(tang, axis=1, keepdims=True) + 1e-12
    normal = np.stack([-tang[:, 1], tang[:, 0]], axis=1)  # left of the upward path = into the material
    inner = out + wall * normal
    inner[0, 0] = 0.0
    inner[:, 0] = np.maximum(inner[:, 0], 0.0)
    rim = out[-1]
    lip = (rim[0] - wall / 2, rim[1] + wall / 2)
    prof = [tuple(p) for p in out] + [lip] + [tuple(p) for p in inner[::-1]]
    return prof


def _arc_point(path: np.ndarray, s: float) -> tuple[np.ndarray, np.ndarray]:
    """Point and unit tangent at arc-length fraction ``s`` of a polyline."""
    seg = np.linalg.norm(np.diff(path, axis=0), axis=1)
    cum = np.r_[0.0, np.cumsum(seg)]
    t = float(np.clip(s, 0.0, 1.0)) * cum[-1]
    i = int(np.clip(np.searchsorted(cum, t, side="right") - 1, 0, len(seg) - 1))
    f = (t - cum[i]) / max(seg[i], 1e-12)
    tangent = (path[i + 1] - path[i]) / max(seg[i], 1e-12)
    return path[i] + f * (path[i + 1] - path[i]), tangent


def _tube_surface(path: np.ndarray, radius: float | np.ndarray, s: float, toward: Sequence[float]) -> Keypoint:
    """The point on a swept tube's surface at arc fraction ``s``, on the side facing ``toward``."""
    centre, tangent = _arc_point(path, s)
    radii = np.broadcast_to(np.asarray(radius, dtype=np.float64), (len(path),))
    r = float(np.interp(s, np.linspace(0, 1, len(path)), radii))
    d = np.asarray(toward, dtype=np.float64)
    d = d - tangent * np.dot(d, tangent)
    if np.linalg.norm(d) < 1e-9:
        return _inside(centre, r)
    return _on(centre + r * d / np.linalg.norm(d))


def _thick_grid(verts: np.ndarray, thickness: float, part: str, centre: Sequence[float]) -> Geom:
    """A closed-around-the-columns sheet (rows x cols x 3) given a wall: outer face, inner face, rims on both edge rows."""
    rows, cols, _ = verts.shape
    du = np.roll(verts, -1, axis=1) - np.roll(verts, 1, axis=1)
    dv = np.gradient(verts, axis=0)
    normal = np.cross(du, dv)
    normal /= np.linalg.norm(normal, axis=2, keepdims=True) + 1e-12
    # orient the normals away from the sheet's middle so the wall grows inward
    if np.mean(np.sum(normal * (verts - np.asarray(centre)), axis=2)) < 0:
        normal = -normal
    inner = verts - thickness * normal
    outer_faces = grid_faces(rows, cols, wrap_cols=True)
    # grid_faces' winding matches du x dv; flip it where that points inward
    tri = verts.reshape(-1, 3)[outer_faces]
    fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    if np.sum(fn * (tri.mean(axis=1) - np.asarray(centre))) < 0:
        outer_faces = outer_faces[:, ::-1]
    n = rows * cols
    faces = [outer_faces, outer_faces[:, ::-1] + n]
    for r, flip in ((0, True), (rows - 1, False)):
        a = r * cols + np.arange(cols)
        b = r * cols + (np.arange(cols) + 1) % cols
        quad = np.concatenate([np.stack([a, b, b + n], 1), np.stack([a, b + n, a + n], 1)])
        faces.append(quad[:, ::-1] if flip else quad)
    all_faces = np.concatenate(faces)
    return Geom("mesh", part, mesh=Mesh(np.concatenate([verts.reshape(-1, 3), inner.reshape(-1, 3)]), all_faces))


def _translate(g: Geom, off: np.ndarray) -> Geom:
    if g.kind == "mesh":
        return dataclasses.replace(g, mesh=Mesh(g.mesh.vertices + off, g.mesh.faces))
    if g.fromto is not None:
        return dataclasses.replace(g, fromto=tuple(np.asarray(g.fromto) + np.r_[off, off]))
    return dataclasses.replace(g, pos=tuple(np.asarray(g.pos) + off))


def _quat_mat(q: Sequence[float]) -> np.ndarray:
    w, x, y, z = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def geoms_bounds(geoms: Sequence[Geom]) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned bounds (lo, hi) of a list of geoms in the object frame."""
    los, his = [], []
    for g in geoms:
        if g.kind == "mesh":
            los.append(g.mesh.vertices.min(0))
            his.append(g.mesh.vertices.max(0))
        elif g.fromto is not None:
            ends = np.asarray(g.fromto).reshape(2, 3)
            los.append(ends.min(0) - g.size[0])
            his.append(ends.max(0) + g.size[0])
        else:
            pos = np.asarray(g.pos)
            if g.kind == "sphere":
                half = np.full(3, g.size[0])
            elif g.kind in ("box", "ellipsoid"):
                half = np.abs(_quat_mat(g.quat)) @ np.asarray(g.size)
            else:  # capsule / cylinder given by pos + quat: bound by a sphere
                half = np.full(3, g.size[0] + g.size[1])
            los.append(pos - half)
            his.append(pos + half)
    return np.min(los, axis=0), np.max(his, axis=0)


def _finish(
    category: str, geoms: list[Geom], keypoints: dict[str, list[Keypoint]], params: dict[str, float]
) -> ObjectModel:
    """Rest the object on z = 0, centre it on the xy origin, and package it."""
    expected = set(tasks_for_category(category))
    if {base_task(t) for t in keypoints} != expected:
        raise RuntimeError(f"{category}: keypoints for {sorted(keypoints)}, expected {sorted(expected)}")
    lo, hi = geoms_bounds(geoms)
    off = np.array([-(lo[0] + hi[0]) / 2, -(lo[1] + hi[1]) / 2, -lo[2]])
    geoms = [_translate(g, off) for g in geoms]
    kps = {t: np.stack([p for p, _ in pts]) + off for t, pts in keypoints.items()}
    radii = {t: np.array([r for _, r in pts]) for t, pts in keypoints.items()}
    return ObjectModel(category, geoms, kps, radii, {k: float(v) for k, v in params.items()})


def _side_handle(
    r_at: Callable[[float], float],
    z_lo: float,
    z_hi: float,
    reach: float,
    squareness: float,
    radius: float,
    embed: float,
    n: int = 18,
) -> np.ndarray:
    """Path of a loop handle on the body's -x side, from its lower to its upper attachment.

    ``squareness`` 0 gives a round C, 1 a flat-backed D; the ends sink ``embed`` into the wall.
    """
    phi = np.linspace(0.0, np.pi, n)
    zc, hz = (z_lo + z_hi) / 2, (z_hi - z_lo) / 2
    z = zc - hz * np.cos(phi)
    # flat-backed handles: the outward profile approaches a box as the exponent shrinks
    out = reach * np.sin(phi) ** (1.0 - 0.8 * squareness)
    z = zc - hz * np.sign(np.cos(phi)) * np.abs(np.cos(phi)) ** (1.0 - 0.6 * squareness)
    x = np.array([-(r_at(zi) - embed) for zi in z]) - out
    return np.stack([x, np.zeros(n), z], axis=1)


def _side_handle_points(path: np.ndarray, radius: float) -> tuple[Keypoint, Keypoint]:
    """(top of the handle, back of the handle) on a side handle's outer surface."""
    top = _tube_surface(path, radius, 0.86, (0.0, 0.0, 1.0))
    back = _tube_surface(path, radius, 0.5, (-1.0, 0.0, 0.0))
    return top, back


def _long_handle(
    rng: np.random.Generator, start: np.ndarray, angle: float, length: float, styles: Sequence[int], thick: float
) -> tuple[list[Geom], Keypoint, Keypoint, dict[str, float]]:
    """A pan / wok handle from ``start`` toward -x, rising by ``angle`` (rad).

    Styles: 0 round tapered (cast or wooden), 1 flat strip with a rounded end, 2 wire
    loop (stainless pans). Returns geoms, the handle-start and handle-end keypoints, a keypoint
    about halfway along the grip, and the params.
    """
    style = int(rng.choice(styles))
    d = np.array([-np.cos(angle), 0.0, np.sin(angle)])
    up = np.array([np.sin(angle), 0.0, np.cos(angle)])
    y = np.array([0.0, 1.0, 0.0])
    params = {"handle_style": float(style), "handle_length": length, "handle_angle": angle, "handle_thickness": thick}
    if style == 0:
        droop = _u(rng, -0.3, 0.6) * thick  # a slight arch or sag along the grip
        t = np.linspace(0, 1, 10)
        path = start + np.outer(t * length, d) + np.outer(droop * np.sin(np.pi * t), up)
        flare = _u(rng, 1.1, 1.6)
        radii = thick * (0.8 + (flare - 0.8) * t**1.5)
        params["handle_flare"] = flare
        geoms = [tube(path, radii, "handle", segments=12)]
        p4 = _tube_surface(path, radii, 0.18, up)
        mid = _tube_surface(path, radii, 0.55, up)
        p5 = _on(path[-1])  # centre of the end cap
    elif style == 1:
        w0, w1 = thick * 1.1, thick * _u(rng, 1.6, 2.4)
        tf = thick * _u(rng, 0.6, 0.9)
        u_end = length - w1
        ang = np.linspace(-np.pi / 2, np.pi / 2, 9)
        side = [(u, w0 + (w1 - w0) * u / u_end) for u in np.linspace(-thick, u_end, 6)]
        outline = (
            [(u, -w) for u, w in side]
            + [(u_end + w1 * np.cos(a), w1 * np.sin(a)) for a in ang]
            + [(u, w) for u, w in side[::-1]]
        )
        frame = np.stack([d, -y, np.cross(d, -y)], axis=1)
        geoms = [extrude(outline, tf, "handle", axis_frame=frame, center=start)]
        params["handle_width"] = w1
        p4 = _on(start + d * 0.18 * length + frame[:, 2] * tf / 2)
        mid = _on(start + d * 0.55 * length + frame[:, 2] * tf / 2)
        p5 = _on(start + d * length)
    else:
        w = thick * _u(rng, 0.9, 1.5)
        rod = thick * 0.35
        n_straight = 8
        straight = np.linspace(0, length - w, n_straight)
        arc = np.linspace(-np.pi / 2, np.pi / 2, 9)[1:-1]
        pts = [start + u * d + w * y for u in straight]
        pts += [start + (length - w + w * np.cos(a)) * d - w * np.sin(a) * y for a in arc]
        pts += [start + u * d - w * y for u in straight[::-1]]
        path = np.asarray(pts)
        geoms = [tube(path, rod, "handle", segments=8)]
        params["handle_width"] = w
        p4 = _tube_surface(path, rod, 0.1, up)
        mid = _tube_surface(path, rod, 0.27, up)
        p5 = _tube_surface(path, rod, 0.5, d)
    return geoms, p4, p5, mid, params


def _loop_ear(
    centre: np.ndarray, outward: np.ndarray, span: float, reach: float, radius: float, part: str
) -> tuple[Geom, np.ndarray]:
    """A small horizontal loop handle (helper handle, basket ear) sticking out along ``outward``."""
    outward = outward / np.linalg.norm(outward)
    side = np.cross([0.0, 0.0, 1.0], outward)
    a = np.linspace(0, np.pi, 11)
    path = centre + np.outer(-np.cos(a) * span / 2, side) + np.outer(np.sin(a) * reach, outward)
    return tube(path, radius, part, segments=8), path


# ----------------------------------------------------------------------------- bottle


def build_bottle(rng: np.random.Generator) -> ObjectModel:
    R = _u(rng, 0.025, 0.045)
    body_h = _u(rng, 0.09, 0.2)
    shoulder_h = _u(rng, 0.02, 0.07)
    roundness = _u(rng, 0.0, 1.0)  # 0 conical shoulder, 1 domed
    neck_r = _u(rng, 0.008, min(0.016, 0.5 * R))
    neck_h = _u(rng, 0.015, 0.08)
    bulge = _u(rng, -0.12, 0.1)  # waisted (<0) or barrel (>0) body
    squareness = 2.0 if rng.random() < 0.65 else _u(rng, 4.0, 8.0)
    aspect = 1.0 if rng.random() < 0.7 else _u(rng, 0.55, 0.9)
    has_cap = rng.random() < 0.5
    wall = _u(rng, 0.002, 0.003)
    thin = _thin(wall)

    z_sh, z_neck = body_h, body_h + shoulder_h
    z_top = z_neck + neck_h

    def r_body(z: float) -> float:
        return R * (1 + bulge * np.sin(np.pi * np.clip(z / body_h, 0, 1)))

    outer = [(0.0, 0.0), (R * 0.85, 0.0), (r_body(0.008) * 0.97, 0.004)]
    outer += [(r_body(z), z) for z in np.linspace(0.01, z_sh, 6)]
    for t in np.linspace(0.15, 1.0, 6):
        shape_t = roundness * np.sqrt(1 - t**2) + (1 - roundness) * (1 - t)
        outer.append((neck_r + (R - neck_r) * shape_t, z_sh + t * shoulder_h))
    outer += [(neck_r, z_top - 0.006), (neck_r + 0.002, z_top - 0.005), (neck_r + 0.002, z_top)]

    def shape(z: float) -> tuple[float, float]:
        # square / flat bodies turn round through the shoulder so the neck is always a circle
        f = float(np.clip((z - z_sh) / max(shoulder_h * 0.8, 1e-6), 0, 1))
        return squareness + (2.0 - squareness) * f, aspect + (1.0 - aspect) * f

    geoms = [_revolve(_vessel(outer, wall), "body", 32, shape)]
    lip = _p(neck_r + 0.002, 0, z_top)
    top = z_top
    params = {
        "body_radius": R,
        "body_height": body_h,
        "shoulder_height": shoulder_h,
        "shoulder_roundness": roundness,
        "neck_radius": neck_r,
        "neck_height": neck_h,
        "bulge": bulge,
        "squareness": squareness,
        "aspect": aspect,
        "has_cap": float(has_cap),
    }
    if has_cap:
        cap_h = _u(rng, 0.01, 0.025)
        cap_r = neck_r + _u(rng, 0.002, 0.005)
        geoms.append(cylinder((0, 0, z_top - 0.008), (0, 0, z_top + cap_h - 0.008), cap_r, "cap"))
        top = z_top + cap_h - 0.008
        lip = _p(cap_r, 0, top)
        params["cap_height"], params["cap_radius"] = cap_h, cap_r
    z_mid = 0.55 * body_h
    keypoints = {
        "pour": [
            _on(lip),
            _on((neck_r, 0, z_neck + 0.2 * neck_h), thin),
            _inside((0, 0, 0.65 * body_h), R),
            _on((-r_body(z_mid), 0, z_mid), thin),
            _on((-R * 0.85, 0, 0.0), thin),
        ],
        "mash_pound": [
            _on((0.7 * R, 0, 0), thin),
            _on((0, 0, 0), thin),
            _on((-0.7 * R, 0, 0), thin),
            _on((-neck_r, 0, z_neck + 0.15 * neck_h), thin),
            _on((0, 0, top)) if has_cap else _on((-(neck_r + 0.002), 0, z_top)),
        ],
    }
    return _finish("bottle", geoms, keypoints, params)


# ----------------------------------------------------------------------------- drinking vessels


def _drinking_vessel(rng: np.random.Generator, category: str) -> ObjectModel:
    """Cups (tumbler, paper cup, teacup) and coffee mugs share one construction with different ranges."""
    mug = category == "coffee_mug"
    if mug:
        style = 3
        Rb = _u(rng, 0.033, 0.048)
        Rt = Rb * _u(rng, 0.92, 1.15)
        H = _u(rng, 0.08, 0.12)
        wall = _u(rng, 0.004, 0.007)
        bulge = _u(rng, -0.06, 0.08)
    else:
        style = int(rng.integers(0, 3))  # 0 tumbler, 1 paper cup, 2 teacup
        if style == 2:
            Rb = _u(rng, 0.022, 0.032)
            Rt = Rb * _u(rng, 1.5, 2.0)
            H = _u(rng, 0.05, 0.07)
            bulge = _u(rng, 0.05, 0.15)
        else:
            Rb = _u(rng, 0.022, 0.035)
            Rt = Rb * _u(rng, 1.1, 1.45)
            H = _u(rng, 0.08, 0.14)
            bulge = _u(rng, -0.03, 0.04)
        wall = _u(rng, 0.0015, 0.0035)
    has_handle = mug or style == 2 or (style == 0 and rng.random() < 0.35)

    def r_out(z: float) -> float:
        t = np.clip(z / H, 0, 1)
        flare = t if style != 2 else np.sin(t * np.pi / 2)  # teacups open out
        return Rb + (Rt - Rb) * flare + bulge * Rb * np.sin(np.pi * t)

    foot = style == 2
    outer: list[tuple[float, float]] = [(0.0, 0.0)]
    if foot:
        outer += [(Rb * 0.9, 0.0), (Rb * 0.95, 0.006), (Rb * 0.8, 0.008)]
        zs = np.linspace(0.01, H, 9)
    else:
        outer += [(Rb - 0.003, 0.0), (r_out(0.003) - 0.0005, 0.002)]
        zs = np.linspace(0.006, H, 8)
    outer += [(r_out(z), z) for z in zs]
    if style == 1:  # rolled rim of a paper cup
        outer += [(Rt + 0.002, H + 0.001), (Rt + 0.002, H + 0.004), (Rt, H + 0.005)]
    prof = _vessel(outer, wall)
    geoms = [_revolve(prof, "body", 36)]
    rim_top = max(p[1] for p in prof)
    params = {
        "style": float(style),
        "bottom_radius": Rb,
        "top_radius": Rt,
        "height": H,
        "wall": wall,
        "bulge": bulge,
        "has_handle": float(has_handle),
    }

    thin = _thin(wall)
    lip = _p(r_out(H) - wall / 2 + (0.002 if style == 1 else 0.0), 0, rim_top)
    pour_p2 = _on((r_out(0.6 * H), 0, 0.6 * H), thin)
    body_centre = _inside((0, 0, 0.5 * H), r_out(0.5 * H))
    if has_handle:
        hr = _u(rng, 0.004, 0.007) if mug else _u(rng, 0.0025, 0.004)
        z_lo = H * _u(rng, 0.15, 0.4)
        z_hi = H * _u(rng, 0.7, 0.88)
        reach = (z_hi - z_lo) * _u(rng, 0.35, 0.75) + (0.01 if mug else 0.004)
        square = _u(rng, 0.0, 1.0) if mug else _u(rng, 0.0, 0.4)
        path = _side_handle(r_out, z_lo, z_hi, reach, square, hr, embed=wall)
        geoms.append(tube(path, hr, "handle", segments=10))
        grip_near, grip_far = _side_handle_points(path, hr)
        params.update(handle_radius=hr, handle_low=z_lo, handle_high=z_hi, handle_reach=reach, handle_squareness=square)
    else:
        grip_near = _on((-r_out(0.65 * H), 0, 0.65 * H), thin)
        grip_far = _on((-(Rb - 0.003), 0, 0.0), thin)
    keypoints = {
        "pour": [_on(lip), pour_p2, body_centre, grip_near, grip_far],
        "scoop": [
            _on(lip),
            _on((0, 0, wall), thin),
            _on((-(r_out(0.5 * H) - wall), 0, 0.5 * H), thin),
            grip_near,
            grip_far,
        ],
    }
    return _finish(category, geoms, keypoints, params)


def build_cup(rng: np.random.Generator) -> ObjectModel:
    return _drinking_vessel(rng, "cup")


def build_coffee_mug(rng: np.random.Generator) -> ObjectModel:
    return _drinking_vessel(rng, "coffee_mug")


# ----------------------------------------------------------------------------- pans


def _pan(rng: np.random.Generator, category: str) -> ObjectModel:
    """Frying pans (flat bottom, low flared wall) and woks (deep round bowl)."""
    wok = category == "wok"
    wall = _u(rng, 0.002, 0.0045)
    if wok:
        R = _u(rng, 0.13, 0.19)
        depth = R * _u(rng, 0.5, 0.7)  # deeper than a pan, so the round bowl reads as a wok
        flat = R * _u(rng, 0.0, 0.2)
        phi = np.linspace(0, np.pi / 2, 10)
        outer = [(0.0, 0.0)] + [(flat + (R - flat) * np.sin(a), depth * (1 - np.cos(a))) for a in phi[1:]]
        if flat > 0.01:
            outer.insert(1, (flat, 0.0))
        params = {"rim_radius": R, "depth": depth, "flat_radius": flat}
    else:
        rb = _u(rng, 0.065, 0.12)
        flare = _u(rng, 0.008, 0.035)
        depth = _u(rng, 0.025, 0.06)
        R = rb + flare
        curve = _u(rng, 0.0, 1.0)  # straight sauté wall vs curved skillet wall
        outer = [(0.0, 0.0), (rb - 0.008, 0.0), (rb - 0.002, 0.002)]
        for t in np.linspace(0.12, 1.0, 6):
            outer.append((rb + flare * (curve * np.sin(t * np.pi / 2) + (1 - curve) * t), depth * t))
        params = {"bottom_radius": rb, "rim_radius": R, "depth": depth, "wall_curve": curve}
    params["wall"] = wall
    outer_arr = np.asarray(outer)

    def r_at(z: float) -> float:
        return float(np.interp(z, outer_arr[1:, 1], outer_arr[1:, 0]))

    geoms = [_revolve(_vessel(outer, wall), "body", 40)]

    # main handle on -x
    if wok:
        angle = np.radians(_u(rng, 8, 30))
        length = _u(rng, 0.14, 0.24)
        thick = _u(rng, 0.01, 0.015)
        styles: tuple[int, ...] = (0, 0, 2)
    else:
        angle = np.radians(_u(rng, 4, 20))
        length = _u(rng, 0.13, 0.23)
        thick = _u(rng, 0.007, 0.011)
        styles = (0, 1, 2)
    z_att = depth * _u(rng, 0.55, 0.85)
    start = _p(-(r_at(z_att) - wall), 0, z_att)
    hg, p_hstart, p_hend, p_hmid, hparams = _long_handle(rng, start, angle, length, styles, thick)
    geoms += hg
    params.update(hparams)
    helper = rng.random() < (0.6 if wok else 0.3)
    params["helper_handle"] = float(helper)
    if helper:
        zh = depth * 0.8
        ear, _ = _loop_ear(
            _p(r_at(zh) - wall, 0, zh),
            _p(1, 0, -0.15),
            _u(rng, 0.05, 0.08),
            _u(rng, 0.025, 0.04),
            _u(rng, 0.003, 0.005),
            "handle",
        )
        geoms.append(ear)

    rim = _p(R - wall / 2, 0, depth + wall / 2)
    z_mid = depth * 0.5
    thin = _thin(wall)
    inner_bottom = _on((0, 0, wall), thin)
    if wok:
        a = 0.45
        x_b = flat + (R - flat) * np.sin(a) * 0.9
        z_b = float(np.interp(x_b, outer_arr[:, 0], outer_arr[:, 1]))
        bottom = [_on((x_b, 0, z_b), thin), _on((0, 0, 0), thin), _on((-x_b, 0, z_b), thin)]
    else:
        bottom = [_on((0.75 * rb, 0, 0), thin), _on((0, 0, 0), thin), _on((-0.75 * rb, 0, 0), thin)]
    inner_grip_side = _on((-(r_at(z_mid) - wall), 0, z_mid), thin)
    keypoints = {
        "pour": [_on(rim), _on((r_at(z_mid), 0, z_mid), thin), inner_bottom, p_hstart, p_hend],
        "scoop": [_on(rim), inner_bottom, inner_grip_side, p_hstart, p_hend],
        "mash_pound": bottom + [p_hstart, p_hend],
    }
    if not wok:
        nail = [_on(rim), _on((r_at(0.35 * depth), 0, 0.35 * depth), thin), _on((0, 0, 0), thin), p_hstart, p_hend]
        keypoints["pull_out_nail"] = nail
        # FunKPoint's pull_out_nail: p3, p4 along the handle, the lever arm (objects.base.PLACEMENTS)
        keypoints["pull_out_nail@funkpoint"] = nail[:2] + [p_hstart, p_hmid, p_hend]
    return _finish(category, geoms, keypoints, params)


def build_frying_pan(rng: np.random.Generator) -> ObjectModel:
    return _pan(rng, "frying_pan")


def build_wok(rng: np.random.Generator) -> ObjectModel:
    return _pan(rng, "wok")


# ----------------------------------------------------------------------------- watering can


def build_watering_can(rng: np.random.Generator) -> ObjectModel:
    body_style = int(rng.integers(0, 3))  # 0 cylinder, 1 oval / rounded-square, 2 barrel
    R = _u(rng, 0.06, 0.1)
    H = _u(rng, 0.12, 0.22)
    squareness = _u(rng, 2.5, 5.0) if body_style == 1 else 2.0
    aspect = _u(rng, 0.6, 0.85) if body_style == 1 else 1.0
    bulge = _u(rng, 0.08, 0.2) if body_style == 2 else _u(rng, -0.03, 0.03)
    dome = _u(rng, 0.01, 0.04)
    opening_r = R * _u(rng, 0.25, 0.45)
    wall = 0.002

    def r_body(z: float) -> float:
        return R * (1 + bulge * np.sin(np.pi * np.clip(z / H, 0, 1)))

    outer = [(0.0, 0.0), (R - 0.006, 0.0), (r_body(0.004) - 0.001, 0.003)]
    outer += [(r_body(z), z) for z in np.linspace(0.008, H, 7)]
    for t in np.linspace(0.2, 1.0, 5):
        outer.append((R + (opening_r - R) * t, H + dome * np.sin(t * np.pi / 2)))
    outer += [(opening_r, H + dome + 0.012)]
    shape = lambda z: (squareness, aspect)  # noqa: E731
    geoms = [_revolve(_vessel(outer, wall), "body", 36, shape)]

    # spout: from low on the +x side, up and out
    z_s = H * _u(rng, 0.1, 0.3)
    elev = np.radians(_u(rng, 30, 55))
    Ls = _u(rng, 0.16, 0.32)
    r0, r1 = _u(rng, 0.011, 0.018), _u(rng, 0.005, 0.009)
    bend = _u(rng, -0.15, 0.15)  # slightly curved spouts
    base = _p(r_body(z_s) - 0.01, 0, z_s)
    d = np.array([np.cos(elev), 0, np.sin(elev)])
    n_up = np.array([-np.sin(elev), 0, np.cos(elev)])
    t = np.linspace(0, 1, 12)
    spout_path = base + np.outer(t * Ls, d) + np.outer(bend * Ls * np.sin(np.pi * t), n_up)
    spout_r = r0 + (r1 - r0) * t
    geoms.append(tube(spout_path, spout_r, "spout", segments=12))
    tip, tip_dir = spout_path[-1], _arc_point(spout_path, 1.0)[1]
    has_rose = rng.random() < 0.5
    params = {
        "body_style": float(body_style),
        "body_radius": R,
        "body_height": H,
        "squareness": squareness,
        "aspect": aspect,
        "bulge": bulge,
        "dome": dome,
        "opening_radius": opening_r,
        "spout_height": z_s,
        "spout_elevation": elev,
        "spout_length": Ls,
        "spout_base_radius": r0,
        "spout_tip_radius": r1,
        "spout_bend": bend,
        "has_rose": float(has_rose),
    }
    if has_rose:
        rr = _u(rng, 0.018, 0.032)
        rl = _u(rng, 0.02, 0.035)
        prof = [(0.0, -0.004), (r1, -0.004), (r1 * 1.1, 0.0), (rr, rl), (0.0, rl)]
        frame = frame_from_z(tip_dir)
        rose = _revolve(prof, "rose", 20)
        geoms.append(mesh_geom(rose.mesh.vertices, rose.mesh.faces, "rose", frame, tip))
        tip = tip + tip_dir * rl
        params["rose_radius"], params["rose_length"] = rr, rl
    if rng.random() < 0.5:  # brace from the spout's middle to the body
        mid, _ = _arc_point(spout_path, 0.55)
        geoms.append(capsule(mid, (r_body(mid[2]) * 0.9, 0, mid[2] + 0.05), 0.003, "spout"))
        params["brace"] = 1.0
    else:
        params["brace"] = 0.0

    # handle: 0 C-handle on the back, 1 arch over the top, 2 loop from the top to the back
    handle_style = int(rng.integers(0, 3))
    hr = _u(rng, 0.006, 0.011)
    top_z = H + dome
    if handle_style == 0:
        path = _side_handle(
            r_body, H * _u(rng, 0.3, 0.5), H * 0.95, _u(rng, 0.04, 0.07), _u(rng, 0, 0.8), hr, embed=0.005
        )
        handle_top = _tube_surface(path, hr, 0.9, (0, 0, 1))
    elif handle_style == 1:
        h_arch = _u(rng, 0.06, 0.12)
        x0, x1 = -R * 0.75, R * _u(rng, 0.2, 0.6)
        a = np.linspace(0, np.pi, 16)
        xs = (x0 + x1) / 2 - (x1 - x0) / 2 * np.cos(a)
        zb = np.interp(np.abs(xs), [0, opening_r, R], [top_z, top_z, H]) - 0.004
        path = np.stack([xs, np.zeros_like(xs), zb + h_arch * np.sin(a)], axis=1)
        handle_top = _tube_surface(path, hr, 0.5, (0, 0, 1))
    else:
        h_up = _u(rng, 0.04, 0.09)
        a = np.linspace(0, np.pi, 16)
        x_start = -opening_r * 1.1
        xs = x_start + (-(r_body(0.75 * H)) - 0.03 - x_start) * (1 - np.cos(a)) / 2 - 0.03 * np.sin(a)
        zs = top_z - 0.004 + h_up * np.sin(a) ** 0.6 - (top_z - 0.75 * H) * (1 - np.cos(a)) / 2
        path = np.stack([xs, np.zeros_like(xs), zs], axis=1)
        path[-1, 0] = -(r_body(path[-1, 2]) - 0.005)
        handle_top = _tube_surface(path, hr, 0.35, (0, 0, 1))
    geoms.append(tube(path, hr, "handle", segments=10))
    back_i = int(np.argmin(path[:, 0]))
    handle_back = _tube_surface(path, hr, back_i / (len(path) - 1), (-1, 0, 0))
    params["handle_style"], params["handle_radius"] = float(handle_style), hr

    spout_base = _tube_surface(spout_path, spout_r, 0.12, n_up)
    keypoints = {
        "pour": [_on(tip), spout_base, _inside((0, 0, H / 2), R), handle_top, handle_back],
        "poke": [_on(tip), _tube_surface(spout_path, spout_r, 0.55, n_up), spout_base, handle_top, handle_back],
    }
    return _finish("watering_can", geoms, keypoints, params)


# ----------------------------------------------------------------------------- water jug


def build_water_jug(rng: np.random.Generator) -> ObjectModel:
    """A pitcher: open top with a pulled lip spout on +x and a loop handle on -x."""
    Rb = _u(rng, 0.045, 0.075)
    H = _u(rng, 0.16, 0.27)
    belly = _u(rng, -0.1, 0.3)  # >0 bulbous, <0 waisted
    top_ratio = _u(rng, 0.75, 1.1)
    squareness = 2.0 if rng.random() < 0.7 else _u(rng, 3.0, 5.0)
    wall = _u(rng, 0.002, 0.004)
    spout_amt = _u(rng, 0.022, 0.045)
    spout_w = _u(rng, 0.3, 0.5)

    def r_out(z: float) -> float:
        t = np.clip(z / H, 0, 1)
        return Rb * (1 + (top_ratio - 1) * t + belly * np.sin(np.pi * t) ** 1.5)

    outer = [(0.0, 0.0), (Rb - 0.005, 0.0), (r_out(0.004) - 0.001, 0.003)]
    outer += [(r_out(z), z) for z in np.linspace(0.01, H, 10)]
    z0 = H * _u(rng, 0.6, 0.8)  # where the lip starts to pull out into the spout

    def bump(theta: np.ndarray, z: float) -> np.ndarray:
        tw = (theta + np.pi) % (2 * np.pi) - np.pi
        ramp = float(np.clip((z - z0) / (H - z0), 0, 1)) ** 2
        return spout_amt * ramp * np.exp(-((tw / spout_w) ** 2))

    geoms = [_revolve(_vessel(outer, wall), "body", 40, lambda z: (squareness, 1.0), bump)]
    hr = _u(rng, 0.005, 0.009)
    z_lo, z_hi = H * _u(rng, 0.2, 0.45), H * _u(rng, 0.8, 0.93)
    path = _side_handle(r_out, z_lo, z_hi, _u(rng, 0.035, 0.06), _u(rng, 0, 1), hr, embed=wall)
    geoms.append(tube(path, hr, "handle", segments=10))
    top, back = _side_handle_points(path, hr)
    tip_r = r_out(H) + spout_amt - wall / 2
    keypoints = {
        "pour": [
            _on((tip_r, 0, H + wall / 2 + spout_amt / 3)),
            _on((r_out(z0), 0, z0), _thin(wall)),
            _inside((0, 0, H * 0.45), r_out(H * 0.45)),
            top,
            back,
        ]
    }
    params = {
        "bottom_radius": Rb,
        "height": H,
        "belly": belly,
        "top_ratio": top_ratio,
        "squareness": squareness,
        "wall": wall,
        "spout_amount": spout_amt,
        "spout_width": spout_w,
        "spout_start": z0,
        "handle_radius": hr,
        "handle_low": z_lo,
        "handle_high": z_hi,
    }
    return _finish("water_jug", geoms, keypoints, params)


# ----------------------------------------------------------------------------- dustpan


def build_dustpan(rng: np.random.Generator) -> ObjectModel:
    W = _u(rng, 0.2, 0.32)  # width of the front edge (y)
    D = _u(rng, 0.14, 0.24)  # depth front to back (x)
    back_w = W * _u(rng, 0.75, 1.0)
    Hb = _u(rng, 0.04, 0.1)
    t = _u(rng, 0.002, 0.004)
    side_curve = _u(rng, 0.5, 2.0)  # exponent of the side walls' top edge
    hood = _u(rng, 0.15, 0.45) if rng.random() < 0.5 else 0.0
    xf, xb = D / 2, -D / 2
    geoms = [extrude([(xb, -back_w / 2), (xf, -W / 2), (xf, W / 2), (xb, back_w / 2)], t, "body", center=(0, 0, t / 2))]
    # back wall: a plate in the y-z plane
    frame_back = np.array(
        [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    )  # local x -> y, local y -> z, local z -> x
    geoms.append(
        extrude(
            [(-back_w / 2, 0), (back_w / 2, 0), (back_w / 2, Hb), (-back_w / 2, Hb)],
            t,
            "body",
            frame_back,
            (xb + t / 2, 0, 0),
        )
    )
    for s in (-1, 1):
        a = np.array([xb, s * back_w / 2, 0.0])
        b = np.array([xf, s * W / 2, 0.0])
        ex = (b - a) / np.linalg.norm(b - a)
        frame = np.stack([ex, [0.0, 0.0, 1.0], np.cross(ex, [0.0, 0.0, 1.0])], axis=1)
        L = float(np.linalg.norm(b - a))
        us = np.linspace(0, L, 8)
        top = [(u, 0.004 + (Hb - 0.004) * (1 - u / L) ** side_curve) for u in us]
        geoms.append(extrude([(0.0, 0.0), (L, 0.0)] + top[::-1], t, "body", frame, a))
    if hood > 0:
        geoms.append(box((xb + hood * D / 2, 0, Hb - t / 2), (hood * D / 2, back_w / 2, t / 2), "body"))

    handle_style = int(rng.choice([0, 0, 1, 2]))  # 0 short round, 1 short flat, 2 long upright pole
    if handle_style == 2:
        angle = np.radians(_u(rng, 55, 75))
        length = _u(rng, 0.45, 0.75)
        thick = _u(rng, 0.009, 0.013)
        start = _p(xb - 0.004, 0, Hb * 0.6)
        hg, p4, p5, _, hparams = _long_handle(rng, start, angle, length, (0,), thick)
    else:
        angle = np.radians(_u(rng, 0, 15))
        length = _u(rng, 0.09, 0.16)
        thick = _u(rng, 0.008, 0.013)
        start = _p(xb + 0.004, 0, Hb * _u(rng, 0.4, 0.8))
        hg, p4, p5, _, hparams = _long_handle(rng, start, angle, length, (0,) if handle_style == 0 else (1,), thick)
    geoms += hg
    params = {
        "width": W,
        "depth": D,
        "back_width": back_w,
        "back_height": Hb,
        "plate": t,
        "side_curve": side_curve,
        "hood": hood,
    }
    params.update(hparams)
    params["handle_style"] = float(handle_style)
    thin = _thin(t)
    front = _on((xf, 0, t), thin)
    keypoints = {
        "pour": [front, _on((0, 0, t), thin), _inside((xb + 0.35 * D, 0, Hb / 2), Hb / 2), p4, p5],
        "lift_something": [front, _on((xf - D / 3, 0, t), thin), _on((xb + 0.12 * D, 0, t), thin), p4, p5],
    }
    return _finish("dustpan", geoms, keypoints, params)


# ----------------------------------------------------------------------------- basket


def build_basket(rng: np.random.Generator) -> ObjectModel:
    rect = rng.random() < 0.45
    squareness = _u(rng, 4.0, 8.0) if rect else 2.0
    aspect = _u(rng, 0.6, 0.9) if rect else _u(rng, 0.9, 1.0)
    Rb = _u(rng, 0.08, 0.14)
    flare = _u(rng, 1.0, 1.3)
    H = _u(rng, 0.07, 0.18)
    n_slats = int(rng.integers(7, 14)) * 2  # even so the weave closes on itself
    n_rings = int(rng.integers(3, 9))
    slat_r = _u(rng, 0.002, 0.0045)
    ring_r = _u(rng, 0.003, 0.006) * (1.0 if n_rings > 4 else 1.4)
    weave = _u(rng, 0.5, 1.0) * ring_r if rng.random() < 0.7 else 0.0
    rim_r = _u(rng, 0.005, 0.009)
    base_t = 0.006

    def rad(z: float) -> float:
        return Rb * (1 + (flare - 1) * z / H)

    def ring_xy(theta: np.ndarray, r: float) -> np.ndarray:
        sx, sy = _section(theta, squareness, aspect)
        return np.stack([r * sx, r * sy], axis=1)

    outline = ring_xy(np.linspace(0, 2 * np.pi, 40, endpoint=False), Rb)
    geoms = [extrude(outline, base_t, "body", center=(0, 0, base_t / 2))]
    slat_theta = np.linspace(0, 2 * np.pi, n_slats, endpoint=False)
    lo = ring_xy(slat_theta, Rb)
    hi = ring_xy(slat_theta, rad(H))
    for k in range(n_slats):
        geoms.append(capsule((*lo[k], base_t / 2), (*hi[k], H), slat_r, "body"))
    per_gap = 2  # a zigzag through the slats reads as weaving at 224 px
    theta = np.linspace(0, 2 * np.pi, n_slats * per_gap, endpoint=False)
    for j, z in enumerate(np.linspace(base_t + ring_r, H - rim_r * 2, n_rings)):
        # weave: each ring passes outside one slat and inside the next, alternating ring to ring
        wob = weave * np.cos(n_slats / 2 * theta + j * np.pi)
        r_ring = rad(z) + slat_r * 0.5 + wob
        xy = ring_xy(theta, 1.0) * np.asarray(r_ring).reshape(-1, 1)
        geoms.append(tube(np.c_[xy, np.full(len(theta), z)], ring_r, "body", segments=6, closed=True))
    rim_theta = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    geoms.append(tube(np.c_[ring_xy(rim_theta, rad(H)), np.full(48, H)], rim_r, "rim", segments=8, closed=True))

    arch = rng.random() < 0.65
    hr = _u(rng, 0.005, 0.01)
    ry = rad(H) * aspect  # the rim's half width along y
    params = {
        "rectangular": float(rect),
        "squareness": squareness,
        "aspect": aspect,
        "bottom_radius": Rb,
        "flare": flare,
        "height": H,
        "slats": float(n_slats),
        "rings": float(n_rings),
        "slat_radius": slat_r,
        "ring_radius": ring_r,
        "weave": weave,
        "rim_radius": rim_r,
        "arch_handle": float(arch),
        "handle_radius": hr,
    }
    if arch:
        h_arch = _u(rng, 0.07, 0.2)
        a = np.linspace(0, np.pi, 20)
        path = np.stack(
            [np.zeros_like(a), ry * np.cos(a), H - 0.01 + (h_arch + 0.01) * np.sin(a) ** _u(rng, 0.6, 1.0)], axis=1
        )
        geoms.append(tube(path, hr, "handle", segments=10))
        grip_near = _tube_surface(path, hr, 0.12, (0, 1, 0))
        grip_far = _tube_surface(path, hr, 0.5, (0, 0, 1))
        params["handle_height"] = h_arch
    else:
        span, reach = _u(rng, 0.05, 0.09), _u(rng, 0.02, 0.04)
        paths = []
        for s in (1, -1):
            g, path = _loop_ear(_p(0, s * (ry - 0.004), H - 0.004), _p(0, s, 0.35), span, reach, hr, "handle")
            geoms.append(g)
            paths.append(path)
        grip_near = _tube_surface(paths[0], hr, 0.2, (0, 0, 1))
        grip_far = _tube_surface(paths[0], hr, 0.5, (0, 1, 0))
        params["ear_span"], params["ear_reach"] = span, reach
    rim_plus_x = _p(rad(H), 0, H + rim_r * 0.9)
    rim_plus_y = _p(0, ry, H + rim_r * 0.9)
    keypoints = {
        "scoop": [_on(rim_plus_x), _on((0, 0, base_t), _thin(base_t)), _on(rim_plus_y), grip_near, grip_far],
        "lift_something": [
            _on((0, 0, base_t), _thin(base_t)),
            _on((0, 0.6 * Rb * aspect, base_t), _thin(base_t)),
            _on(rim_plus_y),
            grip_near,
            grip_far,
        ],
    }
    return _finish("basket", geoms, keypoints, params)


# ----------------------------------------------------------------------------- shoe


def build_shoe(rng: np.random.Generator) -> ObjectModel:
    L = _u(rng, 0.22, 0.31)
    W = _u(rng, 0.038, 0.052)  # half width at the ball of the foot
    sole_t = _u(rng, 0.01, 0.03)
    heel_h = 0.0 if rng.random() < 0.6 else _u(rng, 0.015, 0.06)
    if heel_h > 0:
        sole_t = min(sole_t, 0.014)
    toe_h = _u(rng, 0.025, 0.04)
    throat_h = _u(rng, 0.055, 0.085)
    collar_h = _u(rng, 0.05, 0.075) if rng.random() < 0.7 else _u(rng, 0.09, 0.14)  # shoes and ankle boots
    s_open = _u(rng, 0.42, 0.6)  # where the opening ends, as a fraction from the heel
    open_w = _u(rng, 0.55, 0.8)
    toe_round = _u(rng, 0.02, 0.05)
    shell = 0.003
    x_heel = -L / 2

    def half_width(s: np.ndarray) -> np.ndarray:
        return W * (0.72 + 0.28 * np.exp(-(((s - 0.7) / 0.28) ** 2)))

    nu, nv = 44, 8
    tt = np.linspace(0, 2 * np.pi, nu, endpoint=False)
    s = (1 - np.cos(tt)) / 2
    side = np.sin(tt)
    px = x_heel + L * s
    blunt = _u(rng, 0.55, 0.9)  # < 1 squares off the toe and heel ends of the outline
    py = np.sign(side) * np.abs(side) ** blunt * half_width(s)
    outline = np.stack([px, py], axis=1)
    geoms = [extrude(outline, sole_t, "sole", center=(0, 0, sole_t / 2))]

    z0 = sole_t - 0.002
    top = np.zeros((nu, 3))
    for i in range(nu):
        si = s[i]
        if si >= s_open:
            f = (1 - si) / (1 - s_open)
            h = toe_h + (throat_h - toe_h) * f**0.8
            pull = toe_round * np.clip((si - 0.8) / 0.2, 0, 1)
            top[i] = (px[i] - pull, 0.0, sole_t + h)
        else:
            g = si / s_open
            h = collar_h + (throat_h - collar_h) * g**2
            c = open_w * np.sin(np.pi * g) ** 0.6
            top[i] = (px[i], py[i] * c, sole_t + h)
    v = np.linspace(0, 1, nv)
    cosv, sinv = np.cos(np.pi * v / 2), np.sin(np.pi * v / 2)
    bottom = np.c_[px, py, np.full(nu, z0)]
    grid = np.empty((nv, nu, 3))
    for k in range(nv):
        grid[k, :, :2] = top[:, :2] + (bottom[:, :2] - top[:, :2]) * cosv[k]
        grid[k, :, 2] = bottom[:, 2] + (top[:, 2] - bottom[:, 2]) * sinv[k]
    geoms.append(_thick_grid(grid, shell, "upper", centre=(0.0, 0.0, sole_t + 0.02)))

    has_tongue = collar_h < 0.08 and rng.random() < 0.6  # sneakers show a tongue in the opening
    if has_tongue:
        a = np.radians(_u(rng, 15, 35))
        tongue_len = _u(rng, 0.04, 0.06)
        d = np.array([-np.cos(a), 0.0, np.sin(a)])
        frame = np.stack([d, [0.0, 1.0, 0.0], np.cross(d, [0.0, 1.0, 0.0])], axis=1)
        hw = W * open_w * _u(rng, 0.45, 0.7)
        ends = np.linspace(-np.pi / 2, np.pi / 2, 7)
        outline = [(0.0, -hw)] + [(tongue_len - hw + hw * np.cos(e), hw * np.sin(e)) for e in ends] + [(0.0, hw)]
        start = (x_heel + L * s_open + 0.015, 0.0, sole_t + throat_h - 0.01)
        geoms.append(extrude(outline, 0.004, "tongue", frame, start))
    heel_len = L * _u(rng, 0.2, 0.28)
    tilt = 0.0
    params = {
        "blunt": blunt,
        "tongue": float(has_tongue),
        "length": L,
        "half_width": W,
        "sole_thickness": sole_t,
        "heel_height": heel_h,
        "toe_height": toe_h,
        "throat_height": throat_h,
        "collar_height": collar_h,
        "opening_end": s_open,
        "opening_width": open_w,
        "toe_round": toe_round,
        "heel_length": heel_len,
    }
    x_ball = x_heel + 0.7 * L
    x_heel_front = x_heel + heel_len
    s_mid = s_open * 0.55
    h_mid = sole_t  # insole level
    scoop = [
        _on(top[np.argmin(np.abs(s - s_open) + (side < 0))]),
        _on((x_heel + L * s_mid, 0, h_mid)),
        _on((x_heel + L * 0.14, 0, h_mid)),
        _on(top[0]),
        _on((x_heel - 0.0005, 0, sole_t / 2)),
    ]
    vamp_s = s_open + 0.35 * (1 - s_open)
    vamp = _on(
        (x_heel + L * vamp_s, 0, sole_t + toe_h + (throat_h - toe_h) * ((1 - vamp_s) / (1 - s_open)) ** 0.8 + 0.001)
    )
    toe = _on((x_heel + L + 0.0005, 0, sole_t / 2))
    pound_upper = [vamp, toe]
    if heel_h > 0:
        # lift the heel: bend everything behind the ball of the foot upward (the forefoot stays flat
        # on the ground), then stand a heel block under it
        tilt = float(np.arctan2(heel_h, x_ball - (x_heel + heel_len / 2)))

        def tf(p: np.ndarray) -> np.ndarray:
            q = np.array(p, dtype=np.float64)
            q[..., 2] += np.maximum(0.0, x_ball - q[..., 0]) * np.tan(tilt)
            return q

        geoms = [dataclasses.replace(g, mesh=Mesh(tf(g.mesh.vertices), g.mesh.faces)) for g in geoms]
        scoop = [(tf(p), r) for p, r in scoop]
        pound_upper = [(tf(p), r) for p, r in pound_upper]
        taper = _u(rng, 0.5, 1.0)  # block heels vs tapered heels
        hs = s[(s < heel_len / L) & (side >= 0)]
        heel_outline = [(x_heel + L * q, half_width(q) * np.sin(np.arccos(1 - 2 * q)) ** blunt) for q in hs]
        heel_outline += [
            (x_heel_front, half_width(heel_len / L) * 0.9),
            (x_heel_front, -half_width(heel_len / L) * 0.9),
        ]
        heel_outline += [(x, -y) for x, y in heel_outline[: len(hs)][::-1]]
        pts = np.asarray(heel_outline)
        xc = pts[:, 0].mean()
        block = extrude(pts, 1.0, "heel")  # reuse its triangulation, then shape both rings
        bverts = block.mesh.vertices.copy()
        lower = bverts[:, 2] < 0
        bverts[lower, 0] = xc + (bverts[lower, 0] - xc) * taper
        bverts[lower, 1] *= taper
        bverts[lower, 2] = 0.0
        # the top follows the lifted sole's underside (plus a little overlap) so nothing pokes through
        bverts[~lower, 2] = (x_ball - bverts[~lower, 0]) * np.tan(tilt) + 0.003
        geoms.append(dataclasses.replace(block, mesh=Mesh(bverts, block.mesh.faces)))
        hx0 = xc + (x_heel - xc) * taper
        hx1 = xc + (x_heel_front - xc) * taper
        pound = [_on((hx0 + 0.002, 0, 0)), _on((xc, 0, 0)), _on((hx1 - 0.002, 0, 0))]
        params["heel_taper"] = taper
    else:
        pound = [_on((x_heel + 0.01, 0, 0)), _on((x_heel + heel_len / 2, 0, 0)), _on((x_heel_front, 0, 0))]
    params["tilt"] = tilt
    keypoints = {"scoop": scoop, "mash_pound": pound + pound_upper}
    return _finish("shoe", geoms, keypoints, params)


BUILDERS: dict[str, Builder] = {
    "bottle": build_bottle,
    "frying_pan": build_frying_pan,
    "watering_can": build_watering_can,
    "cup": build_cup,
    "dustpan": build_dustpan,
    "basket": build_basket,
    "shoe": build_shoe,
    "water_jug": build_water_jug,
    "coffee_mug": build_coffee_mug,
    "wok": build_wok,
}

__all__ = ["BUILDERS", "geoms_bounds"] + [f.__name__ for f in BUILDERS.values()]
