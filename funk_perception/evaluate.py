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
import hashlib
import json
import os
import platform
import shlex
import sys
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
import torch  # before anything that could create a GL context (docs/DESIGN.md, "Import torch first")
import torch.nn.functional as F
from tqdm import tqdm

from funk_perception.atomic import write_text_atomic
from funk_perception.cli import build_parser as build_config_parser
from funk_perception.cli import command, config_from_args
from funk_perception.data.annotations import Annotation, FunKPointDataset
from funk_perception.data.pairs import Pair, evaluation_pairs, pair_kind
from funk_perception.detector import BANK_METHODS, FunctionalKeypointDetector, available_methods
from funk_perception.detector_config import DetectorConfig
from funk_perception.eval_config import EvalConfig as EvalConfig
from funk_perception.eval_config import ReferenceOptions
from funk_perception.eval_report import markdown_report as markdown_report
from funk_perception.figures import DenseExample, QualitativeExample, object_region_points, plot_dense, plot_qualitative
from funk_perception.intervals import pck_difference, pck_interval
from funk_perception.matching import flip_averaged, match, sample_features
from funk_perception.metrics import confidence_auc, pck, pck_correct
from funk_perception.model import FunctionalEncoder, build_trunk, preprocess, resolve_device
from funk_perception.model.letterbox import Letterbox, letterbox
from funk_perception.onnx_backend import OnnxRuntimeEncoder
from funk_perception.reference_bank import check_fingerprint, encoder_fingerprint, load_bank
from funk_perception.tasks import TASKS

#: PCK thresholds reported (fractions of the normalised image size).
THRESHOLDS: tuple[float, ...] = (0.05, 0.1, 0.15)
#: Paper Table 2 (docs/DESIGN.md, "Evaluation"): PCK@0.1 (%) on the real FunKPoint test set, ResNet-50 trunk.
PAPER_TABLE2: Mapping[str, float] = {
    "ImageNet ResNet-50 features": 22.0,
    "ours, uniform gating": 52.8,
    "ours, shared learned gating": 52.5,
    "ours, task embedding": 58.4,
    "second human annotator": 82.5,
}
PREDICTION_MODES: tuple[str, ...] = ("argmax", "refined")
SPLITS: tuple[str, ...] = ("same_category", "cross_category")


# --------------------------------------------------------------------------- feature extraction

#: A feature extractor: (B, 3, S, S) normalised images, tasks -> (B, T, D, h, w); tasks=None for
#: task-independent features (T = 1).
Extractor = Callable[[torch.Tensor, list[str] | None], torch.Tensor]


@dataclass
class Method:
    """One row of the results table."""

    name: str
    kind: str  # "prior" | "trunk" | "model"
    extractor: Extractor | None = None
    image_size: int = 224
    task_conditioned: bool = False
    info: dict = field(default_factory=dict)
    encoder: FunctionalEncoder | None = None  # for model rows: what detection needs
    #: for model rows: the detector whose preprocessing and forward pass make the features (the product path)
    detector: FunctionalKeypointDetector | None = None


def _trunk_extractor(trunk: torch.nn.Module, device: torch.device) -> Extractor:
    def extract(images: torch.Tensor, tasks: list[str] | None) -> torch.Tensor:
        features = trunk(images.to(device)).float()
        return F.normalize(features, dim=1).unsqueeze(1)

    return extract


def model_detector(
    encoder: FunctionalEncoder, image_size: int, config: EvalConfig, where: str = "checkpoint"
) -> FunctionalKeypointDetector:
    """The detector ``FunctionalKeypointDetector.load`` makes of checkpoint ``where`` (its stored
    :class:`funk_perception.detector_config.DetectorConfig`), with this evaluation's input options and backend."""
    stored = DetectorConfig.from_extra(encoder.loaded_extra, where)
    detector = FunctionalKeypointDetector.from_encoder(
        encoder,
        stored.override(
            refine=config.refine,
            image_size=image_size,
            flip=config.flip,
            letterbox=config.letterbox,
            letterbox_pad=config.letterbox_pad,
            mirror_maps=config.mirror_maps,
        ),
        where,
    )
    detector.use_backend(config.backend, config.precision)
    return detector


def _detector_extractor(detector: FunctionalKeypointDetector) -> Extractor:
    """Features as ``detect`` makes them: :meth:`FunctionalKeypointDetector.embed_batch` (its flip, its backend).
    The onnxruntime backend runs the all-task graph, the one ``detect`` and the node run by default, and keeps
    the tasks asked for (an int8 graph of fewer tasks is calibrated on its own activations: docs/DEPLOY.md)."""

    def extract(images: torch.Tensor, tasks: list[str] | None) -> torch.Tensor:
        asked = list(TASKS) if tasks is None else list(tasks)
        if detector.backend == "torch":
            return detector.embed_batch(images.to(detector.device), asked)
        features = detector.embed_batch(images, TASKS)
        return features if asked == list(TASKS) else features[:, [TASKS.index(t) for t in asked]]

    return extract


def load_view(dataset: FunKPointDataset, path: Path, mirror: bool = False) -> np.ndarray:
    """An image of ``dataset``, mirrored left-right when ``mirror``."""
    image = dataset.load_image(path)
    return np.ascontiguousarray(image[:, ::-1]) if mirror else image


def mirror_annotation(annotation: Annotation) -> Annotation:
    """The annotation of the mirrored image: x -> 1 - x, each keypoint keeping its identity."""
    points = np.array(annotation.keypoints, dtype=np.float64)
    points[:, 0] = 1.0 - points[:, 0]
    return replace(annotation, keypoints=points)


def compute_features(
    method: Method,
    dataset: FunKPointDataset,
    needs: Mapping[Path, set[str]],
    batch_size: int = 16,
    progress: bool = False,
    flip: bool = False,
    mirror: bool = False,
    letterbox_pad: str | None = None,
    flip_input: bool = False,
) -> dict[tuple[Path, str | None], torch.Tensor]:
    """Features of every needed image, once each: key (image path, task) -> (D, h, w) float16
    on the CPU; task is None for task-independent (trunk-only) features.

    Images are resized to the method's square input size, so every map has the same
    grid and the cells map back onto the original image's normalised coordinates;
    with ``letterbox_pad`` they are letterboxed instead, and the cells map back
    through :func:`letterbox_frames`. ``flip_input``: the features of the mirrored network
    input (after letterboxing, as the detector's ``mirror_maps`` reads it), not mirrored back.
    """
    if method.extractor is None:
        raise ValueError(f"compute_features: method {method.name!r} has no feature extractor")
    paths = list(needs)
    cache: dict[tuple[Path, str | None], torch.Tensor] = {}
    starts = range(0, len(paths), batch_size)
    extractor = method.extractor

    def extract(images: torch.Tensor, tasks: list[str] | None) -> torch.Tensor:
        if flip and method.detector is None:  # a detector averages with its own flip
            return flip_averaged(lambda x: extractor(x, tasks), images)
        return extractor(images, tasks)

    for start in tqdm(starts, desc=f"features {method.name}", disable=not progress, leave=False):
        chunk = paths[start : start + batch_size]
        views = [load_view(dataset, p, mirror) for p in chunk]
        if method.detector is not None:  # the product path: detect's own letterbox and normalisation
            images = method.detector.prepare_batch(views)
        else:
            if letterbox_pad is not None:
                views = [letterbox(v, method.image_size, letterbox_pad)[0] for v in views]
            images = preprocess(views, size=method.image_size)
        if flip_input:
            images = images.flip(-1)
        if method.task_conditioned:
            tasks = [t for t in TASKS if any(t in needs[p] for p in chunk)]
            with torch.inference_mode():
                feats = extract(images, tasks).to("cpu", torch.float16)
            for b, path in enumerate(chunk):
                for t_index, task in enumerate(tasks):
                    if task in needs[path]:
                        cache[(path, task)] = feats[b, t_index].clone()
        else:
            with torch.inference_mode():
                feats = extract(images, None).to("cpu", torch.float16)
            for b, path in enumerate(chunk):
                cache[(path, None)] = feats[b, 0].clone()
    return cache


def letterbox_frames(dataset: FunKPointDataset, paths: Sequence[Path], size: int) -> dict[Path, Letterbox]:
    """Each image's letterbox geometry in a ``size x size`` input (mirroring keeps the size, so one serves both)."""
    frames = {}
    for path in paths:
        height, width = dataset.load_image(path).shape[:2]  # the loader's own decode, EXIF rotation included
        frames[path] = Letterbox.fit(height, width, size)
    return frames


def _to_input(frames: Mapping[Path, Letterbox] | None, paths: Sequence[Path], points: np.ndarray) -> np.ndarray:
    """Image-normalised (N, K, 2) points of ``paths`` -> the letterboxed input's (unchanged when squashed)."""
    if frames is None:
        return points
    return np.stack([frames[p].to_input(row) for p, row in zip(paths, points)])


def _from_input(frames: Mapping[Path, Letterbox] | None, paths: Sequence[Path], points: np.ndarray) -> np.ndarray:
    """The inverse, clipped as :meth:`Letterbox.from_input` (a match in the pad lands on the image's edge)."""
    if frames is None:
        return points
    return np.stack([frames[p].from_input(row) for p, row in zip(paths, points)])


def _feature(
    cache: Mapping[tuple[Path, str | None], torch.Tensor], method: Method, path: Path, task: str
) -> torch.Tensor:
    return cache[(path, task if method.task_conditioned else None)]


def predict_pairs(
    method: Method,
    annotations: Sequence[Annotation],
    pairs: Sequence[Pair],
    cache: Mapping[tuple[Path, str | None], torch.Tensor] | None,
    refine: str = "parabolic",
    chunk: int = 256,
    frames: Mapping[Path, Letterbox] | None = None,
) -> dict[str, np.ndarray]:
    """Predicted target keypoints (P, K, 2) normalised, for ``argmax`` and ``refined``.

    ``frames``: the letterbox geometry of every image when the features were letterboxed
    (:func:`letterbox_frames`); points then go into the padded input and back.
    """
    sources = np.stack([annotations[p.source].keypoints for p in pairs])
    if method.kind == "prior":
        # Image-blind: the reference position is the prediction, for both modes.
        return {"argmax": sources.copy(), "refined": sources.copy()}
    if cache is None:
        raise ValueError(f"predict_pairs: method {method.name!r} needs a feature cache")
    out = {mode: np.zeros_like(sources) for mode in PREDICTION_MODES}
    for start in range(0, len(pairs), chunk):
        block = pairs[start : start + chunk]
        ref = torch.stack([_feature(cache, method, annotations[p.source].image_path, p.task) for p in block]).float()
        tgt = torch.stack([_feature(cache, method, annotations[p.target].image_path, p.task) for p in block]).float()
        ref_paths = [annotations[p.source].image_path for p in block]
        tgt_paths = [annotations[p.target].image_path for p in block]
        points = torch.from_numpy(_to_input(frames, ref_paths, sources[start : start + len(block)])).float()
        result = match(sample_features(ref, points), tgt, refine=refine)
        out["argmax"][start : start + len(block)] = _from_input(frames, tgt_paths, result.argmax.double().numpy())
        out["refined"][start : start + len(block)] = _from_input(frames, tgt_paths, result.refined.double().numpy())
    return out


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
                points[i] = _from_input(method_frames, [a.image_path], located.cpu().double().numpy())[0]
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


# --------------------------------------------------------------------------- methods


def load_methods(config: EvalConfig, device: torch.device) -> list[Method]:
    methods = [Method(name="image-blind prior", kind="prior")]
    trunk_rows: dict[str, Method] = {}
    model_rows: list[Method] = []
    # rows (and their feature caches) are keyed by name: two checkpoints of one file name, such as two
    # runs' checkpoint.pt, are told apart by their folders
    names = [p.name for p in config.models]
    labels = [str(Path(p.parent.name) / p.name) if names.count(p.name) > 1 else p.name for p in config.models]
    if len(set(labels)) < len(labels):
        raise ValueError(f"EvalConfig.models: expected distinct checkpoints, found {[str(p) for p in config.models]}")
    for path, label in zip(config.models, labels):
        encoder = FunctionalEncoder.load(path, device, trunk_weights=config.trunk_weights)
        encoder.eval()
        size = config.size or int(encoder.config.image_size)
        gating = str(encoder.config.modular.gating)
        trunk_name = str(encoder.config.trunk)
        extra = dict(getattr(encoder, "loaded_extra", {}) or {})
        info = {
            "checkpoint": str(path),
            "checkpoint_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "logit_scale": float(encoder.logit_scale.detach()),
            "gating": gating,
            "trunk": trunk_name,
            "image_size": size,
            "metadata": {k: v for k, v in extra.items() if k != "prototypes" and _jsonable(v)},
            "backend": config.backend,
            "precision": config.precision,
        }
        detector = model_detector(encoder, size, config, str(path))
        info["detector_config"] = detector.config.to_extra()
        model_rows.append(
            Method(
                f"{gating} gating ({label})",
                "model",
                _detector_extractor(detector),
                size,
                True,
                info,
                encoder,
                detector,
            )
        )
        key = f"{trunk_name}@{size}"
        if key not in trunk_rows:
            trunk_rows[key] = Method(
                f"trunk-only {key}",
                "trunk",
                _trunk_extractor(encoder.trunk, device),
                size,
                False,
                {"trunk": trunk_name, "image_size": size},
            )
    for name in config.trunks:
        size = config.size or 224
        key = f"{name}@{size}"
        if key not in trunk_rows:
            trunk = build_trunk(name, weights=config.trunk_weights if name == "resnet50" else None).to(device)
            trunk_rows[key] = Method(
                f"trunk-only {key}",
                "trunk",
                _trunk_extractor(trunk, device),
                size,
                False,
                {"trunk": name, "image_size": size},
            )
    return methods + list(trunk_rows.values()) + model_rows


def _finite_or_none(value: object) -> object:
    """NaN (a split without keypoints) -> None, so the JSON stays standard."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_or_none(v) for v in value]
    return value


def _jsonable(value: object) -> bool:
    try:
        json.dumps(value)
        return True
    except (TypeError, ValueError):
        return False


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
            query_points = torch.from_numpy(_to_input(method_frames, [src.image_path], points[None])).float()
            ref = _feature(caches[m.name], m, src.image_path, p.task).float().unsqueeze(0)
            tgt_f = _feature(caches[m.name], m, tgt.image_path, p.task).float().unsqueeze(0)
            found = match(sample_features(ref, query_points), tgt_f, refine=config.refine).refined.double().numpy()
            matches[m.name] = _from_input(method_frames, [tgt.image_path], found)[0]
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
