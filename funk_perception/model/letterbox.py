"""Letterboxing: fit an image into the square network input without distorting its aspect ratio.

The default input path squashes every image to ``S x S``. The synthetic training
renders are square, so squashing is a no-op for them but stretches real photos
(most are 4:3 to 2:1). Letterboxing scales the longer side to ``S``, keeps the
aspect ratio, centres the image and pads the shorter side. Keypoints then live in
two frames:

- the image's own normalised coordinates ``(x / W, y / H)``, in which PCK is measured
  and in which callers give and receive points;
- the square input's normalised coordinates, in which features are sampled and
  matches found.

:class:`Letterbox` holds the geometry of one image and maps points both ways
(``to_input`` and ``from_input``); :func:`letterbox` builds the padded image.
Pixel convention as elsewhere: ``(0, 0)`` is the top-left corner of the
top-left pixel, so normalised ``u`` lies at ``u * W`` pixels; cv2's resize keeps
that convention, which makes the mapping exact up to the rounding of the
scaled size (which the geometry records, so the mapping follows the pixels
actually drawn).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

#: Pads for the shorter side. ``mean``: the ImageNet mean colour, which the input
#: normalisation turns into exactly zero, the value the trunk's own convolution
#: padding uses for ResNet (for the TF-normalised Lite trunks it is -0.03, -0.08,
#: -0.18 of their [-1, 1] range, near their zero-padding grey): the pad reads as
#: "nothing here", like the border the trunk already knows, and a plain grey
#: also looks like the renders' studio backdrops. ``edge``: replicate the border
#: pixels, so that a plain background (a white product shot, a table) continues
#: without a visible seam.
LETTERBOX_PADS: tuple[str, ...] = ("mean", "edge")

#: ImageNet mean (0.485, 0.456, 0.406) as uint8 RGB.
MEAN_RGB: tuple[int, int, int] = (124, 116, 104)


def _check_pad(pad: str) -> str:
    if pad not in LETTERBOX_PADS:
        raise ValueError(f"letterbox pad: expected one of {', '.join(LETTERBOX_PADS)}, found {pad!r}")
    return pad


@dataclass(frozen=True)
class Letterbox:
    """Where an ``height x width`` image sits inside the ``size x size`` input (all in pixels)."""

    height: int
    width: int
    size: int
    scaled_height: int
    scaled_width: int
    top: int
    left: int

    @classmethod
    def fit(cls, height: int, width: int, size: int) -> Letterbox:
        """The geometry for an image of ``height x width`` in a ``size x size`` input: longer side = ``size``."""
        height, width, size = int(height), int(width), int(size)
        if height < 1 or width < 1:
            raise ValueError(f"Letterbox.fit: expected a non-empty image, found height {height}, width {width}")
        if size < 1:
            raise ValueError(f"Letterbox.fit: expected a positive input size, found {size}")
        scale = size / max(height, width)
        scaled_h = min(size, max(1, round(height * scale)))
        scaled_w = min(size, max(1, round(width * scale)))
        # Centred, so a mirrored image gets the mirrored geometry (the mirror check stays fair).
        return cls(height, width, size, scaled_h, scaled_w, (size - scaled_h) // 2, (size - scaled_w) // 2)

    @property
    def scale(self) -> np.ndarray:
        """Image-normalised -> input-normalised: multiply by this (x, y) ..."""
        return np.array([self.scaled_width / self.size, self.scaled_height / self.size], dtype=np.float64)

    @property
    def offset(self) -> np.ndarray:
        """... then add this (x, y)."""
        return np.array([self.left / self.size, self.top / self.size], dtype=np.float64)

    def to_input(self, points: np.ndarray) -> np.ndarray:
        """Image-normalised ``(..., 2)`` x, y -> normalised coordinates of the square input."""
        points = _check_points(points, "Letterbox.to_input")
        return points * self.scale + self.offset

    def from_input(self, points: np.ndarray, clip: bool = True) -> np.ndarray:
        """Input-normalised ``(..., 2)`` x, y -> image-normalised. ``clip`` projects a point that
        fell in the pad onto the image's edge: the pad holds no object, and a caller expects a
        point inside the image it passed."""
        points = _check_points(points, "Letterbox.from_input")
        out = (points - self.offset) / self.scale
        return np.clip(out, 0.0, 1.0) if clip else out


def _check_points(points: np.ndarray, where: str) -> np.ndarray:
    array = np.asarray(points, dtype=np.float64)
    if array.ndim == 0 or array.shape[-1] != 2:
        raise ValueError(f"{where}: expected points of shape (..., 2) x, y, found {array.shape}")
    return array


def letterbox(image: np.ndarray, size: int, pad: str = "mean") -> tuple[np.ndarray, Letterbox]:
    """``image`` (H, W, 3) uint8 scaled into a ``size x size`` uint8 image with ``pad`` on the short side,
    and its geometry."""
    _check_pad(pad)
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        found = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"letterbox: expected a uint8 (H, W, 3) RGB image, found {found}")
    box = Letterbox.fit(image.shape[0], image.shape[1], size)
    if (box.scaled_height, box.scaled_width) == image.shape[:2]:
        scaled = image
    else:
        shrinking = box.scaled_height * box.scaled_width < image.shape[0] * image.shape[1]
        # As preprocess(): INTER_AREA averages when shrinking (no aliasing), LINEAR enlarges.
        scaled = cv2.resize(
            image,
            (box.scaled_width, box.scaled_height),
            interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR,
        )
    bottom = size - box.scaled_height - box.top
    right = size - box.scaled_width - box.left
    if pad == "edge":
        out = cv2.copyMakeBorder(scaled, box.top, bottom, box.left, right, cv2.BORDER_REPLICATE)
    else:
        out = cv2.copyMakeBorder(scaled, box.top, bottom, box.left, right, cv2.BORDER_CONSTANT, value=MEAN_RGB)
    return np.ascontiguousarray(out), box
