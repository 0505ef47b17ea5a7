"""The trunk fine-tuned to classify the 20 training categories (the paper's "ImageNet FT FunKPoint" row).

``python scripts/classify.py --data datasets/synth/annotations.csv --out runs/classify-lite0``

Table 3 of the paper asks whether functional supervision generalises better than
plain category supervision on the same images. This job gives the category
baseline: the ImageNet trunk (the same stride-16 body the encoder uses) plus a
linear layer on its spatially averaged features, trained with cross-entropy on
the train-role images of the CSV, one label per image (its object category).
The few-shot benchmark then uses the fine-tuned body's pooled features exactly
as it uses the untouched trunk's.

What is tuned is the last ``tuned_stages`` modules of the body (default 1: the
112-channel stride-16 stage, 64 % of the lite0 body's weights). The frozen part
below runs once per image and its output (plain and mirrored) is kept in
memory, so an epoch costs a small fraction of a full fine-tune: on a shared
2-core CPU a full fine-tune managed 2 epochs in 15 minutes and reached 18.8 %
category accuracy, too little to stand for "fine-tuned on the categories".
By default it trains on a seeded sample of 30 images per category (600 of the
2,280 training images), since computing the frozen maps of all of them took
longer than the session's CPU share allowed; ``--max-images-per-class 0`` uses all.

BatchNorm layers keep their ImageNet statistics (the :class:`Trunk` never
enters training mode): batches of 32 are too small to re-estimate them, and the
few-shot features must stay comparable with the frozen trunk's. The sample
order and flips are drawn from ``(seed, epoch)`` and ``(seed, step)``, so
``--resume`` after a kill continues with the same batches as an unbroken run.
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import io
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch  # before anything that could create a GL context (docs/DESIGN.md, "Import torch first")
import torch.nn.functional as F
from tqdm import tqdm

from funk_perception.atomic import save_figure_atomic, torch_save_atomic, write_text_atomic
from funk_perception.cli import command
from funk_perception.data.annotations import FunKPointDataset
from funk_perception.model import Trunk, build_trunk, preprocess, resolve_device
from funk_perception.tasks import CATEGORIES

CHECKPOINT_FORMAT = "funk-category-classifier"
CHECKPOINT_VERSION = 1


@dataclass
class ClassifyConfig:
    """Fine-tuning recipe; the defaults take a few minutes on one CPU thread for the default dataset."""

    data: Path = Path("datasets/synth/annotations.csv")
    out: Path = Path("runs/classify-lite0")
    trunk: str = "lite0"
    image_size: int = 224
    epochs: int = 10
    batch_size: int = 32
    #: Modules at the end of the trunk body that are tuned; the rest stays ImageNet's.
    tuned_stages: int = 1
    #: Train on a seeded sample of this many images per category (None: all). The frozen maps of
    #: every training image are computed first, which dominates the cost on a shared CPU.
    max_images_per_class: int | None = 30
    #: AdamW learning rates: the pretrained body moves slowly, the new head fast.
    lr: float = 5e-4
    head_lr: float = 5e-3
    weight_decay: float = 1e-4
    seed: int = 0
    device: str = "auto"
    num_threads: int = 1
    #: Stop after this many steps (None: ``epochs`` full epochs); for tests and smoke runs.
    max_steps: int | None = None
    save_every: int = 50
    progress: bool = True

    def __post_init__(self) -> None:
        self.data, self.out = Path(self.data), Path(self.out)
        for name in ("image_size", "epochs", "batch_size", "save_every", "num_threads", "tuned_stages"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"ClassifyConfig.{name}: expected >= 1, found {getattr(self, name)}")
        if self.max_images_per_class is not None and self.max_images_per_class < 1:
            raise ValueError(
                f"ClassifyConfig.max_images_per_class: expected >= 1 or None, found {self.max_images_per_class}"
            )
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"ClassifyConfig.max_steps: expected >= 1 or None, found {self.max_steps}")


class CategoryClassifier(torch.nn.Module):
    """Trunk body (frozen part, tuned part) -> global average pool -> linear layer over :data:`CATEGORIES`."""

    def __init__(self, trunk: Trunk, tuned_stages: int = 1, num_classes: int = len(CATEGORIES)) -> None:
        super().__init__()
        if not isinstance(trunk.body, torch.nn.Sequential):
            raise ValueError(
                f"trunk {trunk.name!r}: fine-tuning needs a single-stage trunk body (lite0, lite2), "
                f"found {type(trunk.body).__name__}"
            )
        if not 1 <= tuned_stages <= len(trunk.body):
            raise ValueError(
                f"tuned_stages: expected 1..{len(trunk.body)} (modules of the {trunk.name} body), found {tuned_stages}"
            )
        self.trunk = trunk
        self.frozen = trunk.body[:-tuned_stages]
        self.tuned = trunk.body[-tuned_stages:]
        self.tuned.requires_grad_(True)
        self.head = torch.nn.Linear(trunk.out_channels, num_classes)
        # Pooled ImageNet features are large; a random head starts far above ln(classes) and
        # its first gradients wreck the pretrained body. A zero head starts at uniform logits.
        torch.nn.init.zeros_(self.head.weight)
        torch.nn.init.zeros_(self.head.bias)

    def frozen_maps(self, images: torch.Tensor) -> torch.Tensor:
        """ImageNet-normalised images -> the input of the tuned stages (Trunk.forward's input mapping)."""
        with torch.no_grad():
            x = images.to(self.trunk.in_scale.dtype) * self.trunk.in_scale + self.trunk.in_shift
            return self.frozen(x.contiguous(memory_format=torch.channels_last))

    def classify_maps(self, maps: torch.Tensor) -> torch.Tensor:
        """Frozen-part maps -> class logits, with gradients through the tuned stages."""
        return self.head(self.tuned(maps.float().contiguous(memory_format=torch.channels_last)).mean(dim=(2, 3)))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classify_maps(self.frozen_maps(images))


def category_images(data: Path, roles: Sequence[str]) -> tuple[FunKPointDataset, list[Path], np.ndarray]:
    """The distinct images of the given roles with their category index in :data:`CATEGORIES`."""
    dataset = FunKPointDataset(data, roles=list(roles), check_images=True)
    labels: dict[Path, str] = {}
    for a in dataset.annotations:
        if a.category not in CATEGORIES:
            raise ValueError(
                f"{data}, line {a.line}: expected a training category ({', '.join(CATEGORIES)}), found {a.category!r}"
            )
        labels.setdefault(a.image_path, a.category)
    if not labels:
        raise ValueError(f"{data}: no rows with role in {list(roles)}")
    paths = list(labels)
    return dataset, paths, np.array([CATEGORIES.index(labels[p]) for p in paths], dtype=np.int64)


def sample_per_class(labels: np.ndarray, per_class: int | None, seed: int) -> np.ndarray:
    """Sorted indices of at most ``per_class`` images of every class, drawn from ``seed``."""
    if per_class is None:
        return np.arange(len(labels))
    rng = np.random.default_rng([seed, per_class])
    chosen = [rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in np.unique(labels)]
    return np.sort(np.concatenate(chosen))


def _batches(count: int, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    order = np.random.default_rng([seed, epoch]).permutation(count)
    return [order[i : i + batch_size] for i in range(0, count, batch_size)]


def _load_batch(dataset: FunKPointDataset, paths: Sequence[Path], size: int) -> torch.Tensor:
    return preprocess([dataset.load_image(p) for p in paths], size=size)


def frozen_cache(
    model: CategoryClassifier,
    dataset: FunKPointDataset,
    paths: Sequence[Path],
    config: ClassifyConfig,
    device: torch.device,
) -> torch.Tensor:
    """(N, 2, C, h, w) float16 frozen-part maps of every image, plain and mirrored, on ``device``."""
    maps = []
    starts = range(0, len(paths), config.batch_size)
    for start in tqdm(starts, desc="frozen maps", disable=not config.progress, leave=False):
        images = _load_batch(dataset, paths[start : start + config.batch_size], config.image_size).to(device)
        plain, mirrored = model.frozen_maps(images), model.frozen_maps(images.flip(-1))
        maps.append(torch.stack([plain, mirrored], dim=1).half())
    return torch.cat(maps)


def accuracy(
    model: CategoryClassifier,
    dataset: FunKPointDataset,
    paths: Sequence[Path],
    labels: np.ndarray,
    config: ClassifyConfig,
    device: torch.device,
) -> float:
    """Top-1 accuracy (%) of ``model`` on the given images."""
    correct = 0
    with torch.inference_mode():
        for start in range(0, len(paths), config.batch_size):
            images = _load_batch(dataset, paths[start : start + config.batch_size], config.image_size)
            predicted = model(images.to(device)).argmax(dim=1).cpu().numpy()
            correct += int((predicted == labels[start : start + len(predicted)]).sum())
    return 100.0 * correct / len(paths)


def _save(
    model: CategoryClassifier,
    optimizer: torch.optim.Optimizer,
    config: ClassifyConfig,
    step: int,
    total_steps: int,
    extra: dict,
) -> None:
    torch_save_atomic(
        {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "trunk": config.trunk,
            "classes": list(CATEGORIES),
            "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()},
            "step": step,
            "total_steps": total_steps,
            "body_state_dict": {k: v.detach().cpu() for k, v in model.trunk.body.state_dict().items()},
            "head_state_dict": {k: v.detach().cpu() for k, v in model.head.state_dict().items()},
            "optimizer": optimizer.state_dict(),
            "extra": extra,
        },
        config.out / "checkpoint.pt",
    )


def read_classifier_checkpoint(path: str | Path) -> dict:
    """A checkpoint written by :func:`train_classifier`, checked (raises ValueError naming the file)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: fine-tuned trunk checkpoint not found (python scripts/classify.py writes it)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for damaged files
        raise ValueError(f"{path}: not a readable torch file ({type(exc).__name__}: {exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise ValueError(f"{path}: expected a checkpoint with format={CHECKPOINT_FORMAT!r}, found {found!r}")
    if payload.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"{path}: expected version {CHECKPOINT_VERSION}, found {payload.get('version')!r}")
    return payload


def load_finetuned_trunk(path: str | Path, device: str | torch.device = "cpu") -> Trunk:
    """The fine-tuned body as a frozen :class:`Trunk` (same interface as :func:`build_trunk`'s)."""
    payload = read_classifier_checkpoint(path)
    trunk = build_trunk(payload["trunk"], pretrained=False)
    try:
        trunk.body.load_state_dict(payload["body_state_dict"], strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{path}: body_state_dict does not fit trunk {payload['trunk']!r}: {exc}") from exc
    trunk.requires_grad_(False)
    return trunk.to(resolve_device(device))


def _plot(metrics: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([m["step"] for m in metrics], [m["loss"] for m in metrics], lw=1)
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (training batch)")
    ax.set_title("Trunk fine-tuned on the training categories")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure_atomic(fig, path)


def _read_metrics(path: Path, up_to: int) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        return [
            {"step": int(r["step"]), "loss": float(r["loss"]), "batch_accuracy": float(r["batch_accuracy"])}
            for r in csv.DictReader(handle)
            if int(r["step"]) <= up_to
        ]


def _write_metrics(path: Path, metrics: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["step", "loss", "batch_accuracy"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(metrics)
    write_text_atomic(path, buffer.getvalue())


def train_classifier(config: ClassifyConfig, resume: bool = False) -> dict:
    """Fine-tune, write ``checkpoint.pt``, ``metrics.csv``, ``loss.png`` and ``summary.json`` into ``config.out``."""
    torch.set_num_threads(config.num_threads)
    config.out.mkdir(parents=True, exist_ok=True)
    log = logging.getLogger("classify")
    handler = logging.FileHandler(config.out / "classify.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        return _train(config, resume, log)
    finally:
        log.removeHandler(handler)
        handler.close()


def _train(config: ClassifyConfig, resume: bool, log: logging.Logger) -> dict:
    device = resolve_device(config.device)
    dataset, paths, labels = category_images(config.data, ["train", "reference"])
    keep = sample_per_class(labels, config.max_images_per_class, config.seed)
    paths, labels = [paths[i] for i in keep], labels[keep]
    steps_per_epoch = math.ceil(len(paths) / config.batch_size)
    total = config.epochs * steps_per_epoch if config.max_steps is None else config.max_steps
    torch.manual_seed(config.seed)
    model = CategoryClassifier(build_trunk(config.trunk), config.tuned_stages).to(device)
    optimizer = torch.optim.AdamW(
        [
            {"params": model.tuned.parameters(), "lr": config.lr, "base_lr": config.lr},
            {"params": model.head.parameters(), "lr": config.head_lr, "base_lr": config.head_lr},
        ],
        weight_decay=config.weight_decay,
    )
    step = 0
    checkpoint = config.out / "checkpoint.pt"
    if resume and checkpoint.exists():
        payload = read_classifier_checkpoint(checkpoint)
        model.trunk.body.load_state_dict(payload["body_state_dict"])
        model.head.load_state_dict(payload["head_state_dict"])
        optimizer.load_state_dict(payload["optimizer"])
        step = int(payload["step"])
        log.info("resumed at step %d of %d", step, total)
    metrics = _read_metrics(config.out / "metrics.csv", step)
    start = _dt.datetime.now(_dt.UTC)
    log.info("training on %d images (%s), %d steps, device %s", len(paths), config.data, total, device)
    cache = frozen_cache(model, dataset, paths, config, device)
    bar = tqdm(total=total, initial=step, desc="classify", disable=not config.progress)
    while step < total:
        epoch, index = divmod(step, steps_per_epoch)
        batch = _batches(len(paths), config.batch_size, config.seed, epoch)[index]
        flips = np.random.default_rng([config.seed, step]).random(len(batch)) < 0.5
        maps = cache[torch.from_numpy(batch), torch.from_numpy(flips.astype(np.int64))]
        target = torch.from_numpy(labels[batch]).to(device)
        for group in optimizer.param_groups:  # cosine decay, a function of the step alone so resuming needs no state
            group["lr"] = group["base_lr"] * 0.5 * (1 + math.cos(math.pi * step / total))
        logits = model.classify_maps(maps)
        loss = F.cross_entropy(logits, target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        metrics.append(
            {
                "step": step,
                "loss": float(loss.detach()),
                "batch_accuracy": 100.0 * float((logits.argmax(1) == target).float().mean()),
            }
        )
        bar.update(1)
        bar.set_postfix(loss=f"{metrics[-1]['loss']:.3f}")
        if step % config.save_every == 0 or step == total:
            _save(model, optimizer, config, step, total, {})
            _write_metrics(config.out / "metrics.csv", metrics)
            log.info("step %d loss %.4f", step, metrics[-1]["loss"])
    bar.close()
    model.eval()
    test_dataset, test_paths, test_labels = category_images(config.data, ["test"])
    summary = {
        "command": "python scripts/classify.py",
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()},
        "device": str(device),
        "train_images": len(paths),
        "steps": total,
        "final_loss": metrics[-1]["loss"] if metrics else None,
        "test_images": len(test_paths),
        "test_accuracy": accuracy(model, test_dataset, test_paths, test_labels, config, device),
        "seconds_this_run": (_dt.datetime.now(_dt.UTC) - start).total_seconds(),
    }
    _save(model, optimizer, config, step, total, {"test_accuracy": summary["test_accuracy"]})
    _plot(metrics, config.out / "loss.png")
    write_text_atomic(config.out / "summary.json", json.dumps(summary, indent=2) + "\n")
    log.info("done: test accuracy %.1f %% on %d images", summary["test_accuracy"], len(test_paths))
    return summary


def build_parser() -> argparse.ArgumentParser:
    d = ClassifyConfig()
    p = argparse.ArgumentParser(prog="python scripts/classify.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=d.data, help="FunKPoint-style CSV (train-role rows are used)")
    p.add_argument("--out", type=Path, default=d.out)
    p.add_argument("--trunk", default=d.trunk, help="lite0 or lite2")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr, help="learning rate of the trunk body")
    p.add_argument("--head-lr", type=float, default=d.head_lr)
    p.add_argument(
        "--tuned-stages",
        type=int,
        default=d.tuned_stages,
        help="modules at the end of the trunk body that are fine-tuned",
    )
    p.add_argument(
        "--max-images-per-class",
        type=int,
        default=d.max_images_per_class,
        help="train on a seeded sample of this many images per category (0: all)",
    )
    p.add_argument("--max-steps", type=int, default=d.max_steps)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", default=d.device)
    p.add_argument("--num-threads", type=int, default=d.num_threads)
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--no-progress", action="store_true")
    return p


@command
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = ClassifyConfig(
        data=args.data,
        out=args.out,
        trunk=args.trunk,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        head_lr=args.head_lr,
        tuned_stages=args.tuned_stages,
        max_images_per_class=args.max_images_per_class or None,
        max_steps=args.max_steps,
        seed=args.seed,
        device=args.device,
        num_threads=args.num_threads,
        progress=not args.no_progress,
    )
    summary = train_classifier(config, resume=args.resume)
    print(f"test accuracy {summary['test_accuracy']:.1f} % on {summary['test_images']} images; wrote {config.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
