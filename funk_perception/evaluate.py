"""PCK evaluation of functional correspondence against baselines (docs/DESIGN.md, "Evaluation").

``python -m funk_perception.evaluate --data CSV --model CKPT [--model CKPT2 ...]``

On the (reference, target, task) triplets of :func:`evaluation_pairs`, every method
predicts where each reference keypoint lands on the target; a prediction is correct
when its distance to the ground truth, measured in normalised image coordinates,
is at most the threshold::

    d = sqrt(((x_pred - x_true) / W)^2 + ((y_pred - y_true) / H)^2) <= alpha

with W, H the target image's width and height. This is the distance after resizing
the target to a square (the network input, 224 x 224 in the paper), divided by
the side: alpha = 0.1 is 22.4 px at 224 x 224 (the paper's "23 px"). For a
non-square W x H image the accepted region in the original pixels is an ellipse
with semi-axes alpha * W and alpha * H. A distance exactly at the threshold counts
as correct (a 1e-9 tolerance absorbs floating-point rounding). Only keypoints
visible in both images count (all of them when the CSV has no v1..v5 columns).
PCK is the percentage of such keypoints that are correct, pooled over all triplets
(per task and per same-/cross-category split likewise).

Methods, all on the same triplets:
- image-blind prior: each keypoint predicted at its normalised position in the reference;
- trunk-only ("ImageNet" row of the paper): L2-normalised features of each checkpoint's trunk;
- every checkpoint given with ``--model``, labelled by its gating and file name.
Each learned method is reported by argmax over the feature grid and by sub-cell
refinement (:mod:`funk_perception.matching`). ``--flip`` averages every feature
map with the mirrored image's, as ``FunctionalKeypointDetector(flip=True)`` does. ``--mirror`` evaluates on mirrored copies of every image (keypoint
identities kept, x -> 1 - x): a model should score the same either way.
Images are letterboxed, as ``FunctionalKeypointDetector`` does by default: each
keeps its aspect ratio in the square input (``--letterbox-pad`` mean or edge,
:mod:`funk_perception.model.letterbox`; ``--squash`` resizes to the square instead):
reference keypoints are carried into the padded input before their features are
sampled, and every prediction is carried back, so PCK stays measured in the
original image's normalised coordinates, the same metric as without it.

Reference-free detection (what ``FunctionalKeypointDetector.detect`` and the ROS
node publish) is scored on every target row, with no reference: for each
checkpoint by each detect method it holds (``bank``, ``prototypes``), beside an
image-blind row that puts each keypoint at its mean position over the reference
rows. ``--references-bank B`` (a bank of the user's own photos,
``python -m funk_perception.references``) adds, per bank method, the same detector
with ``use_references`` as ``FunctionalKeypointDetector.load(..., references=B)``
gives it, compared with the row without (docs/REFERENCES.md). Its confidence is
judged by the ROC AUC of confidence for a hit (within 0.1) against a miss. ``--backend onnxruntime
[--precision int8]`` computes every checkpoint's features with the detector's ONNX Runtime backend
(:meth:`FunctionalKeypointDetector.encode`, the all-task graph that ``detect`` and the node run by default;
docs/DEPLOY.md); the trunk-only baselines stay in torch. Features are computed once per image
(all needed tasks in one batched forward pass) and kept in memory as float16;
matching is a batched matrix product.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shlex
import sys
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from pathlib import Path

import cv2
import numpy as np
import torch  # before anything that could create a GL context (docs/DESIGN.md, "Import torch first")

from funk_perception.atomic import write_text_atomic
from funk_perception.cli import build_parser as build_config_parser
from funk_perception.cli import command, config_from_args
from funk_perception.data.annotations import Annotation, FunKPointDataset
from funk_perception.data.pairs import Pair, evaluation_pairs, pair_kind
from funk_perception.eval_config import EvalConfig as EvalConfig
from funk_perception.eval_config import ReferenceOptions
from funk_perception.eval_methods import (
    PREDICTION_MODES,
    Method,
    cached_feature,
    compute_features,
    from_input,
    letterbox_frames,
    load_methods,
    load_view,
    mirror_annotation,
    predict_pairs,
    to_input,
)
from funk_perception.eval_report import markdown_report as markdown_report
from funk_perception.eval_scoring import SPLITS, THRESHOLDS, add_uncertainty, detection_rows, score_predictions
from funk_perception.figures import DenseExample, QualitativeExample, object_region_points, plot_dense, plot_qualitative
from funk_perception.matching import match, sample_features
from funk_perception.metrics import pck_correct
from funk_perception.model import resolve_device
from funk_perception.model.letterbox import Letterbox
from funk_perception.onnx_backend import OnnxRuntimeEncoder
from funk_perception.reference_bank import check_fingerprint, encoder_fingerprint, load_bank
from funk_perception.tasks import TASKS

#: Paper Table 2 (docs/DESIGN.md, "Evaluation"): PCK@0.1 (%) on the real FunKPoint test set, ResNet-50 trunk.
PAPER_TABLE2: Mapping[str, float] = {
    "ImageNet ResNet-50 features": 22.0,
    "ours, uniform gating": 52.8,
    "ours, shared learned gating": 52.5,
    "ours, task embedding": 58.4,
    "second human annotator": 82.5,
}


def _finite_or_none(value: object) -> object:
    """NaN (a split without keypoints) -> None, so the JSON stays standard."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_or_none(v) for v in value]
    return value


def _machine() -> dict:
    info = {
        "host": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


# --------------------------------------------------------------------------- figures


def _figure_pairs(annotations: Sequence[Annotation], pairs: Sequence[Pair], count: int) -> list[int]:
    """One triplet per task for the first ``count`` tasks, cross-category when there is one."""
    chosen: list[int] = []
    for task in TASKS:
        indices = [i for i, p in enumerate(pairs) if p.task == task]
        if not indices:
            continue
        cross = [i for i in indices if pair_kind(annotations, pairs[i]) == "cross_category"]
        chosen.append((cross or indices)[0])
        if len(chosen) == count:
            break
    return chosen


def _load_mask(root: Path, annotation: Annotation) -> np.ndarray | None:
    """The object mask of a generated image (``mask_path`` is relative to its CSV's folder ``root``)."""
    relative = annotation.extras.get("mask_path", "")
    if not relative:
        return None
    mask = cv2.imread(str(root / relative), cv2.IMREAD_UNCHANGED)
    return mask  # None when unreadable: the keypoint box is used instead


def triplet_annotations(config: EvalConfig) -> tuple[FunKPointDataset, list[Annotation], dict[Path, Path]]:
    """:func:`_triplet_rows`, mirrored when ``config.mirror``."""
    dataset, rows, roots = _triplet_rows(config)
    if config.mirror:
        rows = [mirror_annotation(a) for a in rows]
    return dataset, rows, roots


def _triplet_rows(config: EvalConfig) -> tuple[FunKPointDataset, list[Annotation], dict[Path, Path]]:
    """The data set, the annotation rows the triplets index, and each image's CSV folder.

    Without ``config.references`` the rows are the data CSV's. With it, the rows
    are the references CSV's reference- and train-role rows (relabelled ``train``,
    so :func:`evaluation_pairs` draws a seeded sample of them per task) followed
    by the data CSV's ``test`` rows as targets.
    """
    dataset = FunKPointDataset(config.data, check_images=True)
    roots = {a.image_path: dataset.root for a in dataset.annotations}
    if config.references is None:
        return dataset, dataset.annotations, roots
    references = FunKPointDataset(config.references, roles=["reference", "train"], check_images=True)
    if not references.annotations:
        raise ValueError(f"{config.references}: no reference- or train-role rows to take references from")
    targets = [a for a in dataset.annotations if a.role == "test"]
    if not targets:
        raise ValueError(f"{config.data}: with --references the targets are the test-role rows, and there are none")
    roots.update({a.image_path: references.root for a in references.annotations})
    # instance ids name objects within one CSV; two CSVs may reuse them for different objects
    rows = [replace(a, role="train", instance_id=f"references:{a.instance_id}") for a in references.annotations]
    rows += targets
    return dataset, rows, roots


def _write_figures(
    config: EvalConfig,
    dataset: FunKPointDataset,
    annotations: Sequence[Annotation],
    roots: Mapping[Path, Path],
    pairs: Sequence[Pair],
    methods: Sequence[Method],
    predictions: Mapping[str, Mapping[str, np.ndarray]],
    caches: Mapping[str, Mapping[tuple[Path, str | None], torch.Tensor]],
    out_dir: Path,
    frames: Mapping[str, Mapping[Path, Letterbox]] | None = None,
) -> list[str]:
    learned = [m for m in methods if m.kind == "model"] or [m for m in methods if m.kind == "trunk"]
    if not learned:
        return []
    primary = learned[0]
    chosen = _figure_pairs(annotations, pairs, config.figure_tasks)
    written: list[str] = []
    examples = []
    for i in chosen:
        p = pairs[i]
        src, tgt = annotations[p.source], annotations[p.target]
        examples.append(
            QualitativeExample(
                task=p.task,
                reference_image=load_view(dataset, src.image_path, config.mirror),
                reference_keypoints=src.keypoints,
                reference_visible=src.visible,
                target_image=load_view(dataset, tgt.image_path, config.mirror),
                target_keypoints=tgt.keypoints,
                target_visible=tgt.visible,
                predictions=predictions[primary.name]["refined"][i],
                caption=f"({src.category} -> {tgt.category})",
            )
        )
    if examples:
        plot_qualitative(examples, out_dir / "qualitative.png", title=f"Keypoint transfer: {primary.name}")
        written.append("qualitative.png")

    dense_methods = [primary] + [m for m in methods if m.kind == "trunk"][:1]
    dense = []
    for i in chosen[: config.dense_examples]:
        p = pairs[i]
        src, tgt = annotations[p.source], annotations[p.target]
        ref_image = load_view(dataset, src.image_path, config.mirror)
        points = object_region_points(
            src.keypoints, ref_image.shape, config.dense_points, _load_mask(roots[src.image_path], src)
        )
        matches = {}
        for m in dense_methods:
            method_frames = None if frames is None else frames[m.name]
            query_points = torch.from_numpy(to_input(method_frames, [src.image_path], points[None])).float()
            ref = cached_feature(caches[m.name], m, src.image_path, p.task).float().unsqueeze(0)
            tgt_f = cached_feature(caches[m.name], m, tgt.image_path, p.task).float().unsqueeze(0)
            found = match(sample_features(ref, query_points), tgt_f, refine=config.refine).refined.double().numpy()
            matches[m.name] = from_input(method_frames, [tgt.image_path], found)[0]
        dense.append(
            DenseExample(
                p.task,
                ref_image,
                points,
                load_view(dataset, tgt.image_path, config.mirror),
                matches,
                f"({src.category} -> {tgt.category})",
            )
        )
    if dense:
        plot_dense(dense, out_dir / "dense.png", title="Dense correspondence (colours follow reference position)")
        written.append("dense.png")
    return written


# --------------------------------------------------------------------------- entry points


def evaluate(config: EvalConfig, command: str | None = None) -> dict:
    """Run the whole evaluation and write JSON, markdown and figures into ``config.output_dir()``."""
    if config.backend == "onnxruntime":
        OnnxRuntimeEncoder.check_installed()  # a missing package is named before any image is read
    dataset, annotations, roots = triplet_annotations(config)
    pairs = evaluation_pairs(annotations, config.seed, config.references_per_task, config.max_targets_per_task)
    # the onnxruntime backend runs on the CPU (funk_perception/onnx_backend.py), and so does its detector
    device = resolve_device("cpu" if config.backend == "onnxruntime" and config.device == "auto" else config.device)
    methods = load_methods(config, device)
    references = None
    if config.detect and config.references_bank is not None:  # refused now, not after every feature is computed
        references = ReferenceOptions(
            config.references_bank, load_bank(config.references_bank), config.references_mode, config.references_share
        )
        for m in methods:
            if m.kind == "model" and m.encoder is not None:
                check_fingerprint(
                    references.bank, encoder_fingerprint(m.encoder), references.path, m.info.get("checkpoint", m.name)
                )

    needs: dict[Path, set[str]] = defaultdict(set)
    for p in pairs:
        needs[annotations[p.source].image_path].add(p.task)
        needs[annotations[p.target].image_path].add(p.task)

    predictions: dict[str, dict[str, np.ndarray]] = {}
    caches: dict[str, dict] = {}
    # per method: each image's letterbox geometry (None: squashed, the default)
    frames: dict[str, dict[Path, Letterbox]] | None = {} if config.letterbox else None
    geometry_by_size: dict[int, dict[Path, Letterbox]] = {}
    rows = []
    for method in methods:
        cache = None
        method_frames = None
        if method.kind != "prior":
            cache = compute_features(
                method,
                dataset,
                needs,
                config.batch_size,
                config.progress,
                config.flip,
                config.mirror,
                config.letterbox_pad if config.letterbox else None,
            )
            caches[method.name] = cache
            if frames is not None:
                if method.image_size not in geometry_by_size:
                    geometry_by_size[method.image_size] = letterbox_frames(dataset, list(needs), method.image_size)
                method_frames = frames[method.name] = geometry_by_size[method.image_size]
        predictions[method.name] = predict_pairs(method, annotations, pairs, cache, config.refine, frames=method_frames)
        rows.append(
            {
                "name": method.name,
                "kind": method.kind,
                **({"info": method.info} if method.info else {}),
                "results": {
                    mode: score_predictions(annotations, pairs, predictions[method.name][mode])
                    for mode in PREDICTION_MODES
                },
            }
        )

    truth = np.stack([annotations[p.target].keypoints for p in pairs])
    valid = np.stack([annotations[p.source].visible & annotations[p.target].visible for p in pairs])
    images = [annotations[p.target].image_path for p in pairs]
    first_model = next((i for i, row in enumerate(rows) if row["kind"] == "model"), None)
    add_uncertainty(
        rows,
        [pck_correct(predictions[row["name"]]["refined"], truth, 0.1) for row in rows],
        [valid] * len(rows),
        [images] * len(rows),
        [first_model] * len(rows),
        config.seed,
    )

    kinds = [pair_kind(annotations, p) for p in pairs]
    results = {
        "command": command or "evaluate(" + json.dumps({k: str(v) for k, v in asdict(config).items()}) + ")",
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "machine": _machine(),
        "device": str(device),
        "data": str(config.data),
        "references": None if config.references is None else str(config.references),
        "checkpoints": [str(m) for m in config.models],
        "seed": config.seed,
        "references_per_task": config.references_per_task,
        "max_targets_per_task": config.max_targets_per_task,
        "refine": config.refine,
        "thresholds": list(THRESHOLDS),
        "pck_definition": "percent of keypoints visible in both images whose predicted target position lies "
        "within alpha of the truth in normalised coordinates (x/W, y/H), distance <= alpha",
        "pairs": {"total": len(pairs), **{s: kinds.count(s) for s in SPLITS}},
        "flip": config.flip,
        "mirror": config.mirror,
        "letterbox": config.letterbox,
        "letterbox_pad": config.letterbox_pad if config.letterbox else None,
        "backend": config.backend,
        "precision": config.precision,
        "methods": rows,
        "paper_table2": dict(PAPER_TABLE2),
    }
    if config.detect:
        mirrored_caches = None
        if config.mirror_maps:
            targets = {annotations[p.target].image_path: needs[annotations[p.target].image_path] for p in pairs}
            mirrored_caches = {
                m.name: compute_features(
                    m,
                    dataset,
                    targets,
                    config.batch_size,
                    config.progress,
                    config.flip,
                    config.mirror,
                    config.letterbox_pad if config.letterbox else None,
                    flip_input=True,
                )
                for m in methods
                if m.kind == "model" and m.encoder is not None
            }
        results["mirror_maps"] = config.mirror_maps
        if references is not None:
            results["references_bank"] = {
                "path": str(references.path),
                "mode": references.mode,
                "share": references.share,
                "references": len(references.bank.references),
                "tasks": list(references.bank.tasks),
                "fingerprint": references.bank.fingerprint,
            }
        results["detect"] = detection_rows(
            methods,
            annotations,
            pairs,
            caches,
            config.refine,
            frames,
            mirrored_caches,
            config.seed,
            references,
            {"flip": config.flip, "letterbox": config.letterbox, "letterbox_pad": config.letterbox_pad},
        )
    out_dir = config.output_dir()
    results["figures"] = (
        _write_figures(config, dataset, annotations, roots, pairs, methods, predictions, caches, out_dir, frames)
        if config.figures
        else []
    )
    write_text_atomic(out_dir / "results.json", json.dumps(_finite_or_none(results), indent=2, allow_nan=False) + "\n")
    write_text_atomic(out_dir / "results.md", markdown_report(results))
    return results


def build_parser() -> argparse.ArgumentParser:
    """One flag per :class:`EvalConfig` field (:func:`funk_perception.cli.build_parser`)."""
    parser = build_config_parser(EvalConfig, "python -m funk_perception.evaluate", __doc__.split("\n\n")[0])
    # removed: the detector never read it, so it never changed a result (kept to say so rather than fail obscurely)
    parser.add_argument("--bank-top-k", type=int, default=None, help=argparse.SUPPRESS)
    return parser


@command
def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.bank_top_k is not None:
        parser.error("--bank-top-k was removed: the detector never used it, every bank vote counted; drop the flag")
    config = config_from_args(EvalConfig, args)
    command = "python -m funk_perception.evaluate " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)
    )
    results = evaluate(config, command=command)
    print(markdown_report(results))
    print(f"wrote {config.output_dir()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
