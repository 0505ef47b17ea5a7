"""FunctionalKeypointDetector: the plain-Python API the ROS node, grasping and RL use.

    detector = FunctionalKeypointDetector.load("models/funk-lite0.pt")
    found = detector.detect(rgb, tasks=["pour"])   # {"pour": TaskKeypoints}
    found["pour"].points                           # (5, 2) pixel x, y in ``rgb``

``detect`` needs no reference image: each task's five keypoints are the
locations whose embeddings best match the checkpoint's per-task keypoint
prototypes (mean training embeddings). ``transfer`` is the paper's protocol:
keypoints given on a reference image are matched in a target image.

Images are numpy ``(H, W, 3)`` uint8 RGB of any size; they are resized to the
model's square input size and the results mapped back to the input's pixels
(pixel ``(x, y)`` with ``(0, 0)`` the top-left corner of the top-left pixel).

Confidence is the softmax probability mass around the peak (3 x 3 cells) under
``softmax(logit_scale * cosine)`` over all locations, with the checkpoint's own
learned ``logit_scale``. That is the distribution the contrastive loss trains, so
its scale is the one the model was fitted for; unlike a raw cosine it drops when a
keypoint is ambiguous (two equally good places, or a flat response).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from funk_perception.matching import REFINE_METHODS, peak_confidence, refine_points, sample_features, similarity_maps
from funk_perception.model import IMAGENET_MEAN, IMAGENET_STD, FunctionalEncoder, Trunk, preprocess, resolve_device
from funk_perception.tasks import KEYPOINTS, NUM_KEYPOINTS, TASKS, normalize_task


@dataclass(frozen=True)
class TaskKeypoints:
    """The keypoints of one task in one image."""

    task: str
    points: np.ndarray  # (K, 2) float pixel x, y in the input image
    confidence: np.ndarray  # (K,) in [0, 1]
    names: tuple[str, ...] = KEYPOINTS


def check_image(image: object, where: str = "image") -> np.ndarray:
    """Return ``image`` if it is a non-empty numpy (H, W, 3) uint8 RGB array, else raise naming expected vs found."""
    expected = "a numpy uint8 array of shape (H, W, 3), RGB"
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{where}: expected {expected}, found {type(image).__name__}")
    if image.dtype != np.uint8:
        hint = " (scale floats in [0, 1] by 255 and cast with .astype(np.uint8))" if image.dtype.kind == "f" else ""
        raise TypeError(f"{where}: expected dtype uint8, found {image.dtype}{hint}")
    if image.ndim == 2:
        raise ValueError(
            f"{where}: expected shape (H, W, 3) RGB, found grayscale {image.shape}; "
            "convert with cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)"
        )
    if image.ndim != 3:
        raise ValueError(f"{where}: expected shape (H, W, 3) RGB, found {image.ndim} dimensions {image.shape}")
    if image.shape[2] != 3:
        if image.shape[0] == 3 and image.shape[2] not in (1, 4):
            hint = "; a (3, H, W) channels-first array needs image.transpose(1, 2, 0)"
        elif image.shape[2] == 4:
            hint = "; RGBA: drop the alpha channel with image[..., :3]"
        else:
            hint = ""
        raise ValueError(f"{where}: expected shape (H, W, 3) RGB, found {image.shape}{hint}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"{where}: expected a non-empty image, found shape {image.shape}")
    return image


def _to_pixels(points: torch.Tensor, image: np.ndarray) -> np.ndarray:
    scale = np.array([image.shape[1], image.shape[0]], dtype=np.float64)
    return points.detach().cpu().double().numpy() * scale


class FunctionalKeypointDetector:
    """Task-conditioned keypoints from a trained encoder and its per-task prototypes."""

    def __init__(
        self,
        encoder: FunctionalEncoder,
        prototypes: Mapping[str, torch.Tensor | np.ndarray] | None = None,
        refine: str = "parabolic",
        image_size: int | None = None,
    ) -> None:
        if refine not in REFINE_METHODS:
            raise ValueError(f"refine: expected one of {', '.join(REFINE_METHODS)}, found {refine!r}")
        self.encoder = encoder.eval()
        self.refine = refine
        self.image_size = int(image_size or encoder.config.image_size)
        self.device = encoder.log_logit_scale.device
        self.logit_scale = float(encoder.logit_scale.detach())
        self.prototypes: dict[str, torch.Tensor] = {}
        for name, value in (prototypes or {}).items():
            task = normalize_task(name)
            proto = torch.as_tensor(np.asarray(value) if not isinstance(value, torch.Tensor) else value).float()
            if proto.shape != (NUM_KEYPOINTS, encoder.embedding_dim):
                raise ValueError(
                    f"prototypes[{name!r}]: expected shape ({NUM_KEYPOINTS}, {encoder.embedding_dim}), "
                    f"found {tuple(proto.shape)}"
                )
            self.prototypes[task] = proto.to(self.device)

    @classmethod
    def load(
        cls,
        path: str | Path,
        device: str = "auto",
        trunk_weights: str | Path | None = None,
        trunk: Trunk | None = None,
        refine: str = "parabolic",
    ) -> "FunctionalKeypointDetector":
        """Load a checkpoint written by training (its ``extra["prototypes"]`` holds the prototypes)."""
        encoder = FunctionalEncoder.load(path, resolve_device(device), trunk=trunk, trunk_weights=trunk_weights)
        prototypes = encoder.loaded_extra.get("prototypes")
        if not isinstance(prototypes, Mapping) or not prototypes:
            found = "none" if prototypes is None else type(prototypes).__name__
            raise ValueError(
                f"{path}: expected per-task keypoint prototypes in the checkpoint's extra['prototypes'] "
                f"({{task: ({NUM_KEYPOINTS}, D) tensor}}), found {found}; the training command writes them"
            )
        return cls(encoder, prototypes, refine=refine)

    @property
    def tasks(self) -> tuple[str, ...]:
        """Tasks ``detect`` can answer (those with prototypes), in TASKS order."""
        return tuple(t for t in TASKS if t in self.prototypes)

    def _resolve_tasks(self, tasks: Sequence[str] | str | None, available: Sequence[str]) -> list[str]:
        if tasks is None:
            return list(available)
        if isinstance(tasks, str):
            tasks = [tasks]
        resolved: list[str] = []
        for name in tasks:
            try:
                task = normalize_task(name)
            except ValueError:
                raise ValueError(f"unknown task {name!r}; expected one of {', '.join(available)}") from None
            if task not in available:
                raise ValueError(f"task {name!r} has no keypoint prototype in this model; expected one of "
                                 f"{', '.join(available)}")
            if task not in resolved:
                resolved.append(task)
        if not resolved:
            raise ValueError(f"tasks: expected at least one task, found an empty list; valid: {', '.join(available)}")
        return resolved

    def _embed(self, images: Sequence[np.ndarray], tasks: Sequence[str]) -> torch.Tensor:
        batch = preprocess(list(images), size=self.image_size).to(self.device)
        with torch.inference_mode():
            return self.encoder(batch, list(tasks)).float()

    def features(self, image: np.ndarray, tasks: Sequence[str] | None = None) -> torch.Tensor:
        """Unit-norm embeddings (T, D, h, w) of all requested tasks (default all 10), one forward pass."""
        check_image(image, "features(image)")
        return self._embed([image], self._resolve_tasks(tasks, TASKS))[0]

    def detect(self, image: np.ndarray, tasks: Sequence[str] | None = None) -> dict[str, TaskKeypoints]:
        """Five keypoints per requested task (default: every task with a prototype), in pixels of ``image``."""
        check_image(image, "detect(image)")
        names = self._resolve_tasks(tasks, self.tasks)
        feats = self._embed([image], names)[0]  # (T, D, h, w)
        protos = torch.stack([self.prototypes[t] for t in names])  # (T, 5, D)
        sim = similarity_maps(protos, feats)  # (T, 5, h, w)
        points = refine_points(sim, self.refine)
        confidence = peak_confidence(sim, self.logit_scale)
        # A keypoint never seen in training has a zero prototype: no evidence at all.
        confidence = torch.where(protos.norm(dim=-1) > 0, confidence, torch.zeros_like(confidence))
        pixels = _to_pixels(points, image)
        conf = confidence.cpu().numpy().astype(np.float64)
        return {t: TaskKeypoints(t, pixels[i], conf[i]) for i, t in enumerate(names)}

    def transfer(
        self, reference_image: np.ndarray, reference_keypoints: np.ndarray, target_image: np.ndarray, task: str
    ) -> TaskKeypoints:
        """The paper's protocol: reference keypoints (K, 2) in reference pixels -> matched target pixels."""
        check_image(reference_image, "transfer(reference_image)")
        check_image(target_image, "transfer(target_image)")
        (name,) = self._resolve_tasks([task], TASKS)
        keypoints = np.asarray(reference_keypoints, dtype=np.float64)
        if keypoints.ndim != 2 or keypoints.shape[1] != 2 or len(keypoints) == 0:
            raise ValueError(f"transfer(reference_keypoints): expected shape (K, 2) pixel x, y, found {keypoints.shape}")
        height, width = reference_image.shape[:2]
        outside = ~np.isfinite(keypoints).all(axis=1) | (keypoints[:, 0] < 0) | (keypoints[:, 0] > width) \
            | (keypoints[:, 1] < 0) | (keypoints[:, 1] > height)
        if outside.any():
            raise ValueError(
                f"transfer(reference_keypoints): expected finite points inside the {width}x{height} reference image, "
                f"found {keypoints[outside].tolist()} (rows {np.flatnonzero(outside).tolist()})"
            )
        feats = self._embed([reference_image, target_image], [name])[:, 0]  # (2, D, h, w)
        normalized = torch.from_numpy(keypoints / np.array([width, height])).float().to(self.device)
        queries = sample_features(feats[:1], normalized.unsqueeze(0))  # (1, K, D)
        sim = similarity_maps(queries, feats[1:])  # (1, K, h, w)
        points = refine_points(sim, self.refine)[0]
        confidence = peak_confidence(sim, self.logit_scale)[0].cpu().numpy().astype(np.float64)
        names = KEYPOINTS if len(keypoints) == NUM_KEYPOINTS else tuple(f"p{i + 1}" for i in range(len(keypoints)))
        return TaskKeypoints(name, _to_pixels(points, target_image), confidence, names)

    # Batched, device-resident calls: the per-step path of the RL environment loop (issue 8). Frames go in
    # once, results stay on the model's device, so N environments cost one forward pass and no host copies.

    def _frames_on_device(self, images: np.ndarray | torch.Tensor, where: str) -> torch.Tensor:
        """uint8 ``(N, H, W, 3)`` RGB (numpy or torch, any device) -> ImageNet-normalised ``(N, 3, S, S)``."""
        if isinstance(images, np.ndarray):
            images = torch.from_numpy(images)
        if not isinstance(images, torch.Tensor):
            raise TypeError(f"{where}: expected a uint8 (N, H, W, 3) numpy array or torch tensor, "
                            f"found {type(images).__name__}")
        if images.dtype != torch.uint8:
            raise TypeError(f"{where}: expected dtype uint8, found {images.dtype}")
        if images.dim() != 4 or images.shape[-1] != 3 or 0 in images.shape:
            raise ValueError(f"{where}: expected a non-empty (N, H, W, 3) RGB batch, found {tuple(images.shape)}")
        x = images.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
        size = (self.image_size, self.image_size)
        if tuple(x.shape[-2:]) != size:
            # On the device, unlike preprocess()'s cv2 resize; frames rendered at the model's size skip this.
            x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
        mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)
        return (x - mean) / std

    def _autocast(self, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
        if dtype is None or dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def features_batch(
        self,
        images: np.ndarray | torch.Tensor,
        tasks: Sequence[str] | None = None,
        pool: int | None = None,
        dtype: torch.dtype | None = None,
    ) -> torch.Tensor:
        """Embeddings of N frames in one forward pass, returned float32 on the model's device.

        ``images``: uint8 ``(N, H, W, 3)`` RGB, numpy or torch. Without ``pool``:
        ``(N, T, D, h, w)`` unit-norm, as :meth:`features` per image; with ``pool=g``:
        ``(N, T, D, g, g)`` averages over a ``g x g`` grid of regions. ``dtype``
        (e.g. ``torch.bfloat16``) runs the forward pass under autocast.
        """
        names = self._resolve_tasks(tasks, TASKS)
        x = self._frames_on_device(images, "features_batch(images)")
        with torch.inference_mode(), self._autocast(dtype):
            feats = self.encoder(x, names)
        feats = feats.float()
        if pool is None:
            return feats
        n, t, d, h, w = feats.shape
        return F.adaptive_avg_pool2d(feats.reshape(n * t, d, h, w), int(pool)).reshape(n, t, d, int(pool), int(pool))

    def trunk_features_batch(
        self, images: np.ndarray | torch.Tensor, pool: int | None = None, dtype: torch.dtype | None = None
    ) -> torch.Tensor:
        """The frozen ImageNet trunk alone (no modular network) on N frames: ``(N, C, h, w)`` or pooled ``(N, C, g, g)``."""
        x = self._frames_on_device(images, "trunk_features_batch(images)")
        with torch.inference_mode(), self._autocast(dtype):
            feats = self.encoder.trunk(x)
        feats = feats.float()
        return feats if pool is None else F.adaptive_avg_pool2d(feats, int(pool))

    def keypoints_batch(
        self, images: np.ndarray | torch.Tensor, tasks: Sequence[str] | None = None, dtype: torch.dtype | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`detect` for N frames in one pass, on the device: normalised points ``(N, T, K, 2)``
        (x / width, y / height) and confidences ``(N, T, K)``, tasks as given (default: all with prototypes)."""
        names = self._resolve_tasks(tasks, self.tasks)
        feats = self.features_batch(images, names, dtype=dtype)
        n, t, d, h, w = feats.shape
        protos = torch.stack([self.prototypes[name] for name in names])  # (T, K, D)
        queries = protos.unsqueeze(0).expand(n, -1, -1, -1).reshape(n * t, NUM_KEYPOINTS, d)
        sim = similarity_maps(queries, feats.reshape(n * t, d, h, w))
        points = refine_points(sim, self.refine).reshape(n, t, NUM_KEYPOINTS, 2)
        confidence = peak_confidence(sim, self.logit_scale).reshape(n, t, NUM_KEYPOINTS)
        confidence = torch.where(protos.norm(dim=-1) > 0, confidence, torch.zeros_like(confidence))
        return points, confidence

    def detect_region(
        self, image: np.ndarray, roi: Sequence[int], tasks: Sequence[str] | None = None
    ) -> dict[str, TaskKeypoints]:
        """``detect`` on the region ``roi = (x, y, width, height)`` of ``image`` (clipped to it), with the
        points in full-image pixels: lets an object detector point funk at one object in a cluttered scene."""
        check_image(image, "detect_region(image)")
        if len(roi) != 4:
            raise ValueError(f"detect_region(roi): expected (x, y, width, height), found {tuple(roi)}")
        x, y, w, h = (int(v) for v in roi)
        x0, y0 = max(0, x), max(0, y)
        x1, y1 = min(image.shape[1], x + w), min(image.shape[0], y + h)
        if x1 <= x0 or y1 <= y0:
            raise ValueError(
                f"detect_region(roi): expected a region overlapping the {image.shape[1]}x{image.shape[0]} image, "
                f"found (x={x}, y={y}, width={w}, height={h})"
            )
        found = self.detect(np.ascontiguousarray(image[y0:y1, x0:x1]), tasks)
        offset = np.array([x0, y0], dtype=np.float64)
        return {t: TaskKeypoints(t, kp.points + offset, kp.confidence, kp.names) for t, kp in found.items()}
