"""Grasp patches in the Pinto-Gupta layout: angle binning, the reader, the writer, loading into arrays.

The public Pinto and Gupta (2016) patch data is laid out as::

    Train/  Validation/  Test/
        positive/Images/<patch>   positive/dataInfo.txt
        negative/Images/<patch>   negative/dataInfo.txt

``dataInfo.txt`` is a header line, then one ``patchname,angle`` row per patch,
the angle in radians. The simulated dataset (:mod:`funk_grasp.generate`) is
written in the same layout (plus a ``TestHeldout`` split), so one reader
serves both.

Angles are binned into 18 classes of 10 degrees over 180 degrees (a parallel
jaw grasp at ``a`` and ``a + pi`` is the same grasp): bin ``k`` covers
``[k * 10, (k + 1) * 10)`` degrees after reducing the angle modulo pi.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from funk_perception.atomic import write_bytes_atomic, write_text_atomic

ANGLE_BINS = 18
BIN_WIDTH = math.pi / ANGLE_BINS
SPLITS: tuple[str, ...] = ("Train", "Validation", "Test")
CLASSES: tuple[str, ...] = ("positive", "negative")
HEADER = "patchname,angle"
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg")


def angle_to_bin(angle: float) -> int:
    """Radians (any value) -> bin 0..17 of the angle modulo pi."""
    if not math.isfinite(angle):
        raise ValueError(f"angle: expected a finite number of radians, found {angle!r}")
    reduced = math.fmod(angle, math.pi)
    if reduced < 0:
        reduced += math.pi
    return min(int(reduced / BIN_WIDTH), ANGLE_BINS - 1)


def bin_to_angle(index: int) -> float:
    """The centre of bin ``index`` in radians."""
    if not 0 <= int(index) < ANGLE_BINS:
        raise ValueError(f"angle bin: expected 0..{ANGLE_BINS - 1}, found {index}")
    return (int(index) + 0.5) * BIN_WIDTH


def one_hot(bins: Sequence[int] | np.ndarray) -> np.ndarray:
    """(N,) bins -> (N, 18) float32 one-hot rows."""
    bins = np.asarray(bins, dtype=np.int64)
    if bins.size and (bins.min() < 0 or bins.max() >= ANGLE_BINS):
        raise ValueError(f"angle bins: expected values in 0..{ANGLE_BINS - 1}, found {bins.min()}..{bins.max()}")
    out = np.zeros((len(bins), ANGLE_BINS), np.float32)
    out[np.arange(len(bins)), bins] = 1.0
    return out


def crop_patch(image: np.ndarray, x: float, y: float, size: int) -> np.ndarray:
    """The ``size`` x ``size`` crop of ``image`` centred on pixel (x, y); edges replicated where it leaves the image."""
    half = size / 2
    x0, y0 = int(round(x - half)), int(round(y - half))
    pad = size
    padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    return np.ascontiguousarray(padded[y0 + pad : y0 + pad + size, x0 + pad : x0 + pad + size])


@dataclass(frozen=True)
class GraspPatch:
    """One labelled attempt: the patch file, its grasp angle and outcome."""

    path: Path
    angle: float  # radians, as written in dataInfo.txt
    success: bool

    @property
    def angle_bin(self) -> int:
        return angle_to_bin(self.angle)


def _resolve_image(images: Path, name: str) -> Path | None:
    path = images / name
    if path.is_file():
        return path
    if not Path(name).suffix:
        for suffix in IMAGE_SUFFIXES:
            if (images / (name + suffix)).is_file():
                return images / (name + suffix)
    return None


def read_class_folder(folder: Path, success: bool) -> list[GraspPatch]:
    """Read ``positive/`` or ``negative/``: its ``dataInfo.txt`` and that every listed image exists."""
    info = folder / "dataInfo.txt"
    images = folder / "Images"
    if not info.is_file():
        raise FileNotFoundError(f"{info}: missing (expected a header line, then patchname,angle rows)")
    if not images.is_dir():
        raise FileNotFoundError(f"{images}: missing folder (expected the patch images listed in {info.name})")
    lines = info.read_text(encoding="utf-8", errors="replace").splitlines()
    if not lines:
        raise ValueError(f"{info}: empty file (expected a header line, then patchname,angle rows)")
    first = [f.strip() for f in lines[0].split(",")]
    if len(first) == 2:
        try:
            float(first[1])
        except ValueError:
            pass
        else:
            raise ValueError(
                f"{info}:1: missing header line: expected a header such as {HEADER!r} first, found a data row {lines[0]!r}"
            )
    patches = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != 2 or not fields[0]:
            raise ValueError(f"{info}:{number}: expected 2 fields patchname,angle, found {len(fields)}: {line!r}")
        name, text = fields
        try:
            angle = float(text)
        except ValueError:
            raise ValueError(f"{info}:{number}: angle: expected a number of radians, found {text!r}") from None
        if not math.isfinite(angle):
            raise ValueError(f"{info}:{number}: angle: expected a finite number of radians, found {text!r}")
        path = _resolve_image(images, name)
        if path is None:
            raise FileNotFoundError(f"{info}:{number}: image {name!r} not found in {images}")
        patches.append(GraspPatch(path, angle, success))
    return patches


def read_split(folder: str | Path) -> list[GraspPatch]:
    """Every patch of one split folder (``Train/`` ...): positives then negatives, in file order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: split folder not found (expected positive/ and negative/ inside)")
    out: list[GraspPatch] = []
    for name in CLASSES:
        sub = folder / name
        if not sub.is_dir():
            raise FileNotFoundError(f"{sub}: missing (a split folder holds positive/ and negative/)")
        out += read_class_folder(sub, name == "positive")
    return out


def write_split(folder: Path, patches: Iterable[tuple[str, np.ndarray, float, bool]]) -> None:
    """Write (name, RGB patch, angle, success) rows into ``folder`` in the Pinto-Gupta layout (atomic files)."""
    rows: dict[str, list[str]] = {c: [HEADER] for c in CLASSES}
    for cls in CLASSES:  # a class with no patches still gets its (empty) Images/ folder
        (folder / cls / "Images").mkdir(parents=True, exist_ok=True)
    for name, image, angle, success in patches:
        cls = "positive" if success else "negative"
        ok, buf = cv2.imencode(Path(name).suffix or ".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        if not ok:
            raise RuntimeError(f"{folder / cls / 'Images' / name}: could not encode the patch")
        write_bytes_atomic(folder / cls / "Images" / name, buf.tobytes())
        rows[cls].append(f"{name},{angle:.6f}")
    for cls, lines in rows.items():
        write_text_atomic(folder / cls / "dataInfo.txt", "\n".join(lines) + "\n")


@dataclass
class PatchSet:
    """Patches loaded into arrays for training and evaluation."""

    images: np.ndarray  # (N, S, S, 3) uint8 RGB
    bins: np.ndarray  # (N,) int64 angle bins
    labels: np.ndarray  # (N,) float32, 1 = success
    names: list[str]

    def __len__(self) -> int:
        return len(self.labels)


def load_patches(patches: Sequence[GraspPatch], size: int | None = None) -> PatchSet:
    """Decode every patch (resized to ``size`` x ``size`` when given; else all must share one size)."""
    images = []
    for patch in patches:
        image = cv2.imread(str(patch.path), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"{patch.path}: not a readable image")
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        if size is not None and image.shape[:2] != (size, size):
            image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
        if images and image.shape != images[0].shape:
            raise ValueError(f"{patch.path}: shape {image.shape}, the first patch has {images[0].shape}; pass a size")
        images.append(image)
    if not images:
        raise ValueError("load_patches: no patches given")
    return PatchSet(
        np.stack(images),
        np.array([p.angle_bin for p in patches], dtype=np.int64),
        np.array([1.0 if p.success else 0.0 for p in patches], dtype=np.float32),
        [p.path.name for p in patches],
    )


__all__ = [
    "ANGLE_BINS",
    "BIN_WIDTH",
    "CLASSES",
    "GraspPatch",
    "crop_patch",
    "HEADER",
    "PatchSet",
    "SPLITS",
    "angle_to_bin",
    "bin_to_angle",
    "load_patches",
    "one_hot",
    "read_class_folder",
    "read_split",
    "write_split",
]
