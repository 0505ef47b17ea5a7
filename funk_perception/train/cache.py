"""Trunk-feature cache: frozen-trunk features of V augmented views of every training image.

The trunk is frozen, so its features for a given view never change; computing
them once turns every training step into a head-only forward/backward, which is
what makes training feasible on two CPU cores.

Layout of a cache folder::

    features.npy   float16 [N_views, C, h, w], view = image * V + v (np.load(mmap_mode="r"))
    index.json     the key (trunk, image size, views, augmentation, dataset CSV + sha256),
                   the images and, per view, the transformed keypoints and visibility per task

``index.json`` is written last, atomically, so its presence marks a complete
cache. While building, ``features.partial.npy`` and ``progress.json`` record
finished images; a killed build resumes from there when the key is unchanged and
starts over when it differs. A cache whose key differs from the requested one is
rebuilt in place.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from funk_perception.atomic import write_json_atomic
from funk_perception.data.annotations import Annotation, FunKPointDataset
from funk_perception.model.trunk import preprocess
from funk_perception.tasks import NUM_KEYPOINTS, TASKS
from funk_perception.train.augment import AugmentConfig, augment_view

CACHE_FORMAT = 1
FEATURES_FILE = "features.npy"
INDEX_FILE = "index.json"
PARTIAL_FILE = "features.partial.npy"
PROGRESS_FILE = "progress.json"
RECORDS_FILE = "views.partial.jsonl"


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class CacheKey:
    """Everything the cached features depend on; a different key means a rebuild."""

    trunk: str
    trunk_weights: str  # "" for the package's default weights, "random" for pretrained=False
    image_size: int
    views: int
    augment_seed: int
    augment: dict
    csv_path: str
    csv_sha256: str
    roles: tuple[str, ...] = ("train",)
    format: int = CACHE_FORMAT

    def to_json(self) -> dict:
        payload = asdict(self)
        payload["roles"] = list(self.roles)
        return payload

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_json(), sort_keys=True).encode()).hexdigest()


def make_key(
    csv_path: str | Path,
    trunk: str,
    trunk_weights: str,
    image_size: int,
    views: int,
    augment_seed: int,
    augment: AugmentConfig,
    roles: Sequence[str] = ("train",),
) -> CacheKey:
    csv_path = Path(csv_path).resolve()
    augment_json = json.loads(json.dumps(asdict(augment)))  # tuples -> lists, as they read back
    return CacheKey(
        trunk=trunk,
        trunk_weights=trunk_weights,
        image_size=int(image_size),
        views=int(views),
        augment_seed=int(augment_seed),
        augment=augment_json,
        csv_path=str(csv_path),
        csv_sha256=file_sha256(csv_path),
        roles=tuple(roles),
    )


class FeatureCache:
    """A built cache, memory-mapped, with keypoints in arrays ready for training.

    Attributes:
        features: float16 memmap [N_views, C, h, w].
        keypoints: float32 [N_views, len(TASKS), 5, 2], normalised (x, y) in the view.
        visible: bool [N_views, len(TASKS), 5]; False for tasks not labelled on the image.
        image_of_annotation: int64 [len(annotations)], the image index of each annotation.
        annotations: the dataset's annotations (the indices PairSampler returns).
    """

    def __init__(
        self, folder: str | Path, annotations: Sequence[Annotation] | None = None, reused: bool = True
    ) -> None:
        self.folder = Path(folder)
        index_path = self.folder / INDEX_FILE
        try:
            self.index: dict = json.loads(index_path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(f"{index_path}: expected a complete feature-cache index, found {error}") from None
        self.reused = reused
        self.key = self.index["key"]
        self.views_per_image = int(self.key["views"])
        self.image_size = int(self.key["image_size"])
        self.features = np.load(self.folder / FEATURES_FILE, mmap_mode="r")
        expected_views = len(self.index["images"]) * self.views_per_image
        if self.features.shape[0] != expected_views or self.features.dtype != np.float16:
            raise ValueError(
                f"{self.folder / FEATURES_FILE}: expected float16 with {expected_views} views, "
                f"found {self.features.dtype} {self.features.shape}"
            )
        self.num_images = len(self.index["images"])
        self.keypoints = np.zeros((expected_views, len(TASKS), NUM_KEYPOINTS, 2), dtype=np.float32)
        self.visible = np.zeros((expected_views, len(TASKS), NUM_KEYPOINTS), dtype=bool)
        for view_id, record in enumerate(self.index["views"]):
            for task, points in record["keypoints"].items():
                t = TASKS.index(task)
                self.keypoints[view_id, t] = np.asarray(points, dtype=np.float32)
                self.visible[view_id, t] = np.asarray(record["visible"][task], dtype=bool)
        self.annotations = list(annotations) if annotations is not None else []
        self.image_of_annotation = np.asarray(self.index["image_of_annotation"], dtype=np.int64)

    @property
    def feature_shape(self) -> tuple[int, int, int]:
        return tuple(self.features.shape[1:])  # type: ignore[return-value]

    def view_id(self, image: int | np.ndarray, view: int | np.ndarray) -> np.ndarray:
        return np.asarray(image) * self.views_per_image + np.asarray(view)

    def load_features(self, view_ids: np.ndarray) -> torch.Tensor:
        """float32 tensor [len(view_ids), C, h, w] for the given views (sorted reads are faster)."""
        return torch.from_numpy(np.asarray(self.features[np.asarray(view_ids)], dtype=np.float32))


def _image_labels(dataset: FunKPointDataset) -> tuple[list[list[int]], np.ndarray]:
    rows: list[list[int]] = [[] for _ in dataset.image_paths]
    image_of_annotation = np.empty(len(dataset.annotations), dtype=np.int64)
    for i, annotation in enumerate(dataset.annotations):
        image = dataset.image_index(annotation.image_path)
        rows[image].append(i)
        image_of_annotation[i] = image
    return rows, image_of_annotation


def _clear(folder: Path) -> None:
    for name in (FEATURES_FILE, INDEX_FILE, PARTIAL_FILE, PROGRESS_FILE, RECORDS_FILE):
        path = folder / name
        if path.exists():
            path.unlink()


def cache_is_current(folder: str | Path, key: CacheKey) -> bool:
    folder = Path(folder)
    try:
        index = json.loads((folder / INDEX_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return index.get("key") == key.to_json() and (folder / FEATURES_FILE).is_file()


def build_cache(
    folder: str | Path,
    dataset: FunKPointDataset,
    trunk: torch.nn.Module,
    key: CacheKey,
    augment: AugmentConfig,
    batch_size: int = 32,
    num_threads: int = 2,
    progress: bool = True,
) -> FeatureCache:
    """Open the cache in ``folder`` if its key equals ``key``; otherwise (re)build it, resuming a killed build.

    ``dataset`` must hold exactly the rows ``key`` describes (same CSV, ``key.roles``);
    ``trunk`` must be the trunk ``key.trunk`` names, already on its device.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if cache_is_current(folder, key):
        return FeatureCache(folder, dataset.annotations, reused=True)

    key_json = key.to_json()
    rows, image_of_annotation = _image_labels(dataset)
    num_images = len(dataset.image_paths)
    if num_images == 0:
        raise ValueError(f"{dataset.csv_path}: no images with role in {list(key.roles)} to cache")
    views = key.views
    size = key.image_size
    device = next(iter(trunk.buffers()), torch.empty(0)).device
    with torch.inference_mode():
        probe = trunk(preprocess(np.zeros((size, size, 3), dtype=np.uint8)).to(device))
    shape = (num_images * views, *probe.shape[1:])

    progress_path = folder / PROGRESS_FILE
    done, records = 0, []
    if progress_path.is_file() and (folder / PARTIAL_FILE).is_file() and (folder / RECORDS_FILE).is_file():
        try:
            state = json.loads(progress_path.read_text())
        except json.JSONDecodeError:
            state = {}
        if state.get("key") == key_json and tuple(state.get("shape", ())) == shape:
            done = int(state["done_images"])
            # Records of a batch killed after its append but before progress.json are dropped.
            with open(folder / RECORDS_FILE) as handle:
                records = [r for r in map(json.loads, handle) if r["image"] < done]
    if done == 0:
        _clear(folder)
        features = np.lib.format.open_memmap(folder / PARTIAL_FILE, mode="w+", dtype=np.float16, shape=shape)
    else:
        features = np.load(folder / PARTIAL_FILE, mmap_mode="r+")

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    images_per_batch = max(1, batch_size // views)
    try:
        bar = tqdm(total=num_images, initial=done, desc="feature cache", unit="img", disable=not progress)
        for start in range(done, num_images, images_per_batch):
            stop = min(num_images, start + images_per_batch)
            batch_images, batch_records = [], []
            for image_index in range(start, stop):
                image = dataset.load_image(image_index)
                annotations = [dataset.annotations[i] for i in rows[image_index]]
                keypoints = {a.task: a.keypoints for a in annotations}
                visible = {a.task: a.visible for a in annotations}
                for v in range(views):
                    view = augment_view(image, keypoints, visible, size, key.augment_seed, image_index, v, augment)
                    batch_images.append(view.image)
                    batch_records.append(
                        {
                            "image": image_index,
                            "view": v,
                            "rows": [a.line for a in annotations],
                            "flipped": view.flipped,
                            "keypoints": {t: view.keypoints[t].tolist() for t in sorted(view.keypoints)},
                            "visible": {t: view.visible[t].astype(int).tolist() for t in sorted(view.visible)},
                        }
                    )
            with torch.inference_mode():
                out = trunk(preprocess(batch_images).to(device))
            features[start * views : stop * views] = out.to(torch.float16).cpu().numpy()
            features.flush()
            records.extend(batch_records)
            with open(folder / RECORDS_FILE, "a") as handle:
                handle.writelines(json.dumps(r) + "\n" for r in batch_records)
                handle.flush()
                os.fsync(handle.fileno())
            write_json_atomic(progress_path, {"key": key_json, "shape": list(shape), "done_images": stop})
            bar.update(stop - start)
        bar.close()
    finally:
        torch.set_num_threads(previous_threads)
    del features
    os.replace(folder / PARTIAL_FILE, folder / FEATURES_FILE)
    index = {
        "key": key_json,
        "feature_shape": list(shape[1:]),
        "images": [
            {"path": dataset.annotations[r[0]].relative_path, "rows": [dataset.annotations[i].line for i in r]}
            for r in rows
        ],
        "image_of_annotation": image_of_annotation.tolist(),
        "views": records,
    }
    write_json_atomic(folder / INDEX_FILE, index)
    progress_path.unlink(missing_ok=True)
    (folder / RECORDS_FILE).unlink(missing_ok=True)
    return FeatureCache(folder, dataset.annotations, reused=False)


def default_cache_folder(root: str | Path, key: CacheKey) -> Path:
    """``root/<trunk>-<size>px-<V>v-<digest>``: one folder per key, so caches of different runs coexist."""
    return Path(root) / f"{key.trunk}-{key.image_size}px-{key.views}v-{key.digest()[:12]}"
