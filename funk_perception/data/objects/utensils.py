"""Procedural kitchen utensils (spoon, fork, spatula, tongs, whisk, ladle) and the held-out shovel.

Every builder draws a style (e.g. flatware / wooden / serving spoon) and then
continuous proportions from ``rng``, builds the geometry in a convenient local
frame (working end toward +x, grip toward -x) and computes the keypoints from
the same numbers, so they move with the shape. :func:`_finish` then tips the
object about y until both its working end and its grip touch the table (how a
spoon or a shovel really lies), puts it on z = 0 and centres it in xy.

Keypoint conventions shared by the tasks (docs/DESIGN.md, "Keypoint meanings"), so one index means one
function across categories:

- chains (scoop, mix, lift_something, flip, brush_dust): p1 the tip of the working
  part, p2 its middle, p3 where it meets the grip, p4 the grip near the working
  part, p5 the far end of the grip;
- scrape: p1 one front corner of the scraping edge, p2 the middle of that edge, p3
  the other corner, p4, p5 along the grip (docs/DESIGN.md: "blade corners and middle of an
  edge");
- mash_pound (ladle): p1..p3 across the outside of the bowl bottom;
- pull_out_nail: the edge or slot that goes under a nail head, then the grip.

The builders list points in their order along the object; :func:`funk_perception.data.objects.build_object`
then renumbers p2 and p3 of scoop, lift_something, scrape, brush_dust and flip to FunKPoint's
numbering (``FUNKPOINT_ORDER``): there p2 is the far end of the working part and p3 its middle.
"""

from __future__ import annotations

from collections.abc import Sequence

import mujoco
import numpy as np

from funk_perception.data.objects.base import (
    SURFACE_RADIUS,
    Builder,
    Geom,
    Mesh,
    ObjectModel,
    base_task,
    capsule,
    extrude,
    frame_from_z,
    grid_faces,
    lathe,
    sphere,
    tube,
)
from funk_perception.tasks import NUM_KEYPOINTS, tasks_for_category

# ----------------------------------------------------------------------------- geometry helpers


def _smoothstep(x: np.ndarray | float) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _unit(v: Sequence[float]) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / (np.linalg.norm(v) + 1e-12)


def _loft(rings: Sequence[np.ndarray], part: str, caps: bool = True) -> Geom:
    """Skin a stack of closed cross-section rings (all with the same point count) into a solid.

    The ring order is flipped when needed so faces wind outward whatever way the
    caller walked round the section (the same convention as ``base.tube``).
    """
    r = np.stack([np.asarray(x, dtype=np.float64) for x in rings])
    n, m, _ = r.shape
    k = min(max(n // 2, 1), n - 1)
    centre = r[k].mean(axis=0)
    newell = np.cross(r[k] - centre, np.roll(r[k], -1, axis=0) - centre).sum(axis=0)
    if np.dot(newell, r[k].mean(axis=0) - r[k - 1].mean(axis=0)) < 0:
        r = r[:, ::-1]
    verts = r.reshape(-1, 3)
    faces = grid_faces(n, m, wrap_cols=True)
    if caps:
        verts = np.vstack([verts, r[0].mean(axis=0), r[-1].mean(axis=0)])
        c0, c1 = len(verts) - 2, len(verts) - 1
        last = (n - 1) * m
        cap0 = [(c0, (j + 1) % m, j) for j in range(m)]
        cap1 = [(c1, last + j, last + (j + 1) % m) for j in range(m)]
        faces = np.vstack([faces, cap0, cap1])
    return Geom("mesh", part, mesh=Mesh(verts, faces))


class _Sweep:
    """A strip or rod swept along a path with a superellipse cross-section of varying size.

    ``side_hint`` is the direction the width (``half_w``) should point to (y for a
    handle lying flat, z for a tongs arm standing on its edge); ``half_t`` is the
    half thickness across it. Keeps its frames so keypoints can be put on its surface.
    """

    def __init__(
        self,
        path: np.ndarray,
        half_w: np.ndarray | float,
        half_t: np.ndarray | float,
        part: str,
        side_hint: Sequence[float] = (0.0, 1.0, 0.0),
        segments: int = 10,
        squareness: float = 2.0,
        caps: bool = True,
    ):
        self.path = np.asarray(path, dtype=np.float64)
        n = len(self.path)
        self.half_w = np.broadcast_to(np.asarray(half_w, dtype=np.float64), (n,)).copy()
        self.half_t = np.broadcast_to(np.asarray(half_t, dtype=np.float64), (n,)).copy()
        tangents = np.gradient(self.path, axis=0)
        tangents /= np.linalg.norm(tangents, axis=1, keepdims=True) + 1e-12
        hint = _unit(side_hint)
        side = hint[None, :] - tangents * (tangents @ hint)[:, None]
        side /= np.linalg.norm(side, axis=1, keepdims=True) + 1e-12
        self.side = side
        self.up = np.cross(tangents, side)
        theta = np.linspace(0.0, 2 * np.pi, segments, endpoint=False)
        e = 2.0 / squareness
        cw = np.sign(np.cos(theta)) * np.abs(np.cos(theta)) ** e
        sw = np.sign(np.sin(theta)) * np.abs(np.sin(theta)) ** e
        rings = [
            self.path[i] + self.half_w[i] * cw[:, None] * self.side[i] + self.half_t[i] * sw[:, None] * self.up[i]
            for i in range(n)
        ]
        self.geom = _loft(rings, part, caps=caps)
        seg = np.linalg.norm(np.diff(self.path, axis=0), axis=1)
        self._s = np.r_[0.0, np.cumsum(seg)] / max(seg.sum(), 1e-12)

    def point(self, u: float, toward: Sequence[float] = (0.0, 0.0, 1.0), depth: float = 0.0) -> np.ndarray:
        """The surface point at arc-length fraction ``u`` on the side facing ``toward`` (``depth`` m inside)."""
        i = int(np.clip(np.searchsorted(self._s, u) - 1, 0, len(self._s) - 2))
        f = (u - self._s[i]) / max(self._s[i + 1] - self._s[i], 1e-12)
        lerp = lambda a: (1 - f) * a[i] + f * a[i + 1]  # noqa: E731
        side, up = _unit(lerp(self.side)), _unit(lerp(self.up))
        d = np.asarray(toward, dtype=np.float64)
        a, b = float(d @ side), float(d @ up)
        if abs(a) + abs(b) < 1e-9:
            return lerp(self.path)
        # where the ray from the centreline in the (a, b) direction leaves the elliptical section
        hw, ht = max(float(lerp(self.half_w)), 1e-9), max(float(lerp(self.half_t)), 1e-9)
        a, b = a / np.hypot(a, b), b / np.hypot(a, b)
        reach = 1.0 / np.sqrt((a / hw) ** 2 + (b / ht) ** 2) - depth
        off = np.array([a, b]) * max(reach, 0.0)
        return lerp(self.path) + off[0] * side + off[1] * up


def _polar_shell(
    a_front: float,
    a_back: float,
    b: float,
    profile: Sequence[tuple[float, float]],
    part: str,
    center: Sequence[float],
    segments: int = 32,
) -> Geom:
    """A lathe whose rings are egg-shaped outlines (half lengths ``a_front``/``a_back`` along x, ``b`` along y).

    ``profile`` is (s, z): s scales the outline (0 = centre, 1 = rim); give it
    underside centre -> rim -> top centre for a thin dished shell (spoon bowl).
    """
    th = np.linspace(0.0, 2 * np.pi, segments, endpoint=False)
    ox = np.where(np.cos(th) >= 0, a_front, a_back) * np.cos(th)
    oy = b * np.sin(th)
    rings = [np.stack([s * ox, s * oy, np.full_like(th, z)], axis=1) for s, z in profile]
    verts = np.concatenate(rings) + np.asarray(center, dtype=np.float64)
    return Geom("mesh", part, mesh=Mesh(verts, grid_faces(len(profile), segments, wrap_cols=True)))


def _fillet_polygon(corners: Sequence[Sequence[float]], radii: Sequence[float], arc_points: int = 6) -> np.ndarray:
    """A convex 2D polygon with each corner rounded by its radius (0 keeps the sharp corner)."""
    pts = np.asarray(corners, dtype=np.float64)
    out = []
    n = len(pts)
    for i in range(n):
        a, b, c = pts[i - 1], pts[i], pts[(i + 1) % n]
        r = radii[i]
        u1, u2 = _unit(a - b), _unit(c - b)
        half = 0.5 * np.arccos(np.clip(u1 @ u2, -1.0, 1.0))
        if r <= 0 or half < 1e-3 or half > np.pi / 2 - 1e-3:
            out.append(b)
            continue
        d = min(r / np.tan(half), 0.49 * np.linalg.norm(a - b), 0.49 * np.linalg.norm(c - b))
        r = d * np.tan(half)
        centre = b + _unit(u1 + u2) * r / np.sin(half)
        t1, t2 = b + u1 * d, b + u2 * d
        a1, a2 = np.arctan2(*(t1 - centre)[::-1]), np.arctan2(*(t2 - centre)[::-1])
        da = (a2 - a1 + np.pi) % (2 * np.pi) - np.pi
        for k in range(arc_points + 1):
            ang = a1 + da * k / arc_points
            out.append(centre + r * np.array([np.cos(ang), np.sin(ang)]))
    return np.asarray(out)


def _clip_halfplane(poly: np.ndarray, axis: int, value: float, keep_greater: bool) -> np.ndarray:
    """Sutherland-Hodgman clip of a 2D polygon to x_axis >= value (or <=)."""
    out = []
    sgn = 1.0 if keep_greater else -1.0
    n = len(poly)
    for i in range(n):
        p, q = poly[i], poly[(i + 1) % n]
        dp, dq = sgn * (p[axis] - value), sgn * (q[axis] - value)
        if dp >= 0:
            out.append(p)
        if dp * dq < 0:
            out.append(p + (q - p) * dp / (dp - dq))
    return np.asarray(out)


def _clip_box(poly: np.ndarray, x0: float, x1: float, y0: float, y1: float) -> np.ndarray:
    for axis, v, g in ((0, x0, True), (0, x1, False), (1, y0, True), (1, y1, False)):
        if len(poly) < 3:
            return poly
        poly = _clip_halfplane(poly, axis, v, g)
    return poly


def _outline_front_x(outline: np.ndarray, y: float = 0.0) -> float:
    """The largest x at which a closed 2D outline crosses the line y = ``y`` (the front edge there)."""
    p, q = outline, np.roll(outline, -1, axis=0)
    cross = (p[:, 1] - y) * (q[:, 1] - y) <= 0
    dy = np.where(np.abs(q[:, 1] - p[:, 1]) < 1e-12, 1e-12, q[:, 1] - p[:, 1])
    xs = p[:, 0] + (q[:, 0] - p[:, 0]) * (y - p[:, 1]) / dy
    if not cross.any():
        raise ValueError(f"outline does not cross y = {y}")
    return float(xs[cross].max())


def _geom_low_points(g: Geom) -> np.ndarray:
    """Points whose lowest z (after any rotation, minus the returned radius column) bounds the geom from below."""
    if g.kind == "mesh":
        return np.c_[g.mesh.vertices, np.zeros(len(g.mesh.vertices))]
    if g.kind in ("capsule", "sphere"):
        pts = np.reshape(g.fromto, (2, 3)) if g.fromto is not None else np.asarray([g.pos])
        return np.c_[pts, np.full(len(pts), g.size[0])]
    raise ValueError(f"utensils: geom kind {g.kind!r} is not supported by the resting-pose solver")


def _transform_geom(g: Geom, rot: np.ndarray, shift: np.ndarray) -> Geom:
    if g.kind == "mesh":
        return Geom("mesh", g.part, mesh=Mesh(g.mesh.vertices @ rot.T + shift, g.mesh.faces))
    if g.fromto is not None:
        ends = np.reshape(g.fromto, (2, 3)) @ rot.T + shift
        return Geom(g.kind, g.part, size=g.size, fromto=tuple(ends.ravel()))
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, rot.ravel())
    out = np.zeros(4)
    mujoco.mju_mulQuat(out, quat, np.asarray(g.quat, dtype=np.float64))
    return Geom(g.kind, g.part, size=g.size, pos=tuple(rot @ np.asarray(g.pos) + shift), quat=tuple(out))


def _rot_y(theta: float) -> np.ndarray:
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _lowest(groups: Sequence[np.ndarray], rot: np.ndarray) -> list[float]:
    return [float(np.min(p[:, :3] @ rot[2] - p[:, 3])) for p in groups]


def _finish(
    category: str,
    geoms: list[Geom],
    keypoints: dict[str, np.ndarray],
    radii: dict[str, np.ndarray],
    params: dict[str, float],
    front: Sequence[Geom] = (),
    back: Sequence[Geom] = (),
) -> ObjectModel:
    """Rest the object on z = 0, centred in xy; rotate about y until ``front`` and ``back`` both touch."""
    rot = np.eye(3)
    if front and back:
        groups = [np.vstack([_geom_low_points(g) for g in front]), np.vstack([_geom_low_points(g) for g in back])]

        def gap(theta: float) -> float:  # > 0 while the front is higher than the back
            lo_f, lo_b = _lowest(groups, _rot_y(theta))
            return lo_f - lo_b

        lo, hi = -0.9, 0.9
        if gap(lo) * gap(hi) < 0:
            for _ in range(48):
                mid = 0.5 * (lo + hi)
                if gap(mid) * gap(lo) > 0:
                    lo = mid
                else:
                    hi = mid
            rot = _rot_y(0.5 * (lo + hi))
        params["rest_tilt"] = float(np.arctan2(rot[0, 2], rot[0, 0]))
    pts = np.vstack([_geom_low_points(g) for g in geoms])
    rotated = pts[:, :3] @ rot.T
    lo_xyz = (rotated - pts[:, 3:4]).min(axis=0)
    hi_xyz = (rotated + pts[:, 3:4]).max(axis=0)
    shift = np.array([-0.5 * (lo_xyz[0] + hi_xyz[0]), -0.5 * (lo_xyz[1] + hi_xyz[1]), -lo_xyz[2]])
    geoms = [_transform_geom(g, rot, shift) for g in geoms]
    kps = {t: np.asarray(p, dtype=np.float64) @ rot.T + shift for t, p in keypoints.items()}
    expected = set(tasks_for_category(category))
    if {base_task(t) for t in kps} != expected:
        raise ValueError(f"utensils/{category}: keypoints for tasks {sorted(kps)}, expected {sorted(expected)}")
    full_radii = {t: np.asarray(radii.get(t, np.full(NUM_KEYPOINTS, SURFACE_RADIUS)), dtype=np.float64) for t in kps}
    return ObjectModel(category, geoms, kps, full_radii, {k: float(v) for k, v in params.items()})


def _flat_handle(
    start: np.ndarray,
    length: float,
    rise: float,
    half_w: np.ndarray,
    half_t: np.ndarray | float,
    part: str = "handle",
    squareness: float = 2.0,
    segments: int = 10,
) -> _Sweep:
    """A handle running from ``start`` toward -x, rising by ``rise`` over its first third (one ring per ``half_w`` entry)."""
    u = np.linspace(0.0, 1.0, len(half_w))
    path = np.stack([start[0] - u * length, np.full(len(u), start[1]), start[2] + rise * _smoothstep(u / 0.35)], axis=1)
    return _Sweep(path, half_w, half_t, part, segments=segments, squareness=squareness)


def _rounded_end(u: np.ndarray, width: np.ndarray, length: float) -> np.ndarray:
    """Round off the last half-width of a strip so its end is a semicircle, not a cut."""
    end_len = np.maximum(width / length, 1e-3)
    k = np.clip((u - (1.0 - end_len)) / end_len, 0.0, 1.0)
    return width * np.sqrt(np.maximum(1.0 - k**2, 0.04))


# ----------------------------------------------------------------------------- spoon


def build_spoon(rng: np.random.Generator) -> ObjectModel:
    """Flatware, wooden or serving spoon: an egg-shaped dished bowl and a flat or round handle."""
    style = int(rng.integers(3))  # 0 flatware, 1 wooden, 2 serving
    if style == 0:
        bowl_len, width_ratio, depth_ratio = rng.uniform(0.04, 0.065), rng.uniform(0.55, 0.72), rng.uniform(0.3, 0.55)
        thick, handle_len = rng.uniform(0.0014, 0.002), rng.uniform(0.11, 0.16)
    elif style == 1:
        bowl_len, width_ratio, depth_ratio = rng.uniform(0.055, 0.08), rng.uniform(0.55, 0.75), rng.uniform(0.15, 0.3)
        thick, handle_len = rng.uniform(0.0035, 0.005), rng.uniform(0.2, 0.27)
    else:
        bowl_len, width_ratio, depth_ratio = rng.uniform(0.07, 0.095), rng.uniform(0.6, 0.78), rng.uniform(0.35, 0.6)
        thick, handle_len = rng.uniform(0.0018, 0.0026), rng.uniform(0.16, 0.21)
    a = bowl_len / 2
    a_front, a_back = a * rng.uniform(0.82, 0.98), a * rng.uniform(1.02, 1.22)
    b = a * width_ratio
    depth = b * depth_ratio
    rim_z = depth + thick
    cx = 0.0
    s = np.linspace(0.0, 1.0, 9)
    top = rim_z - depth * (1 - s**2)
    profile = [(si, zi - thick) for si, zi in zip(s, top)] + [(si, zi) for si, zi in zip(s[::-1], top[::-1])]
    bowl = _polar_shell(a_front, a_back, b, profile, "bowl", (cx, 0.0, 0.0), segments=32)

    u = np.linspace(0.0, 1.0, 26)
    if style == 1:
        handle_style = 3.0
        r0, r1 = rng.uniform(0.0045, 0.006), rng.uniform(0.006, 0.0085)
        hw = r0 + (r1 - r0) * _smoothstep(u / 0.6)
        hw = _rounded_end(u, hw, handle_len)
        ht = hw * rng.uniform(0.75, 1.0)
        rise, squareness = rng.uniform(0.0, 0.006), 2.0
    else:
        handle_style = float(rng.integers(3))  # 0 widening "fiddle", 1 straight, 2 slim tapered
        w_neck = rng.uniform(0.005, 0.008)
        w_join = min(b * 0.9, w_neck * rng.uniform(1.4, 2.2))
        w_end = {0.0: rng.uniform(0.016, 0.026), 1.0: rng.uniform(0.009, 0.012), 2.0: rng.uniform(0.006, 0.009)}[
            handle_style
        ]
        full = (
            w_neck + (w_join - w_neck) * (1 - _smoothstep(u / 0.12)) + (w_end - w_neck) * _smoothstep((u - 0.12) / 0.8)
        )
        hw = _rounded_end(u, full / 2, handle_len)
        ht = rng.uniform(0.0011, 0.0017) * (1 + 0.3 * (1 - u))
        rise, squareness = rng.uniform(0.01, 0.025), 3.0
    start = np.array([cx - a_back + 0.004, 0.0, rim_z - thick / 2])
    handle = _flat_handle(start, handle_len, rise, hw, ht, squareness=squareness)

    def bowl_top(s_: float, th: float, lift: float = 0.0) -> np.ndarray:
        ax = a_front if np.cos(th) >= 0 else a_back
        return np.array([cx + s_ * ax * np.cos(th), s_ * b * np.sin(th), rim_z - depth * (1 - s_**2) + lift])

    tip = bowl_top(1.0, 0.0, -thick / 2)
    centre = bowl_top(0.0, 0.0)
    back = bowl_top(0.7, np.pi)
    p4, p5 = handle.point(0.3), handle.point(0.97)
    chain = np.stack([tip, centre, back, p4, p5])
    corner = np.deg2rad(50.0)
    scrape = np.stack([bowl_top(1.0, corner, -thick / 2), tip, bowl_top(1.0, -corner, -thick / 2), p4, p5])
    kps = {
        "scoop": chain,
        "mix": chain.copy(),
        "brush_dust": chain.copy(),
        "flip": chain.copy(),
        "scrape": scrape,
        # FunKPoint's mix: the bowl's back, the neck, the handle's middle (objects.base.PLACEMENTS)
        "mix@funkpoint": np.stack([tip, back, handle.point(0.08), handle.point(0.5), p5]),
    }
    params = dict(
        style=style,
        handle_style=handle_style,
        bowl_length=bowl_len,
        bowl_width=2 * b,
        bowl_depth=depth,
        thickness=thick,
        handle_length=handle_len,
        handle_rise=rise,
    )
    return _finish("spoon", [bowl, handle.geom], kps, {}, params, front=[bowl], back=[handle.geom])


# ----------------------------------------------------------------------------- table fork


def build_tablefork(rng: np.random.Generator) -> ObjectModel:
    """Table or carving fork: 2-5 tapered tines on a curved head, flat or round handle."""
    style = int(rng.integers(3))  # 0 dinner fork, 1 carving fork, 2 dessert / salad fork
    if style == 1:
        n_tines, head_w, tine_len = 2, rng.uniform(0.014, 0.024), rng.uniform(0.05, 0.085)
        base_len, thick, handle_len = rng.uniform(0.02, 0.035), rng.uniform(0.0022, 0.003), rng.uniform(0.12, 0.17)
    elif style == 0:
        n_tines, head_w, tine_len = int(rng.choice([3, 4, 4, 5])), rng.uniform(0.024, 0.032), rng.uniform(0.03, 0.045)
        base_len, thick, handle_len = rng.uniform(0.014, 0.022), rng.uniform(0.0014, 0.002), rng.uniform(0.11, 0.15)
    else:
        n_tines, head_w, tine_len = int(rng.choice([3, 4])), rng.uniform(0.017, 0.023), rng.uniform(0.022, 0.032)
        base_len, thick, handle_len = rng.uniform(0.012, 0.018), rng.uniform(0.0013, 0.0018), rng.uniform(0.09, 0.12)
    head_len = base_len + tine_len
    curve = rng.uniform(0.002, 0.007) if style != 1 else rng.uniform(0.0, 0.004)
    x_low = head_len * rng.uniform(0.35, 0.55)
    z0 = 0.01

    def head_z(x: np.ndarray | float) -> np.ndarray:
        return z0 + curve * ((np.asarray(x) - x_low) / (head_len / 2)) ** 2

    w_neck = rng.uniform(0.005, 0.008) if style != 1 else rng.uniform(0.006, 0.009)
    xb = np.linspace(-0.006, base_len + 0.002, 10)
    base_hw = w_neck / 2 + (head_w / 2 - w_neck / 2) * _smoothstep(xb / base_len) ** 0.7
    base = _Sweep(np.c_[xb, np.zeros_like(xb), head_z(xb)], base_hw, thick / 2, "head", squareness=4.0)
    pitch = head_w / n_tines
    tine_w = pitch * rng.uniform(0.5, 0.68)
    tines = []
    xt = np.linspace(base_len - 0.003, head_len, 10)
    ut = (xt - xt[0]) / (xt[-1] - xt[0])
    taper = np.where(ut < 0.6, 1.0, 1.0 - 0.78 * _smoothstep((ut - 0.6) / 0.4))
    for i in range(n_tines):
        y = (i - (n_tines - 1) / 2) * pitch
        if style == 1:  # carving tines are round rods
            tines.append(
                _Sweep(
                    np.c_[xt, np.full_like(xt, y), head_z(xt)],
                    tine_w / 2 * taper,
                    tine_w / 2 * taper,
                    "head",
                    segments=8,
                )
            )
        else:
            tines.append(
                _Sweep(
                    np.c_[xt, np.full_like(xt, y), head_z(xt)],
                    tine_w / 2 * taper,
                    thick / 2,
                    "head",
                    segments=8,
                    squareness=4.0,
                )
            )

    u = np.linspace(0.0, 1.0, 26)
    if style == 1:
        handle_style = 2.0
        r = rng.uniform(0.007, 0.011)
        hw = _rounded_end(u, r * (0.75 + 0.25 * _smoothstep(u / 0.3)), handle_len)
        ht, rise, squareness = hw * rng.uniform(0.8, 1.0), rng.uniform(0.0, 0.008), 2.5
    else:
        handle_style = float(rng.integers(2))  # 0 widening, 1 straight
        w_end = rng.uniform(0.013, 0.02) if handle_style == 0 else rng.uniform(0.009, 0.012)
        full = w_neck + (w_end - w_neck) * _smoothstep((u - 0.1) / 0.8)
        hw = _rounded_end(u, full / 2, handle_len)
        ht, rise, squareness = thick / 2 * (1 + 0.3 * (1 - u)), rng.uniform(0.01, 0.022), 3.0
    handle = _flat_handle(
        np.array([-0.004, 0.0, float(head_z(-0.004))]), handle_len, rise, hw, ht, squareness=squareness
    )

    mid = n_tines // 2  # the middle tine, or the one just to +y of the middle
    p4, p5 = handle.point(0.3), handle.point(0.97)
    head_back = base.point(0.35)
    chain = np.stack([tines[mid].point(0.985, (1, 0, 0)), tines[mid].point(0.5), head_back, p4, p5])
    if n_tines >= 3:
        scrape_mid = tines[(n_tines - 1) // 2].point(0.985, (1, 0, 0))
    else:
        scrape_mid = np.array([base_len, 0.0, float(head_z(base_len)) + thick / 2])
    scrape = np.stack([tines[-1].point(0.985, (1, 0, 0)), scrape_mid, tines[0].point(0.985, (1, 0, 0)), p4, p5])
    gap = (n_tines - 1) // 2  # the slot between tine `gap` and `gap + 1` catches the nail
    slot_y = (gap + 0.5 - (n_tines - 1) / 2) * pitch
    slot = np.array([base_len - 0.001, slot_y, float(head_z(base_len)) + thick / 2])
    nail = np.stack([tines[gap + 1].point(0.985, (1, 0, 0)), slot, head_back, p4, p5])
    kps = {
        "mix": chain,
        "lift_something": chain.copy(),
        "flip": chain.copy(),
        "scrape": scrape,
        "pull_out_nail": nail,
        "mix@funkpoint": np.stack([chain[0], head_back, handle.point(0.08), handle.point(0.5), p5]),
        "pull_out_nail@funkpoint": np.stack([nail[0], slot, handle.point(0.3), handle.point(0.65), p5]),
    }
    params = dict(
        style=style,
        n_tines=n_tines,
        head_width=head_w,
        tine_length=tine_len,
        base_length=base_len,
        head_curve=curve,
        thickness=thick,
        handle_length=handle_len,
        handle_style=handle_style,
        handle_rise=rise,
    )
    head_geoms = [base.geom] + [t.geom for t in tines]
    return _finish("tablefork", head_geoms + [handle.geom], kps, {}, params, front=head_geoms, back=[handle.geom])


# ----------------------------------------------------------------------------- spatula


def build_spatula(rng: np.random.Generator) -> ObjectModel:
    """Turner (solid or slotted, cranked neck), silicone spatula or offset palette spatula."""
    style = int(rng.integers(3))  # 0 turner, 1 silicone spatula, 2 offset spatula
    slots = 0
    if style == 0:
        length, w_front, w_back = rng.uniform(0.07, 0.11), rng.uniform(0.06, 0.09), rng.uniform(0.04, 0.06)
        r_front, r_back, thick = rng.uniform(0.003, 0.012), rng.uniform(0.004, 0.012), rng.uniform(0.0015, 0.0025)
        slots = int(rng.choice([0, 2, 4]))
        bevel = float(rng.uniform(0.0, 0.015)) if rng.random() < 0.35 else 0.0
    elif style == 1:
        length, w_front = rng.uniform(0.08, 0.11), rng.uniform(0.045, 0.065)
        w_back = w_front * rng.uniform(0.85, 1.0)
        r_front, r_back, thick = rng.uniform(0.008, 0.022), rng.uniform(0.003, 0.008), rng.uniform(0.003, 0.005)
        bevel = 0.0
    else:
        length, w_front = rng.uniform(0.1, 0.16), rng.uniform(0.024, 0.038)
        w_back = w_front * rng.uniform(0.85, 1.0)
        r_front, r_back, thick = w_front * 0.48, rng.uniform(0.002, 0.006), rng.uniform(0.0015, 0.0022)
        bevel = 0.0
    # corners counter-clockwise from the back right; the front edge may be bevelled on the +y side
    corners = [(0.0, -w_back / 2), (length, -w_front / 2), (length - bevel, w_front / 2), (0.0, w_back / 2)]
    outline = _fillet_polygon(corners, [r_back, r_front, r_front * (0.5 if bevel else 1.0), r_back], arc_points=5)
    blade_center = (0.0, 0.0, thick / 2)
    blades = []
    if slots:
        x0, x1 = length * rng.uniform(0.18, 0.28), length * rng.uniform(0.75, 0.85)
        slot_w = rng.uniform(0.004, 0.007)
        n_bars = slots + 1
        bar_w = (min(w_front, w_back) * 0.8 - slots * slot_w) / n_bars
        pieces = [_clip_halfplane(outline, 0, x0, False), _clip_halfplane(outline, 0, x1, True)]
        for k in range(n_bars):
            yc = (k - (n_bars - 1) / 2) * (bar_w + slot_w)
            y0, y1 = yc - bar_w / 2, yc + bar_w / 2
            if k == 0:
                y0 = -1.0
            if k == n_bars - 1:
                y1 = 1.0
            pieces.append(_clip_box(outline, x0 - 1e-4, x1 + 1e-4, y0, y1))
        blades = [extrude(p, thick, "blade", center=blade_center) for p in pieces if len(p) >= 3]
    else:
        blades = [extrude(outline, thick, "blade", center=blade_center)]

    u = np.linspace(0.0, 1.0, 22)
    if style == 0:
        neck_len, neck_angle = rng.uniform(0.04, 0.07), rng.uniform(0.3, 0.6)
        handle_len = rng.uniform(0.12, 0.18)
    elif style == 1:
        neck_len, neck_angle = rng.uniform(0.015, 0.03), 0.0
        handle_len = rng.uniform(0.17, 0.24)
    else:
        neck_len, neck_angle = rng.uniform(0.03, 0.045), rng.uniform(0.35, 0.6)
        handle_len = rng.uniform(0.1, 0.13)
    # neck: leaves the blade flat, cranks up by neck_angle, and levels out into the handle
    s = np.linspace(0.0, 1.0, 14)
    heading = neck_angle * np.sin(np.pi * s) if style == 2 else neck_angle * _smoothstep(s / 0.3)
    step = neck_len / (len(s) - 1)
    d = np.stack([-np.cos(heading), np.zeros_like(s), np.sin(heading)], axis=1) * step
    neck_path = np.array([0.012, 0.0, thick / 2]) + np.vstack([np.zeros(3), np.cumsum(d[:-1], axis=0)])
    if style == 1:
        neck_hw = (w_back * 0.35) * (1 - s) + rng.uniform(0.006, 0.008) * s
        neck_ht = thick / 2 + (rng.uniform(0.005, 0.007) - thick / 2) * s
    else:
        neck_hw = (w_back * 0.3) * (1 - _smoothstep(s / 0.5)) + rng.uniform(0.004, 0.006) * _smoothstep(s / 0.5)
        neck_ht = np.full_like(s, thick / 2 * 1.3)
    neck = _Sweep(neck_path, neck_hw, neck_ht, "blade" if style != 1 else "handle", squareness=3.0)
    handle_style = float(rng.integers(3))  # 0 round, 1 flat oval, 2 squarish
    r_h = rng.uniform(0.007, 0.011)
    bulge = 1.0 + rng.uniform(0.0, 0.3) * np.sin(np.pi * np.clip((u - 0.2) / 0.8, 0, 1))
    hw = _rounded_end(u, r_h * bulge * (1.15 if handle_style == 1 else 1.0), handle_len)
    ht = hw * (0.65 if handle_style == 1 else 0.9)
    handle = _flat_handle(
        neck_path[-1] + np.array([0.006, 0.0, 0.0]),
        handle_len,
        0.0,
        hw,
        ht,
        squareness=3.5 if handle_style == 2 else 2.0,
        segments=12,
    )

    front_x = _outline_front_x(outline)
    tip = np.array([front_x - 0.001, 0.0, thick / 2])
    centre = np.array([length * 0.5, 0.0, thick])
    base_pt = np.array([length * 0.12, 0.0, thick])
    p4, p5 = handle.point(0.2), handle.point(0.97)
    chain = np.stack([tip, centre, base_pt, p4, p5])
    c_left = outline[np.argmax(outline[:, 0] + outline[:, 1])]
    c_right = outline[np.argmax(outline[:, 0] - outline[:, 1])]
    scrape = np.stack([[c_left[0], c_left[1], thick / 2], tip, [c_right[0], c_right[1], thick / 2], p4, p5])
    kps = {
        "mix": chain,
        "flip": chain.copy(),
        "scrape": scrape,
        "mix@funkpoint": np.stack([tip, base_pt, handle.point(0.08), handle.point(0.45), p5]),
    }
    params = dict(
        style=style,
        blade_length=length,
        blade_width_front=w_front,
        blade_width_back=w_back,
        thickness=thick,
        slots=slots,
        bevel=bevel,
        neck_length=neck_len,
        neck_angle=neck_angle,
        handle_length=handle_len,
        handle_style=handle_style,
        handle_radius=r_h,
    )
    geoms = blades + [neck.geom, handle.geom]
    return _finish("spatula", geoms, kps, {}, params, front=blades, back=[handle.geom])


# ----------------------------------------------------------------------------- tongs


def build_tongs(rng: np.random.Generator) -> ObjectModel:
    """Two arms joined at the back (spring U-bend or pivot with pull ring), with scalloped, paddle or claw tips."""
    hinge_style = int(rng.integers(2))  # 0 spring U-bend, 1 pivot + pull ring
    tip_style = int(rng.integers(3))  # 0 scalloped disc, 1 paddle, 2 claw
    length = rng.uniform(0.2, 0.32)
    y_hinge, y_tip = rng.uniform(0.006, 0.012), rng.uniform(0.015, 0.045)
    bow = rng.uniform(-0.004, 0.012)
    arm_hw, arm_ht = rng.uniform(0.006, 0.009), rng.uniform(0.0018, 0.003)
    pad_r = rng.uniform(0.015, 0.022) if tip_style == 0 else rng.uniform(0.012, 0.016)
    zc = max(pad_r, arm_hw) + 0.002
    x_back, x_tip = -length / 2, length / 2
    n = 24
    u = np.linspace(0.0, 1.0, n)

    def arm_path(sign: float) -> np.ndarray:
        y = y_hinge + (y_tip - y_hinge) * u + bow * np.sin(np.pi * u)
        if tip_style == 2:  # claws curl toward the other arm over the last 15 %
            y = y - (y_tip * 0.45) * _smoothstep((u - 0.85) / 0.15)
        return np.stack([x_back + u * length, sign * y, np.full(n, zc)], axis=1)

    arm_a, arm_b = arm_path(1.0), arm_path(-1.0)
    geoms: list[Geom] = []
    # per-arm sweeps carry the surface frames for keypoints (the spring style draws both arms as one strip)
    sweep_a = _Sweep(arm_a, arm_hw, arm_ht, "arms", side_hint=(0, 0, 1), squareness=4.0)
    sweep_b = _Sweep(arm_b, arm_hw, arm_ht, "arms", side_hint=(0, 0, 1), squareness=4.0)
    if hinge_style == 0:
        phi = np.linspace(0.0, np.pi, 9)[1:-1]
        bend = np.stack([x_back - y_hinge * np.sin(phi), y_hinge * np.cos(phi), np.full_like(phi, zc)], axis=1)
        # one strip: B tip -> back -> around the bend (from -y to +y) -> A tip
        path = np.vstack([arm_b[::-1], bend * [1, -1, 1], arm_a])
        strip = _Sweep(path, arm_hw, arm_ht, "arms", side_hint=(0, 0, 1), squareness=4.0, segments=10)
        geoms.append(strip.geom)
        back_pt = np.array([x_back - y_hinge - arm_ht, 0.0, zc])
    else:
        pivot_r = y_hinge + arm_ht + rng.uniform(0.002, 0.005)
        pivot = lathe(
            [(0, -arm_hw), (pivot_r, -arm_hw), (pivot_r, arm_hw), (0, arm_hw)], "hinge", 16, center=(x_back, 0, zc)
        )
        ring_r = rng.uniform(0.009, 0.015)
        th = np.linspace(0, 2 * np.pi, 20, endpoint=False)
        ring_c = np.array([x_back - pivot_r - ring_r + 0.003, 0.0, zc])
        ring = tube(
            ring_c + np.stack([ring_r * np.cos(th), ring_r * np.sin(th), np.zeros_like(th)], axis=1),
            rng.uniform(0.0015, 0.0025),
            "hinge",
            segments=6,
            closed=True,
        )
        geoms += [sweep_a.geom, sweep_b.geom, pivot, ring]
        back_pt = ring_c - np.array([ring_r, 0.0, 0.0])
    sleeve_style = float(rng.random() < 0.6)
    if sleeve_style:
        grip_u = rng.uniform(0.4, 0.55)
        for arm in (arm_a, arm_b):
            k = max(int(grip_u * (n - 1)), 3)
            geoms.append(
                _Sweep(arm[1:k], arm_hw + 0.0015, arm_ht + 0.002, "handle", side_hint=(0, 0, 1), squareness=3.0).geom
            )
    else:
        grip_u = 0.45

    pads: list[Geom] = []
    if tip_style in (0, 1):
        if tip_style == 0:
            th = np.linspace(0, 2 * np.pi, 36, endpoint=False)
            lobes = int(rng.integers(5, 9))
            rr = pad_r * (1 + 0.08 * np.cos(lobes * th))
            outline = np.stack([rr * np.cos(th), rr * np.sin(th)], axis=1)
            pad_half_len = pad_r
        else:
            pad_half_len = rng.uniform(0.02, 0.03)
            outline = _fillet_polygon(
                [(-pad_half_len, -pad_r), (pad_half_len, -pad_r), (pad_half_len, pad_r), (-pad_half_len, pad_r)],
                [0.004, pad_r * 0.8, pad_r * 0.8, 0.004],
                arc_points=4,
            )
        pad_t = rng.uniform(0.0015, 0.0025)
        cxp = x_tip - pad_half_len * 0.8
        frame = frame_from_z((0, 1, 0), (1, 0, 0))
        for arm, sign in ((arm_a, 1.0), (arm_b, -1.0)):
            y_arm = float(np.interp(cxp, arm[:, 0], arm[:, 1]))
            pads.append(
                extrude(outline, pad_t, "head", axis_frame=frame, center=(cxp, y_arm - sign * (arm_ht + pad_t / 2), zc))
            )
        y_pad_a = float(np.interp(cxp, arm_a[:, 0], arm_a[:, 1])) - (arm_ht + pad_t / 2)
        tip_a = np.array([cxp + float(outline[:, 0].max()), y_pad_a, zc])
        tip_b = tip_a * [1, -1, 1]
        mid_a = np.array([cxp, y_pad_a - pad_t / 2, zc])
        u_pad = (cxp - pad_half_len - x_back) / length
    else:
        pads_teeth = []
        tooth_len = rng.uniform(0.005, 0.009)
        for arm, sign in ((arm_a, 1.0), (arm_b, -1.0)):
            for xf in (0.86, 0.92, 0.98):
                base_pt = arm[int(round(xf * (n - 1)))] - np.array([0, sign * arm_ht, 0])
                tp = np.stack([base_pt, base_pt - np.array([0.0, sign * tooth_len, 0.0])])
                tp = np.vstack([tp[0] + np.array([0, sign * 0.001, 0]), tp])
                pads_teeth.append(
                    _Sweep(
                        tp,
                        [arm_hw * 0.5, arm_hw * 0.45, 0.0006],
                        [0.0025, 0.0022, 0.0006],
                        "head",
                        side_hint=(0, 0, 1),
                        segments=8,
                    ).geom
                )
        pads = pads_teeth
        tip_a = arm_a[-1] + np.array([arm_ht * 0.5, 0.0, 0.0])
        tip_b = tip_a * [1, -1, 1]
        mid_a = arm_a[int(round(0.9 * (n - 1)))] - np.array([0.0, arm_ht, 0.0])
        u_pad = 0.8
    geoms += pads
    pad_base = sweep_a.point(u_pad, (0, 0, 1))
    p4 = sweep_a.point(max(grip_u - 0.05, 0.2), (0, 1, 0), depth=-(0.002 if sleeve_style else 0.0))
    chain = np.stack([tip_a, mid_a, pad_base, p4, back_pt])
    lift = np.stack([tip_a, tip_b, pad_base, p4, back_pt])
    grip_side = dict(toward=(0, 1, 0), depth=-(0.002 if sleeve_style else 0.0))
    kps = {
        "mix": chain,
        "flip": chain.copy(),
        "lift_something": lift,
        "mix@funkpoint": np.stack(
            [tip_a, pad_base, sweep_a.point(grip_u, **grip_side), sweep_a.point(grip_u / 2, **grip_side), back_pt]
        ),
    }
    params = dict(
        hinge_style=hinge_style,
        tip_style=tip_style,
        length=length,
        hinge_gap=2 * y_hinge,
        tip_gap=2 * y_tip,
        bow=bow,
        arm_width=2 * arm_hw,
        arm_thickness=2 * arm_ht,
        pad_size=pad_r,
        sleeves=sleeve_style,
    )
    return _finish("tongs", geoms, kps, {}, params)


# ----------------------------------------------------------------------------- whisk


def build_whisk(rng: np.random.Generator) -> ObjectModel:
    """Balloon, French or flat whisk: wire loops gathered into a lathe-turned handle."""
    style = int(rng.integers(3))  # 0 balloon, 1 French (narrow), 2 flat
    if style == 0:
        n_loops, radius, wire_len = int(rng.integers(4, 8)), rng.uniform(0.028, 0.042), rng.uniform(0.12, 0.17)
    elif style == 1:
        n_loops, radius, wire_len = int(rng.integers(4, 7)), rng.uniform(0.016, 0.024), rng.uniform(0.13, 0.18)
    else:
        n_loops, radius, wire_len = int(rng.integers(3, 5)), rng.uniform(0.028, 0.04), rng.uniform(0.11, 0.15)
    # thicker than real wire (~1 mm) so the loops still read at 224 px
    wire_r = rng.uniform(0.0018, 0.0026)
    handle_len, r_h = rng.uniform(0.1, 0.15), rng.uniform(0.01, 0.015)
    r_f = r_h * rng.uniform(0.55, 0.75)
    s_max = rng.uniform(0.6, 0.78)
    q = np.log(0.5) / np.log(s_max)
    zc = 0.05
    s = np.linspace(0.0, 1.0, 20)
    x0 = -0.012  # the wires start inside the handle's ferrule

    def loop_curve(rad: float, length: float) -> tuple[np.ndarray, np.ndarray]:
        x = x0 + (length - x0) * s
        r = r_f * 0.6 * (1 - s) + (rad - r_f * 0.3) * np.sin(np.pi * s**q) ** 0.55
        return x, r

    loops: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (x, r, direction in the yz plane)
    if style == 2:
        for i in range(n_loops):
            k = 1.0 - 0.22 * i
            x, r = loop_curve(radius * k, wire_len * (1 - 0.12 * i))
            loops.append((x, r, np.array([0.0, 1.0, 0.0])))
    else:
        for i in range(n_loops):
            phi = np.pi / 2 + np.pi * i / n_loops
            x, r = loop_curve(radius, wire_len)
            loops.append((x, r, np.array([0.0, np.cos(phi), np.sin(phi)])))
    centre_line = np.array([0.0, 0.0, zc])
    wires = []
    for x, r, d in loops:
        half_a = np.c_[x, np.zeros_like(x), np.zeros_like(x)] + r[:, None] * d
        half_b = np.c_[x, np.zeros_like(x), np.zeros_like(x)] - r[:, None] * d
        path = np.vstack([half_a, half_b[::-1][1:]]) + centre_line
        wires.append(tube(path, wire_r, "wires", segments=6))

    handle_style = int(rng.integers(3))  # 0 straight, 1 bulb, 2 tapered with a hanging ring
    ferrule = rng.uniform(0.015, 0.03)
    z = np.linspace(ferrule, handle_len, 10)
    t = (z - ferrule) / (handle_len - ferrule)
    if handle_style == 0:
        rad = r_h * (0.9 + 0.1 * _smoothstep(t / 0.2))
    elif handle_style == 1:
        rad = r_h * (0.75 + 0.35 * np.sin(np.pi * np.clip(t * 0.8, 0, 1)))
    else:
        rad = r_h * (1.0 - 0.35 * t)
    end_round = rad[-1] * 0.8
    rad = np.where(
        z > handle_len - end_round,
        rad * np.sqrt(np.clip(1 - ((z - (handle_len - end_round)) / end_round) ** 2, 0.09, 1)),
        rad,
    )
    profile = [(0.0, 0.0), (r_f, 0.0), (r_f, ferrule), *zip(rad, z), (0.0, handle_len)]
    frame = frame_from_z((-1, 0, 0), (0, 0, 1))
    handle = lathe(profile, "handle", 16, closed=False, axis_frame=frame, center=centre_line)
    geoms = wires + [handle]
    back_pt = np.array([-handle_len, 0.0, zc])
    if handle_style == 2:
        ring_r = rng.uniform(0.008, 0.012)
        th = np.linspace(0, 2 * np.pi, 18, endpoint=False)
        ring_c = np.array([-handle_len - ring_r + 0.002, 0.0, zc])
        geoms.append(
            tube(
                ring_c + np.stack([ring_r * np.cos(th), ring_r * np.sin(th), 0 * th], axis=1),
                0.0015,
                "handle",
                segments=6,
                closed=True,
            )
        )
        back_pt = ring_c - np.array([ring_r + 0.0015, 0.0, 0.0])

    def wire_point(loop: int, sf: float, outward: float = 1.0) -> np.ndarray:
        x, r, d = loops[loop]
        i = int(round(sf * (len(s) - 1)))
        return centre_line + np.array([x[i], 0.0, 0.0]) + (r[i] + wire_r) * outward * d

    i_max = int(round(s_max * (len(s) - 1))) / (len(s) - 1)
    vertical = int(np.argmax([abs(d[2]) for _, _, d in loops]))
    horizontal = int(np.argmax([abs(d[1]) for _, _, d in loops]))
    apex_x = max(x[-1] for x, _, _ in loops)
    apex = centre_line + np.array([apex_x + wire_r, 0.0, 0.0])
    p4 = centre_line + np.array(
        [-ferrule - 0.2 * (handle_len - ferrule), 0.0, float(np.interp(ferrule + 0.2 * (handle_len - ferrule), z, rad))]
    )
    mix = np.stack([apex, wire_point(vertical, i_max), wire_point(vertical, 0.2), p4, back_pt])
    brush = np.stack([apex, wire_point(horizontal, i_max), wire_point(horizontal, 0.35), p4, back_pt])
    z_grip = ferrule + 0.5 * (handle_len - ferrule)
    ferrule_top = centre_line + np.array([-0.5 * ferrule, 0.0, r_f])
    grip_mid = centre_line + np.array([-z_grip, 0.0, float(np.interp(z_grip, z, rad))])
    kps = {
        "mix": mix,
        "brush_dust": brush,
        "mix@funkpoint": np.stack([apex, wire_point(vertical, 0.2), ferrule_top, grip_mid, back_pt]),
    }
    params = dict(
        style=style,
        n_loops=n_loops,
        balloon_radius=radius,
        wire_length=wire_len,
        wire_radius=wire_r,
        widest_at=s_max,
        handle_length=handle_len,
        handle_radius=r_h,
        handle_style=handle_style,
    )
    return _finish("whisk", geoms, kps, {}, params, front=wires, back=geoms[len(wires) :])


# ----------------------------------------------------------------------------- ladle


def build_ladle(rng: np.random.Generator) -> ObjectModel:
    """A deep thin-walled bowl with a long handle that climbs from the rim (plain, hook or ring end)."""
    bowl_r = rng.uniform(0.035, 0.055)
    depth = bowl_r * rng.uniform(0.55, 1.0)
    wall = rng.uniform(0.0015, 0.003)
    flat = rng.uniform(0.0, 0.45)  # fraction of the radius that is flat bottom
    alpha = np.linspace(0.0, np.pi / 2, 10)
    r_out = bowl_r * (flat + (1 - flat) * np.sin(alpha))
    z_out = depth * (1 - np.cos(alpha))
    r_in = np.maximum(r_out - wall, 0.0)
    z_in = np.maximum(z_out, 0.0) + wall * np.cos(alpha)
    profile = [(0.0, 0.0)] + list(zip(r_out, z_out)) + list(zip(r_in[::-1], z_in[::-1])) + [(0.0, wall)]
    bowl = lathe(profile, "bowl", 32)
    geoms = [bowl]
    rolled = float(rng.random() < 0.5)
    if rolled:
        th = np.linspace(0, 2 * np.pi, 32, endpoint=False)
        geoms.append(
            tube(
                np.stack(
                    [(bowl_r - wall / 2) * np.cos(th), (bowl_r - wall / 2) * np.sin(th), np.full_like(th, depth)],
                    axis=1,
                ),
                rng.uniform(0.0018, 0.0028),
                "bowl",
                segments=6,
                closed=True,
            )
        )

    handle_len = rng.uniform(0.2, 0.3)
    end_style = int(rng.integers(3))  # 0 plain rounded, 1 hook, 2 ring
    round_handle = float(rng.random() < 0.35)
    if round_handle:
        hw0, ht0 = rng.uniform(0.004, 0.006), None
    else:
        hw0, ht0 = rng.uniform(0.006, 0.01), rng.uniform(0.0013, 0.002)
    beta, gamma = np.deg2rad(rng.uniform(70, 85)), np.deg2rad(rng.uniform(15, 40))
    climb, bend = rng.uniform(0.02, 0.05), rng.uniform(0.03, 0.06)
    hook_r = rng.uniform(0.012, 0.02)
    hook_len = np.pi * 1.1 * hook_r if end_style == 1 else 0.0
    n = 40
    arc = np.linspace(0.0, handle_len + hook_len, n)
    heading = beta + (gamma - beta) * _smoothstep((arc - climb) / bend)
    heading = np.where(arc > handle_len, gamma - (arc - handle_len) / hook_r, heading)
    step = arc[1] - arc[0]
    d = np.stack([-np.cos(heading), np.zeros(n), np.sin(heading)], axis=1) * step
    start = np.array([-bowl_r - (ht0 or hw0) + 0.0005, 0.0, depth * 0.45])
    path = start + np.vstack([np.zeros(3), np.cumsum(d[:-1], axis=0)])
    uu = arc / arc[-1]
    widen = 1.0 + (0.6 if end_style == 2 else 0.35) * _smoothstep((uu - 0.7) / 0.25) * (end_style != 1)
    hw = hw0 * widen
    if end_style != 1:
        hw = _rounded_end(uu, hw, arc[-1])
    ht = hw if round_handle else np.full(n, ht0)
    handle = _Sweep(path, hw, ht, "handle", squareness=2.0 if round_handle else 3.0, segments=10)
    geoms.append(handle.geom)
    if end_style == 2:
        ring_r = hw[-8] * 0.55
        centre = path[-6]
        tang, side = _unit(path[-5] - path[-7]), np.array([0.0, 1.0, 0.0])
        th = np.linspace(0, 2 * np.pi, 16, endpoint=False)
        ring_pts = centre + ring_r * (np.outer(np.cos(th), tang) + np.outer(np.sin(th), side))
        geoms.append(tube(ring_pts, 0.0014, "handle", segments=6, closed=True))

    # the far end of the grip: the handle point farthest from the bowl axis
    far = int(np.argmax(np.hypot(path[:, 0], path[:, 1])))
    u_far = float(
        np.linalg.norm(np.diff(path[: far + 1], axis=0), axis=1).sum()
        / np.linalg.norm(np.diff(path, axis=0), axis=1).sum()
    )
    p4, p5 = handle.point(0.15, (1, 0, 1)), handle.point(min(u_far, 0.985), (-1, 0, 1))

    def outer(al: float, th: float) -> np.ndarray:
        r = bowl_r * (flat + (1 - flat) * np.sin(al))
        return np.array([r * np.cos(th), r * np.sin(th), depth * (1 - np.cos(al))])

    rim_front = np.array([bowl_r - wall / 2, 0.0, depth])
    pound = np.stack([outer(np.deg2rad(55), 0.0), outer(0.0, 0.0), outer(np.deg2rad(55), np.pi), p4, p5])
    lift = np.stack(
        [rim_front, np.array([0.0, 0.0, wall]), outer(np.pi / 2, np.deg2rad(150)) * [0.97, 0.97, 1], p4, p5]
    )
    nail = np.stack(
        [
            rim_front,
            outer(np.pi / 2, np.pi / 2) * [1, 0.97, 1],
            outer(np.pi / 2, np.deg2rad(150)) * [0.97, 0.97, 1],
            p4,
            p5,
        ]
    )
    flip = np.stack([rim_front, outer(np.deg2rad(60), 0.0), outer(0.0, 0.0), p4, p5])
    kps = {
        "mash_pound": pound,
        "lift_something": lift,
        "pull_out_nail": nail,
        "flip": flip,
        # FunKPoint's pull_out_nail: p3, p4 along the lever arm (objects.base.PLACEMENTS)
        "pull_out_nail@funkpoint": np.stack(
            [nail[0], nail[1], handle.point(0.35 * u_far, (1, 0, 1)), handle.point(0.7 * u_far, (1, 0, 1)), p5]
        ),
    }
    params = dict(
        bowl_radius=bowl_r,
        bowl_depth=depth,
        wall=wall,
        flat_bottom=flat,
        rolled_rim=rolled,
        handle_length=handle_len,
        end_style=end_style,
        round_handle=round_handle,
        handle_width=2 * hw0,
        climb_angle=beta,
        handle_angle=gamma,
    )
    bowl_geoms = geoms[: 2 if rolled else 1]
    return _finish("ladle", geoms, kps, {}, params, front=bowl_geoms, back=geoms[len(bowl_geoms) :])


# ----------------------------------------------------------------------------- shovel (held out)


def build_shovel(rng: np.random.Generator) -> ObjectModel:
    """Round-point, square or garden-spade blade on a socketed shaft with a D, T or plain grip."""
    blade_style = int(rng.integers(3))  # 0 round point, 1 square, 2 spade
    grip_style = int(rng.integers(3))  # 0 D-grip, 1 T-grip, 2 long plain shaft with a knob
    blade_len = rng.uniform(0.26, 0.34) if blade_style != 2 else rng.uniform(0.24, 0.3)
    width = rng.uniform(0.2, 0.27) if blade_style != 2 else rng.uniform(0.16, 0.2)
    thick = rng.uniform(0.002, 0.003)
    dish = rng.uniform(0.015, 0.035) if blade_style != 2 else rng.uniform(0.004, 0.012)
    back_lift = rng.uniform(0.005, 0.02)
    rows, cols = 18, 9
    u = np.linspace(0.0, 1.0, rows)
    if blade_style == 0:
        u0, p = rng.uniform(0.35, 0.5), rng.uniform(1.5, 2.1)
        k = np.clip((u - u0) / (1 - u0), 0, 1)
        w = width * (0.88 + 0.12 * _smoothstep(u / u0)) * (1 - k**p) ** (1 / p)
    else:
        corner = rng.uniform(0.01, 0.03)
        xs = u * blade_len
        w = width * (0.92 + 0.08 * u)
        over = np.clip(xs - (blade_len - corner), 0, None)
        w = w - 2 * (corner - np.sqrt(np.maximum(corner**2 - over**2, 0)))
    w = np.maximum(w, 0.004)

    def top_z(x: np.ndarray | float, y: np.ndarray | float) -> np.ndarray:
        return dish * (2 * np.asarray(y) / width) ** 2 + back_lift * (1 - np.asarray(x) / blade_len) ** 2 + thick

    rings = []
    for i in range(rows):
        x = u[i] * blade_len
        ys = np.linspace(w[i] / 2, -w[i] / 2, cols)
        top = np.stack([np.full(cols, x), ys, top_z(x, ys)], axis=1)
        bottom = top[::-1] - np.array([0.0, 0.0, thick])
        rings.append(np.vstack([top, bottom]))
    blade = _loft(rings, "blade")

    lift = np.deg2rad(rng.uniform(12, 25))
    shaft_dir = np.array([-np.cos(lift), 0.0, np.sin(lift)])
    socket_front = blade_len * rng.uniform(0.3, 0.42)
    socket_len = rng.uniform(0.15, 0.24)
    shaft_r = rng.uniform(0.015, 0.019)
    s = np.linspace(0.0, 1.0, 12)
    origin = np.array([socket_front, 0.0, float(top_z(socket_front, 0.0))])
    # the socket starts as a flat tongue on the blade and rounds into a tube around the shaft
    flat_part = _smoothstep(s / 0.45)
    sock_path = origin + np.outer(s * socket_len, shaft_dir)
    sock_path[:, 2] += (shaft_r + 0.002) * flat_part
    sock_hw = 0.035 * (1 - flat_part) + (shaft_r + 0.003) * flat_part
    sock_ht = 0.004 * (1 - flat_part) + (shaft_r + 0.003) * flat_part
    socket = _Sweep(sock_path, sock_hw, sock_ht, "blade", segments=12, squareness=2.0)
    total = rng.uniform(0.95, 1.2) if grip_style != 2 else rng.uniform(1.25, 1.5)
    shaft_len = total - blade_len
    shaft_path = sock_path[-1] + np.outer(np.linspace(-0.03, shaft_len - socket_len, 4), shaft_dir)
    shaft = _Sweep(shaft_path, shaft_r, shaft_r, "handle", segments=14)
    end = shaft_path[-1]
    y_axis = np.array([0.0, 1.0, 0.0])
    grip_geoms: list[Geom] = []
    if grip_style == 0:
        d_len, d_w = rng.uniform(0.11, 0.15), rng.uniform(0.1, 0.13)
        bar_r = rng.uniform(0.014, 0.018)
        tt = np.linspace(0.0, 1.0, 12)
        for sgn in (1, -1):
            pts = np.array(
                [end + shaft_dir * (d_len * t_) + y_axis * (sgn * d_w / 2 * _smoothstep(t_ / 0.6) ** 0.6) for t_ in tt]
            )
            grip_geoms.append(
                tube(np.vstack([end - shaft_dir * 0.02, pts]), rng.uniform(0.008, 0.011), "grip", segments=8)
            )
        bar_c = end + shaft_dir * d_len
        grip_geoms.append(capsule(bar_c + y_axis * d_w / 2, bar_c - y_axis * d_w / 2, bar_r, "grip"))
        p5 = bar_c + shaft_dir * bar_r
    elif grip_style == 1:
        bar_half, bar_r = rng.uniform(0.05, 0.07), rng.uniform(0.014, 0.018)
        bar_c = end + shaft_dir * bar_r
        grip_geoms.append(capsule(bar_c + y_axis * bar_half, bar_c - y_axis * bar_half, bar_r, "grip"))
        p5 = bar_c + shaft_dir * bar_r
    else:
        knob_r = shaft_r * rng.uniform(1.15, 1.4)
        knob_c = end + shaft_dir * knob_r * 0.5
        grip_geoms.append(sphere(knob_c, knob_r, "grip"))
        p5 = knob_c + shaft_dir * knob_r

    tip_x = blade_len
    tip = np.array([tip_x, 0.0, float(top_z(tip_x, 0.0)) - thick / 2])
    centre = np.array([blade_len * 0.72, 0.0, float(top_z(blade_len * 0.72, 0.0))])
    back = np.array([socket_front + 0.012, 0.0, float(top_z(socket_front + 0.012, 0.0))])
    p4 = shaft.point(0.25, np.cross(shaft_dir, y_axis) * -1)
    chain = np.stack([tip, centre, back, p4, p5])
    outline = np.vstack([np.c_[u * blade_len, w / 2], np.c_[u[::-1] * blade_len, -w[::-1] / 2]])
    c1 = outline[np.argmax(outline[:, 0] + outline[:, 1])]
    c2 = outline[np.argmax(outline[:, 0] - outline[:, 1])]
    corner_pt = lambda c: np.array([c[0], c[1], float(top_z(c[0], c[1])) - thick / 2])  # noqa: E731
    scrape = np.stack([corner_pt(c1), tip, corner_pt(c2), p4, p5])
    kps = {"scoop": chain, "lift_something": chain.copy(), "scrape": scrape}
    params = dict(
        blade_style=blade_style,
        grip_style=grip_style,
        blade_length=blade_len,
        blade_width=width,
        thickness=thick,
        dish=dish,
        lift_angle=lift,
        socket_length=socket_len,
        shaft_radius=shaft_r,
        total_length=total,
    )
    geoms = [blade, socket.geom, shaft.geom] + grip_geoms
    return _finish("shovel", geoms, kps, {}, params, front=[blade], back=grip_geoms)


BUILDERS: dict[str, Builder] = {
    "spoon": build_spoon,
    "tablefork": build_tablefork,
    "spatula": build_spatula,
    "tongs": build_tongs,
    "whisk": build_whisk,
    "ladle": build_ladle,
    "shovel": build_shovel,
}
