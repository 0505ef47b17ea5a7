"""Few-shot benchmark: splits, linear probe, de-duplication, the fine-tuned trunk and the CLI end to end."""

from __future__ import annotations

import json
from pathlib import Path

import classify
import cv2
import fewshot
import numpy as np
import pytest
import torch
from fewshot_data import distinct_class_images, find_duplicates

from funk_perception.model import FunctionalEncoder

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples" / "synth" / "annotations.csv"
MODEL = ROOT / "models" / "funk-lite0-synth.pt"
REAL_DEV = ROOT.parent / "shared" / "data" / "funkpoint-real-dev" / "annotations.csv"


def test_splits_are_deterministic_and_class_balanced():
    labels = np.repeat(np.arange(5), 20)
    a = fewshot.make_splits(labels, (1, 2, 5), 3, seed=0)
    b = fewshot.make_splits(labels, (1, 2, 5), 3, seed=0)
    other = fewshot.make_splits(labels, (1, 2, 5), 3, seed=1)
    assert [(s.shots, s.index) for s in a] == [(k, i) for k in (1, 2, 5) for i in range(3)]
    for x, y in zip(a, b):
        assert np.array_equal(x.train, y.train) and np.array_equal(x.test, y.test)
    assert any(not np.array_equal(x.train, y.train) for x, y in zip(a, other))
    for split in a:
        assert np.bincount(labels[split.train]).tolist() == [split.shots] * 5
        assert np.bincount(labels[split.test]).tolist() == [20 - split.shots] * 5
        assert set(split.train).isdisjoint(split.test)
        assert sorted(np.concatenate([split.train, split.test]).tolist()) == list(range(100))
    # the three splits of one shot count differ from each other
    assert len({tuple(s.train) for s in a if s.shots == 1}) == 3


def test_splits_refuse_a_class_without_test_images():
    with pytest.raises(ValueError, match=r"more than 2 images in every class, classes \[1\] have \[2\]"):
        fewshot.make_splits([0, 0, 0, 1, 1], (2,), 1, seed=0)


def test_linear_probe_separates_a_trivial_toy_set():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 64)) * 10
    x = np.concatenate([c + rng.normal(scale=0.1, size=(10, 64)) for c in centres])
    y = np.repeat(np.arange(4), 10)
    split = fewshot.make_splits(y, (1,), 1, seed=0)[0]
    predicted = fewshot.linear_probe(x[split.train], y[split.train], x[split.test])
    assert (predicted == y[split.test]).mean() == 1.0
    # and is no better than chance on labels that carry no information
    shuffled = rng.permutation(y)
    scores = fewshot.score_splits(x, shuffled, fewshot.make_splits(shuffled, (1,), 5, seed=0), C=1.0)
    assert scores["1"]["accuracy_mean"] < 60.0


def test_duplicates_include_mirrored_and_reencoded_copies():
    rng = np.random.default_rng(0)
    photo = cv2.GaussianBlur(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8), (9, 9), 0)
    other = cv2.GaussianBlur(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8), (9, 9), 0)
    jpeg = cv2.imdecode(cv2.imencode(".jpg", photo, [cv2.IMWRITE_JPEG_QUALITY, 90])[1], cv2.IMREAD_COLOR)
    resized = cv2.resize(photo, (80, 60))  # another size: kept apart
    images = [photo, other, np.ascontiguousarray(photo[:, ::-1]), jpeg, resized]
    assert find_duplicates(images) == [0, 1, 0, 0, 4]


@pytest.mark.skipif(not REAL_DEV.exists(), reason="needs ../shared/data/funkpoint-real-dev")
def test_real_dev_set_counts_each_photo_once():
    images = distinct_class_images(REAL_DEV, None, 0)
    counts = images.counts()
    # its README: 2 to 14 distinct photos per category; the bottle photos appear mirrored under two tasks
    assert min(counts.values()) == 2 and max(counts.values()) == 14
    assert counts["bottle"] == 4 and images.duplicates_removed > 0
    kept = distinct_class_images(REAL_DEV, None, 4)
    assert all(n >= 4 for n in kept.counts().values()) and set(kept.dropped) == {c for c, n in counts.items() if n < 4}


@pytest.fixture(scope="module")
def five_classes(tmp_path_factory) -> Path:
    """The shipped samples of 5 categories (one train and one test image each), image paths made absolute."""
    lines = SAMPLES.read_text().splitlines()
    header = lines[0].split(",")
    path_col, cat_col = header.index("dataset_image_path"), header.index("object_category")
    keep = [lines[0]]
    for line in lines[1:]:
        cells = line.split(",")
        if cells[cat_col] in ("bottle", "hammer", "spoon", "whisk", "scissors"):
            cells[path_col] = str(SAMPLES.parent / cells[path_col])
            keep.append(",".join(cells))
    out = tmp_path_factory.mktemp("five") / "five.csv"
    out.write_text("\n".join(keep) + "\n")
    return out


def _tiny_classifier(data: Path, tmp_path: Path, name: str, max_steps: int) -> classify.ClassifyConfig:
    return classify.ClassifyConfig(
        data=data,
        out=tmp_path / name,
        batch_size=4,
        max_steps=max_steps,
        save_every=2,
        device="cpu",
        progress=False,
        lr=1e-3,
        head_lr=1e-2,
    )


def test_classifier_learns_and_resumes_after_a_kill(five_classes, tmp_path, monkeypatch):
    unbroken = classify.train_classifier(_tiny_classifier(five_classes, tmp_path, "unbroken", 4))
    metrics = (tmp_path / "unbroken" / "metrics.csv").read_text().splitlines()
    assert (
        len(metrics) == 5 and unbroken["train_images"] == 5 and (tmp_path / "unbroken" / "loss.png").stat().st_size > 0
    )
    assert float(metrics[1].split(",")[1]) == pytest.approx(np.log(20), abs=1e-4)  # zero head: uniform logits
    assert 0.0 <= unbroken["test_accuracy"] <= 100.0

    calls = {"n": 0}
    real_step = classify.CategoryClassifier.classify_maps

    def dying_step(self, maps):
        calls["n"] += 1
        if calls["n"] == 3:  # the third training step: after the step-2 checkpoint
            raise KeyboardInterrupt
        return real_step(self, maps)

    monkeypatch.setattr(classify.CategoryClassifier, "classify_maps", dying_step)
    with pytest.raises(KeyboardInterrupt):
        classify.train_classifier(_tiny_classifier(five_classes, tmp_path, "killed", 4))
    monkeypatch.setattr(classify.CategoryClassifier, "classify_maps", real_step)
    assert classify.read_classifier_checkpoint(tmp_path / "killed" / "checkpoint.pt")["step"] == 2
    classify.train_classifier(_tiny_classifier(five_classes, tmp_path, "killed", 4), resume=True)

    a = classify.read_classifier_checkpoint(tmp_path / "unbroken" / "checkpoint.pt")
    b = classify.read_classifier_checkpoint(tmp_path / "killed" / "checkpoint.pt")
    assert a["step"] == b["step"] == 4
    for key, value in a["body_state_dict"].items():
        assert torch.allclose(value.float(), b["body_state_dict"][key].float(), atol=1e-5), key
    # the last stage moved, the frozen part below it did not
    pretrained = classify.build_trunk("lite0").body.state_dict()
    last = str(len(classify.build_trunk("lite0").body) - 1)
    changed = {k.split(".")[0] for k, v in a["body_state_dict"].items() if not torch.equal(v, pretrained[k])}
    assert changed == {last}
    trunk = classify.load_finetuned_trunk(tmp_path / "unbroken" / "checkpoint.pt")
    assert trunk(torch.zeros(1, 3, 64, 64)).shape == (1, 112, 4, 4)


def test_fewshot_end_to_end_with_the_shipped_model(five_classes, tmp_path):
    finetuned = tmp_path / "cls"
    classify.train_classifier(
        classify.ClassifyConfig(
            data=five_classes, out=finetuned, batch_size=4, max_steps=1, device="cpu", progress=False
        )
    )
    config = fewshot.FewShotConfig(
        data=five_classes,
        model=MODEL,
        finetuned=finetuned / "checkpoint.pt",
        out=tmp_path / "fs",
        shots=(1,),
        splits=2,
        images_per_class=None,
        device="cpu",
        progress=False,
    )
    results = fewshot.run_fewshot(config)
    on_disk = json.loads((tmp_path / "fs" / "fewshot.json").read_text())
    assert on_disk == json.loads(json.dumps(results))
    assert [m["kind"] for m in on_disk["methods"]] == ["trunk", "finetuned", "model"]
    # the model's features: every task's pooled embedding (the shipped model joins 2 members and the trunk)
    shipped = FunctionalEncoder.read_checkpoint(MODEL)["config"]
    per_task = 128 * shipped["members"] + (112 if shipped["trunk_weight"] > 0 else 0)
    assert [m["feature_dim"] for m in on_disk["methods"]] == [112, 112, 10 * per_task]
    assert len(on_disk["classes"]) == 5 and set(on_disk["images_per_class"].values()) == {2}
    for method in on_disk["methods"]:
        entry = method["results"]["1"]
        assert entry["splits"] == 2
        for row in entry["per_split"]:
            assert row["train_images"] == row["test_images"] == 5
            assert row["accuracy"] in {0.0, 20.0, 40.0, 60.0, 80.0, 100.0}
            assert row["balanced_accuracy"] == pytest.approx(row["accuracy"])  # one test image per class
    assert "| paper Table 3: ImageNet | 44.68 |" in (tmp_path / "fs" / "fewshot.md").read_text()
    assert (tmp_path / "fs" / "fewshot.png").stat().st_size > 0
    again = fewshot.run_fewshot(fewshot.FewShotConfig(**{**config.__dict__, "out": tmp_path / "fs2"}))
    assert [m["results"] for m in again["methods"]] == [m["results"] for m in results["methods"]]


def test_cli_names_the_bad_file(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("action,object_category\nPour,cup\n")
    assert fewshot.main(["--data", str(bad), "--model", str(MODEL), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(bad) in err
    assert (
        fewshot.main(
            [
                "--data",
                str(SAMPLES),
                "--model",
                str(MODEL),
                "--shots",
                "2",
                "--images-per-class",
                "0",
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert "expected at least 2 classes with >= 3 distinct images" in capsys.readouterr().err


def test_classifier_refuses_a_multi_stage_trunk_by_name():
    # its body is not a Sequential of stages, so "tune the last N stages" has no meaning
    with pytest.raises(ValueError, match="'lite0-ms': fine-tuning needs a single-stage trunk body"):
        classify.CategoryClassifier(classify.build_trunk("lite0-ms", pretrained=False))
