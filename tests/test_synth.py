"""Dataset generator: every (category, task) pair, determinism, resume after a kill, splits, CSV round trip, previews."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from funk_perception.data import synth
from funk_perception.data.annotations import read_annotations
from funk_perception.data.preview import write_previews
from funk_perception.data.synth import SynthConfig, generate_dataset
from funk_perception.tasks import CATEGORIES, HELDOUT_CATEGORIES, HELDOUT_TASKS, TASK_CATEGORIES

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(
    instances_per_category=3,
    views_per_instance=2,
    size=64,
    seed=3,
    categories=("bottle", "cup", "frying_pan"),
    heldout_instances_per_category=0,
)


def _files(out: Path) -> dict[str, bytes]:
    """Every output byte that must be reproducible (the log and the manifest's run section are not)."""
    files = {}
    for path in sorted(out.rglob("*")):
        rel = path.relative_to(out).as_posix()
        if path.is_file() and rel not in ("synth.log", "manifest.json"):
            files[rel] = path.read_bytes()
    manifest = json.loads((out / "manifest.json").read_text())
    manifest.pop("run")
    files["manifest.json"] = json.dumps(manifest, sort_keys=True).encode()
    return files


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference")
    generate_dataset(SynthConfig(out=out, **SMALL), progress=False)
    return out


def test_every_category_task_pair_is_generated(tmp_path: Path) -> None:
    manifest = generate_dataset(
        SynthConfig(
            out=tmp_path, instances_per_category=1, views_per_instance=1, size=64, heldout_instances_per_category=1
        ),
        progress=False,
    )
    rows = read_annotations(tmp_path / "annotations.csv")
    got = {(a.category, a.task) for a in rows}
    expected = {(c, t) for t, cats in TASK_CATEGORIES.items() for c in cats}
    assert got == expected, f"missing {sorted(expected - got)}"
    assert {a.category for a in rows} == set(CATEGORIES)
    heldout = read_annotations(tmp_path / "heldout.csv")
    assert {(a.category, a.task) for a in heldout} == {(c, t) for c in HELDOUT_CATEGORIES for t in HELDOUT_TASKS[c]}
    assert {a.role for a in heldout} == {"test"}
    assert manifest["counts"]["train_categories"]["images"] == len(CATEGORIES)
    # every image has a depth map and a mask of its size, and the mask covers the object
    for a in rows[:: max(1, len(rows) // 10)]:
        depth = cv2.imread(str(tmp_path / a.extras["depth_path"]), cv2.IMREAD_UNCHANGED)
        mask = cv2.imread(str(tmp_path / a.extras["mask_path"]), cv2.IMREAD_UNCHANGED)
        assert depth.dtype == np.uint16 and depth.shape == (64, 64)
        assert mask.shape == (64, 64) and (mask > 0).sum() >= 5  # thin tools at 64 px cover few pixels
        assert np.all(depth[mask > 0] > 0)


def test_same_seed_same_bytes_with_any_worker_count(reference: Path, tmp_path: Path) -> None:
    generate_dataset(SynthConfig(out=tmp_path, workers=2, **SMALL), progress=False)
    assert _files(tmp_path) == _files(reference)
    other = tmp_path / "other_seed"
    generate_dataset(SynthConfig(out=other, **{**SMALL, "seed": 4}), progress=False)
    assert (other / "annotations.csv").read_bytes() != (reference / "annotations.csv").read_bytes()


def test_rerun_resumes_after_a_kill(reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "killed"
    args = [
        sys.executable,
        "-m",
        "funk_perception.data.synth",
        "--out",
        str(out),
        "--workers",
        "1",
        "--no-progress",
        "--instances-per-category",
        "3",
        "--views-per-instance",
        "2",
        "--size",
        "64",
        "--seed",
        "3",
        "--categories",
        "bottle",
        "cup",
        "frying_pan",
        "--heldout-instances-per-category",
        "0",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MUJOCO_GL": "egl"}
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and not list((out / "records").rglob("*.json")) and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # whatever the kill left (some records, half-written temps), simulate the worst case too
    (out / "images" / "cup").mkdir(parents=True, exist_ok=True)
    (out / "images" / "cup" / "cup_0001_v0.jpg.tmp-999").write_bytes(b"torn")
    manifest = generate_dataset(SynthConfig(out=out, **SMALL), progress=False)
    assert _files(out) == _files(reference)
    assert manifest["run"]["instances_generated"] + manifest["run"]["instances_resumed"] == 9

    # a finished run with lost files regenerates exactly those instances
    (out / "records" / "bottle" / "bottle_0001.json").unlink()
    (out / "images" / "cup" / "cup_0002_v1.jpg").unlink()
    (out / "annotations.csv").unlink()
    manifest = generate_dataset(SynthConfig(out=out, **SMALL), progress=False)
    assert manifest["run"]["instances_generated"] == 2
    assert _files(out) == _files(reference)


def test_split_is_by_instance_and_roles_follow_it(reference: Path) -> None:
    rows = read_annotations(reference / "annotations.csv")
    train = {a.instance_id for a in rows if a.role == "train"}
    test = {a.instance_id for a in rows if a.role == "test"}
    assert train and test and not (train & test)
    assert all(a.extras["split"] == a.role for a in rows)
    # every category has both splits (3 instances, test fraction 0.2 -> 1 test instance each)
    for category in SMALL["categories"]:
        assert len({a.instance_id for a in rows if a.category == category and a.role == "test"}) == 1


def test_csv_round_trip_matches_the_records(reference: Path) -> None:
    rows = read_annotations(reference / "annotations.csv")
    record = json.loads((reference / "records" / "cup" / "cup_0000.json").read_text())
    records = [json.loads(p.read_text()) for p in (reference / "records").rglob("*.json")]
    assert len(rows) == sum(len(r["views"]) * len(r["tasks"]) for r in records)
    for a in (r for r in rows if r.instance_id == "cup_0000"):
        view = record["views"][int(a.extras["view_id"])]
        assert np.allclose(a.keypoints * 64, view["keypoints"][a.task], atol=1e-9)
        assert list(a.visible) == view["visible"][a.task]
        assert a.image_path.is_file() and a.extras["image_width"] == "64"
    # some keypoints are marked occluded, most are visible
    visible = np.concatenate([a.visible for a in rows])
    assert 0.3 < visible.mean() < 1.0


def test_refuses_missing_builders_and_mixed_settings(reference: Path, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(synth, "CATEGORY_BUILDERS", {k: v for k, v in synth.CATEGORY_BUILDERS.items() if k != "cup"})
    with pytest.raises(ValueError, match="cup"):
        generate_dataset(SynthConfig(out=tmp_path, **SMALL), progress=False)
    monkeypatch.undo()
    with pytest.raises(ValueError, match="other settings"):
        generate_dataset(SynthConfig(out=reference, **{**SMALL, "seed": 99}), progress=False)
    with pytest.raises(ValueError, match="held-out"):
        SynthConfig(categories=("wok",))


def test_preview_sheet_is_written(reference: Path, tmp_path: Path) -> None:
    paths = write_previews(reference / "annotations.csv", tmp_path / "sheet.png")
    assert {p.name for p in paths} == {
        "sheet_pour.png",
        "sheet_scoop.png",
        "sheet_mash_pound.png",
        "sheet_pull_out_nail.png",
    }
    sheet = cv2.imread(str(tmp_path / "sheet_pour.png"))
    assert sheet.shape[0] > 3 * 192 and sheet.shape[1] > 3 * 192  # header + one row per pour category


def test_scene_overrides_change_the_renders_and_are_recorded(reference: Path, tmp_path: Path) -> None:
    plain = dict(
        plain_material_probability=1.0,
        table_probability=0.0,
        photo_background_probability=0.0,
        plain_background_probability=1.0,
        fill_range=[0.9, 0.95],
    )
    out = tmp_path / "plain"
    assert (
        synth.main(
            [
                "--out",
                str(out),
                "--instances-per-category",
                "3",
                "--views-per-instance",
                "2",
                "--size",
                "64",
                "--seed",
                "3",
                "--categories",
                "bottle",
                "cup",
                "frying_pan",
                "--heldout-instances-per-category",
                "0",
                "--no-progress",
            ]
            + [a for k, v in plain.items() for a in ("--scene", f"{k}={json.dumps(v)}")]
        )
        == 0
    )
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["settings"]["scene"] == plain
    # the same scenes otherwise (same seeds), but every render differs: plain materials, plain backdrops
    ours, theirs = _files(out), _files(reference)
    images = [k for k in theirs if k.startswith("images/")]
    assert set(images) <= set(ours) and all(ours[k] != theirs[k] for k in images)
    # without overrides the fingerprint has no scene entry: datasets made before the option still resume
    assert "scene" not in SynthConfig(**SMALL).fingerprint()
    with pytest.raises(ValueError, match="other settings"):
        generate_dataset(SynthConfig(out=reference, scene=tuple(plain.items()), **SMALL), progress=False)
    with pytest.raises(ValueError, match="unknown SceneConfig fields"):
        SynthConfig(scene=(("plain_materials", 1.0),))
    with pytest.raises(ValueError, match="fill_range"):
        SynthConfig(scene=(("fill_range", [0.9, 0.5]),))
    with pytest.raises(ValueError, match="JSON"):
        synth.parse_scene(["fill_range=(0.6, 0.9)"])


def test_placement_changes_the_labels_not_the_renders(reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "funkpoint"
    assert (
        synth.main(
            [
                "--out",
                str(out),
                "--instances-per-category",
                "3",
                "--views-per-instance",
                "2",
                "--size",
                "64",
                "--seed",
                "3",
                "--categories",
                "bottle",
                "cup",
                "frying_pan",
                "--heldout-instances-per-category",
                "0",
                "--no-progress",
                "--placement",
                "funkpoint",
            ]
        )
        == 0
    )
    ours, theirs = _files(out), _files(reference)
    images = [k for k in theirs if k.startswith("images/")]
    assert images and all(ours[k] == theirs[k] for k in images)
    assert json.loads((out / "manifest.json").read_text())["settings"]["placement"] == "funkpoint"
    assert "placement" not in SynthConfig(**SMALL).fingerprint()  # datasets made before the option still resume
    ours_rows = {(a.relative_path, a.task): a for a in read_annotations(out / "annotations.csv")}
    theirs_rows = {(a.relative_path, a.task): a for a in read_annotations(reference / "annotations.csv")}
    assert set(ours_rows) == set(theirs_rows)
    moved = set()
    for key, ours_row in ours_rows.items():
        same = np.all(ours_row.keypoints == theirs_rows[key].keypoints, axis=1)
        if not same.all():
            moved.add(key[1])
            assert same[[0, 1, 4]].all(), f"{key}: only p3 and p4 move on a pan's pull_out_nail"
    assert moved == {"pull_out_nail"}
    with pytest.raises(ValueError, match="placement"):
        SynthConfig(placement="real")
