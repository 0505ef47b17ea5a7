"""FunKPoint-style annotation CSVs: read, validate, write, and index.

One row per (image, task) (docs/DESIGN.md, "Annotation CSV format"). Required columns are ``action``,
``object_category``, ``role``, ``dataset_image_path`` (relative to the CSV's
folder) and ``p1_x, p1_y .. p5_x, p5_y`` normalised to [0, 1] by the image's
width and height. The synthetic generator adds optional columns (``v1..v5``
visibility, ``instance_id``, ``split``, ``view_id``, ``image_width``,
``image_height``, ``depth_path``, ``mask_path``); any other column is carried
through verbatim in :attr:`Annotation.extras` so that a read/write round trip
loses nothing.

Every validation failure raises :class:`AnnotationError` naming the CSV file,
the line (header = line 1), the column and what was expected versus found, so a
hand-edited or foreign CSV can be fixed without reading this code.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from funk_perception.atomic import atomic_open
from funk_perception.tasks import (
    ALL_CATEGORIES,
    KEYPOINTS,
    NUM_KEYPOINTS,
    TASK_DISPLAY_NAMES,
    TASKS,
    normalize_category,
    normalize_task,
)

COORDINATE_COLUMNS: tuple[str, ...] = tuple(f"{k}_{axis}" for k in KEYPOINTS for axis in ("x", "y"))
REQUIRED_COLUMNS: tuple[str, ...] = ("action", "object_category", "role", "dataset_image_path") + COORDINATE_COLUMNS
VISIBILITY_COLUMNS: tuple[str, ...] = tuple(f"v{i + 1}" for i in range(NUM_KEYPOINTS))
INSTANCE_COLUMN = "instance_id"
#: Columns with a dedicated Annotation field; everything else goes to ``extras``.
STANDARD_COLUMNS: tuple[str, ...] = REQUIRED_COLUMNS + VISIBILITY_COLUMNS + (INSTANCE_COLUMN,)
ROLES: tuple[str, ...] = ("reference", "test", "train")

#: Coordinates written by float32 pipelines can overshoot [0, 1] by rounding;
#: such values are accepted and clipped rather than rejected.
COORDINATE_TOLERANCE = 1e-6


class AnnotationError(ValueError):
    """A FunKPoint-style CSV (or an Annotation built in code) is malformed."""

    def __init__(self, csv_path: str | Path, line: int | None, column: str | None, expected: str, found: object):
        where = f"{csv_path}"
        if line is not None:
            where += f", line {line}"
        if column is not None:
            where += f", column {column!r}"
        super().__init__(f"{where}: expected {expected}, found {found!r}")
        self.csv_path = Path(csv_path)
        self.line = line
        self.column = column
        self.expected = expected
        self.found = found


@dataclass(frozen=True, eq=False)
class Annotation:
    """One (image, task) row: five normalised keypoints on one object image.

    ``task`` and ``category`` are normalised on construction, so code that
    builds annotations (the synthetic generator) may pass display names.
    Arrays are stored read-only so a shared Annotation cannot be mutated.
    """

    image_path: Path
    relative_path: str
    task: str
    category: str
    role: str
    keypoints: np.ndarray
    visible: np.ndarray | None = None
    instance_id: str = ""
    line: int = 0
    extras: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "image_path", Path(self.image_path))
        object.__setattr__(self, "task", normalize_task(self.task))
        object.__setattr__(self, "category", normalize_category(self.category))
        if self.role not in ROLES:
            raise ValueError(f"Annotation for {self.relative_path}: expected role in {ROLES}, found {self.role!r}")
        keypoints = np.array(self.keypoints, dtype=np.float64)
        if keypoints.shape != (NUM_KEYPOINTS, 2):
            raise ValueError(
                f"Annotation for {self.relative_path}: expected keypoints of shape ({NUM_KEYPOINTS}, 2), "
                f"found {keypoints.shape}"
            )
        if not np.all(np.isfinite(keypoints)):
            raise ValueError(
                f"Annotation for {self.relative_path}: keypoints must be finite, found {keypoints.tolist()}"
            )
        keypoints.flags.writeable = False
        object.__setattr__(self, "keypoints", keypoints)
        if self.visible is None:
            visible = np.ones(NUM_KEYPOINTS, dtype=bool)
        else:
            visible = np.array(self.visible, dtype=bool)
            if visible.shape != (NUM_KEYPOINTS,):
                raise ValueError(
                    f"Annotation for {self.relative_path}: expected visible of shape ({NUM_KEYPOINTS},), "
                    f"found {visible.shape}"
                )
        visible.flags.writeable = False
        object.__setattr__(self, "visible", visible)
        object.__setattr__(self, "instance_id", str(self.instance_id) or self.relative_path)
        clash = sorted(set(self.extras) & set(STANDARD_COLUMNS))
        if clash:
            raise ValueError(
                f"Annotation for {self.relative_path}: extras may not hold standard columns, found {clash}"
            )
        object.__setattr__(self, "extras", MappingProxyType({str(k): str(v) for k, v in self.extras.items()}))

    def pixel_keypoints(self, width: int, height: int) -> np.ndarray:
        """Keypoints in pixels, (5, 2) float64: x * width, y * height."""
        return self.keypoints * np.array([width, height], dtype=np.float64)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Annotation):
            return NotImplemented
        return (
            self.image_path == other.image_path
            and self.relative_path == other.relative_path
            and self.task == other.task
            and self.category == other.category
            and self.role == other.role
            and np.array_equal(self.keypoints, other.keypoints)
            and np.array_equal(self.visible, other.visible)
            and self.instance_id == other.instance_id
            and self.line == other.line
            and dict(self.extras) == dict(other.extras)
        )

    def __hash__(self) -> int:
        # Fields that equal annotations share; the arrays are left out (unhashable).
        return hash((self.image_path, self.task, self.role, self.instance_id, self.line))


def _parse_coordinate(csv_path: Path, line: int, column: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise AnnotationError(csv_path, line, column, "a number in [0, 1]", text) from None
    if not math.isfinite(value) or value < -COORDINATE_TOLERANCE or value > 1.0 + COORDINATE_TOLERANCE:
        raise AnnotationError(csv_path, line, column, "a number in [0, 1] (normalised by image size)", text)
    return min(max(value, 0.0), 1.0)


def _parse_visibility(csv_path: Path, line: int, column: str, text: str) -> bool:
    # Accept "1.0"/"0.0" as written by pandas for integer columns with gaps.
    stripped = text.strip()
    if stripped in ("1", "1.0"):
        return True
    if stripped in ("0", "0.0"):
        return False
    raise AnnotationError(csv_path, line, column, "1 (visible) or 0 (occluded)", text)


def _check_image(csv_path: Path, line: int, image_path: Path, extras: Mapping[str, str]) -> None:
    """Header-only decode check (fast), plus agreement with image_width/height when present."""
    try:
        with Image.open(image_path) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError) as error:
        raise AnnotationError(
            csv_path, line, "dataset_image_path", "a readable JPEG or PNG image", f"{image_path} ({error})"
        ) from None
    if width <= 0 or height <= 0:
        raise AnnotationError(csv_path, line, "dataset_image_path", "an image with a positive size", (width, height))
    for column, actual in (("image_width", width), ("image_height", height)):
        text = extras.get(column, "").strip()
        if not text:
            continue
        try:
            declared = int(float(text))
        except ValueError:
            raise AnnotationError(csv_path, line, column, "an integer pixel size", text) from None
        if declared != actual:
            raise AnnotationError(csv_path, line, column, f"{actual} (the size of {image_path.name})", text)


def read_annotations(csv_path: str | Path, check_images: bool = True) -> list[Annotation]:
    """Read and validate a FunKPoint-style CSV.

    Checks the header (all REQUIRED_COLUMNS; v1..v5 all or none), each row's
    task, category, role, coordinates and visibility, that each image file
    exists, that one image holds one category and is not labelled twice for a
    task, and (``check_images``) that each distinct image's header decodes.
    Raises AnnotationError naming file, line, column, expected and found.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise AnnotationError(csv_path, None, None, "an existing CSV file", "no such file")
    root = csv_path.parent.resolve()
    try:
        handle = csv_path.open("r", newline="", encoding="utf-8-sig")
    except OSError as error:
        raise AnnotationError(csv_path, None, None, "a readable CSV file", str(error)) from None
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
        except (csv.Error, UnicodeDecodeError) as error:
            raise AnnotationError(csv_path, 1, None, "a CSV header row", str(error)) from None
        if header is None or not any(cell.strip() for cell in header):
            raise AnnotationError(
                csv_path, 1, None, "a header row naming " + ", ".join(REQUIRED_COLUMNS), "an empty file"
            )
        header = [cell.strip() for cell in header]
        duplicated = sorted({c for c in header if header.count(c) > 1})
        if duplicated:
            raise AnnotationError(csv_path, 1, None, "each column named once", f"repeated columns {duplicated}")
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise AnnotationError(csv_path, 1, None, "required columns " + ", ".join(missing), f"header {header}")
        present_v = [c for c in VISIBILITY_COLUMNS if c in header]
        if present_v and len(present_v) != NUM_KEYPOINTS:
            absent = [c for c in VISIBILITY_COLUMNS if c not in header]
            raise AnnotationError(csv_path, 1, None, "all of v1..v5 or none", f"missing {absent}")
        has_visibility = bool(present_v)
        extra_columns = [c for c in header if c not in STANDARD_COLUMNS]

        annotations: list[Annotation] = []
        seen_task: dict[tuple[str, str], int] = {}
        category_of_image: dict[str, tuple[str, int]] = {}
        category_of_instance: dict[str, tuple[str, int]] = {}
        checked_images: set[Path] = set()
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                break
            except (csv.Error, UnicodeDecodeError) as error:
                raise AnnotationError(csv_path, reader.line_num, None, "a well-formed CSV row", str(error)) from None
            line = reader.line_num
            if not any(cell.strip() for cell in cells):
                continue  # blank lines (e.g. a trailing newline pair) carry no row
            if len(cells) != len(header):
                raise AnnotationError(
                    csv_path, line, None, f"{len(header)} fields as in the header", f"{len(cells)} fields"
                )
            row = dict(zip(header, cells))
            try:
                task = normalize_task(row["action"])
            except ValueError:
                raise AnnotationError(
                    csv_path, line, "action", "a task (" + ", ".join(TASK_DISPLAY_NAMES.values()) + ")", row["action"]
                ) from None
            try:
                category = normalize_category(row["object_category"])
            except ValueError:
                raise AnnotationError(
                    csv_path,
                    line,
                    "object_category",
                    "a category (" + ", ".join(ALL_CATEGORIES) + ")",
                    row["object_category"],
                ) from None
            role = row["role"].strip().lower()
            if role not in ROLES:
                raise AnnotationError(csv_path, line, "role", "one of " + ", ".join(ROLES), row["role"])
            relative_path = row["dataset_image_path"].strip()
            if not relative_path:
                raise AnnotationError(csv_path, line, "dataset_image_path", "a path relative to the CSV's folder", "")
            coords = [_parse_coordinate(csv_path, line, c, row[c]) for c in COORDINATE_COLUMNS]
            keypoints = np.array(coords, dtype=np.float64).reshape(NUM_KEYPOINTS, 2)
            if has_visibility:
                visible = np.array([_parse_visibility(csv_path, line, c, row[c]) for c in VISIBILITY_COLUMNS])
            else:
                visible = np.ones(NUM_KEYPOINTS, dtype=bool)
            instance_id = row.get(INSTANCE_COLUMN, "").strip() or relative_path
            extras = {c: row[c] for c in extra_columns}

            image_path = (root / relative_path).resolve()
            if not image_path.is_file():
                raise AnnotationError(
                    csv_path, line, "dataset_image_path", f"an existing image file ({image_path})", relative_path
                )
            if check_images and image_path not in checked_images:
                _check_image(csv_path, line, image_path, extras)
                checked_images.add(image_path)

            key = (relative_path, task)
            if key in seen_task:
                raise AnnotationError(
                    csv_path,
                    line,
                    "action",
                    f"one row per (image, task); line {seen_task[key]} already labels {relative_path} for",
                    row["action"],
                )
            seen_task[key] = line
            for table, name, column in (
                (category_of_image, relative_path, "object_category"),
                (category_of_instance, instance_id, "object_category"),
            ):
                previous = table.setdefault(name, (category, line))
                if previous[0] != category:
                    raise AnnotationError(
                        csv_path,
                        line,
                        column,
                        f"{previous[0]} as on line {previous[1]} for the same object {name!r}",
                        row["object_category"],
                    )
            annotations.append(
                Annotation(
                    image_path=image_path,
                    relative_path=relative_path,
                    task=task,
                    category=category,
                    role=role,
                    keypoints=keypoints,
                    visible=visible,
                    instance_id=instance_id,
                    line=line,
                    extras=extras,
                )
            )
    if not annotations:
        raise AnnotationError(csv_path, 2, None, "at least one annotation row after the header", "no rows")
    return annotations


def _format_float(value: float) -> str:
    # repr of a Python float is the shortest string that parses back exactly.
    return repr(float(value))


def _written_path(annotation: Annotation, csv_dir: Path) -> str:
    """The path to write: the CSV's own relative path when it still points at the image,
    else the image's path relative to the new CSV folder (writing elsewhere stays valid)."""
    if not annotation.image_path.is_absolute():
        return annotation.relative_path
    if (csv_dir / annotation.relative_path).resolve() == annotation.image_path.resolve():
        return annotation.relative_path
    return Path(os.path.relpath(annotation.image_path, csv_dir)).as_posix()


def _union_in_order(groups: Iterable[Iterable[str]]) -> list[str]:
    seen: dict[str, None] = {}
    for group in groups:
        for name in group:
            seen.setdefault(name, None)
    return list(seen)


def write_annotations(
    csv_path: str | Path, annotations: Sequence[Annotation], extra_columns: Sequence[str] = ()
) -> None:
    """Write annotations as a FunKPoint-style CSV, atomically (:func:`funk_perception.atomic.atomic_open`).

    Columns: REQUIRED_COLUMNS, v1..v5, instance_id, the union of the
    annotations' extras keys (first-appearance order), then ``extra_columns``
    (empty where an annotation lacks them). ``action`` uses the display names
    of funk_perception.tasks, categories their canonical names; floats are
    written with repr so reading back gives the same values exactly.
    """
    csv_path = Path(csv_path)
    if not annotations:
        raise ValueError(f"write_annotations({csv_path}): expected at least one annotation, found none")
    clash = sorted(set(extra_columns) & set(STANDARD_COLUMNS))
    if clash:
        raise ValueError(f"write_annotations({csv_path}): extra_columns may not repeat standard columns, found {clash}")
    for index, annotation in enumerate(annotations):
        outside = (annotation.keypoints < -COORDINATE_TOLERANCE) | (annotation.keypoints > 1.0 + COORDINATE_TOLERANCE)
        if outside.any():
            # Refuse to write what read_annotations would reject.
            raise ValueError(
                f"write_annotations({csv_path}): annotation {index} ({annotation.relative_path}, {annotation.task}): "
                f"expected keypoints normalised to [0, 1], found {annotation.keypoints.tolist()}"
            )
        if not annotation.relative_path.strip():
            raise ValueError(f"write_annotations({csv_path}): annotation {index}: expected a relative_path, found ''")
    csv_dir = csv_path.parent.resolve()
    csv_dir.mkdir(parents=True, exist_ok=True)
    extras_order = _union_in_order([a.extras.keys() for a in annotations] + [list(extra_columns)])
    header = list(STANDARD_COLUMNS) + extras_order

    with atomic_open(csv_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for annotation in annotations:
            row = [
                TASK_DISPLAY_NAMES[annotation.task],
                annotation.category,
                annotation.role,
                _written_path(annotation, csv_dir),
            ]
            row += [_format_float(v) for v in annotation.keypoints.reshape(-1)]
            row += ["1" if v else "0" for v in annotation.visible]
            row.append(annotation.instance_id)
            row += [annotation.extras.get(c, "") for c in extras_order]
            writer.writerow(row)


class FunKPointDataset:
    """A thin indexed view over one FunKPoint-style CSV, optionally filtered by role and task."""

    def __init__(
        self,
        csv_path: str | Path,
        roles: Sequence[str] | None = None,
        tasks: Sequence[str] | None = None,
        check_images: bool = True,
    ) -> None:
        self.csv_path = Path(csv_path)
        self.root = self.csv_path.parent.resolve()
        if roles is not None:
            bad = [r for r in roles if r not in ROLES]
            if bad:
                raise ValueError(f"FunKPointDataset({self.csv_path}): expected roles among {ROLES}, found {bad}")
        wanted_tasks = None if tasks is None else {normalize_task(t) for t in tasks}
        self.annotations: list[Annotation] = [
            a
            for a in read_annotations(self.csv_path, check_images=check_images)
            if (roles is None or a.role in roles) and (wanted_tasks is None or a.task in wanted_tasks)
        ]
        self.image_paths: list[Path] = list(dict.fromkeys(a.image_path for a in self.annotations))
        self._image_index = {p: i for i, p in enumerate(self.image_paths)}
        present_tasks = {a.task for a in self.annotations}
        self.tasks: list[str] = [t for t in TASKS if t in present_tasks]
        present_categories = {a.category for a in self.annotations}
        self.categories: list[str] = [c for c in ALL_CATEGORIES if c in present_categories]

    def __len__(self) -> int:
        return len(self.annotations)

    def __getitem__(self, i: int) -> Annotation:
        return self.annotations[i]

    def image_index(self, path: Path) -> int:
        """Index of an image in :attr:`image_paths` (absolute, or relative to the CSV folder)."""
        resolved = (self.root / Path(path)).resolve()
        if resolved not in self._image_index:
            raise KeyError(f"{self.csv_path}: image {path} is not in this dataset ({len(self.image_paths)} images)")
        return self._image_index[resolved]

    def load_image(self, path_or_index: Path | int) -> np.ndarray:
        """The image as HxWx3 uint8 RGB."""
        if isinstance(path_or_index, (int, np.integer)):
            if not 0 <= int(path_or_index) < len(self.image_paths):
                raise IndexError(
                    f"{self.csv_path}: image index {path_or_index} out of range [0, {len(self.image_paths)})"
                )
            path = self.image_paths[int(path_or_index)]
        else:
            path = (self.root / Path(path_or_index)).resolve()
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise OSError(f"{self.csv_path}: cannot read image {path} (missing, or not a decodable JPEG/PNG)")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def indices_by_task(self) -> dict[str, list[int]]:
        """Annotation indices per task, tasks in TASKS order, indices ascending."""
        grouped: dict[str, list[int]] = {t: [] for t in self.tasks}
        for i, annotation in enumerate(self.annotations):
            grouped[annotation.task].append(i)
        return grouped
