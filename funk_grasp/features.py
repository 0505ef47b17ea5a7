"""Base feature maps computed once and kept on disk: every benchmark row and seed starts from them.

The frozen part of every feature kind (the trunk up to its last stage) is the
same network in all three rows, so its maps are computed once per image set
and stored under ``cache/grasp/`` as float16, keyed by the image bytes'
digest and the trunk's weights file. Rerunning a benchmark or a training job
skips the slowest step. The pooled features of an untrained top (the
head-mode rows) can be cached the same way, keyed by the *contents* of the
weights files they come from (the funk checkpoint, the categories
checkpoint), so replacing a checkpoint invalidates them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from funk_grasp.model import GraspFeatures
from funk_perception.atomic import torch_save_atomic
from funk_perception.model import preprocess

CACHE = Path("cache/grasp")
#: Image-task maps per top_features batch. The funk top's activations grow with images x tasks (about 1 MB per
#: map at 128 px): 64 images x 10 tasks in one batch held 0.7 GB, the peak of the benchmark's pooling
#: measurement, so a many-task top takes fewer images per batch.
MAX_MAPS_PER_BATCH = 128


def images_digest(images: np.ndarray, salt: str = "") -> str:
    """A short digest of an image stack (and a salt: the encoder file, the input size)."""
    h = hashlib.sha256(salt.encode())
    h.update(str(images.shape).encode())
    h.update(np.ascontiguousarray(images).tobytes())
    return h.hexdigest()[:20]


def base_maps(
    features: GraspFeatures,
    images: np.ndarray,
    batch_size: int = 32,
    cache: Path | None = CACHE,
    progress: bool = True,
    desc: str = "base maps",
) -> torch.Tensor:
    """(N, H, W, 3) uint8 RGB -> (N, C, H/16, W/16) float16 maps of the frozen base (cached when ``cache``)."""
    path = None
    if cache is not None:
        path = Path(cache) / f"base-{images_digest(images, features.config.encoder)}.pt"
        if path.is_file():
            return torch.load(path, map_location="cpu", weights_only=True)
    device = features.in_scale.device
    chunks = []
    for start in tqdm(range(0, len(images), batch_size), desc=desc, unit="batch", disable=not progress):
        batch = preprocess(list(images[start : start + batch_size]), size=features.config.image_size).to(device)
        chunks.append(features.base_maps(batch).float().cpu().to(torch.float16))
    maps = torch.cat(chunks)
    if path is not None:
        torch_save_atomic(maps, path)
    return maps


def _content_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:20]


def file_identity(path: str) -> str:
    """What cached features computed from the weights file ``path`` are keyed by: its content digest ('' for none).

    Not its path, size and mtime: exports of one architecture all have the same
    size, and a copy that keeps the mtime (``cp -p``, ``rsync -a``, tar) of
    other weights to the same path would have served the old features.
    """
    if not path:
        return ""
    resolved = Path(path).resolve()
    if not resolved.is_file():
        raise FileNotFoundError(f"{path}: weights file named by the feature config not found")
    # hashed on every call (a 14 MB checkpoint takes tens of ms): a digest remembered by stat fields
    # would go stale for a rewrite within the filesystem's timestamp granularity
    return _content_digest(resolved)


def top_features(
    features: GraspFeatures, maps: torch.Tensor, batch_size: int = 64, progress: bool = False, cache: Path | None = None
) -> torch.Tensor:
    """Base maps -> (N, out_dim) pooled float32 features, without gradients (the frozen-feature rows).

    With ``cache``, the result is kept there, keyed by the maps, the feature
    config and the contents of the weights files it names (only for untrained
    tops: a top being fine-tuned must not be cached). A batch holds at most
    ``batch_size`` images and :data:`MAX_MAPS_PER_BATCH` image-task maps.
    """
    path = None
    if cache is not None:
        c = features.config
        salt = "|".join(
            [c.kind, ",".join(c.tasks), c.pooling, file_identity(c.encoder), file_identity(c.categories_checkpoint)]
        )
        path = Path(cache) / f"top-{images_digest(maps.numpy(), salt)}.pt"
        if path.is_file():
            return torch.load(path, map_location="cpu", weights_only=True)
    device = features.in_scale.device
    batch_size = max(1, min(batch_size, MAX_MAPS_PER_BATCH // features.maps))
    out = []
    features.eval()
    with torch.no_grad():
        for start in tqdm(range(0, len(maps), batch_size), desc="features", unit="batch", disable=not progress):
            out.append(features.top(maps[start : start + batch_size].to(device)).float().cpu())
    result = torch.cat(out)
    if path is not None:
        torch_save_atomic(result, path)
    return result


__all__ = ["CACHE", "MAX_MAPS_PER_BATCH", "base_maps", "file_identity", "images_digest", "top_features"]
