"""One MuJoCo scene per object instance: pose, materials, lights, camera, render, projection, visibility.

:func:`render_instance` places a procedural :class:`ObjectModel` in a randomly
lit, randomly textured scene (optionally on a table), renders several random
views of it through one offscreen GL context, composites a varied 2D
background where nothing was rendered, and projects every task's keypoints
into each view with a visibility flag read from the depth buffer.

Conventions (shared with :mod:`funk_perception.data.synth`):

- Pixels: ``(x, y)`` continuous coordinates, ``(0, 0)`` the top-left corner of
  the top-left pixel, so pixel ``(i, j)`` covers ``[i, i+1) x [j, j+1)`` and a
  normalised coordinate is ``x / width``.
- :class:`Camera` stores MuJoCo's frame (columns: right, up, backward) and
  exposes OpenCV-style intrinsics/extrinsics for users outside MuJoCo.
- Depth is metres along the optical axis (as the depth buffer), 0 where no
  surface was rendered.

Speed (docs/DESIGN.md, "CPU rendering speed"): no shadows, no multisampling, an offscreen buffer of the
image size, a tiny shadow map (its allocation dominates ``MjrContext``
creation otherwise), one GL context per process reused by every scene.
"""

from __future__ import annotations

import funk_perception.offscreen_gl  # noqa: F401  isort: skip  (first: MUJOCO_GL before MuJoCo loads)

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import mujoco
import numpy as np
from PIL import Image

from funk_perception.data.objects.base import Geom, ObjectModel

# ----------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class SceneConfig:
    """Randomisation ranges for scenes and views; the defaults are the dataset's."""

    width: int = 224
    height: int = 224
    table_probability: float = 0.65  # else the object floats over a 2D background
    # the object's projected bounding box, longer side / image side: photos of tools are
    # framed on the object, so most renders must be too (1.1.0 framed a bounding sphere
    # at 0.4-0.9, which left elongated objects small in the frame)
    fill_range: tuple[float, float] = (0.55, 0.95)
    fovy_range: tuple[float, float] = (30.0, 55.0)  # vertical field of view, degrees
    # photos are mostly taken from the side or a little above; top-down views stay possible
    elevation_range_table: tuple[float, float] = (8.0, 60.0)  # degrees above the table
    elevation_range_free: tuple[float, float] = (-25.0, 60.0)
    roll_std: float = 20.0  # in-plane camera rotation, degrees (clipped at roll_max)
    roll_max: float = 60.0
    # photographers frame an elongated object lengthwise: with this probability the roll instead
    # turns the object's projected long axis to within axis_angle_max degrees of horizontal (either
    # way round, so no left-right orientation is implied); 0 keeps the sampled roll and draws nothing
    axis_framing_probability: float = 0.0
    axis_angle_max: float = 35.0
    lying_probability: float = 0.15  # object turned onto its side (90 degrees)
    tilt_probability: float = 0.25  # object tilted by tilt_range degrees
    tilt_range: tuple[float, float] = (8.0, 35.0)
    lights_range: tuple[int, int] = (1, 3)
    spot_probability: float = 0.4
    plain_material_probability: float = 0.35
    builtin_texture_probability: float = 0.25  # else a custom numpy texture
    texture_size: int = 64
    reflectance_probability: float = 0.2
    photo_background_probability: float = 0.35
    # product shots: white or one soft colour behind the object
    plain_background_probability: float = 0.3
    blur_probability: float = 0.3
    noise_std_max: float = 4.0  # sensor noise, in 8-bit levels
    visibility_tolerance: float = 0.003  # metres, on top of each keypoint's radius
    visibility_pixel_slack: float = 2.0  # tolerance grows by this many pixel footprints
    margin_px: float = 2.0  # keypoints and object stay this far inside the image
    max_framing_attempts: int = 30

    def __post_init__(self) -> None:
        if self.width < 16 or self.height < 16:
            raise ValueError(f"SceneConfig: expected width and height >= 16 px, found {self.width} x {self.height}")
        lo, hi = self.fill_range
        if not 0.05 <= lo <= hi <= 1.0:
            raise ValueError(f"SceneConfig.fill_range: expected 0.05 <= lo <= hi <= 1, found {self.fill_range}")
        if not 0.0 <= self.axis_framing_probability <= 1.0:
            raise ValueError(
                f"SceneConfig.axis_framing_probability: expected 0 <= p <= 1, found {self.axis_framing_probability}"
            )
        if not 0.0 <= self.axis_angle_max <= 90.0:
            raise ValueError(f"SceneConfig.axis_angle_max: expected 0 to 90 degrees, found {self.axis_angle_max}")
        if not 1 <= self.lights_range[0] <= self.lights_range[1]:
            raise ValueError(f"SceneConfig.lights_range: expected 1 <= lo <= hi, found {self.lights_range}")


# ----------------------------------------------------------------------------- camera and projection


@dataclass(frozen=True)
class Camera:
    """A pinhole camera. ``rotation`` columns are the camera's right, up and backward axes (MuJoCo)."""

    width: int
    height: int
    fovy: float  # vertical field of view, degrees
    position: np.ndarray  # (3,) world
    rotation: np.ndarray  # (3, 3) world-from-camera

    @property
    def focal(self) -> float:
        return 0.5 * self.height / math.tan(math.radians(self.fovy) / 2)

    def intrinsics(self) -> np.ndarray:
        """OpenCV K (pixel-corner origin convention of this module; square pixels)."""
        f = self.focal
        return np.array([[f, 0.0, self.width / 2], [0.0, f, self.height / 2], [0.0, 0.0, 1.0]])

    def extrinsics(self) -> tuple[np.ndarray, np.ndarray]:
        """OpenCV world-to-camera (R, t): x right, y down, z forward; x_cam = R @ x_world + t."""
        r_cv = np.diag([1.0, -1.0, -1.0]) @ self.rotation.T
        return r_cv, -r_cv @ self.position

    def pixel_size_at(self, depth: np.ndarray | float) -> np.ndarray | float:
        """Metres spanned by one pixel at ``depth``."""
        return np.asarray(depth) / self.focal

    def to_dict(self) -> dict:
        r_cv, t = self.extrinsics()
        return {
            "width": self.width,
            "height": self.height,
            "fovy_deg": float(self.fovy),
            "K": np.round(self.intrinsics(), 6).tolist(),
            "R_world_to_cam_opencv": np.round(r_cv, 9).tolist(),
            "t_world_to_cam_opencv": np.round(t, 9).tolist(),
            "position": np.round(self.position, 9).tolist(),
        }


def project(points_world: np.ndarray, camera: Camera) -> tuple[np.ndarray, np.ndarray]:
    """Project (N, 3) world points: (N, 2) pixel coordinates (x right, y down) and (N,) depth in metres."""
    pts = np.asarray(points_world, dtype=np.float64).reshape(-1, 3)
    r_cv, t = camera.extrinsics()
    cam = pts @ r_cv.T + t
    depth = cam[:, 2]
    safe = np.where(np.abs(depth) < 1e-12, 1e-12, depth)
    k = camera.intrinsics()
    pixels = np.stack([k[0, 0] * cam[:, 0] / safe + k[0, 2], k[1, 1] * cam[:, 1] / safe + k[1, 2]], axis=1)
    return pixels, depth


def look_at_camera(
    target: Sequence[float],
    distance: float,
    azimuth: float,
    elevation: float,
    roll: float,
    fovy: float,
    width: int,
    height: int,
) -> Camera:
    """A camera ``distance`` from ``target`` at azimuth/elevation (degrees), rolled about its optical axis."""
    az, el = math.radians(azimuth), math.radians(elevation)
    back = np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
    position = np.asarray(target, dtype=np.float64) + distance * back
    right = np.cross(np.array([0.0, 0.0, 1.0]), back)
    if np.linalg.norm(right) < 1e-6:  # looking straight down or up
        right = np.array([math.cos(az + math.pi / 2), math.sin(az + math.pi / 2), 0.0])
    right /= np.linalg.norm(right)
    up = np.cross(back, right)
    c, s = math.cos(math.radians(roll)), math.sin(math.radians(roll))
    right, up = c * right + s * up, -s * right + c * up
    return Camera(width, height, float(fovy), position, np.stack([right, up, back], axis=1))


def keypoint_visibility(
    pixels: np.ndarray,
    keypoint_depth: np.ndarray,
    radii: np.ndarray,
    depth: np.ndarray,
    mask: np.ndarray,
    camera: Camera,
    tolerance: float = 0.003,
    pixel_slack: float = 2.0,
) -> np.ndarray:
    """Which keypoints the camera sees: (N,) bool.

    A keypoint is visible when it projects inside the image in front of the
    camera and, at its pixel or one of the 8 around it (a point on a thin tip
    or a silhouette edge may fall just off the rasterised object), the object
    mask is set and the rendered surface is no more than ``radius +
    tolerance`` (plus ``pixel_slack`` pixel footprints, for surfaces seen at
    a grazing angle) in front of the keypoint. Anything nearer (another part of
    the object, a table edge) occludes it.
    """
    h, w = mask.shape
    pixels = np.asarray(pixels, dtype=np.float64)
    visible = np.zeros(len(pixels), dtype=bool)
    for i, ((x, y), z, r) in enumerate(zip(pixels, keypoint_depth, radii)):
        if not (z > 0 and 0 <= x < w and 0 <= y < h):
            continue
        col, row = int(x), int(y)
        r0, r1, c0, c1 = max(row - 1, 0), min(row + 2, h), max(col - 1, 0), min(col + 2, w)
        window_mask = mask[r0:r1, c0:c1]
        window_depth = depth[r0:r1, c0:c1]
        allowed = r + tolerance + pixel_slack * float(camera.pixel_size_at(z))
        visible[i] = bool(np.any(window_mask & (window_depth >= z - allowed)))
    return visible


# ----------------------------------------------------------------------------- object geometry


def _quat_to_mat(quat: Sequence[float]) -> np.ndarray:
    mat = np.zeros(9)
    q = np.asarray(quat, dtype=np.float64)
    mujoco.mju_quat2Mat(mat, q / np.linalg.norm(q))
    return mat.reshape(3, 3)


_SPHERE_DIRS = np.array([d for d in np.ndindex(3, 3, 3) if d != (1, 1, 1)], dtype=np.float64) - 1.0
_SPHERE_DIRS /= np.linalg.norm(_SPHERE_DIRS, axis=1, keepdims=True)


def _geom_points(g: Geom) -> np.ndarray:
    """Points on (or tightly around) a geom's surface, object frame; used for framing and resting."""
    if g.kind == "mesh":
        return g.mesh.vertices
    if g.fromto is not None:
        a, b = np.asarray(g.fromto[:3]), np.asarray(g.fromto[3:])
        rot = np.eye(3)
        axis = b - a
        length = np.linalg.norm(axis)
        if length > 1e-12:
            z = axis / length
            x = np.cross(z, [1.0, 0.0, 0.0]) if abs(z[0]) < 0.9 else np.cross(z, [0.0, 1.0, 0.0])
            x /= np.linalg.norm(x)
            rot = np.stack([x, np.cross(z, x), z], axis=1)
        center, half = (a + b) / 2, length / 2
    else:
        rot, center = _quat_to_mat(g.quat), np.asarray(g.pos)
        half = g.size[1] if len(g.size) > 1 else 0.0
    size = np.asarray(g.size, dtype=np.float64)
    if g.kind == "box":
        local = np.array(list(np.ndindex(2, 2, 2)), dtype=np.float64) * 2 - 1
        local = local * size[:3]
    elif g.kind in ("sphere", "ellipsoid"):
        radii = np.full(3, size[0]) if g.kind == "sphere" else size[:3]
        local = _SPHERE_DIRS * radii
    else:  # capsule / cylinder: rings at both ends, plus the caps' poles for a capsule
        theta = np.linspace(0, 2 * np.pi, 16, endpoint=False)
        ring = np.stack([size[0] * np.cos(theta), size[0] * np.sin(theta), np.zeros_like(theta)], axis=1)
        local = np.vstack([ring + [0, 0, -half], ring + [0, 0, half]])
        if g.kind == "capsule":
            cap = _SPHERE_DIRS * size[0]
            local = np.vstack([local, cap + [0, 0, -half], cap + [0, 0, half]])
    return local @ rot.T + center


def object_points(obj: ObjectModel) -> np.ndarray:
    """Surface points of the whole object plus all its keypoints (those it is framed by), (N, 3) object frame."""
    keypoints = obj.keypoints if obj.framing_keypoints is None else obj.framing_keypoints
    parts = [_geom_points(g) for g in obj.geoms] + [pts for pts in keypoints.values()]
    return np.vstack(parts)


def _axis_angle(axis: Sequence[float], angle: float) -> np.ndarray:
    axis = np.asarray(axis, dtype=np.float64)
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * (k @ k)


def sample_object_pose(
    obj: ObjectModel, rng: np.random.Generator, config: SceneConfig
) -> tuple[np.ndarray, np.ndarray]:
    """World-from-object (R, t): a random turn about z, sometimes tilted or lying on its side, resting on z = 0."""
    rot = _axis_angle([0, 0, 1], rng.uniform(0, 2 * np.pi))
    u = rng.random()
    if u < config.lying_probability:
        tilt = math.pi / 2
    elif u < config.lying_probability + config.tilt_probability:
        tilt = math.radians(rng.uniform(*config.tilt_range))
    else:
        tilt = 0.0
    if tilt:
        a = rng.uniform(0, 2 * np.pi)
        rot = _axis_angle([math.cos(a), math.sin(a), 0.0], tilt) @ rot
    pts = object_points(obj) @ rot.T
    return rot, np.array([0.0, 0.0, -pts[:, 2].min()])


# ----------------------------------------------------------------------------- procedural textures and backgrounds


def _hsv_color(rng: np.random.Generator, sat_range=(0.0, 1.0), val_range=(0.2, 1.0)) -> np.ndarray:
    hsv = np.uint8([[[rng.integers(0, 180), int(255 * rng.uniform(*sat_range)), int(255 * rng.uniform(*val_range))]]])
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float64) / 255.0


def _random_color(rng: np.random.Generator) -> np.ndarray:
    """Object-like colours: a mix of saturated paints, pale plastics, greys and metals."""
    kind = rng.random()
    if kind < 0.3:
        return _hsv_color(rng, (0.0, 0.12), (0.25, 0.95))
    if kind < 0.45:
        return _hsv_color(rng, (0.1, 0.35), (0.6, 1.0))
    return _hsv_color(rng, (0.35, 1.0), (0.3, 1.0))


def fractal_noise(rng: np.random.Generator, height: int, width: int, octaves: int = 4, base: int = 4) -> np.ndarray:
    """Perlin-like value noise in [0, 1]: random grids upsampled (bicubic) and summed over octaves."""
    out = np.zeros((height, width), np.float32)
    amp, total = 1.0, 0.0
    for o in range(octaves):
        cells = base * 2**o
        grid = rng.random((cells + 1, cells + 1)).astype(np.float32)
        out += amp * cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
        total += amp
        amp *= 0.5
    out /= total
    lo, hi = float(out.min()), float(out.max())
    return (out - lo) / max(hi - lo, 1e-6)


def _palette(values: np.ndarray, colors: Sequence[np.ndarray]) -> np.ndarray:
    """Map [0, 1] values onto a piecewise-linear colour ramp -> uint8 RGB."""
    stops = np.linspace(0, 1, len(colors))
    rgb = np.stack([np.interp(values, stops, [c[i] for c in colors]) for i in range(3)], axis=-1)
    return np.clip(rgb * 255 + 0.5, 0, 255).astype(np.uint8)


def _coords(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    return x / max(width, height), y / max(width, height)


def texture_image(rng: np.random.Generator, size: int) -> tuple[np.ndarray, str]:
    """A square RGB texture from numpy: noise, stripes or wood grain. Returns (image, kind)."""
    kind = ("noise", "stripes", "wood")[int(rng.integers(0, 3))]
    x, y = _coords(size, size)
    c1, c2 = _random_color(rng), _random_color(rng)
    if kind == "noise":
        values = fractal_noise(rng, size, size, octaves=int(rng.integers(2, 5)), base=int(rng.integers(2, 6)))
    elif kind == "stripes":
        # integer frequency along each axis keeps the texture tileable
        fx, fy = int(rng.integers(0, 6)), int(rng.integers(1, 6))
        phase = 2 * np.pi * (fx * x + fy * y)
        values = 0.5 + 0.5 * np.sin(phase)
        if rng.random() < 0.5:
            values = (values > 0.5).astype(np.float32)
    else:
        wood = np.array([rng.uniform(0.45, 0.8), rng.uniform(0.25, 0.5), rng.uniform(0.1, 0.25)])
        c1, c2 = wood, wood * rng.uniform(0.45, 0.75)
        warp = fractal_noise(rng, size, size, octaves=3, base=3)
        rings = np.sin(2 * np.pi * (rng.uniform(3, 9) * (y + 0.15 * warp) + 0.3 * warp))
        values = 0.5 + 0.5 * rings
    return _palette(values, [c1, c2]), kind


# Only images whose scikit-image docstrings state public domain or CC0 (the
# Middlebury motorcycle and the scanned page state no licence), so rendered
# images that contain crops of them can be committed as samples.
_PHOTO_NAMES = (
    "astronaut.png",
    "coffee.png",
    "chelsea.png",
    "rocket.jpg",
    "coins.png",
    "brick.png",
    "grass.png",
    "gravel.png",
    "camera.png",
    "hubble_deep_field.jpg",
    "text.png",
)
_PHOTOS: list[np.ndarray] | None = None


def _photo_paths() -> list[Path]:
    """Real photos that ship inside installed wheels (scikit-image sample data, matplotlib sample data)."""
    import importlib.util

    paths: list[Path] = []
    spec = importlib.util.find_spec("skimage.data")
    if spec is not None and spec.origin:
        root = Path(spec.origin).parent
        paths += [root / n for n in _PHOTO_NAMES if (root / n).is_file()]
    import matplotlib

    sample = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    if sample.is_file():
        paths.append(sample)
    return paths


def _photos() -> list[np.ndarray]:
    global _PHOTOS
    if _PHOTOS is None:
        photos = []
        for path in _photo_paths():
            # PIL rather than cv2: libpng prints an iCCP warning for one of these files on every load
            with Image.open(path) as im:
                rgb = np.asarray(im.convert("RGB"))
            if min(rgb.shape[:2]) >= 64:
                photos.append(rgb)
        _PHOTOS = photos
    return _PHOTOS


def _photo_crop(rng: np.random.Generator, height: int, width: int) -> np.ndarray | None:
    photos = _photos()
    if not photos:
        return None
    photo = photos[int(rng.integers(0, len(photos)))]
    ph, pw = photo.shape[:2]
    side = int(min(ph, pw) * rng.uniform(0.25, 1.0))
    y0, x0 = int(rng.integers(0, ph - side + 1)), int(rng.integers(0, pw - side + 1))
    crop = cv2.resize(photo[y0 : y0 + side, x0 : x0 + side], (width, height), interpolation=cv2.INTER_AREA)
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    # colour jitter: a hue turn and a gain so a handful of photos give many backgrounds
    hsv = cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_RGB2HSV).astype(np.int32)
    hsv[..., 0] = (hsv[..., 0] + int(rng.integers(0, 180))) % 180
    hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(0.5, 1.3) + rng.uniform(0, 60), 0, 255)
    hsv[..., 2] = np.clip(hsv[..., 2] * rng.uniform(0.6, 1.2), 0, 255)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)


BACKGROUND_KINDS: tuple[str, ...] = ("gradient", "noise", "stripes", "checks", "shapes", "plain", "photo")
_PROCEDURAL_KINDS = BACKGROUND_KINDS[:5]


def _plain_background(rng: np.random.Generator, x: np.ndarray, y: np.ndarray, u: np.ndarray) -> np.ndarray:
    """A studio backdrop: mostly white or light grey, else one colour, with soft shading."""
    if rng.random() < 0.6:
        base = np.full(3, rng.uniform(0.82, 1.0)) * rng.uniform(0.97, 1.0, 3)
    else:
        base = _random_color(rng)
    ramp = (u - u.min()) / max(float(u.max() - u.min()), 1e-6)
    r2 = (x - rng.uniform(0.3, 0.7)) ** 2 + (y - rng.uniform(0.3, 0.7)) ** 2
    shade = 1.0 - rng.uniform(0.0, 0.15) * ramp - rng.uniform(0.0, 0.25) * r2
    return np.clip(base[None, None, :] * shade[..., None] * 255, 0, 255).astype(np.float32)


def make_background(
    rng: np.random.Generator, height: int, width: int, photo_probability: float = 0.35, plain_probability: float = 0.0
) -> tuple[np.ndarray, str]:
    """A varied, never flat, HxWx3 uint8 background and its kind (one of BACKGROUND_KINDS)."""
    if rng.random() < photo_probability:
        photo = _photo_crop(rng, height, width)
        if photo is not None:
            return photo, "photo"
    x, y = _coords(height, width)
    angle = rng.uniform(0, 2 * np.pi)
    u = x * math.cos(angle) + y * math.sin(angle)
    if rng.random() < plain_probability / max(1.0 - photo_probability, 1e-6):
        kind = "plain"
        image = _plain_background(rng, x, y, u)
        grain = 3.0 * rng.standard_normal((height, width, 1), dtype=np.float32)
        return np.clip(image + grain, 0, 255).astype(np.uint8), kind
    kind = _PROCEDURAL_KINDS[int(rng.integers(0, len(_PROCEDURAL_KINDS)))]
    c1, c2, c3 = _random_color(rng), _random_color(rng), _random_color(rng)
    if kind == "gradient":
        values = (u - u.min()) / max(float(u.max() - u.min()), 1e-6)
        image = _palette(values, [c1, c2, c3])
    elif kind == "noise":
        image = _palette(
            fractal_noise(rng, height, width, octaves=int(rng.integers(3, 6)), base=int(rng.integers(2, 6))),
            [c1, c2, c3],
        )
    elif kind == "stripes":
        values = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(3, 20) * u + rng.uniform(0, 6.3))
        if rng.random() < 0.5:
            values = (values > 0.5).astype(np.float32)
        image = _palette(values, [c1, c2])
    elif kind == "checks":
        v = -x * math.sin(angle) + y * math.cos(angle)
        n = rng.uniform(3, 14)
        values = ((np.floor(u * n) + np.floor(v * n)) % 2).astype(np.float32)
        image = _palette(values, [c1, c2])
    else:  # blurred shapes over a gradient
        values = (u - u.min()) / max(float(u.max() - u.min()), 1e-6)
        image = np.ascontiguousarray(_palette(values, [c1, c2]))
        for _ in range(int(rng.integers(4, 14))):
            color = tuple(int(v) for v in (_random_color(rng) * 255))
            cx, cy = int(rng.integers(0, width)), int(rng.integers(0, height))
            r = int(rng.integers(max(width // 20, 2), max(width // 3, 3)))
            if rng.random() < 0.5:
                cv2.circle(image, (cx, cy), r, color, -1)
            else:
                cv2.rectangle(image, (cx - r, cy - r // 2), (cx + r, cy + r // 2), color, -1)
        sigma = rng.uniform(1.0, 6.0) * width / 224
        image = cv2.GaussianBlur(image, (0, 0), sigma)
    # a little grain keeps even smooth gradients from being flat regions
    # one luminance channel, float32: per-channel float64 normals cost more than the rest of the background
    grain = 3.0 * rng.standard_normal((height, width, 1), dtype=np.float32)
    return np.clip(image.astype(np.float32) + grain, 0, 255).astype(np.uint8), kind


# ----------------------------------------------------------------------------- lights


def color_temperature_rgb(kelvin: float) -> np.ndarray:
    """Approximate RGB (max 1) of a black body at ``kelvin`` (Tanner Helland's fit, 1000-40000 K)."""
    t = kelvin / 100.0
    r = 255.0 if t <= 66 else 329.698727446 * (t - 60) ** -0.1332047592
    g = 99.4708025861 * math.log(t) - 161.1195681661 if t <= 66 else 288.1221695283 * (t - 60) ** -0.0755148492
    if t >= 66:
        b = 255.0
    elif t <= 19:
        b = 0.0
    else:
        b = 138.5177312231 * math.log(t - 10) - 305.0447927307
    rgb = np.clip(np.array([r, g, b]), 0, 255) / 255.0
    return rgb / rgb.max()


# ----------------------------------------------------------------------------- scene construction


OBJECT_BODY = "object"
TABLE_GEOM = "table"
CAMERA_NAME = "view"


@dataclass
class SceneInfo:
    """What was randomised when a scene was built (recorded with each instance)."""

    has_table: bool
    rotation: np.ndarray
    translation: np.ndarray
    materials: dict[str, str] = field(default_factory=dict)  # part -> texture kind
    lights: list[str] = field(default_factory=list)
    table_texture: str = ""


def _add_material(
    spec: mujoco.MjSpec, name: str, rng: np.random.Generator, config: SceneConfig, textured: bool = False
) -> str:
    """A random material (and maybe a texture) named ``name``; returns the texture kind.

    ``textured`` rules out a plain colour (a table filling the frame must not be flat).
    """
    mat = spec.add_material()
    mat.name = name
    color = _random_color(rng)
    # steel, glass and glazed ceramic in photos carry strong highlights
    mat.specular = float(rng.uniform(0.1, 1.0))
    mat.shininess = float(rng.uniform(0.1, 1.0))
    mat.reflectance = float(rng.uniform(0.05, 0.25)) if rng.random() < config.reflectance_probability else 0.0
    u = rng.random()
    if textured:
        u = config.plain_material_probability + u * (1 - config.plain_material_probability)
    if u < config.plain_material_probability:
        mat.rgba = [*color, 1.0]
        return "plain"
    tex = spec.add_texture()
    tex.name = f"{name}_tex"
    tex.type = mujoco.mjtTexture.mjTEXTURE_2D
    if u < config.plain_material_probability + config.builtin_texture_probability:
        builtin = (
            mujoco.mjtBuiltin.mjBUILTIN_CHECKER,
            mujoco.mjtBuiltin.mjBUILTIN_GRADIENT,
            mujoco.mjtBuiltin.mjBUILTIN_FLAT,
        )
        choice = int(rng.integers(0, 3))
        tex.builtin = builtin[choice]
        tex.width = tex.height = 64
        tex.rgb1 = _random_color(rng).tolist()
        tex.rgb2 = _random_color(rng).tolist()
        if choice == 2:  # flat + random speckle (MuJoCo's "random" dots) so it is not a plain colour
            tex.random = float(rng.uniform(0.02, 0.2))
            tex.markrgb = _random_color(rng).tolist()
        kind = ("checker", "gradient", "flat_speckle")[choice]
    else:
        image, kind = texture_image(rng, config.texture_size)
        tex.width, tex.height, tex.nchannel = config.texture_size, config.texture_size, 3
        tex.data = image.tobytes()
    mat.textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = tex.name
    mat.texuniform = True
    scale = float(rng.uniform(5.0, 30.0))  # repeats per metre
    mat.texrepeat = [scale, scale]
    # the texture already carries the colour; a light tint keeps it from being washed out
    mat.rgba = [*(0.75 + 0.25 * _random_color(rng)), 1.0]
    return kind


def _add_mesh_texcoords(spec: mujoco.MjSpec, meshes_before: int, repeat: float) -> None:
    """Planar UVs (metres x repeat) over each new mesh's two longest extents, so textures map onto meshes."""
    for mesh in list(spec.meshes)[meshes_before:]:
        verts = np.asarray(mesh.uservert, dtype=np.float64).reshape(-1, 3)
        if len(verts) == 0:
            continue
        extent = np.ptp(verts, axis=0)
        a, b = np.argsort(extent)[::-1][:2]
        uv = np.stack([verts[:, a], verts[:, b]], axis=1) * repeat
        mesh.usertexcoord = uv.astype(np.float32).ravel().tolist()


def build_scene(
    obj: ObjectModel, rng: np.random.Generator, config: SceneConfig, table: bool | None = None
) -> tuple[mujoco.MjModel, SceneInfo]:
    """Compile a MuJoCo model of ``obj`` in a random pose, lights, materials and maybe a table."""
    if not obj.geoms:
        raise ValueError(f"{obj.category}: object model has no geoms")
    has_table = bool(rng.random() < config.table_probability) if table is None else bool(table)
    rotation, translation = sample_object_pose(obj, rng, config)
    spec = mujoco.MjSpec()
    spec.modelname = f"funk_{obj.category}"
    spec.visual.quality.offsamples = 0
    spec.visual.quality.shadowsize = 64  # shadows are off; a big map only costs context creation
    spec.visual.global_.offwidth = config.width
    spec.visual.global_.offheight = config.height
    spec.visual.headlight.ambient = [float(rng.uniform(0.12, 0.35))] * 3
    spec.visual.headlight.diffuse = [float(rng.uniform(0.15, 0.5))] * 3
    spec.visual.headlight.specular = [float(rng.uniform(0.0, 0.3))] * 3
    info = SceneInfo(has_table=has_table, rotation=rotation, translation=translation)

    materials: dict[str, str] = {}
    for i, part in enumerate(obj.parts):
        name = f"mat_{i}_{part}"
        info.materials[part] = _add_material(spec, name, rng, config)
        materials[part] = name
    body = spec.worldbody.add_body()
    body.name = OBJECT_BODY
    body.pos = translation.tolist()
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, rotation.ravel())
    body.quat = quat.tolist()
    meshes_before = len(spec.meshes)
    obj.add_to_spec(spec, body, materials, prefix="obj")
    _add_mesh_texcoords(spec, meshes_before, repeat=float(rng.uniform(5.0, 20.0)))

    if has_table:
        info.table_texture = _add_material(spec, "mat_table", rng, config, textured=True)
        plane = spec.worldbody.add_geom()
        plane.name = TABLE_GEOM
        plane.type = mujoco.mjtGeom.mjGEOM_PLANE
        half = float(rng.uniform(0.35, 1.5))
        plane.size = [half, half * rng.uniform(0.6, 1.0), 0.05]
        plane.pos = [float(rng.uniform(-0.5, 0.5) * half), float(rng.uniform(-0.5, 0.5) * half), 0.0]
        plane.quat = quat_about_z(rng.uniform(0, np.pi))
        plane.material = "mat_table"
        plane.contype = plane.conaffinity = 0

    center = object_points(obj) @ rotation.T + translation
    center = (center.min(axis=0) + center.max(axis=0)) / 2
    for i in range(int(rng.integers(config.lights_range[0], config.lights_range[1] + 1))):
        light = spec.worldbody.add_light()
        light.name = f"light_{i}"
        light.castshadow = False
        tint = color_temperature_rgb(rng.uniform(2700, 9000))
        intensity = float(rng.uniform(0.3, 0.8))
        light.diffuse = (tint * intensity).tolist()
        light.specular = (tint * rng.uniform(0.05, 0.4)).tolist()
        light.ambient = (tint * rng.uniform(0.0, 0.12)).tolist()
        az, el = rng.uniform(0, 2 * np.pi), math.radians(rng.uniform(25, 85))
        toward = -np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
        if rng.random() < config.spot_probability:
            light.type = mujoco.mjtLightType.mjLIGHT_SPOT
            dist = float(rng.uniform(0.5, 1.5))
            light.pos = (center - toward * dist).tolist()
            light.cutoff = float(rng.uniform(25, 60))
            light.exponent = float(rng.uniform(1, 15))
            info.lights.append("spot")
        else:
            light.type = mujoco.mjtLightType.mjLIGHT_DIRECTIONAL
            light.pos = (center - toward).tolist()
            info.lights.append("directional")
        light.dir = toward.tolist()

    cam = spec.worldbody.add_camera()
    cam.name = CAMERA_NAME
    cam.pos = [0.0, 0.0, 1.0]
    try:
        model = spec.compile()
    except Exception as error:  # MuJoCo's compile errors name the element but not the category
        raise ValueError(f"{obj.category}: MuJoCo could not compile the scene: {error}") from error
    # Absolute clip planes: 1 cm to 20 m, independent of the model's computed extent.
    model.vis.map.znear = 0.01 / model.stat.extent
    model.vis.map.zfar = 20.0 / model.stat.extent
    model.light_castshadow[:] = 0
    return model, info


def quat_about_z(angle: float) -> list[float]:
    return [math.cos(angle / 2), 0.0, 0.0, math.sin(angle / 2)]


# ----------------------------------------------------------------------------- rendering


_GL_CONTEXT = None


def _gl_context():
    """One GL context per process (creating one costs ~35 ms); every scene renders into its own FBO."""
    global _GL_CONTEXT
    if _GL_CONTEXT is None:
        _GL_CONTEXT = mujoco.GLContext(64, 64)
    _GL_CONTEXT.make_current()
    return _GL_CONTEXT


class SceneRenderer:
    """Renders one compiled scene from arbitrary cameras: RGB, metric depth and the object mask."""

    def __init__(self, model: mujoco.MjModel) -> None:
        _gl_context()
        self.model = model
        self.data = mujoco.MjData(model)
        mujoco.mj_forward(model, self.data)
        self.width = int(model.vis.global_.offwidth)
        self.height = int(model.vis.global_.offheight)
        self._context = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_50.value)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN.value, self._context)
        self._context.readDepthMap = mujoco.mjtDepthMap.mjDEPTH_ZEROFAR
        self._scene = mujoco.MjvScene(model, maxgeom=model.ngeom + 16)
        self._option = mujoco.MjvOption()
        self._camera = mujoco.MjvCamera()
        self._camera.type = mujoco.mjtCamera.mjCAMERA_FIXED
        self._camera.fixedcamid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, CAMERA_NAME)
        self._rect = mujoco.MjrRect(0, 0, self.width, self.height)
        body = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, OBJECT_BODY)
        self._object_geoms = np.flatnonzero(model.geom_bodyid == body)

    def close(self) -> None:
        if self._context is not None:
            _gl_context()
            self._context.free()
            self._context = None

    def __enter__(self) -> SceneRenderer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def render(
        self, camera: Camera, timings: dict[str, float] | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(rgb uint8 HxWx3, depth float32 HxW metres (0 = nothing), object mask, background mask)."""
        if (camera.width, camera.height) != (self.width, self.height):
            raise ValueError(f"camera is {camera.width}x{camera.height}, scene buffer is {self.width}x{self.height}")
        if self._context is None:
            raise RuntimeError("SceneRenderer.render called after close()")
        _gl_context()
        t0 = time.perf_counter()
        cid = self._camera.fixedcamid
        self.model.cam_fovy[cid] = camera.fovy
        self.data.cam_xpos[cid] = camera.position
        self.data.cam_xmat[cid] = camera.rotation.ravel()
        mujoco.mjv_updateScene(
            self.model, self.data, self._option, None, self._camera, mujoco.mjtCatBit.mjCAT_ALL.value, self._scene
        )
        rgb = np.empty((self.height, self.width, 3), np.uint8)
        mujoco.mjr_render(self._rect, self._scene, self._context)
        mujoco.mjr_readPixels(rgb, None, self._rect, self._context)
        t1 = time.perf_counter()

        # Segmentation pass: each geom drawn in a flat id colour; its depth buffer gives metric depth.
        seg = np.empty((self.height, self.width, 3), np.uint8)
        zbuf = np.empty((self.height, self.width), np.float32)
        flags = self._scene.flags
        flags[mujoco.mjtRndFlag.mjRND_SEGMENT] = True
        flags[mujoco.mjtRndFlag.mjRND_IDCOLOR] = True
        try:
            mujoco.mjr_render(self._rect, self._scene, self._context)
            mujoco.mjr_readPixels(seg, zbuf, self._rect, self._context)
        finally:
            flags[mujoco.mjtRndFlag.mjRND_SEGMENT] = False
            flags[mujoco.mjtRndFlag.mjRND_IDCOLOR] = False
        t2 = time.perf_counter()

        segid = (
            seg[..., 0].astype(np.int32) | (seg[..., 1].astype(np.int32) << 8) | (seg[..., 2].astype(np.int32) << 16)
        )
        is_object = np.zeros(self._scene.ngeom + 2, dtype=bool)
        for g in self._scene.geoms[: self._scene.ngeom]:
            if g.segid >= 0 and g.objtype == mujoco.mjtObj.mjOBJ_GEOM and g.objid in self._object_geoms:
                is_object[g.segid + 1] = True
        segid = np.minimum(segid, len(is_object) - 1)
        mask = np.flipud(is_object[segid])
        background = np.flipud(segid == 0)
        depth = np.flipud(self._metric_depth(zbuf))
        depth = np.where(background, 0.0, depth).astype(np.float32)
        if timings is not None:
            timings["render_rgb"] = timings.get("render_rgb", 0.0) + (t1 - t0)
            timings["render_segmentation"] = timings.get("render_segmentation", 0.0) + (t2 - t1)
            timings["decode_buffers"] = timings.get("decode_buffers", 0.0) + (time.perf_counter() - t2)
        return (
            np.ascontiguousarray(np.flipud(rgb)),
            np.ascontiguousarray(depth),
            np.ascontiguousarray(mask),
            np.ascontiguousarray(background),
        )

    def _metric_depth(self, zbuf: np.ndarray) -> np.ndarray:
        # Undo the reversed-Z perspective projection exactly as mujoco.Renderer does.
        extent = self.model.stat.extent
        znear = np.float32(self.model.vis.map.znear * extent)
        zfar = np.float32(self.model.vis.map.zfar * extent)
        c_coef = -(zfar + znear) / (zfar - znear)
        d_coef = -(np.float32(2) * zfar * znear) / (zfar - znear)
        c_coef = np.float32(-0.5) * c_coef - np.float32(0.5)
        d_coef = np.float32(-0.5) * d_coef
        return (d_coef / (zbuf.astype(np.float64) + c_coef)).astype(np.float32)


# ----------------------------------------------------------------------------- views


@dataclass
class RenderedView:
    """One rendered view of an instance with every task's keypoints."""

    rgb: np.ndarray  # HxWx3 uint8
    depth: np.ndarray  # HxW float32 metres, 0 where the 2D background shows
    mask: np.ndarray  # HxW bool, the object
    keypoints: dict[str, np.ndarray]  # task -> (5, 2) pixels (x, y)
    visible: dict[str, np.ndarray]  # task -> (5,) bool
    keypoint_depth: dict[str, np.ndarray]  # task -> (5,) metres along the optical axis
    camera: Camera
    background: str
    has_table: bool


def _reframe(points_world: np.ndarray, camera: Camera, fill: float, aim: np.ndarray) -> Camera:
    """Move ``camera`` along its own axes so the points' projected box has longer side ``fill`` (of the
    image) and its centre at pixel ``aim``; pinhole geometry makes one such step nearly exact."""
    pixels, depth = project(points_world, camera)
    lo, hi = pixels.min(axis=0), pixels.max(axis=0)
    extent = max((hi[0] - lo[0]) / camera.width, (hi[1] - lo[1]) / camera.height, 1e-6)
    z = float(np.median(depth))
    centre = (lo + hi) / 2
    right, up, back = camera.rotation[:, 0], camera.rotation[:, 1], camera.rotation[:, 2]
    # image x follows the camera's right axis and image y its down axis: shifting the camera by d
    # moves every point by -focal * d / z pixels along that axis
    lateral = (centre[0] - aim[0]) * z / camera.focal * right - (centre[1] - aim[1]) * z / camera.focal * up
    axial = (extent / fill - 1.0) * z * back
    return Camera(camera.width, camera.height, camera.fovy, camera.position + lateral + axial, camera.rotation)


def image_axis_angle(points_world: np.ndarray, camera: Camera) -> float:
    """The projected points' principal axis, degrees from image horizontal in [-90, 90) (image y down)."""
    pixels, _ = project(points_world, camera)
    centred = pixels - pixels.mean(axis=0)
    _, vectors = np.linalg.eigh(centred.T @ centred)
    x, y = vectors[:, -1]
    return float((math.degrees(math.atan2(y, x)) + 90.0) % 180.0 - 90.0)


def sample_camera(points_world: np.ndarray, rng: np.random.Generator, config: SceneConfig, has_table: bool) -> Camera:
    """A random camera whose view holds every point, the object's projected box filling fill_range of the frame."""
    lo, hi = points_world.min(axis=0), points_world.max(axis=0)
    center = (lo + hi) / 2
    radius = float(np.linalg.norm(points_world - center, axis=1).max())
    radius = max(radius, 1e-3)
    fovy = rng.uniform(*config.fovy_range)
    elevation = rng.uniform(*(config.elevation_range_table if has_table else config.elevation_range_free))
    azimuth = rng.uniform(0, 360)
    roll = float(np.clip(rng.normal(0, config.roll_std), -config.roll_max, config.roll_max))
    fill = rng.uniform(*config.fill_range)
    half = math.tan(math.radians(fovy) / 2)
    distance = radius / math.sin(math.atan(fill * half))
    if config.axis_framing_probability > 0 and rng.random() < config.axis_framing_probability:
        # rolling the camera by r degrees turns the image content by r (image y points down)
        level = look_at_camera(center, distance, azimuth, elevation, 0.0, fovy, config.width, config.height)
        roll = rng.uniform(-config.axis_angle_max, config.axis_angle_max) - image_axis_angle(points_world, level)
    camera = look_at_camera(center, distance, azimuth, elevation, roll, fovy, config.width, config.height)
    # aim the box centre within the slack it leaves, so the object is not always centred
    size = np.array([config.width, config.height], dtype=np.float64)
    aim = size / 2 + rng.uniform(-1, 1, 2) * 0.4 * (1 - fill) * size
    for _ in range(2):
        camera = _reframe(points_world, camera, fill, aim)
    m = config.margin_px
    for _ in range(config.max_framing_attempts):
        pixels, depth = project(points_world, camera)
        inside = (
            (pixels[:, 0] >= m)
            & (pixels[:, 0] <= config.width - m)
            & (pixels[:, 1] >= m)
            & (pixels[:, 1] <= config.height - m)
        )
        if np.all(inside) and np.all(depth > 0.02):
            return camera
        fill *= 0.93
        aim = 0.7 * aim + 0.3 * size / 2
        camera = _reframe(points_world, camera, fill, aim)
    raise RuntimeError(f"could not frame the object in {config.max_framing_attempts} attempts (radius {radius:.3f} m)")


def render_instance(
    obj: ObjectModel,
    views: int,
    rng: np.random.Generator,
    config: SceneConfig | None = None,
    table: bool | None = None,
    timings: dict[str, float] | None = None,
) -> list[RenderedView]:
    """Build one scene for ``obj`` and render ``views`` random views of it (same seed -> same pixels)."""
    config = config or SceneConfig()
    if views < 1:
        raise ValueError(f"render_instance: expected views >= 1, found {views}")
    t0 = time.perf_counter()
    model, info = build_scene(obj, rng, config, table=table)
    t1 = time.perf_counter()
    world_keypoints = {task: pts @ info.rotation.T + info.translation for task, pts in obj.keypoints.items()}
    world_points = object_points(obj) @ info.rotation.T + info.translation
    out: list[RenderedView] = []
    timing = timings if timings is not None else {}
    with SceneRenderer(model) as renderer:
        t2 = time.perf_counter()
        timing["compile"] = timing.get("compile", 0.0) + (t1 - t0)
        timing["gl_context"] = timing.get("gl_context", 0.0) + (t2 - t1)
        for _ in range(views):
            camera = sample_camera(world_points, rng, config, info.has_table)
            rgb, depth, mask, background = renderer.render(camera, timing)
            t3 = time.perf_counter()
            bg, kind = make_background(
                rng,
                config.height,
                config.width,
                config.photo_background_probability,
                config.plain_background_probability,
            )
            rgb = np.where(background[..., None], bg, rgb)
            if rng.random() < config.blur_probability:
                rgb = cv2.GaussianBlur(rgb, (0, 0), rng.uniform(0.3, 0.9) * config.width / 224)
            noise = rng.uniform(0, config.noise_std_max)
            if noise > 0.5:
                grain = noise * rng.standard_normal((config.height, config.width, 1), dtype=np.float32)
                rgb = np.clip(rgb.astype(np.float32) + grain, 0, 255).astype(np.uint8)
            t4 = time.perf_counter()
            keypoints, visible, kp_depth = {}, {}, {}
            for task, pts in world_keypoints.items():
                pixels, z = project(pts, camera)
                keypoints[task] = pixels
                kp_depth[task] = z
                visible[task] = keypoint_visibility(
                    pixels,
                    z,
                    obj.keypoint_radii[task],
                    depth,
                    mask,
                    camera,
                    config.visibility_tolerance,
                    config.visibility_pixel_slack,
                )
            timing["background"] = timing.get("background", 0.0) + (t4 - t3)
            timing["keypoints"] = timing.get("keypoints", 0.0) + (time.perf_counter() - t4)
            out.append(RenderedView(rgb, depth, mask, keypoints, visible, kp_depth, camera, kind, info.has_table))
    return out


__all__ = [
    "BACKGROUND_KINDS",
    "Camera",
    "RenderedView",
    "SceneConfig",
    "SceneInfo",
    "SceneRenderer",
    "build_scene",
    "color_temperature_rgb",
    "fractal_noise",
    "keypoint_visibility",
    "look_at_camera",
    "make_background",
    "object_points",
    "project",
    "render_instance",
    "sample_camera",
    "sample_object_pose",
    "texture_image",
]
