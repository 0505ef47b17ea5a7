"""The user's own reference photos (funk_perception/references.py): added from a photo or a CSV into a bank
file that names its model, refused by another model until re-embedded, used by ``detect`` beside or instead
of the shipped bank, by ``evaluate`` and by the node; bad input ends in one ``error:`` line and exit 2.
Real components on the CPU: the shipped model, sample renders made non-square."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from funk_perception.data.annotations import read_annotations, write_annotations
from funk_perception.detector import FunctionalKeypointDetector
from funk_perception.eval_config import EvalConfig
from funk_perception.evaluate import evaluate
from funk_perception.reference_bank import (
    REFERENCE_MODES,
    VIEWS,
    FingerprintMismatch,
    ReferenceBankError,
    load_bank,
)
from funk_perception.references import main, pixel_points
from funk_perception.ros.params import BY_NAME, validate

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "funk-lite0-synth.pt"
SAMPLES = ROOT / "samples" / "synth" / "annotations.csv"
PAD = 96  # columns of grey added on the right: a 320 x 224 photo, so letterboxing matters


def row(task: str = "pour", category: str = "cup"):
    """The first sample row of ``task`` on a ``category`` render with every keypoint visible."""
    return next(a for a in read_annotations(SAMPLES) if a.task == task and a.category == category and a.visible.all())


def padded(annotation) -> np.ndarray:
    rgb = cv2.cvtColor(cv2.imread(str(annotation.image_path)), cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(np.pad(rgb, ((0, 0), (0, PAD), (0, 0)), constant_values=128))


def centre_pixels(annotation) -> np.ndarray:
    """The row's keypoints in the padded photo, in OpenCV's pixel-centre convention (what a user types)."""
    return annotation.keypoints * 224 - 0.5


def points_text(points: np.ndarray) -> str:
    return ";".join(f"{x:.3f},{y:.3f}" for x, y in points)


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> tuple[Path, np.ndarray, np.ndarray]:
    """(file, rgb, pixel-centre points) of one labelled pour photo (a cup), 320 x 224."""
    torch.set_num_threads(1)
    annotation = row()
    rgb = padded(annotation)
    path = tmp_path_factory.mktemp("photo") / "my_cup.png"
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path, rgb, centre_pixels(annotation)


@pytest.fixture(scope="module")
def bank(photo, tmp_path_factory) -> Path:
    """A bank of that one photo, made by the command line with the shipped model."""
    path = tmp_path_factory.mktemp("bank") / "my_bank.pt"
    image, _, points = photo
    args = [
        "add",
        "--image",
        str(image),
        "--task",
        "Pour",
        "--points",
        points_text(points),
        "--bank",
        str(path),
        "--model",
        str(MODEL),
        "--device",
        "cpu",
    ]
    assert main(args) == 0
    return path


@pytest.fixture(scope="module")
def detectors(bank) -> dict[str, FunctionalKeypointDetector]:
    return {
        "shipped": FunctionalKeypointDetector.load(MODEL, device="cpu"),
        **{
            mode: FunctionalKeypointDetector.load(MODEL, device="cpu", references=bank, references_mode=mode)
            for mode in REFERENCE_MODES
        },
    }


# -- adding ----------------------------------------------------------------------------------------------------------


def test_pixel_points_shift_pixel_centres_to_the_detectors_corner_origin():
    # the centre of the top-left pixel is (0, 0) for the user, (0.5, 0.5) pixels from the corner for the detector
    got = pixel_points("0,0; 9,0; 4.5,4.5; 0,19; 9,19", 10, 20)
    assert np.allclose(got, [[0.05, 0.025], [0.95, 0.025], [0.5, 0.25], [0.05, 0.975], [0.95, 0.975]])
    assert np.allclose(pixel_points("-0.5,-0.5;9.5,19.5;0,0;0,0;0,0", 10, 20)[:2], [[0, 0], [1, 1]])


def test_add_from_an_image_stores_the_photo_points_and_model(photo, bank, capsys):
    image, rgb, points = photo
    stored = load_bank(bank)
    (ref,) = stored.references
    assert ref.task == "pour" and ref.name == "my_cup.png" and (ref.width, ref.height) == (320, 224)
    assert ref.image_bytes == image.read_bytes() and np.array_equal(ref.image(), rgb)
    assert np.allclose(ref.points * [320, 224] - 0.5, points, atol=1e-3) and ref.visible.all()
    detector = FunctionalKeypointDetector.load(MODEL, device="cpu")
    assert stored.fingerprint == detector.fingerprint and stored.settings == detector.embedding_settings
    assert ref.embeddings.shape == (len(VIEWS), 5, detector.encoder.embedding_dim)
    assert torch.allclose(ref.embeddings[0].float(), detector.embed_keypoints(rgb, ref.points, "pour"), atol=2e-3)
    # the same photo again: skipped, so a script that builds a bank can be rerun
    before = bank.read_bytes()
    assert (
        main(
            [
                "add",
                "--image",
                str(image),
                "--task",
                "pour",
                "--points",
                points_text(points),
                "--bank",
                str(bank),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert "added 0, already there 1" in capsys.readouterr().out and bank.read_bytes() == before
    assert main(["list", "--bank", str(bank)]) == 0
    listing = capsys.readouterr().out
    assert "1 references for pour" in listing and stored.fingerprint[:16] in listing and "my_cup.png" in listing


def test_add_from_a_csv_takes_the_rows_of_the_roles_asked_for(tmp_path, capsys):
    rows = [a for a in read_annotations(SAMPLES) if a.task == "scoop"][:2]
    rows = [dataclasses.replace(rows[0], role="reference"), *rows[1:]]
    csv = tmp_path / "mine.csv"
    write_annotations(csv, rows)
    out = tmp_path / "csv_bank.pt"
    assert main(["add", "--csv", str(csv), "--bank", str(out), "--device", "cpu"]) == 0  # role reference by default
    assert [r.task for r in load_bank(out).references] == ["scoop"]
    assert (
        main(["add", "--csv", str(csv), "--roles", "reference", rows[1].role, "--bank", str(out), "--device", "cpu"])
        == 0
    )
    assert "added 1, already there 1" in capsys.readouterr().out
    stored = load_bank(out)
    assert [Path(r.name).name for r in stored.references] == [Path(a.relative_path).name for a in rows]
    assert np.allclose(stored.references[1].points, rows[1].keypoints)  # CSV coordinates are taken as they are
    assert np.array_equal(stored.references[1].visible, rows[1].visible)


# -- another model ---------------------------------------------------------------------------------------------------


def test_a_bank_of_another_model_is_refused_until_re_embedded(bank, tmp_path, capsys, other_checkpoint):
    OTHER = other_checkpoint  # another encoder with every detect method
    other = FunctionalKeypointDetector.load(OTHER, device="cpu")
    with pytest.raises(FingerprintMismatch) as err:
        FunctionalKeypointDetector.load(OTHER, device="cpu", references=bank)
    message = str(err.value)
    assert str(bank) in message and load_bank(bank).fingerprint[:16] in message and other.fingerprint[:16] in message
    assert f"python -m funk_perception.references reembed --bank {bank} --model {OTHER}" in message
    # adding to it with the other model: the same refusal, one line, exit 2
    image = tmp_path / "x.png"
    cv2.imwrite(str(image), np.zeros((20, 30, 3), np.uint8))
    args = [
        "add",
        "--image",
        str(image),
        "--task",
        "pour",
        "--points",
        "1,1;2,2;3,3;4,4;5,5",
        "--bank",
        str(bank),
        "--model",
        str(OTHER),
        "--device",
        "cpu",
    ]
    assert main(args) == 2
    assert "reembed" in error_line(capsys)
    moved = tmp_path / "for_other.pt"
    assert main(["reembed", "--bank", str(bank), "--model", str(OTHER), "--out", str(moved), "--device", "cpu"]) == 0
    again = load_bank(moved)
    assert (
        again.fingerprint == other.fingerprint
        and again.references[0].image_bytes == load_bank(bank).references[0].image_bytes
    )
    assert FunctionalKeypointDetector.load(OTHER, device="cpu", references=moved).references.keys() == {"pour"}


# -- detect with references ------------------------------------------------------------------------------------------


def test_replace_with_one_reference_recovers_its_points_on_that_photo_and_its_mirror(photo, detectors):
    _, rgb, points = photo
    cell = 16 * rgb.shape[1] / 224  # one feature cell (stride 16 of the 224 input) in photo pixels: 23 here
    found = detectors["replace"].detect(rgb, ["pour"])["pour"].points - 0.5  # detector -> pixel centres
    error = np.linalg.norm(found - points, axis=1)
    assert error.max() < cell and error.mean() < cell / 2, error
    # the mirrored photo: the reference votes with its mirrored view, each keypoint keeps its name
    mirrored = np.ascontiguousarray(rgb[:, ::-1])
    truth = points.copy()
    truth[:, 0] = rgb.shape[1] - 1 - truth[:, 0]
    found = detectors["replace"].detect(mirrored, ["pour"])["pour"].points - 0.5
    error = np.linalg.norm(found - truth, axis=1)
    assert error.max() < cell and error.mean() < cell / 2, error


def test_add_mixes_both_banks_and_other_tasks_are_unchanged(photo, detectors):
    _, rgb, points = photo
    got = {name: d.detect(rgb, ["pour", "scoop"]) for name, d in detectors.items()}
    error = {name: np.linalg.norm(g["pour"].points - 0.5 - points, axis=1).mean() for name, g in got.items()}
    assert error["add"] <= error["shipped"] + 1e-6
    assert not np.allclose(got["add"]["pour"].points, got["shipped"]["pour"].points)
    # the add mix shows in the vote maps: between the shipped bank's and the reference's alone
    features = detectors["add"].features(rgb, ["pour"])[0]
    maps = {name: d.bank_votes("pour", features) for name, d in detectors.items()}
    assert torch.allclose(maps["add"], 0.5 * maps["shipped"] + 0.5 * maps["replace"], atol=1e-6)
    for name in REFERENCE_MODES:  # no reference for scoop: the shipped bank alone, whatever the mode
        assert np.array_equal(got[name]["scoop"].points, got["shipped"]["scoop"].points)
    assert detectors["replace"].tasks == detectors["shipped"].tasks


def test_references_need_a_bank_method_and_a_known_mode(bank):
    with pytest.raises(ValueError, match="references_mode: expected one of add, replace, found 'merge'"):
        FunctionalKeypointDetector.load(MODEL, device="cpu", references=bank, references_mode="merge")
    with pytest.raises(
        ValueError, match="expected a detector whose method is one of bank, bank_heatmap, found method='heatmap'"
    ):
        FunctionalKeypointDetector.load(MODEL, device="cpu", method="heatmap", references=bank)


def test_other_detector_options_re_embed_the_stored_photos(bank, detectors):
    resized = FunctionalKeypointDetector.load(MODEL, device="cpu", references=bank, image_size=256)
    stored = load_bank(bank).references[0]
    emb = resized.references["pour"][0][0].cpu()  # (views, 5, D), embedded again at 256
    expected = resized.reference_embeddings(stored.image(), stored.points, "pour").cpu()
    assert torch.allclose(emb, expected, atol=1e-5)
    assert not torch.allclose(emb, stored.embeddings.float(), atol=1e-2)


def test_evaluate_scores_detect_with_the_references_beside_the_shipped_bank(bank, tmp_path, other_checkpoint):
    OTHER = other_checkpoint
    config = EvalConfig(
        data=SAMPLES,
        models=[MODEL],
        figures=False,
        progress=False,
        device="cpu",
        max_targets_per_task=2,
        references_bank=bank,
        references_mode="replace",
        out=tmp_path,
    )
    results = evaluate(config)
    rows = {r["name"]: r for r in results["detect"]["rows"]}
    with_refs = [name for name in rows if "+ references (replace)" in name]
    assert len(with_refs) == 2 and all(" by bank" in name for name in with_refs)  # bank and bank_heatmap
    for name in with_refs:
        assert rows[name]["uncertainty"]["difference"]["from"] == name.split(" + references")[0]
    assert results["references_bank"]["mode"] == "replace" and results["references_bank"]["tasks"] == ["pour"]
    with pytest.raises(FingerprintMismatch):
        evaluate(
            EvalConfig(
                data=SAMPLES,
                models=[OTHER],
                figures=False,
                progress=False,
                device="cpu",
                max_targets_per_task=1,
                references_bank=bank,
                out=tmp_path / "other",
            )
        )


# -- preview ---------------------------------------------------------------------------------------------------------


def test_preview_draws_every_reference(bank, tmp_path):
    out = tmp_path / "sheet.png"
    assert main(["preview", "--bank", str(bank), "--out", str(out), "--tile", "128"]) == 0
    sheet = cv2.imread(str(out))
    assert sheet is not None and sheet.shape[1] == 128 and sheet.shape[0] > 128
    colours = {tuple(c) for c in sheet.reshape(-1, 3)[:, ::-1].tolist()}
    assert (230, 25, 75) in colours  # p1's colour (funk_perception/data/preview.py) is drawn


# -- bad input: one line, exit 2 -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, words",
    [
        ({"--points": "1,1;2,2;3,3;4,4"}, ["--points (for ", "my_cup.png): expected 5 points", "found 4"]),
        (
            {"--points": "1,1;2,2;400,3;4,4;5,5"},
            ["my_cup.png): p3: expected a point inside the 320x224 photo", "x in [-0.5, 319.5]", "found (400, 3)"],
        ),
        ({"--points": "1,1;2,2;a,3;4,4;5,5"}, ["p3: expected two numbers 'x,y', found 'a,3'"]),
        ({"--task": "fly"}, ["--task: expected one of pour,", "found 'fly'"]),
        ({"--image": "/nonexistent/mug.jpg"}, ["--image: expected an existing image file", "/nonexistent/mug.jpg"]),
        ({"--hidden": "p7"}, ["--hidden: expected keypoint names from p1", "found 'p7'"]),
    ],
    ids=["four points", "outside", "not a number", "unknown task", "missing photo", "bad hidden"],
)
def test_bad_input_gives_one_error_line_and_exit_2(photo, tmp_path, capsys, change, words):
    image, _, points = photo
    args = {
        "--image": str(image),
        "--task": "pour",
        "--points": points_text(points),
        "--bank": str(tmp_path / "b.pt"),
        "--device": "cpu",
        **change,
    }
    assert main(["add", *[x for kv in args.items() for x in kv]]) == 2
    line = error_line(capsys)
    assert all(w in line for w in words), line
    assert not (tmp_path / "b.pt").exists()


def test_a_bad_bank_file_is_named(tmp_path, capsys):
    assert main(["list", "--bank", str(tmp_path / "none.pt")]) == 2
    assert f"{tmp_path / 'none.pt'}: expected a reference bank file" in error_line(capsys)
    assert main(["preview", "--bank", str(MODEL), "--out", str(tmp_path / "s.png")]) == 2
    assert "field 'format': expected 'funk-reference-bank'" in error_line(capsys)
    with pytest.raises(ReferenceBankError, match="field 'format'"):
        FunctionalKeypointDetector.load(MODEL, device="cpu", references=MODEL)
    assert main(["add", "--csv", str(SAMPLES), "--roles", "bogus", "--bank", str(tmp_path / "b.pt")]) == 2
    assert "--roles: expected roles from reference, test, train, found ['bogus']" in error_line(capsys)


# -- the node --------------------------------------------------------------------------------------------------------


def test_node_parameters_are_declared_and_checked():
    assert BY_NAME["references"].default == "" and BY_NAME["references"].read_only
    assert BY_NAME["references_mode"].choices == REFERENCE_MODES and BY_NAME["references_mode"].default == "add"
    with pytest.raises(ValueError, match="references_mode: expected one of add, replace, found 'merge'"):
        validate("references_mode", "merge")


def test_the_node_detects_with_the_references_parameter(photo, bank, tmp_path):
    pytest.importorskip("rclpy")
    from ros_graph import running_node, start_and_fail

    from funk_perception.ros import client
    from funk_perception.ros.messages import decode_keypoints

    domain = 20 + (os.getpid() + 59) % 80
    done = start_and_fail(["-p", f"references:={tmp_path / 'missing.pt'}", "-p", "device:=cpu"], domain, 240.0)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 2 and len(errors) == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert f"{tmp_path / 'missing.pt'}: expected a reference bank file" in errors[0]

    _, rgb, points = photo
    namespace = f"/funk_references_{os.getpid()}"
    parameters = {
        "threads": 1,
        "device": "cpu",
        "tasks": ["pour"],
        "publish_image": False,
        "references": str(bank),
        "references_mode": "replace",
    }
    with running_node(domain, namespace, parameters, tmp_path / "node.log") as (probe, _):
        stamp = 1_000_000_000
        cloud = probe.exchange(lambda: probe.pub_image.publish(client.image_msg(rgb, "rgb8", stamp)), stamp, 60.0)
    got = decode_keypoints(cloud)["pour"].points  # pixel centres, as the user typed them
    assert np.linalg.norm(got - points, axis=1).max() < 16 * rgb.shape[1] / 224  # one feature cell
    assert f"references {bank} (replace) for pour" in (tmp_path / "node.log").read_text()
