"""The trunk fine-tuned to classify the 20 training categories: the paper's "ImageNet fine-tuned" row.

``python -m funk_grasp.categories --data datasets/synth/annotations.csv --out runs/grasp/trunk_categories.pt``

The grasp benchmark's second row asks whether plain category supervision on
the same images helps as much as functional supervision. This job trains the
trunk's last stage (EfficientNet-Lite0 stage 5, the 112-channel blocks at
stride 16; everything below it stays ImageNet's, so the cached base maps of
:mod:`funk_grasp.features` serve this row too) plus a linear classifier on its
mean-pooled map, with cross-entropy on the train-role images of a
FunKPoint-style CSV, and reports top-1 accuracy on its test-role images. Only
the stage's weights go into the output file; the grasp rows read them with
``FeatureConfig(kind="trunk_categories", categories_checkpoint=...)``.

Images are resized to ``image_size`` (default 128, the grasp patch size) so
the stage is tuned at the scale it is used at. Each epoch is checkpointed
atomically; ``--resume`` continues a killed run with the same batches.
"""

from __future__ import annotations

import csv
import logging
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch  # before anything that could create a GL context (docs/DESIGN.md, "Import torch first")
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from funk_grasp.features import base_maps
from funk_grasp.model import DEFAULT_ENCODER, FeatureConfig, GraspFeatures, load_encoder, pool
from funk_perception.atomic import torch_save_atomic, write_text_atomic
from funk_perception.cli import command, parse_config
from funk_perception.model import resolve_device
from funk_perception.tasks import CATEGORIES, normalize_category

LOG = logging.getLogger("funk_grasp.categories")


@dataclass
class CategoriesConfig:
    data: Path = Path("datasets/synth/annotations.csv")
    out: Path = Path("runs/grasp/trunk_categories.pt")
    encoder: Path = DEFAULT_ENCODER  # only its (ImageNet) trunk is used
    image_size: int = 128
    epochs: int = 6
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    device: str = "auto"
    resume: bool = False


def read_category_images(csv_path: Path, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unique images of a FunKPoint-style CSV: (N, size, size, 3) uint8, (N,) category ids, (N,) is-train."""
    if not csv_path.is_file():
        raise FileNotFoundError(f"{csv_path}: CSV not found")
    seen: dict[str, tuple[int, bool]] = {}
    with open(csv_path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"object_category", "role", "dataset_image_path"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{csv_path}: missing columns {sorted(missing)}; found {reader.fieldnames}")
        for line, row in enumerate(reader, start=2):
            category = normalize_category(row["object_category"])
            if category not in CATEGORIES:
                raise ValueError(
                    f"{csv_path}:{line}: object_category {category!r} is not one of the 20 training categories"
                )
            seen.setdefault(row["dataset_image_path"], (CATEGORIES.index(category), row["role"].strip() == "train"))
    images, labels, train = [], [], []
    for rel, (label, is_train) in seen.items():
        path = csv_path.parent / rel
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise FileNotFoundError(f"{csv_path}: image {rel!r} not found or unreadable at {path}")
        images.append(cv2.resize(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), (size, size), interpolation=cv2.INTER_AREA))
        labels.append(label)
        train.append(is_train)
    return np.stack(images), np.array(labels), np.array(train)


class CategoryClassifier(nn.Module):
    def __init__(self, features: GraspFeatures) -> None:
        super().__init__()
        self.features = features
        self.linear = nn.Linear(features.dim_per_map, len(CATEGORIES))

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        return self.linear(pool(self.features.stage(maps.float()), "mean"))


def _accuracy(model: CategoryClassifier, maps: torch.Tensor, labels: torch.Tensor, device: torch.device) -> float:
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(maps[i : i + 128].to(device)).argmax(1).cpu() for i in range(0, len(maps), 128)])
    return float((pred == labels).float().mean())


def train_categories(config: CategoriesConfig, progress: bool = True) -> dict:
    """Fine-tune; write the stage weights and a metrics CSV; return the final metrics."""
    torch.manual_seed(config.seed)
    device = resolve_device(config.device)
    features = GraspFeatures(FeatureConfig(kind="trunk", encoder=str(config.encoder)), load_encoder(config.encoder)).to(
        device
    )
    images, labels, is_train = read_category_images(Path(config.data), config.image_size)
    maps = base_maps(features, images, progress=progress, desc="category images")
    labels_t = torch.from_numpy(labels)
    train_idx = np.flatnonzero(is_train)
    test_idx = np.flatnonzero(~is_train)
    if len(train_idx) == 0 or len(test_idx) == 0:
        raise ValueError(
            f"{config.data}: expected train-role and test-role images, found {len(train_idx)} and {len(test_idx)}"
        )
    model = CategoryClassifier(features).to(device)
    params = list(model.features.stage.parameters()) + list(model.linear.parameters())
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    out = Path(config.out)
    state_path = out.with_suffix(".state.pt")
    rows = ["epoch,train_loss,test_accuracy"]
    start_epoch = 0
    if config.resume and state_path.is_file():
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, rows = int(state["epoch"]), list(state["rows"])
    for epoch in range(start_epoch, config.epochs):
        model.train()
        order = torch.randperm(len(train_idx), generator=torch.Generator().manual_seed(config.seed * 1000 + epoch))
        total, count = 0.0, 0
        batches = range(0, len(order), config.batch_size)
        for start in tqdm(batches, desc=f"categories epoch {epoch + 1}", unit="batch", disable=not progress):
            idx = torch.from_numpy(train_idx[order[start : start + config.batch_size].numpy()])
            loss = F.cross_entropy(model(maps[idx].to(device)), labels_t[idx].to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
            count += len(idx)
        test_idx_t = torch.from_numpy(test_idx)
        accuracy = _accuracy(model, maps[test_idx_t], labels_t[test_idx_t], device)
        rows.append(f"{epoch + 1},{total / count:.5f},{accuracy:.4f}")
        LOG.info("epoch %d: loss %.4f, test accuracy %.3f", epoch + 1, total / count, accuracy)
        torch_save_atomic(
            {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch + 1, "rows": rows},
            state_path,
        )
    final = {
        "test_accuracy": float(rows[-1].split(",")[2]),
        "train_images": int(len(train_idx)),
        "test_images": int(len(test_idx)),
        "epochs": config.epochs,
    }
    config_dict = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()}
    torch_save_atomic(
        {
            "stage": {k: v.cpu() for k, v in model.features.stage.module.state_dict().items()},
            "metrics": final,
            "config": config_dict,
        },
        out,
    )
    write_text_atomic(out.with_suffix(".csv"), "\n".join(rows) + "\n")
    return final


@command
def main(argv: Sequence[str] | None = None) -> int:
    config = parse_config(CategoriesConfig, argv, "python -m funk_grasp.categories", __doc__.split("\n\n")[0])
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    metrics = train_categories(config)
    print(f"test accuracy {metrics['test_accuracy']:.3f} over {metrics['test_images']} images; wrote {config.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
