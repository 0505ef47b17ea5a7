"""The scores of an evaluation: PCK of keypoint transfer (:func:`score_predictions`), reference-free detection
(:func:`detection_rows`, :func:`score_detections`) and the bootstrap intervals of both (:func:`add_uncertainty`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from funk_perception.data.annotations import Annotation
from funk_perception.data.pairs import Pair, pair_kind
from funk_perception.detector import BANK_METHODS, FunctionalKeypointDetector, available_methods
from funk_perception.detector_config import DetectorConfig
from funk_perception.eval_config import ReferenceOptions
from funk_perception.eval_methods import Method, from_input
from funk_perception.intervals import pck_difference, pck_interval
from funk_perception.metrics import confidence_auc, pck, pck_correct
from funk_perception.model.letterbox import Letterbox
from funk_perception.tasks import TASKS

#: PCK thresholds reported (fractions of the normalised image size).
THRESHOLDS: tuple[float, ...] = (0.05, 0.1, 0.15)
#: The split of the triplets by category: same object category, or across categories.
SPLITS: tuple[str, ...] = ("same_category", "cross_category")


# --------------------------------------------------------------------------- scoring


def score_predictions(
    annotations: Sequence[Annotation],
    pairs: Sequence[Pair],
    predicted: np.ndarray,
    thresholds: Sequence[float] = THRESHOLDS,
) -> dict:
    """PCK (%) overall, per split and per task for one (P, K, 2) prediction array."""
    truth = np.stack([annotations[p.target].keypoints for p in pairs])
    valid = np.stack([annotations[p.source].visible & annotations[p.target].visible for p in pairs])
    kinds = np.array([pair_kind(annotations, p) for p in pairs])
    tasks = np.array([p.task for p in pairs])

    def block(mask: np.ndarray) -> dict:
        entry = {str(t): pck(predicted[mask], truth[mask], valid[mask], t) for t in thresholds}
        entry["pairs"] = int(mask.sum())
        entry["keypoints"] = int(valid[mask].sum())
        return entry

    everything = np.ones(len(pairs), dtype=bool)
    return {
        "overall": block(everything),
        **{split: block(kinds == split) for split in SPLITS},
        "per_task": {task: block(tasks == task) for task in TASKS if (tasks == task).any()},
    }


# --------------------------------------------------------------------------- reference-free detection


def add_uncertainty(
    rows: Sequence[dict],
    hits: Sequence[np.ndarray],
    valid: Sequence[np.ndarray],
    images: Sequence[Sequence[object]],
    baselines: Sequence[int | None],
    seed: int = 0,
) -> None:
    """Give each result row ``uncertainty``: its PCK@0.1 with a 95 % bootstrap interval over the target images
    (:mod:`funk_perception.intervals`) and, where ``baselines[i]`` names another row measured on the same
    images, the paired difference from it. ``hits``/``valid``: (N, K) per row; ``images``: N keys per row."""
    for i, row in enumerate(rows):
        interval = pck_interval(hits[i], valid[i], images[i], seed)
        entry: dict = {
            "pck@0.1": 100.0 * float((hits[i] & valid[i]).sum()) / max(int(valid[i].sum()), 1),
            "interval": None if interval is None else list(interval),
            "images": len({str(k) for k in images[i]}),
            "level": 0.95,
        }
        b = baselines[i]
        if (
            b is not None
            and b != i
            and list(map(str, images[b])) == list(map(str, images[i]))
            and np.array_equal(valid[b], valid[i])
        ):
            diff = pck_difference(hits[i], hits[b], valid[i], images[i], seed)
            if diff is not None:
                entry["difference"] = {
                    "from": rows[b]["name"],
                    "difference": diff["difference"],
                    "interval": [diff["low"], diff["high"]],
                }
        row["uncertainty"] = entry


def score_detections(
    targets: Sequence[Annotation],
    predicted: np.ndarray,
    confidence: np.ndarray | None,
    thresholds: Sequence[float] = THRESHOLDS,
) -> dict:
    """PCK (%) of reference-free keypoints (N, K, 2) on ``targets``, per task, and the confidence AUC."""
    truth = np.stack([a.keypoints for a in targets])
    valid = np.stack([a.visible for a in targets])
    tasks = np.array([a.task for a in targets])

    def block(mask: np.ndarray) -> dict:
        entry = {str(t): pck(predicted[mask], truth[mask], valid[mask], t) for t in thresholds}
        entry["rows"] = int(mask.sum())
        entry["keypoints"] = int(valid[mask].sum())
        return entry

    result = {
        "overall": block(np.ones(len(targets), dtype=bool)),
        "per_task": {task: block(tasks == task) for task in TASKS if (tasks == task).any()},
    }
    if confidence is not None:
        hit = pck_correct(predicted, truth, 0.1)
        result["confidence"] = confidence_auc(confidence[valid], hit[valid])
    return result


def detection_rows(
    methods: Sequence[Method],
    annotations: Sequence[Annotation],
    pairs: Sequence[Pair],
    caches: Mapping[str, Mapping[tuple[Path, str | None], torch.Tensor]],
    refine: str,
    frames: Mapping[str, Mapping[Path, Letterbox]] | None = None,
    mirrored_caches: Mapping[str, Mapping[tuple[Path, str | None], torch.Tensor]] | None = None,
    seed: int = 0,
    references: ReferenceOptions | None = None,
    detector_options: Mapping[str, object] | None = None,
) -> dict:
    """Reference-free detection on every pair target row: the image-blind mean row and, for each
    checkpoint, one row per detect method it holds. ``frames``: per method name, the letterbox
    geometry of every image when its features were letterboxed. ``mirrored_caches``: per method
    name, the features of the mirrored inputs, for the detector's ``mirror_maps``. Every row gets
    ``uncertainty`` (:func:`add_uncertainty`), each checkpoint's compared with the first checkpoint's
    row of the same method; ``seed`` seeds its resampling. ``references``: a user bank file
    (funk_perception/references.py); each bank method then gets a second row, the same detector with
    :meth:`FunctionalKeypointDetector.use_references`, compared with the row without. ``detector_options``:
    ``flip``, ``letterbox``, ``letterbox_pad`` as the features were made (the references are embedded so)."""
    target_ids = sorted({p.target for p in pairs})
    source_ids = sorted({p.source for p in pairs})
    targets = [annotations[i] for i in target_ids]
    mean = {}
    for task in {a.task for a in targets}:
        rows = [annotations[i] for i in source_ids if annotations[i].task == task]
        points = np.stack([a.keypoints for a in rows])
        seen = np.stack([a.visible for a in rows])[..., None]
        mean[task] = (points * seen).sum(0) / np.maximum(seen.sum(0), 1)
    prior = np.stack([mean[a.task] for a in targets])
    out_rows = [
        {
            "name": "image-blind mean of the references",
            "kind": "prior",
            "results": score_detections(targets, prior, None),
        }
    ]
    scored: list[tuple[Sequence[Annotation], np.ndarray]] = [(targets, prior)]  # per row: its targets and points
    for method in methods:
        if method.kind != "model" or method.encoder is None:
            continue
        extra = method.encoder.loaded_extra
        for detect_method, with_references in [
            (m, r)
            for m in available_methods(extra)
            for r in (False, True)
            if not r or (references and m in BANK_METHODS)
        ]:
            base = DetectorConfig(refine=refine, image_size=method.image_size, **(detector_options or {}))
            if method.detector is not None:  # the row's own detector: its stored config and this run's options
                base = method.detector.config.override(refine=refine)
            detector = FunctionalKeypointDetector.from_encoder(method.encoder, replace(base, method=detect_method))
            if with_references:  # the product path: what load(..., references=) does (funk_perception/detector.py)
                detector.use_references(
                    references.bank,
                    references.mode,
                    references.path,
                    method.info.get("checkpoint", method.name),
                    references.share,
                )
            # a model scores only the tasks it knows (a checkpoint trained on some tasks has no others)
            known = [a for a in targets if a.task in detector.tasks]
            if not known:
                continue
            points = np.zeros((len(known), len(known[0].keypoints), 2))
            conf = np.zeros((len(known), len(known[0].keypoints)))
            for i, a in enumerate(known):
                feats = caches[method.name][(a.image_path, a.task)].float().unsqueeze(0)
                mirrored = (
                    None
                    if mirrored_caches is None
                    else mirrored_caches[method.name][(a.image_path, a.task)].float().unsqueeze(0)
                )
                located, confidence = detector.locate(feats, [a.task], mirrored)
                method_frames = None if frames is None else frames[method.name]
                points[i] = from_input(method_frames, [a.image_path], located.cpu().double().numpy())[0]
                conf[i] = confidence[0].cpu().numpy()
            out_rows.append(
                {
                    "name": f"{method.name}, detect by {detect_method}"
                    + (", mirror maps" if mirrored_caches else "")
                    + (f" + references {references.describe()}" if with_references else ""),
                    "kind": detect_method,
                    "model": method.info.get("checkpoint"),
                    "results": score_detections(known, points, conf),
                }
            )
            scored.append((known, points))
    # each detect method against the first checkpoint's row of the same method
    first = {}
    for i, row in enumerate(out_rows):
        first.setdefault(row["kind"], i)
    add_uncertainty(
        out_rows,
        [pck_correct(points, np.stack([a.keypoints for a in rows]), 0.1) for rows, points in scored],
        [np.stack([a.visible for a in rows]) for rows, _ in scored],
        [[a.image_path for a in rows] for rows, _ in scored],
        [None if row["kind"] == "prior" else first[row["kind"]] for row in out_rows],
        seed,
    )
    return {"targets": len(targets), "rows": out_rows}
