"""Drawing grasps on images: a grasp as the gripper's closing line, a fan of the 18 angles coloured by success."""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from funk_grasp.data import bin_to_angle


def _endpoints(x: float, y: float, angle: float, half: float) -> tuple[tuple[int, int], tuple[int, int]]:
    # image angle counter-clockwise as seen: +y in the picture is down, hence the minus
    dx, dy = half * math.cos(angle), -half * math.sin(angle)
    return (int(round(x - dx)), int(round(y - dy))), (int(round(x + dx)), int(round(y + dy)))


def draw_grasp(
    image: np.ndarray,
    x: float,
    y: float,
    angle: float,
    length: float,
    color: Sequence[int] = (255, 255, 255),
    thickness: int = 2,
) -> np.ndarray:
    """Draw (in place) the closing axis of a grasp: a line with a finger bar at each end; returns ``image``."""
    a, b = _endpoints(x, y, angle, length / 2)
    cv2.line(image, a, b, tuple(int(c) for c in color), thickness, cv2.LINE_AA)
    for end in (a, b):
        p, q = _endpoints(end[0], end[1], angle + math.pi / 2, length / 6)
        cv2.line(image, p, q, tuple(int(c) for c in color), thickness + 1, cv2.LINE_AA)
    return image


def success_color(probability: float) -> tuple[int, int, int]:
    """Red (0) through yellow to green (1), RGB."""
    p = float(np.clip(probability, 0.0, 1.0))
    return (int(255 * min(1.0, 2 * (1 - p))), int(255 * min(1.0, 2 * p)), 0)


def draw_angle_fan(image: np.ndarray, x: float, y: float, probabilities: Sequence[float], length: float) -> np.ndarray:
    """Draw (in place) one line per angle bin through (x, y), its length and colour the predicted success."""
    for k, p in enumerate(probabilities):
        a, b = _endpoints(x, y, bin_to_angle(k), length / 2 * (0.35 + 0.65 * float(p)))
        cv2.line(image, a, b, success_color(p), 2, cv2.LINE_AA)
    cv2.circle(image, (int(round(x)), int(round(y))), 3, (255, 255, 255), -1, cv2.LINE_AA)
    return image


__all__ = ["draw_angle_fan", "draw_grasp", "success_color"]
