"""Train a grasp-success model (``python -m funk_grasp.train``).

Two modes, as in the paper's Table 4 protocol (docs/DESIGN.md, "Grasp success"):

- ``head``: the feature extractor is frozen; its pooled features are computed
  once and only the 2-layer MLP head learns (Adam, ``lr_head``).
- ``joint``: the feature extractor's top (the trunk's last stage, plus the
  funk modular network for ``--features funk``) and the head are fine-tuned
  together with Adam at lr 2e-4, the paper's rate. The trunk below its last
  stage stays frozen (its maps are cached; on 2 CPU cores back-propagating
  through the whole trunk is out of reach), so this is partial fine-tuning.

Data: a folder with ``Train/`` and ``Validation/`` in the Pinto-Gupta layout
(the simulated dataset of :mod:`funk_grasp.generate`, or the real data).
Every epoch writes ``metrics.csv`` (train loss, validation accuracy and ROC
AUC) and an atomic checkpoint (``last.pt``, with optimizer and RNG state, so
``--resume`` continues a killed run with the same batches); the epoch with
the best validation AUC is kept as ``best.pt`` (a :class:`GraspModel`
checkpoint that ``predict`` and ``benchmark`` load).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch  # before anything that could create a GL context (docs/DESIGN.md, "Import torch first")
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from tqdm import tqdm

from funk_grasp.data import ANGLE_BINS, PatchSet, load_patches, read_split
from funk_grasp.features import base_maps, top_features
from funk_grasp.model import DEFAULT_ENCODER, FEATURE_KINDS, POOLINGS, FeatureConfig, GraspModel, load_encoder
from funk_perception.atomic import torch_save_atomic, write_text_atomic
from funk_perception.cli import command
from funk_perception.model import resolve_device
from funk_perception.tasks import TASKS

LOG = logging.getLogger("funk_grasp.train")
MODES: tuple[str, ...] = ("head", "joint")


@dataclass
class TrainConfig:
    """Training recipe; the defaults run in minutes on one CPU thread for the default simulated dataset."""

    data: Path = Path("datasets/grasp")
    out: Path = Path("runs/grasp/funk-head")
    features: FeatureConfig = field(default_factory=FeatureConfig)
    mode: str = "head"
    epochs: int = 40
    batch_size: int = 64
    lr_head: float = 1e-3
    lr_joint: float = 2e-4  # the paper's fine-tuning rate
    weight_decay: float = 1e-4
    hidden: int = 256
    dropout: float = 0.2
    seed: int = 0
    device: str = "auto"
    resume: bool = False
    checkpoint_every: int = 10  # epochs between last.pt checkpoints (and at the end)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"TrainConfig.mode: expected one of {', '.join(MODES)}, found {self.mode!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(
                f"TrainConfig: expected epochs >= 1 and batch_size >= 1, found {self.epochs}, {self.batch_size}"
            )


@dataclass
class Split:
    """One split ready for training: base maps (cached), angle bins, labels."""

    maps: torch.Tensor  # (N, C, h, w) float16
    bins: torch.Tensor  # (N,) long
    labels: torch.Tensor  # (N,) float32
    patches: PatchSet


def load_split(folder: Path, model: GraspModel, progress: bool = True) -> Split:
    patches = load_patches(read_split(folder))
    maps = base_maps(model.features, patches.images, progress=progress, desc=f"base maps {folder.name}")
    return Split(maps, torch.from_numpy(patches.bins), torch.from_numpy(patches.labels), patches)


def metrics(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """Accuracy at 0.5 and ROC AUC (NaN when only one class is present)."""
    labels = np.asarray(labels) > 0.5
    accuracy = float(np.mean((np.asarray(probabilities) >= 0.5) == labels))
    auc = float(roc_auc_score(labels, probabilities)) if 0 < labels.sum() < len(labels) else float("nan")
    return {"accuracy": accuracy, "auc": auc, "count": int(len(labels)), "positive_rate": float(labels.mean())}


def _one_hot(bins: torch.Tensor) -> torch.Tensor:
    return F.one_hot(bins.long(), ANGLE_BINS).float()


def predict_split(
    model: GraspModel, split: Split, features: torch.Tensor | None = None, batch_size: int = 128
) -> np.ndarray:
    """Success probabilities for every patch of ``split`` (``features``: precomputed pooled features)."""
    model.eval()
    device = model.features.in_scale.device
    out = []
    with torch.no_grad():
        for start in range(0, len(split.labels), batch_size):
            sl = slice(start, start + batch_size)
            feats = features[sl].to(device) if features is not None else model.features.top(split.maps[sl].to(device))
            out.append(torch.sigmoid(model.head(feats, _one_hot(split.bins[sl]).to(device))).cpu())
    return torch.cat(out).numpy()


def fit(
    model: GraspModel,
    train: Split,
    val: Split,
    config: TrainConfig,
    progress: bool = True,
    train_feats: torch.Tensor | None = None,
    val_feats: torch.Tensor | None = None,
) -> list[dict]:
    """Train ``model`` in place and leave it at its best validation epoch; returns per-epoch metrics.

    Writes last.pt (every ``checkpoint_every`` epochs), metrics.csv and best.pt under config.out.

    In head mode, ``train_feats``/``val_feats`` may carry the pooled features already
    computed for this model's feature config (the benchmark shares them across seeds).
    """
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    device = model.features.in_scale.device
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    joint = config.mode == "joint"
    if joint:
        params = [p for p in model.parameters() if p.requires_grad]
        lr = config.lr_joint
        train_feats = val_feats = None
    else:
        params = list(model.head.parameters())
        lr = config.lr_head
        train_feats = top_features(model.features, train.maps) if train_feats is None else train_feats
        val_feats = top_features(model.features, val.maps) if val_feats is None else val_feats
    optimizer = torch.optim.Adam(params, lr=lr, weight_decay=config.weight_decay)
    history: list[dict] = []
    start_epoch, best_auc, best_epoch = 0, -1.0, 0
    best = model.trained_state(joint)
    last = out / "last.pt"
    if config.resume and last.is_file():
        state = torch.load(last, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"], strict=False)
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        start_epoch, best_auc, history = int(state["epoch"]), float(state["best_auc"]), list(state["history"])
        best, best_epoch = state["best"], int(state["best_epoch"])
        LOG.info("resumed %s at epoch %d", last, start_epoch)
    for epoch in range(start_epoch, config.epochs):
        model.train()
        if not joint:
            model.features.eval()
        order = torch.randperm(
            len(train.labels), generator=torch.Generator().manual_seed(config.seed * 100_003 + epoch)
        )
        total = 0.0
        batches = range(0, len(order), config.batch_size)
        for start in tqdm(
            batches, desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch", disable=not progress, leave=False
        ):
            idx = order[start : start + config.batch_size]
            feats = model.features.top(train.maps[idx].to(device)) if joint else train_feats[idx].to(device)
            logits = model.head(feats, _one_hot(train.bins[idx]).to(device))
            loss = F.binary_cross_entropy_with_logits(logits, train.labels[idx].to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        probs = predict_split(model, val, val_feats)
        row = {
            "epoch": epoch + 1,
            "train_loss": total / len(order),
            **{f"val_{k}": v for k, v in metrics(val.labels.numpy(), probs).items()},
        }
        history.append(row)
        LOG.info(
            "epoch %d: loss %.4f, val accuracy %.3f, val AUC %.3f",
            epoch + 1,
            row["train_loss"],
            row["val_accuracy"],
            row["val_auc"],
        )
        if row["val_auc"] > best_auc:
            best_auc, best_epoch = row["val_auc"], epoch + 1
            best = {k: v.clone() for k, v in model.trained_state(joint).items()}
        if (epoch + 1) % config.checkpoint_every == 0 or epoch + 1 == config.epochs:
            torch_save_atomic(
                {
                    "model": model.trained_state(joint),
                    "optimizer": optimizer.state_dict(),
                    "epoch": epoch + 1,
                    "best": best,
                    "best_epoch": best_epoch,
                    "best_auc": best_auc,
                    "history": history,
                    "torch_rng": torch.get_rng_state(),
                },
                last,
            )
            columns = list(history[0])
            write_text_atomic(
                out / "metrics.csv",
                "\n".join(
                    [",".join(columns)]
                    + [
                        ",".join(f"{r[c]:.5f}" if isinstance(r[c], float) else str(r[c]) for c in columns)
                        for r in history
                    ]
                )
                + "\n",
            )
    model.load_state_dict(best, strict=False)
    model.save(out / "best.pt", extra={"epoch": best_epoch, "val_auc": best_auc, "mode": config.mode}, tuned_top=joint)
    return history


def train(config: TrainConfig, progress: bool = True) -> tuple[GraspModel, list[dict]]:
    """Build the model, load Train/Validation, fit; returns the best-epoch model and the history."""
    torch.manual_seed(config.seed)
    device = resolve_device(config.device)
    model = GraspModel(config.features, load_encoder(config.features.encoder), config.hidden, config.dropout).to(device)
    data = Path(config.data)
    train_split = load_split(data / "Train", model, progress)
    val_split = load_split(data / "Validation", model, progress)
    history = fit(model, train_split, val_split, config, progress)
    return model.eval(), history


def build_parser() -> argparse.ArgumentParser:
    d = TrainConfig()
    p = argparse.ArgumentParser(prog="python -m funk_grasp.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=d.data, help="folder with Train/ and Validation/ (Pinto-Gupta layout)")
    p.add_argument("--out", type=Path, default=d.out)
    p.add_argument("--features", choices=FEATURE_KINDS, default=d.features.kind)
    p.add_argument("--tasks", nargs="+", default=list(TASKS), help="funk task embeddings used (default: all 10)")
    p.add_argument("--pooling", choices=POOLINGS, default=d.features.pooling)
    p.add_argument("--encoder", type=Path, default=DEFAULT_ENCODER)
    p.add_argument("--categories-checkpoint", type=Path, default=None, help="for --features trunk_categories")
    p.add_argument("--mode", choices=MODES, default=d.mode)
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr-head", type=float, default=d.lr_head)
    p.add_argument("--lr-joint", type=float, default=d.lr_joint)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", default=d.device)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    return p


@command
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    features = FeatureConfig(
        kind=args.features,
        tasks=tuple(args.tasks),
        pooling=args.pooling,
        encoder=str(args.encoder),
        categories_checkpoint=str(args.categories_checkpoint or ""),
    )
    config = TrainConfig(
        data=args.data,
        out=args.out,
        features=features,
        mode=args.mode,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr_head=args.lr_head,
        lr_joint=args.lr_joint,
        seed=args.seed,
        device=args.device,
        resume=args.resume,
    )
    _, history = train(config, progress=not args.no_progress)
    best = max(history, key=lambda r: r["val_auc"])
    print(
        f"best epoch {best['epoch']}: validation accuracy {best['val_accuracy']:.3f}, AUC {best['val_auc']:.3f}; "
        f"wrote {args.out / 'best.pt'} and {args.out / 'metrics.csv'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
