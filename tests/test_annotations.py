"""FunKPoint-style CSV reading, writing and validation (funk_perception.data.annotations)."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from funk_perception.data.annotations import (
    REQUIRED_COLUMNS,
    ROLES,
    Annotation,
    AnnotationError,
    FunKPointDataset,
    read_annotations,
    write_annotations,
)
from funk_perception.tasks import KEYPOINTS, TASKS

# Real-style spellings as they appear in public FunKPoint subsets.
REAL_ROWS = [
    ("Mash/Pound", "frying_pan", "reference", "images/pan_0.png"),
    ("Lift Something", "ladle", "test", "images/ladle_0.png"),
    ("Pull out a nail", "hammer", "train", "images/hammer_0.png"),
    ("Brush/Dust", "scrub brush", "train", "images/brush_0.jpg"),
    ("Pour", "frying_pan", "test", "images/pan_0.png"),
]


def _make_image(path: Path, width: int = 32, height: int = 24, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    assert cv2.imwrite(str(path), pixels)


def _keypoint_values(row_index: int) -> list[str]:
    rng = np.random.default_rng(row_index)
    return [repr(float(v)) for v in rng.random(2 * len(KEYPOINTS))]


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _real_style_csv(tmp_path: Path) -> tuple[Path, list[str], list[list[str]]]:
    """A CSV with real-style names, plus an optional 'notes' column to preserve."""
    for i, (_, _, _, relative) in enumerate(REAL_ROWS):
        if not (tmp_path / relative).exists():
            _make_image(tmp_path / relative, seed=i)
    header = list(REQUIRED_COLUMNS) + ["notes"]
    rows = [[a, c, r, p] + _keypoint_values(i) + [f"note {i}"] for i, (a, c, r, p) in enumerate(REAL_ROWS)]
    return _write_csv(tmp_path / "funkpoint.csv", header, rows), header, rows


def _assert_error(csv_path: Path, line: int, column: str | None, fragment: str, check_images: bool = True) -> None:
    with pytest.raises(AnnotationError) as info:
        read_annotations(csv_path, check_images=check_images)
    message = str(info.value)
    assert str(csv_path) in message
    assert f"line {line}" in message
    if column is not None:
        assert repr(column) in message
        assert info.value.column == column
    assert fragment in message
    assert info.value.line == line


def test_real_style_names_are_normalised(tmp_path: Path) -> None:
    csv_path, _, rows = _real_style_csv(tmp_path)
    annotations = read_annotations(csv_path)
    assert [a.task for a in annotations] == ["mash_pound", "lift_something", "pull_out_nail", "brush_dust", "pour"]
    assert [a.category for a in annotations] == ["frying_pan", "ladle", "hammer", "scrub_brush", "frying_pan"]
    assert [a.role for a in annotations] == [r[2] for r in rows]
    assert [a.line for a in annotations] == [2, 3, 4, 5, 6]
    first = annotations[0]
    assert first.image_path == (tmp_path / "images/pan_0.png").resolve()
    assert first.relative_path == "images/pan_0.png"
    assert first.instance_id == "images/pan_0.png"  # no instance_id column: each image is its own instance
    assert first.visible.dtype == bool and first.visible.all()
    assert first.keypoints.shape == (5, 2) and first.keypoints.dtype == np.float64
    np.testing.assert_array_equal(first.keypoints.reshape(-1), [float(v) for v in rows[0][4:14]])
    assert dict(first.extras) == {"notes": "note 0"}
    np.testing.assert_allclose(first.pixel_keypoints(32, 24), first.keypoints * [32, 24])


def test_round_trip_preserves_everything(tmp_path: Path) -> None:
    csv_path, _, _ = _real_style_csv(tmp_path)
    original = read_annotations(csv_path)
    rewritten = tmp_path / "copy.csv"
    write_annotations(rewritten, original, extra_columns=["reviewer"])
    again = read_annotations(rewritten)
    assert len(again) == len(original)
    for a, b in zip(original, again):
        assert b.extras["notes"] == a.extras["notes"] and b.extras["reviewer"] == ""
        assert (a.image_path, a.task, a.category, a.role, a.instance_id) == (
            b.image_path,
            b.task,
            b.category,
            b.role,
            b.instance_id,
        )
        np.testing.assert_array_equal(a.keypoints, b.keypoints)  # repr floats: exact
    with rewritten.open() as handle:
        header = next(csv.reader(handle))
    assert header[: len(REQUIRED_COLUMNS)] == list(REQUIRED_COLUMNS)
    assert header[len(REQUIRED_COLUMNS) :] == ["v1", "v2", "v3", "v4", "v5", "instance_id", "notes", "reviewer"]
    assert "Mash/Pound" in rewritten.read_text()  # display names in the action column
    # Writing the read-back annotations again is a fixed point: the Annotations compare equal.
    write_annotations(tmp_path / "copy2.csv", again)
    assert read_annotations(tmp_path / "copy2.csv") == again
    assert len(set(read_annotations(tmp_path / "copy2.csv")) | set(again)) == len(again)  # hash agrees with ==
    assert read_annotations(tmp_path / "copy2.csv") != original  # equality does look at extras


def test_synthetic_columns_and_visibility_round_trip(tmp_path: Path) -> None:
    _make_image(tmp_path / "a.png", 40, 30)
    _make_image(tmp_path / "b.png", 40, 30, seed=1)
    annotations = [
        Annotation(
            image_path=(tmp_path / name).resolve(),
            relative_path=name,
            task=task,
            category="spoon",
            role="train",
            keypoints=np.linspace(0.0, 1.0, 10).reshape(5, 2) ** (1 + i),
            visible=[True, False, True, True, i == 0],
            instance_id=f"spoon_{i:03d}",
            extras={"split": "train", "view_id": str(i), "image_width": "40", "image_height": "30"},
        )
        for i, (name, task) in enumerate([("a.png", "Scoop"), ("b.png", "mix")])
    ]
    path = tmp_path / "nested" / "synthetic.csv"
    write_annotations(path, annotations)  # a different folder: paths are rewritten relative to it
    back = read_annotations(path)
    assert [a.relative_path for a in back] == ["../a.png", "../b.png"]
    for a, b in zip(annotations, back):
        assert b.image_path == a.image_path and b.task == a.task and b.instance_id == a.instance_id
        np.testing.assert_array_equal(b.keypoints, a.keypoints)
        np.testing.assert_array_equal(b.visible, a.visible)
        assert dict(b.extras) == dict(a.extras)
    assert not list(path.parent.glob("*.tmp"))  # atomic write left no temp file


def test_annotation_arrays_are_read_only(tmp_path: Path) -> None:
    csv_path, _, _ = _real_style_csv(tmp_path)
    annotation = read_annotations(csv_path)[0]
    with pytest.raises(ValueError):
        annotation.keypoints[0, 0] = 0.5


@pytest.mark.parametrize(
    ("mutate", "line", "column", "fragment"),
    [
        (lambda h, r: r[1].__setitem__(0, "Juggle"), 3, "action", "'Juggle'"),
        (lambda h, r: r[2].__setitem__(1, "teapot"), 4, "object_category", "'teapot'"),
        (lambda h, r: r[0].__setitem__(2, "validation"), 2, "role", "one of reference, test, train"),
        (lambda h, r: r[3].__setitem__(4 + 5, "1.2"), 5, "p3_y", "in [0, 1]"),
        (lambda h, r: r[3].__setitem__(4, "-0.01"), 5, "p1_x", "in [0, 1]"),
        (lambda h, r: r[4].__setitem__(4 + 2, "abc"), 6, "p2_x", "'abc'"),
        (lambda h, r: r[4].__setitem__(4 + 9, "nan"), 6, "p5_y", "'nan'"),
        (lambda h, r: r[1].__setitem__(3, "images/nowhere.png"), 3, "dataset_image_path", "existing image file"),
    ],
    ids=[
        "unknown_task",
        "unknown_category",
        "bad_role",
        "coordinate_above_1",
        "coordinate_below_0",
        "non_numeric",
        "nan",
        "missing_image",
    ],
)
def test_malformed_rows_name_file_line_and_field(tmp_path: Path, mutate, line: int, column: str, fragment: str) -> None:
    csv_path, header, rows = _real_style_csv(tmp_path)
    mutate(header, rows)
    _write_csv(csv_path, header, rows)
    _assert_error(csv_path, line, column, fragment)


def test_tiny_float_overshoot_is_tolerated_and_clipped(tmp_path: Path) -> None:
    csv_path, header, rows = _real_style_csv(tmp_path)
    rows[0][4] = "1.0000004"
    rows[0][5] = "-0.0000004"
    _write_csv(csv_path, header, rows)
    first = read_annotations(csv_path)[0]
    assert first.keypoints[0, 0] == 1.0 and first.keypoints[0, 1] == 0.0


def test_missing_columns_are_listed(tmp_path: Path) -> None:
    csv_path, header, rows = _real_style_csv(tmp_path)
    drop = [header.index("role"), header.index("p4_y")]
    header = [h for i, h in enumerate(header) if i not in drop]
    rows = [[v for i, v in enumerate(r) if i not in drop] for r in rows]
    _write_csv(csv_path, header, rows)
    _assert_error(csv_path, 1, None, "required columns role, p4_y")


def test_partial_visibility_columns_rejected(tmp_path: Path) -> None:
    csv_path, header, rows = _real_style_csv(tmp_path)
    _write_csv(csv_path, header + ["v1", "v2"], [r + ["1", "0"] for r in rows])
    _assert_error(csv_path, 1, None, "all of v1..v5 or none")


def test_visibility_must_be_zero_or_one(tmp_path: Path) -> None:
    csv_path, header, rows = _real_style_csv(tmp_path)
    vis = ["v1", "v2", "v3", "v4", "v5"]
    rows = [r + ["1", "1", "0", "1", "1"] for r in rows]
    rows[2][-1] = "yes"
    _write_csv(csv_path, header + vis, rows)
    _assert_error(csv_path, 4, "v5", "1 (visible) or 0 (occluded)")


def test_corrupt_image_is_reported(tmp_path: Path) -> None:
    csv_path, _, _ = _real_style_csv(tmp_path)
    (tmp_path / "images/ladle_0.png").write_bytes(b"this is not a png at all")
    _assert_error(csv_path, 3, "dataset_image_path", "readable JPEG or PNG")
    # Without the decode check only existence is verified.
    assert len(read_annotations(csv_path, check_images=False)) == len(REAL_ROWS)


def test_declared_image_size_must_match(tmp_path: Path) -> None:
    csv_path, header, rows = _real_style_csv(tmp_path)
    _write_csv(csv_path, header + ["image_width"], [r + ["32"] for r in rows[:2]] + [r + ["64"] for r in rows[2:]])
    _assert_error(csv_path, 4, "image_width", "32")


def test_header_only_and_empty_files_are_errors(tmp_path: Path) -> None:
    header_only = _write_csv(tmp_path / "header_only.csv", list(REQUIRED_COLUMNS), [])
    _assert_error(header_only, 2, None, "no rows")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    _assert_error(empty, 1, None, "an empty file")
    with pytest.raises(AnnotationError, match="no such file"):
        read_annotations(tmp_path / "absent.csv")


def test_duplicate_image_task_and_inconsistent_category(tmp_path: Path) -> None:
    csv_path, header, rows = _real_style_csv(tmp_path)
    _write_csv(csv_path, header, rows + [rows[0]])
    _assert_error(csv_path, 7, "action", "line 2 already labels")
    changed = [list(r) for r in rows]
    changed[4][1] = "bottle"  # pan_0.png was a frying_pan on line 2
    _write_csv(csv_path, header, changed)
    _assert_error(csv_path, 6, "object_category", "frying_pan as on line 2")


def test_ragged_row_is_reported(tmp_path: Path) -> None:
    csv_path, header, rows = _real_style_csv(tmp_path)
    rows[1] = rows[1][:-3]
    _write_csv(csv_path, header, rows)
    _assert_error(csv_path, 3, None, "fields as in the header")


def test_dataset_view(tmp_path: Path) -> None:
    csv_path, _, _ = _real_style_csv(tmp_path)
    dataset = FunKPointDataset(csv_path)
    assert len(dataset) == len(REAL_ROWS)
    assert dataset.root == tmp_path.resolve()
    assert [p.name for p in dataset.image_paths] == ["pan_0.png", "ladle_0.png", "hammer_0.png", "brush_0.jpg"]
    assert dataset.tasks == [
        t for t in TASKS if t in {"mash_pound", "lift_something", "pull_out_nail", "brush_dust", "pour"}
    ]
    assert dataset.categories == ["frying_pan", "hammer", "ladle", "scrub_brush"]
    assert dataset.indices_by_task() == {
        "pour": [4],
        "mash_pound": [0],
        "lift_something": [1],
        "brush_dust": [3],
        "pull_out_nail": [2],
    }
    assert dataset.image_index(Path("images/ladle_0.png")) == 1
    assert dataset.image_index(dataset[2].image_path) == 2
    image = dataset.load_image(0)
    assert image.shape == (24, 32, 3) and image.dtype == np.uint8
    expected_bgr = cv2.imread(str(tmp_path / "images/pan_0.png"))
    np.testing.assert_array_equal(image, expected_bgr[:, :, ::-1])
    np.testing.assert_array_equal(dataset.load_image(Path("images/pan_0.png")), image)
    with pytest.raises(KeyError, match="not in this dataset"):
        dataset.image_index(Path("images/other.png"))

    filtered = FunKPointDataset(csv_path, roles=["test"], tasks=["Pour"])
    assert [a.relative_path for a in filtered] == ["images/pan_0.png"]
    assert filtered.tasks == ["pour"]
    with pytest.raises(ValueError, match="expected roles among"):
        FunKPointDataset(csv_path, roles=["dev"])
    assert ROLES == ("reference", "test", "train")


def test_write_rejects_empty_and_clashing_columns(tmp_path: Path) -> None:
    csv_path, _, _ = _real_style_csv(tmp_path)
    annotations = read_annotations(csv_path)
    with pytest.raises(ValueError, match="at least one annotation"):
        write_annotations(tmp_path / "out.csv", [])
    with pytest.raises(ValueError, match="standard columns"):
        write_annotations(tmp_path / "out.csv", annotations, extra_columns=["role"])
    assert not (tmp_path / "out.csv").exists()


def test_write_rejects_coordinates_outside_the_image(tmp_path: Path) -> None:
    outside = Annotation(tmp_path / "a.png", "a.png", "pour", "cup", "train", np.full((5, 2), 1.5))
    with pytest.raises(ValueError, match=r"annotation 0 \(a.png, pour\): expected keypoints normalised"):
        write_annotations(tmp_path / "out.csv", [outside])
    assert not list(tmp_path.iterdir())


def test_annotation_constructor_validates_fields(tmp_path: Path) -> None:
    built = Annotation(tmp_path / "a.png", "a.png", "Mash/Pound", "scrub brush", "train", np.zeros((5, 2)))
    assert (built.task, built.category, built.instance_id) == ("mash_pound", "scrub_brush", "a.png")
    with pytest.raises(ValueError, match="expected keypoints of shape"):
        Annotation(tmp_path / "a.png", "a.png", "pour", "cup", "train", np.zeros((4, 2)))
    with pytest.raises(ValueError, match="expected role"):
        Annotation(tmp_path / "a.png", "a.png", "pour", "cup", "val", np.zeros((5, 2)))
    with pytest.raises(ValueError, match="unknown task"):
        Annotation(tmp_path / "a.png", "a.png", "juggle", "cup", "train", np.zeros((5, 2)))
    with pytest.raises(ValueError, match="standard columns"):
        Annotation(tmp_path / "a.png", "a.png", "pour", "cup", "train", np.zeros((5, 2)), extras={"role": "x"})
