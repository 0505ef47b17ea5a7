"""One frame in, keypoints (pixels and metres) out: the code path the node and the bag tool share.

:func:`decode_frame` turns the colour message (raw or compressed) and the
optional depth and camera_info messages into numpy; :func:`frame_keypoints`
runs the detector (on a region of interest when one is given) and
back-projects each keypoint through K with a robust depth (median of the
valid depth pixels in a small window around it).

Pixel convention: OpenCV's and image_geometry's, the one ROS camera_info's K
uses: integer coordinates at pixel centres, ``(0, 0)`` the centre of the
top-left pixel, which spans ``[-0.5, 0.5)``. The detector's points are
measured from the top-left corner of the top-left pixel instead (as its
normalised coordinates times the image size, through the letterbox mapping of
``funk_perception/model/letterbox.py``), so :func:`frame_keypoints` shifts them
by half a pixel, once, with :func:`to_pixel_centres`; everything downstream
(back-projection, depth window, markers, drawing, the published ``u, v``) is in
pixel centres.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from funk_perception.detector import FunctionalKeypointDetector, TaskKeypoints
from funk_perception.ros.convert import (
    MAX_PIXELS,
    FrameError,
    camera_matrix,
    compressed_to_rgb,
    depth_to_metres,
    image_to_rgb,
)
from funk_perception.stages import StageTimes, timed

#: The detector's corner-origin pixel coordinates minus this are pixel-centre coordinates.
CORNER_TO_CENTRE = 0.5


def to_pixel_centres(points: np.ndarray) -> np.ndarray:
    """Detector pixels (``(0, 0)`` = top-left corner of the top-left pixel) -> OpenCV pixel-centre pixels."""
    return np.asarray(points, dtype=np.float64) - CORNER_TO_CENTRE


@dataclass(frozen=True)
class FrameKeypoints(TaskKeypoints):
    """:class:`TaskKeypoints` plus each keypoint's 3D position in the image's optical frame; ``points``
    in pixel-centre coordinates (module docstring)."""

    xyz: np.ndarray | None = None  # (K, 3) metres, x right, y down, z forward; NaN where no valid depth


@dataclass
class Frame:
    """A decoded frame: the colour image and, when usable, its depth and intrinsics."""

    rgb: np.ndarray  # (H, W, 3) uint8
    depth: np.ndarray | None = None  # (H, W) float32 metres, NaN where invalid
    k: np.ndarray | None = None  # (3, 3)
    depth_problem: str | None = None  # why depth was given but not used (a FrameError reason)
    depth_message: str = ""


def decode_frame(
    image: Any,
    compressed: bool = False,
    depth: Any | None = None,
    camera_info: Any | None = None,
    max_pixels: int = MAX_PIXELS,
) -> Frame:
    """Decode one frame. A bad colour image raises :class:`FrameError`; a bad depth or camera_info only
    drops the 3D part (``depth_problem`` says why), since the 2D keypoints are still worth publishing."""
    rgb = compressed_to_rgb(image, max_pixels) if compressed else image_to_rgb(image, max_pixels)
    frame = Frame(rgb)
    if depth is None:
        return frame
    try:
        if camera_info is None:
            raise FrameError("no_camera_info", "depth: a depth image arrived but no camera_info matched its stamp")
        k = camera_matrix(camera_info)
        metres = depth_to_metres(depth, max_pixels)
        if metres.shape != rgb.shape[:2]:
            raise FrameError(
                "depth_size",
                f"depth: expected the colour image's size {rgb.shape[1]}x{rgb.shape[0]} "
                f"(registered to the colour camera), found {metres.shape[1]}x{metres.shape[0]}",
            )
        info_size = (int(camera_info.width), int(camera_info.height))
        if info_size != (0, 0) and info_size != (rgb.shape[1], rgb.shape[0]):
            raise FrameError(
                "camera_info_size",
                f"camera_info: expected width x height {rgb.shape[1]}x{rgb.shape[0]} "
                f"(the colour image), found {info_size[0]}x{info_size[1]}",
            )
    except FrameError as exc:
        frame.depth_problem, frame.depth_message = exc.reason, str(exc)
        return frame
    frame.depth, frame.k = metres, k
    return frame


def parse_roi(
    roi: Sequence[int] | None, width: int, height: int, where: str = "roi"
) -> tuple[int, int, int, int] | None:
    """``(x, y, width, height)`` clipped to the image; None for the whole image (empty, or zero width/height,
    the sensor_msgs/RegionOfInterest convention). Raises :class:`FrameError` when nothing of it is inside."""
    if roi is None or len(roi) == 0:
        return None
    if len(roi) != 4:
        raise FrameError("roi", f"{where}: expected [x, y, width, height], found {list(roi)}")
    x, y, w, h = (int(v) for v in roi)
    if w == 0 or h == 0:
        return None
    x0, y0, x1, y1 = max(0, x), max(0, y), min(width, x + w), min(height, y + h)
    if w < 0 or h < 0 or x1 - x0 < 2 or y1 - y0 < 2:
        raise FrameError("roi", f"{where}: expected a region inside the {width}x{height} image, found {[x, y, w, h]}")
    return x0, y0, x1 - x0, y1 - y0


def robust_depth(depth: np.ndarray, points: np.ndarray, window: int) -> np.ndarray:
    """Median of the valid depth pixels in a ``window`` x ``window`` patch centred on the pixel holding
    each point (pixel-centre coordinates; NaN if none): a single pixel is often a hole or lands just off a
    thin edge."""
    half = window // 2
    height, width = depth.shape
    out = np.full(len(points), np.nan)
    for i, (u, v) in enumerate(points):
        if not (np.isfinite(u) and np.isfinite(v)):
            continue
        # pixel c spans [c - 0.5, c + 0.5); the image's far edge (W - 0.5) still belongs to pixel W - 1
        col = min(max(int(np.floor(u + 0.5)), 0), width - 1)
        row = min(max(int(np.floor(v + 0.5)), 0), height - 1)
        patch = depth[max(0, row - half) : min(height, row + half + 1), max(0, col - half) : min(width, col + half + 1)]
        valid = patch[np.isfinite(patch)]
        if valid.size:
            out[i] = float(np.median(valid))
    return out


def backproject(points: np.ndarray, z: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Pixels ``(u, v)`` (pixel centres, as K) at depths ``z`` -> (N, 3) optical-frame points through ROS K."""
    u = points[:, 0]
    v = points[:, 1]
    x = (u - k[0, 2] - k[0, 1] * (v - k[1, 2]) / k[1, 1]) * z / k[0, 0]
    y = (v - k[1, 2]) * z / k[1, 1]
    return np.stack([x, y, z], axis=1)


def frame_keypoints(
    detector: FunctionalKeypointDetector,
    frame: Frame,
    tasks: Sequence[str],
    roi: tuple[int, int, int, int] | None = None,
    depth_window: int = 5,
    stages: StageTimes | None = None,
) -> dict[str, FrameKeypoints]:
    """The detector's keypoints on ``frame`` in full-image pixel-centre coordinates, with 3D positions when
    depth is usable. A region's offset is whole pixels, the same in either pixel convention. ``stages``: the
    detector's stages and this function's ``postprocess`` added to it (funk_perception/stages.py)."""
    if roi is None:
        found = detector.detect(frame.rgb, tasks, stages=stages)
    else:
        found = detector.detect_region(frame.rgb, roi, tasks, stages=stages)
    out: dict[str, FrameKeypoints] = {}
    with timed(stages, "postprocess"):
        for task, kp in found.items():
            points = to_pixel_centres(kp.points)
            xyz = np.full((len(points), 3), np.nan)
            if frame.depth is not None and frame.k is not None:
                xyz = backproject(points, robust_depth(frame.depth, points, depth_window), frame.k)
            out[task] = FrameKeypoints(task, points, kp.confidence, kp.names, xyz)
    return out
