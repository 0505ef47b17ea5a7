"""What turns images into features and carries keypoints across for :mod:`funk_perception.evaluate`: the
result rows (:class:`Method`) and their feature extractors, the per-image feature caches, and keypoint transfer."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from funk_perception.data.annotations import Annotation, FunKPointDataset
from funk_perception.data.pairs import Pair
from funk_perception.detector import FunctionalKeypointDetector
from funk_perception.detector_config import DetectorConfig
from funk_perception.eval_config import EvalConfig
from funk_perception.matching import flip_averaged, match, sample_features
from funk_perception.model import FunctionalEncoder, build_trunk, preprocess
from funk_perception.model.letterbox import Letterbox, letterbox
from funk_perception.tasks import TASKS

#: The two predictions of every learned method: the best cell, and the sub-cell refinement of it.
PREDICTION_MODES: tuple[str, ...] = ("argmax", "refined")


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


def to_input(frames: Mapping[Path, Letterbox] | None, paths: Sequence[Path], points: np.ndarray) -> np.ndarray:
    """Image-normalised (N, K, 2) points of ``paths`` -> the letterboxed input's (unchanged when squashed)."""
    if frames is None:
        return points
    return np.stack([frames[p].to_input(row) for p, row in zip(paths, points)])


def from_input(frames: Mapping[Path, Letterbox] | None, paths: Sequence[Path], points: np.ndarray) -> np.ndarray:
    """The inverse of :func:`to_input`, clipped as :meth:`Letterbox.from_input` (a match in the pad lands on the image's edge)."""
    if frames is None:
        return points
    return np.stack([frames[p].from_input(row) for p, row in zip(paths, points)])


def cached_feature(
    cache: Mapping[tuple[Path, str | None], torch.Tensor], method: Method, path: Path, task: str
) -> torch.Tensor:
    """The (D, h, w) features of ``path`` for ``task`` in a :func:`compute_features` cache (its task-independent
    ones for a method that is not task-conditioned)."""
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
        ref = torch.stack(
            [cached_feature(cache, method, annotations[p.source].image_path, p.task) for p in block]
        ).float()
        tgt = torch.stack(
            [cached_feature(cache, method, annotations[p.target].image_path, p.task) for p in block]
        ).float()
        ref_paths = [annotations[p.source].image_path for p in block]
        tgt_paths = [annotations[p.target].image_path for p in block]
        points = torch.from_numpy(to_input(frames, ref_paths, sources[start : start + len(block)])).float()
        result = match(sample_features(ref, points), tgt, refine=refine)
        out["argmax"][start : start + len(block)] = from_input(frames, tgt_paths, result.argmax.double().numpy())
        out["refined"][start : start + len(block)] = from_input(frames, tgt_paths, result.refined.double().numpy())
    return out


def load_methods(config: EvalConfig, device: torch.device) -> list[Method]:
    """The rows of ``config``: the image-blind prior, a trunk-only row per trunk and input size, one per checkpoint."""
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


def _jsonable(value: object) -> bool:
    try:
        json.dumps(value)
        return True
    except (TypeError, ValueError):
        return False
