"""PCK math, baselines, and the evaluation CLI end to end on a tiny generated dataset."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from funk_perception.data.annotations import Annotation, FunKPointDataset, write_annotations
from funk_perception.data.pairs import Pair, evaluation_pairs
from funk_perception.eval_config import EvalConfig
from funk_perception.eval_methods import Method, predict_pairs
from funk_perception.eval_scoring import THRESHOLDS, score_predictions
from funk_perception.evaluate import PAPER_TABLE2, evaluate, main, triplet_annotations
from funk_perception.figures import object_region_points, position_colors
from funk_perception.matching import sample_features
from funk_perception.metrics import keypoint_distances, pck, pck_correct, pixels_to_normalized
from funk_perception.model import FunctionalEncoder, Trunk, build_trunk, named_config, preprocess
from funk_perception.model.letterbox import letterbox

# --------------------------------------------------------------------------- PCK math


def test_pck_threshold_boundary_is_inclusive() -> None:
    truth = np.array([[[0.5, 0.5], [0.2, 0.2], [0.0, 0.0]]])
    # Exactly 0.1 away (a 3-4-5 triangle: 0.06, 0.08), just beyond, and exactly 0.1 along x.
    pred = np.array([[[0.56, 0.58], [0.2 + 0.1000001, 0.2], [0.1, 0.0]]])
    assert np.allclose(keypoint_distances(pred, truth)[0, [0, 2]], 0.1)
    assert pck_correct(pred, truth, 0.1).tolist() == [[True, False, True]]
    assert pck(pred, truth, np.ones((1, 3), bool), 0.1) == pytest.approx(200.0 / 3)
    assert pck(pred, truth, np.ones((1, 3), bool), 0.15) == pytest.approx(100.0)
    assert pck(pred, truth, np.ones((1, 3), bool), 0.05) == pytest.approx(0.0)


def test_pck_excludes_invisible_keypoints() -> None:
    truth = np.zeros((2, 5, 2))
    pred = np.zeros((2, 5, 2))
    pred[0, 1] = [0.9, 0.9]  # wrong, but invisible: must not count
    pred[1, 4] = [0.5, 0.0]  # wrong and visible
    valid = np.ones((2, 5), bool)
    valid[0, 1] = False
    assert pck(pred, truth, valid, 0.1) == pytest.approx(100.0 * 8 / 9)
    assert np.isnan(pck(pred, truth, np.zeros((2, 5), bool), 0.1))


def test_pck_normalises_non_square_images_per_axis() -> None:
    # A 200 x 100 (W x H) image: 15 px is 0.075 of the width but 0.15 of the height.
    width, height = 200, 100
    truth = pixels_to_normalized(np.array([[[100.0, 50.0], [100.0, 50.0]]]), width, height)
    pred = pixels_to_normalized(np.array([[[115.0, 50.0], [100.0, 65.0]]]), width, height)
    assert pck_correct(pred, truth, 0.1).tolist() == [[True, False]]
    # 0.1 is 22.4 px on a 224 x 224 input, whichever axis.
    square = pixels_to_normalized(np.array([[[22.4, 0.0], [0.0, 22.5]]]), 224, 224)
    assert pck_correct(square, np.zeros_like(square), 0.1).tolist() == [[True, False]]


# --------------------------------------------------------------------------- tiny dataset


def _draw_tool(rng: np.random.Generator, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A textured background with a 'tool' (handle + head) whose five keypoints follow docs/DESIGN.md, "Keypoint meanings"."""
    yy, xx = np.mgrid[0:height, 0:width]
    base = rng.integers(40, 200, size=3)
    image = (
        (base[None, None, :] + 30 * np.sin(xx / rng.uniform(6, 14))[..., None] + rng.normal(0, 8, (height, width, 3)))
        .clip(0, 255)
        .astype(np.uint8)
    )
    angle = rng.uniform(0, 2 * np.pi)
    direction = np.array([np.cos(angle), np.sin(angle)])
    centre = np.array([width, height]) * rng.uniform(0.4, 0.6, 2)
    length = 0.35 * min(width, height)
    tip = centre + direction * length
    end = centre - direction * length
    chain = np.stack(
        [tip, tip - 0.25 * direction * length, tip - 0.5 * direction * length, centre - 0.2 * direction * length, end]
    )
    mask = np.zeros((height, width), np.uint8)
    for img, value in ((image, None), (mask, 255)):
        handle_colour = (30, 30, 230) if value is None else value
        head_colour = (240, 200, 20) if value is None else value
        cv2.line(
            img,
            tuple(int(v) for v in chain[3]),
            tuple(int(v) for v in end),
            handle_colour,
            max(2, int(0.06 * min(width, height))),
        )
        cv2.circle(img, tuple(int(v) for v in chain[1]), int(0.14 * min(width, height)), head_colour, -1)
    keypoints = chain / np.array([width, height])
    return image, np.clip(keypoints, 0.0, 1.0), mask


def _make_dataset(root: Path, seed: int = 0) -> Path:
    """Two tasks, two categories each, reference/test/train roles, mixed image sizes, masks on some rows."""
    rng = np.random.default_rng(seed)
    plan = [("pour", "bottle"), ("pour", "cup"), ("mix", "spoon"), ("mix", "whisk")]
    sizes = [(224, 224), (160, 120), (96, 200)]
    annotations = []
    counter = 0
    for task, category in plan:
        for role in ("reference", "test", "test"):
            width, height = sizes[counter % len(sizes)]
            image, keypoints, mask = _draw_tool(rng, width, height)
            name = f"img_{counter:02d}.png"
            cv2.imwrite(str(root / name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            extras = {}
            if counter % 2 == 0:
                cv2.imwrite(str(root / f"mask_{counter:02d}.png"), mask)
                extras["mask_path"] = f"mask_{counter:02d}.png"
            visible = np.ones(5, bool)
            if counter == 4:
                visible[2] = False
            annotations.append(
                Annotation(
                    root / name,
                    name,
                    task,
                    category,
                    role,
                    keypoints,
                    visible,
                    instance_id=f"{category}_{counter}",
                    extras=extras,
                )
            )
            counter += 1
    csv_path = root / "annotations.csv"
    write_annotations(csv_path, annotations)
    return csv_path


def _save_tiny_checkpoint(path: Path, csv_path: Path, gating: str = "task", trunk: Trunk | None = None) -> Path:
    """A tiny untrained encoder whose prototypes are real mean embeddings of the dataset's keypoints."""
    torch.manual_seed(0)
    config = named_config("tiny")
    config.modular.gating = gating
    encoder = FunctionalEncoder(config, trunk).eval()
    dataset = FunKPointDataset(csv_path)
    prototypes = {}
    for task, indices in dataset.indices_by_task().items():
        rows = [dataset.annotations[i] for i in indices]
        images = preprocess([dataset.load_image(a.image_path) for a in rows], size=config.image_size)
        with torch.no_grad():
            feats = encoder(images, [task])[:, 0]
        points = torch.from_numpy(np.stack([a.keypoints for a in rows])).float()
        prototypes[task] = F.normalize(sample_features(feats, points).mean(0), dim=-1)
    encoder.save(path, extra={"prototypes": prototypes, "note": "untrained test model"})
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("tinyset")
    csv_path = _make_dataset(root)
    trunk = build_trunk("lite0")  # the pretrained trunk evaluation will load, built once here
    return (
        csv_path,
        _save_tiny_checkpoint(root / "tiny.pt", csv_path, trunk=trunk),
        _save_tiny_checkpoint(root / "tiny_uniform.pt", csv_path, gating="uniform", trunk=trunk),
    )


# --------------------------------------------------------------------------- baselines and scoring


def test_image_blind_prior_predicts_reference_positions(tiny: tuple[Path, Path, Path]) -> None:
    dataset = FunKPointDataset(tiny[0])
    pairs = evaluation_pairs(dataset.annotations)
    out = predict_pairs(Method("prior", "prior"), dataset.annotations, pairs, None)
    for mode in ("argmax", "refined"):
        for i, p in enumerate(pairs):
            assert np.array_equal(out[mode][i], dataset.annotations[p.source].keypoints)


def test_scores_split_by_category_and_task(tiny: tuple[Path, Path, Path]) -> None:
    dataset = FunKPointDataset(tiny[0])
    annotations = dataset.annotations
    pairs = evaluation_pairs(annotations)
    perfect = np.stack([annotations[p.target].keypoints for p in pairs])
    scores = score_predictions(annotations, pairs, perfect)
    assert scores["overall"]["0.1"] == 100.0
    assert scores["same_category"]["pairs"] + scores["cross_category"]["pairs"] == len(pairs)
    assert scores["same_category"]["pairs"] > 0 and scores["cross_category"]["pairs"] > 0
    assert set(scores["per_task"]) == {"pour", "mix"}
    # The row with keypoint p3 hidden takes part in pairs whose p3 must not be counted.
    hidden = sum(1 for p in pairs for a in (annotations[p.source], annotations[p.target]) if not a.visible[2])
    assert hidden > 0
    assert scores["overall"]["keypoints"] == 5 * len(pairs) - hidden
    shifted = perfect + np.array([0.12, 0.0])
    assert score_predictions(annotations, pairs, shifted)["overall"]["0.1"] == 0.0
    assert score_predictions(annotations, pairs, shifted)["overall"]["0.15"] == 100.0


def test_figure_helpers_sample_inside_object() -> None:
    keypoints = np.array([[0.2, 0.3], [0.3, 0.3], [0.4, 0.4], [0.5, 0.5], [0.6, 0.7]])
    box = object_region_points(keypoints, (100, 200, 3), count=60)
    assert 40 <= len(box) <= 80
    assert (box >= 0.1 - 1e-9).all() and (box[:, 0] <= 0.7 + 1e-9).all() and (box[:, 1] <= 0.8 + 1e-9).all()
    mask = np.zeros((50, 100), np.uint8)
    mask[10:20, 30:60] = 255
    inside = object_region_points(keypoints, (100, 200, 3), count=50, mask=mask)  # mask is resized to the image
    assert len(inside) > 10
    assert ((inside[:, 0] >= 0.3) & (inside[:, 0] <= 0.6) & (inside[:, 1] >= 0.2) & (inside[:, 1] <= 0.4)).all()
    colors = position_colors(inside)
    assert colors.shape == (len(inside), 3) and (colors >= 0).all() and (colors <= 1).all()
    assert not np.allclose(colors[0], colors[-1])


# --------------------------------------------------------------------------- end to end


def test_evaluate_end_to_end_writes_json_markdown_figures(tiny: tuple[Path, Path, Path], tmp_path: Path) -> None:
    csv_path, model, uniform = tiny
    out = tmp_path / "eval"
    assert (
        main(
            ["--data", str(csv_path), "--model", str(model), "--model", str(uniform), "--out", str(out), "--seed", "3"]
        )
        == 0
    )
    results = json.loads((out / "results.json").read_text())
    for key in ("command", "date", "machine", "data", "checkpoints", "pairs", "methods", "paper_table2", "figures"):
        assert key in results
    assert results["command"].startswith("python -m funk_perception.evaluate --data")
    assert results["paper_table2"] == dict(PAPER_TABLE2)
    names = [m["name"] for m in results["methods"]]
    assert names == [
        "image-blind prior",
        "trunk-only lite0@224",
        "task gating (tiny.pt)",
        "uniform gating (tiny_uniform.pt)",
    ]
    for method in results["methods"]:
        for mode in ("argmax", "refined"):
            block = method["results"][mode]
            for split in ("overall", "same_category", "cross_category"):
                for t in THRESHOLDS:
                    assert 0.0 <= block[split][str(t)] <= 100.0
            assert set(block["per_task"]) == {"pour", "mix"}
            # PCK grows with the threshold.
            assert block["overall"]["0.05"] <= block["overall"]["0.1"] <= block["overall"]["0.15"]
    prior = results["methods"][0]["results"]
    assert prior["argmax"] == prior["refined"]
    # every row carries its bootstrap interval; rows after the first checkpoint its paired difference from it
    for method in results["methods"]:
        u = method["uncertainty"]
        assert u["pck@0.1"] == pytest.approx(method["results"]["refined"]["overall"]["0.1"])
        assert 0.0 <= u["interval"][0] <= u["interval"][1] <= 100.0 and u["images"] >= 2
    by_name = {m["name"]: m for m in results["methods"]}
    assert "difference" not in by_name["task gating (tiny.pt)"]["uncertainty"]
    diff = by_name["uniform gating (tiny_uniform.pt)"]["uncertainty"]["difference"]
    assert diff["from"] == "task gating (tiny.pt)"
    assert diff["difference"] == pytest.approx(
        by_name["uniform gating (tiny_uniform.pt)"]["results"]["refined"]["overall"]["0.1"]
        - by_name["task gating (tiny.pt)"]["results"]["refined"]["overall"]["0.1"]
    )
    assert diff["interval"][0] <= diff["difference"] <= diff["interval"][1]
    detect = {r["name"]: r["uncertainty"] for r in results["detect"]["rows"]}
    assert (
        detect["uniform gating (tiny_uniform.pt), detect by prototypes"]["difference"]["from"]
        == "task gating (tiny.pt), detect by prototypes"
    )
    markdown = (out / "results.md").read_text()
    assert "Transfer: how sure" in markdown and "Detect: how sure" in markdown
    assert "| image-blind prior |" in markdown and "PCK@0.1 refined" in markdown and "Per task" in markdown
    assert "paper Table 2: ours, task embedding" in markdown
    for name in ("qualitative.png", "dense.png"):
        assert results["figures"].count(name) == 1
        image = cv2.imread(str(out / name))
        assert image is not None and image.shape[0] > 200 and image.std() > 5


def test_evaluate_is_deterministic_and_matches_prior(tiny: tuple[Path, Path, Path], tmp_path: Path) -> None:
    csv_path, model, _ = tiny
    config = dict(data=csv_path, models=[model], figures=False, progress=False, max_targets_per_task=2)
    first = evaluate(EvalConfig(out=tmp_path / "a", **config))
    second = evaluate(EvalConfig(out=tmp_path / "b", **config))
    assert [m["results"] for m in first["methods"]] == [m["results"] for m in second["methods"]]
    # The prior scored through the whole pipeline equals scoring the reference positions directly.
    dataset = FunKPointDataset(csv_path)
    pairs = evaluation_pairs(dataset.annotations, max_targets_per_task=2)
    direct = score_predictions(
        dataset.annotations, pairs, np.stack([dataset.annotations[p.source].keypoints for p in pairs])
    )
    assert first["methods"][0]["results"]["argmax"] == direct


def test_checkpoints_of_one_file_name_keep_their_own_rows(tiny: tuple[Path, Path, Path], tmp_path: Path) -> None:
    import shutil

    csv_path, model, _ = tiny
    a, b = tmp_path / "run-a" / "checkpoint.pt", tmp_path / "run-b" / "checkpoint.pt"
    a.parent.mkdir()
    b.parent.mkdir()
    shutil.copy(model, a)
    other = torch.load(model, map_location="cpu", weights_only=False)  # the same gating, other weights
    g = torch.Generator().manual_seed(1)
    other["state_dict"] = {
        k: v + 0.5 * torch.randn(v.shape, generator=g) if v.is_floating_point() else v
        for k, v in other["state_dict"].items()
    }
    torch.save(other, b)
    config = dict(data=csv_path, figures=False, progress=False, max_targets_per_task=2)
    both = evaluate(EvalConfig(out=tmp_path / "both", models=[a, b], **config))
    rows = {m["name"]: m["results"] for m in both["methods"] if m["kind"] == "model"}
    assert set(rows) == {"task gating (run-a/checkpoint.pt)", "task gating (run-b/checkpoint.pt)"}
    # each row is its own checkpoint's (a shared name once made both rows read one feature cache)
    for path in (a, b):
        alone = evaluate(EvalConfig(out=tmp_path / path.parent.name, models=[path], **config))
        assert (
            next(m["results"] for m in alone["methods"] if m["kind"] == "model")
            == rows[f"task gating ({path.parent.name}/checkpoint.pt)"]
        )
    assert rows["task gating (run-a/checkpoint.pt)"] != rows["task gating (run-b/checkpoint.pt)"]
    with pytest.raises(ValueError, match="distinct checkpoints"):
        evaluate(EvalConfig(out=tmp_path / "same", models=[a, a], **config))


def _self_pairs(tiny: tuple[Path, Path, Path]) -> tuple[FunKPointDataset, Method, list[Pair], dict[Path, set[str]]]:
    """The tiny set, its trunk-only method, every row paired with itself, and the images each task needs."""
    from funk_perception.eval_methods import load_methods

    csv_path, model, _ = tiny
    dataset = FunKPointDataset(csv_path)
    methods = load_methods(EvalConfig(data=csv_path, models=[model]), torch.device("cpu"))
    trunk = next(m for m in methods if m.kind == "trunk")
    pairs = [Pair(i, i, a.task) for i, a in enumerate(dataset.annotations)]
    return dataset, trunk, pairs, {a.image_path: {a.task} for a in dataset.annotations}


def test_feature_matching_on_identical_pair_is_near_perfect(tiny: tuple[Path, Path, Path]) -> None:
    """A reference matched onto itself with real trunk features lands within one cell (PCK@0.1 = 100)."""
    from funk_perception.eval_methods import compute_features

    dataset, trunk, pairs, needs = _self_pairs(tiny)
    annotations = dataset.annotations
    cache = compute_features(trunk, dataset, needs)
    out = predict_pairs(trunk, annotations, pairs, cache)
    truth = np.stack([a.keypoints for a in annotations])
    cell = 1.0 / 14
    assert (np.abs(out["argmax"] - truth) <= cell + 1e-6).all()
    assert score_predictions(annotations, pairs, out["refined"])["overall"]["0.1"] == 100.0


def test_evaluate_runs_on_a_plain_funkpoint_csv(tiny: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """Only the required columns, display-name spellings, JPEGs of odd sizes, no reference rows."""
    rng = np.random.default_rng(7)
    rows = ["action,object_category,role,dataset_image_path," + ",".join(f"p{k}_x,p{k}_y" for k in range(1, 6))]
    plan = [
        ("Mash/Pound", "frying pan"),
        ("Mash/Pound", "hammer"),
        ("Brush/Dust", "scrub brush"),
        ("Brush/Dust", "toothbrush"),
    ]
    for i, (action, category) in enumerate(plan * 2):
        width, height = int(rng.integers(90, 300)), int(rng.integers(90, 300))
        image, keypoints, _ = _draw_tool(rng, width, height)
        cv2.imwrite(str(tmp_path / f"photo_{i}.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        role = "train" if i < len(plan) else "test"
        coords = ",".join(f"{v:.4f}" for v in keypoints.reshape(-1))
        rows.append(f"{action},{category},{role},photo_{i}.jpg,{coords}")
    csv_path = tmp_path / "funkpoint_subset.csv"
    csv_path.write_text("\n".join(rows) + "\n")
    results = evaluate(
        EvalConfig(data=csv_path, models=[tiny[1]], out=tmp_path / "out", references_per_task=2, progress=False)
    )
    assert results["pairs"]["total"] > 0
    assert set(results["methods"][0]["results"]["refined"]["per_task"]) == {"mash_pound", "brush_dust"}
    assert results["methods"][0]["results"]["refined"]["overall"]["keypoints"] == 5 * results["pairs"]["total"]
    assert (tmp_path / "out" / "dense.png").is_file() and (tmp_path / "out" / "results.md").is_file()


def test_references_from_another_csv_transfer_onto_its_test_rows(tiny: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """``--references``: e.g. training categories as references, never-trained categories as targets."""
    targets_csv = _make_dataset(tmp_path, seed=1)
    config = EvalConfig(
        data=targets_csv,
        references=tiny[0],
        models=[tiny[1]],
        out=tmp_path / "out",
        references_per_task=2,
        progress=False,
    )
    _, rows, roots = triplet_annotations(config)
    results = evaluate(config)
    pairs = evaluation_pairs(rows, config.seed, config.references_per_task)
    assert results["pairs"]["total"] == len(pairs) == 2 * 2 * 4  # tasks x sampled references x test rows per task
    for p in pairs:
        assert roots[rows[p.source].image_path] == tiny[0].parent
        assert roots[rows[p.target].image_path] == tmp_path and rows[p.target].role == "test"
    assert results["references"] == str(tiny[0]) and "references from" in (tmp_path / "out" / "results.md").read_text()
    assert (tmp_path / "out" / "dense.png").is_file()


def test_detect_rows_and_mirrored_copies(tiny: tuple[Path, Path, Path], tmp_path: Path) -> None:
    csv_path, model, _ = tiny
    config = dict(data=csv_path, models=[model], figures=False, progress=False, max_targets_per_task=2)
    plain = evaluate(EvalConfig(out=tmp_path / "plain", **config))
    mirrored = evaluate(EvalConfig(out=tmp_path / "mirror", mirror=True, **config))
    assert mirrored["mirror"] is True and plain["mirror"] is False
    # mirroring reference and target alike moves no keypoint relative to another: the prior is unchanged
    assert mirrored["methods"][0]["results"] == plain["methods"][0]["results"]
    rows = {r["kind"]: r for r in plain["detect"]["rows"]}
    assert set(rows) == {"prior", "prototypes"}
    conf = rows["prototypes"]["results"]["confidence"]
    assert conf["hits"] + conf["misses"] == rows["prototypes"]["results"]["overall"]["keypoints"]
    for row in rows.values():
        assert row["uncertainty"]["pck@0.1"] == pytest.approx(row["results"]["overall"]["0.1"])
        assert "difference" not in row["uncertainty"]  # one checkpoint: no other row of its method
    assert conf["auc"] is None or 0.0 <= conf["auc"] <= 1.0
    assert "Reference-free detect" in (tmp_path / "plain" / "results.md").read_text()


def test_mirror_maps_detect_scores_the_same_on_mirrored_copies(tiny: tuple[Path, Path, Path], tmp_path: Path) -> None:
    csv_path, model, _ = tiny
    config = dict(data=csv_path, models=[model], figures=False, progress=False, mirror_maps=True)
    plain = evaluate(EvalConfig(out=tmp_path / "plain", **config))
    mirrored = evaluate(EvalConfig(out=tmp_path / "mirror", mirror=True, **config))
    assert plain["mirror_maps"] is True
    (row,) = [r for r in plain["detect"]["rows"] if r["kind"] == "prototypes"]
    (again,) = [r for r in mirrored["detect"]["rows"] if r["kind"] == "prototypes"]
    assert row["name"].endswith("mirror maps")
    # the test images' letterbox pads split evenly, so the mirrored input is exactly the plain one flipped
    assert again["results"]["overall"] == row["results"]["overall"]
    assert again["results"]["confidence"]["auc"] == pytest.approx(row["results"]["confidence"]["auc"], abs=1e-9)


def test_confidence_auc_ranks_hits_above_misses() -> None:
    from funk_perception.metrics import confidence_auc

    perfect = confidence_auc(np.array([0.9, 0.8, 0.2, 0.1]), np.array([True, True, False, False]))
    assert perfect["auc"] == 1.0 and perfect["hits"] == 2 and perfect["mean_miss"] == pytest.approx(0.15)
    assert confidence_auc(np.array([0.1, 0.9]), np.array([True, False]))["auc"] == 0.0
    assert confidence_auc(np.array([0.5, 0.5]), np.array([True, False]))["auc"] == 0.5
    assert (
        confidence_auc(np.array([0.5]), np.array([True]))["auc"]
        != confidence_auc(np.array([0.5]), np.array([True]))["auc"]
    )


def test_letterboxed_features_match_an_identical_pair_and_the_metric_stays_in_image_coordinates(
    tiny: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """With --letterbox, references go into the padded input and predictions come back: a reference matched
    onto itself lands within one input cell of the truth in the image's own normalised coordinates, and one
    matched onto its own letterboxed copy lands where the copy's truth is."""
    from funk_perception.eval_methods import compute_features, letterbox_frames

    csv_path, model, _ = tiny
    dataset, trunk, pairs, needs = _self_pairs(tiny)
    annotations = dataset.annotations
    frames = letterbox_frames(dataset, list(needs), trunk.image_size)
    assert {(f.height, f.width) for f in frames.values()} == {(224, 224), (120, 160), (200, 96)}
    cache = compute_features(trunk, dataset, needs, letterbox_pad="mean")
    out = predict_pairs(trunk, annotations, pairs, cache, frames=frames)
    truth = np.stack([a.keypoints for a in annotations])
    # one input cell, in each image's normalised units: wider where that axis was shrunk into the input
    cell = np.stack([(1.0 / 14) / frames[a.image_path].scale for a in annotations])[:, None, :]
    assert (np.abs(out["argmax"] - truth) <= cell + 1e-6).all()
    assert score_predictions(annotations, pairs, out["refined"])["overall"]["0.15"] == 100.0
    # An image paired with its letterboxed copy, saved as a square image: the two frames differ, so only a
    # reference carried into the padded input (and the match carried back) finds the copy's truth.
    cross: list[Annotation] = []
    for i, a in enumerate(annotations):
        if frames[a.image_path].scale.min() == 1.0:
            continue  # a square image: both frames are the same
        boxed, _ = letterbox(dataset.load_image(a.image_path), trunk.image_size, "mean")
        copy = tmp_path / f"boxed_{i}.png"
        cv2.imwrite(str(copy), cv2.cvtColor(boxed, cv2.COLOR_RGB2BGR))
        cross += [
            a,
            Annotation(
                copy,
                copy.name,
                a.task,
                a.category,
                "test",
                frames[a.image_path].to_input(a.keypoints),
                a.visible,
                instance_id=f"boxed_{i}",
            ),
        ]
    cross_pairs = [Pair(j, j + 1, cross[j].task) for j in range(0, len(cross), 2)]
    cross_needs = {a.image_path: {a.task} for a in cross}
    cross_cache = compute_features(trunk, dataset, cross_needs, letterbox_pad="mean")
    cross_frames = letterbox_frames(dataset, list(cross_needs), trunk.image_size)
    cross_truth = np.stack([cross[p.target].keypoints for p in cross_pairs])
    mapped = predict_pairs(trunk, cross, cross_pairs, cross_cache, frames=cross_frames)["argmax"]
    unmapped = predict_pairs(trunk, cross, cross_pairs, cross_cache)["argmax"]
    assert len(cross_pairs) == 8 and np.abs(mapped - cross_truth).max() <= 1.0 / 14 + 1e-6
    assert np.abs(unmapped - cross_truth).max() > 1.0 / 14  # the check above can fail

    config = dict(data=csv_path, models=[model], figures=True, progress=False, max_targets_per_task=2)
    plain = evaluate(EvalConfig(out=tmp_path / "plain", letterbox=False, **config))
    boxed = evaluate(EvalConfig(out=tmp_path / "boxed", letterbox=True, letterbox_pad="edge", **config))
    assert (plain["letterbox"], plain["letterbox_pad"]) == (False, None)
    assert (boxed["letterbox"], boxed["letterbox_pad"]) == (True, "edge")
    assert boxed["methods"][0]["results"] == plain["methods"][0]["results"]  # the image-blind prior is unchanged
    assert boxed["methods"][1]["results"] != plain["methods"][1]["results"]
    assert {r["kind"] for r in boxed["detect"]["rows"]} == {"prior", "prototypes"}
    assert "letterboxed (edge pad)" in (tmp_path / "boxed" / "results.md").read_text()
    assert (tmp_path / "boxed" / "dense.png").is_file()
    with pytest.raises(ValueError, match="letterbox_pad: expected one of mean, edge, found 'grey'"):
        EvalConfig(data=csv_path, letterbox=True, letterbox_pad="grey")
