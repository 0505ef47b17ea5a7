"""sensor_msgs <-> numpy, with no rclpy import (the node and the bag tool share it).

Messages are read by attribute (``encoding``, ``height``, ``width``, ``step``,
``is_bigendian``, ``data``, ``k``), so the same functions take rclpy messages
(``data`` an ``array.array`` or ``bytes``) and rosbags messages (``data`` a
numpy array). cv_bridge cannot be installed here and the PyPI ``cv-bridge``
maps 16-bit encodings wrongly, hence the hand-written decoding.

Every refusal raises :class:`FrameError` whose ``reason`` is one short,
fixed word (the node counts rejections by it) and whose message says which
field was wrong, what was expected and what was found.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

#: Colour encodings accepted on ``image``: channels and bytes per channel.
IMAGE_ENCODINGS: dict[str, tuple[int, int]] = {
    "rgb8": (3, 1),
    "bgr8": (3, 1),
    "rgba8": (4, 1),
    "bgra8": (4, 1),
    "mono8": (1, 1),
    "8UC1": (1, 1),
    "8UC3": (3, 1),  # OpenCV's default layout: BGR
    "mono16": (1, 2),
    "16UC1": (1, 2),
    # 4:2:2 YUV, two bytes a pixel: "yuv422" is sensor_msgs' older name for UYVY, "yuv422_yuy2" for YUYV
    "yuv422": (2, 1),
    "uyvy": (2, 1),
    "yuv422_yuy2": (2, 1),
    "yuyv": (2, 1),
    # raw Bayer mosaics, named by the colours of the top-left 2x2 block, row by row
    "bayer_rggb8": (1, 1),
    "bayer_bggr8": (1, 1),
    "bayer_gbrg8": (1, 1),
    "bayer_grbg8": (1, 1),
}

#: Depth encodings accepted on ``depth``: 16-bit millimetres or 32-bit float metres.
DEPTH_ENCODINGS: dict[str, tuple[str, int]] = {"16UC1": ("u2", 2), "mono16": ("u2", 2), "32FC1": ("f4", 4)}

#: Default ceiling on width * height (a 4K frame has 8.3 M pixels): larger frames are refused unread.
MAX_PIXELS = 4096 * 4096

_TO_RGB = {
    "bgr8": cv2.COLOR_BGR2RGB,
    "8UC3": cv2.COLOR_BGR2RGB,
    "rgba8": cv2.COLOR_RGBA2RGB,
    "bgra8": cv2.COLOR_BGRA2RGB,
    "mono8": cv2.COLOR_GRAY2RGB,
    "8UC1": cv2.COLOR_GRAY2RGB,
    "yuv422": cv2.COLOR_YUV2RGB_UYVY,
    "uyvy": cv2.COLOR_YUV2RGB_UYVY,
    "yuv422_yuy2": cv2.COLOR_YUV2RGB_YUYV,
    "yuyv": cv2.COLOR_YUV2RGB_YUYV,
    # OpenCV names a Bayer pattern by the second row's middle pair, so ROS's RGGB is OpenCV's "BG"
    # (the same mapping as cv_bridge's); tests/test_ros_convert.py pins each one on a mosaic made there
    "bayer_rggb8": cv2.COLOR_BayerBG2RGB,
    "bayer_bggr8": cv2.COLOR_BayerRG2RGB,
    "bayer_gbrg8": cv2.COLOR_BayerGR2RGB,
    "bayer_grbg8": cv2.COLOR_BayerGB2RGB,
}

#: Encodings whose pixels come in horizontal pairs (4:2:2 chroma): the width must be even.
_PAIRED = ("yuv422", "uyvy", "yuv422_yuy2", "yuyv")


class FrameError(ValueError):
    """A message that cannot be used; ``reason`` is a short fixed word for counting."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _raw(data: Any) -> np.ndarray:
    """A message's ``data`` (bytes, array.array, list or numpy array) as a flat uint8 array, no copy where possible."""
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8)
    if isinstance(data, list):
        return np.asarray(data, dtype=np.uint8)
    return np.frombuffer(data, dtype=np.uint8)


def _plane(msg: Any, where: str, channels: int, itemsize: int, max_pixels: int) -> np.ndarray:
    """The (H, W, C) byte view of a raw image, honouring ``step`` padding; checked against every size field."""
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise FrameError("empty", f"{where}: expected a non-empty image, found height={height} width={width}")
    if height * width > max_pixels:
        raise FrameError("too_large", f"{where}: expected at most {max_pixels} pixels, found {width}x{height}")
    row = width * channels * itemsize
    if step < row:
        raise FrameError(
            "size", f"{where}.step: expected at least width*{channels * itemsize} = {row} bytes, found {step}"
        )
    data = _raw(msg.data)
    if data.size < step * height:
        raise FrameError(
            "truncated", f"{where}.data: expected step*height = {step * height} bytes, found {data.size} (truncated)"
        )
    if data.size > step * height:
        raise FrameError("size", f"{where}.data: expected step*height = {step * height} bytes, found {data.size}")
    return data.reshape(height, step)[:, :row]


def image_to_rgb(msg: Any, max_pixels: int = MAX_PIXELS, where: str = "image") -> np.ndarray:
    """sensor_msgs/Image -> (H, W, 3) uint8 RGB; 16-bit grey is scaled to 8 bits over its full range."""
    encoding = str(msg.encoding)
    if encoding not in IMAGE_ENCODINGS:
        raise FrameError(
            "encoding", f"{where}.encoding: expected one of {', '.join(IMAGE_ENCODINGS)}, found {encoding!r}"
        )
    channels, itemsize = IMAGE_ENCODINGS[encoding]
    if encoding in _PAIRED and int(msg.width) % 2:
        raise FrameError(
            "size", f"{where}.width: expected an even width for {encoding} (4:2:2 pixel pairs), found {int(msg.width)}"
        )
    rows = _plane(msg, where, channels, itemsize, max_pixels)
    height, width = rows.shape[0], int(msg.width)
    if itemsize == 2:
        grey16 = rows.view(">u2" if msg.is_bigendian else "<u2").reshape(height, width)
        grey = (grey16.astype(np.uint32) * 255 // 65535).astype(np.uint8)
        return cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB)
    pixels = rows.reshape(height, width, channels)
    if encoding == "rgb8":
        return np.ascontiguousarray(pixels)
    if channels == 1:
        pixels = pixels[:, :, 0]
    return cv2.cvtColor(np.ascontiguousarray(pixels), _TO_RGB[encoding])


def compressed_to_rgb(msg: Any, max_pixels: int = MAX_PIXELS, where: str = "image/compressed") -> np.ndarray:
    """sensor_msgs/CompressedImage (jpeg or png, whatever ``format`` says) -> (H, W, 3) uint8 RGB."""
    data = _raw(msg.data)
    if data.size == 0:
        raise FrameError("empty", f"{where}.data: expected a jpeg or png byte stream, found 0 bytes")
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is None:
        raise FrameError(
            "compressed",
            f"{where}: expected jpeg or png data (format {str(msg.format)!r}), found "
            f"{data.size} bytes OpenCV cannot decode",
        )
    if bgr.shape[0] * bgr.shape[1] > max_pixels:
        raise FrameError(
            "too_large", f"{where}: expected at most {max_pixels} pixels, found {bgr.shape[1]}x{bgr.shape[0]}"
        )
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def depth_to_metres(msg: Any, max_pixels: int = MAX_PIXELS, where: str = "depth") -> np.ndarray:
    """sensor_msgs/Image depth (16UC1 millimetres or 32FC1 metres) -> (H, W) float32 metres, NaN where invalid.

    Zero, negative, NaN and infinite readings are all "no depth" (the drivers' conventions differ).
    """
    encoding = str(msg.encoding)
    if encoding not in DEPTH_ENCODINGS:
        raise FrameError(
            "depth_encoding", f"{where}.encoding: expected one of {', '.join(DEPTH_ENCODINGS)}, found {encoding!r}"
        )
    kind, itemsize = DEPTH_ENCODINGS[encoding]
    rows = _plane(msg, where, 1, itemsize, max_pixels)
    values = rows.view((">" if msg.is_bigendian else "<") + kind).reshape(rows.shape[0], int(msg.width))
    metres = values.astype(np.float32) * (np.float32(0.001) if kind == "u2" else np.float32(1.0))
    metres[~np.isfinite(metres) | (metres <= 0)] = np.nan
    return metres


def camera_matrix(msg: Any, where: str = "camera_info") -> np.ndarray:
    """sensor_msgs/CameraInfo -> its 3x3 intrinsic matrix K (float64), checked to be usable."""
    k = np.asarray(msg.k, dtype=np.float64)
    if k.size != 9:
        raise FrameError("camera_info", f"{where}.k: expected 9 values (row-major 3x3), found {k.size}")
    k = k.reshape(3, 3)
    if not np.isfinite(k).all() or k[0, 0] <= 0 or k[1, 1] <= 0:
        raise FrameError(
            "camera_info", f"{where}.k: expected finite focal lengths fx, fy > 0, found fx={k[0, 0]} fy={k[1, 1]}"
        )
    return k


@dataclass(frozen=True)
class ImageFields:
    """The fields of an rgb8 sensor_msgs/Image (header aside), ready for any message factory."""

    height: int
    width: int
    encoding: str
    is_bigendian: int
    step: int
    data: np.ndarray  # flat uint8


def rgb_to_image_fields(rgb: np.ndarray) -> ImageFields:
    """(H, W, 3) uint8 RGB -> the fields of an unpadded rgb8 sensor_msgs/Image."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"rgb_to_image_fields: expected an (H, W, 3) uint8 array, found {rgb.dtype} {rgb.shape}")
    height, width = rgb.shape[:2]
    return ImageFields(height, width, "rgb8", 0, width * 3, np.ascontiguousarray(rgb).reshape(-1))


def stamp_ns(header: Any) -> int:
    """A std_msgs/Header's stamp in integer nanoseconds (rclpy ``nanosec``, rosbags ``nanosec`` alike)."""
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)
