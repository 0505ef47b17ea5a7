"""The reference bank behind reference-free ``detect``: labelled keypoint embeddings of synthetic images.

``detect(method="bank")`` carries every bank reference's five keypoints into the
image and keeps, per keypoint, the place most references agree on
(:func:`funk_perception.matching.vote_maps`). The bank holds, per task, the
embeddings of ``per_task`` training images at their keypoints, drawn round-robin
over the task's categories (a seeded shuffle within each) so that every category
votes, with each image embedded exactly as ``detect`` embeds a photo (same input
size, same flip averaging).

``python -m funk_perception.train.bank --model CKPT --data CSV --out CKPT2``
adds a bank to an existing checkpoint; training adds one to every checkpoint it
finishes.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from funk_perception.cli import command
from funk_perception.data.annotations import Annotation, FunKPointDataset
from funk_perception.matching import flip_averaged, sample_features
from funk_perception.model.encoder import FunctionalEncoder, resolve_device
from funk_perception.model.export import resave_with_extra
from funk_perception.model.trunk import preprocess
from funk_perception.tasks import TASKS


@dataclass
class BankConfig:
    """How many references per task, which ones (seed), and how they are embedded."""

    per_task: int = 64
    seed: int = 0
    flip: bool = False  # embed as the detector does by default
    batch_size: int = 16
    progress: bool = True

    def __post_init__(self) -> None:
        if self.per_task < 1 or self.batch_size < 1:
            raise ValueError(
                f"BankConfig: expected per_task and batch_size >= 1, found {self.per_task}, {self.batch_size}"
            )


def choose_references(annotations: Sequence[Annotation], per_task: int, seed: int) -> dict[str, list[Annotation]]:
    """Per task, up to ``per_task`` rows with a visible keypoint, round-robin over categories."""
    rng = np.random.default_rng(seed)
    chosen: dict[str, list[Annotation]] = {}
    for task in TASKS:
        by_category: dict[str, list[Annotation]] = defaultdict(list)
        for a in annotations:
            if a.task == task and a.visible.any():
                by_category[a.category].append(a)
        if not by_category:
            continue
        queues = []
        for category in sorted(by_category):
            rows = by_category[category]
            queues.append([rows[i] for i in rng.permutation(len(rows))])
        picked: list[Annotation] = []
        depth = 0
        while len(picked) < per_task and any(depth < len(q) for q in queues):
            picked.extend(q[depth] for q in queues if depth < len(q))
            depth += 1
        chosen[task] = picked[:per_task]
    return chosen


def build_reference_bank(
    encoder: FunctionalEncoder, dataset: FunKPointDataset, config: BankConfig | None = None
) -> dict[str, dict[str, torch.Tensor]]:
    """``{task: {"embeddings": (M, 5, D) float16, "visible": (M, 5) bool}}`` from ``dataset``'s rows."""
    config = config or BankConfig()
    chosen = choose_references(dataset.annotations, config.per_task, config.seed)
    if not chosen:
        raise ValueError(f"{dataset.csv_path}: no rows with a visible keypoint to build a reference bank from")
    needs: dict[Path, list[str]] = defaultdict(list)
    for task, rows in chosen.items():
        for a in rows:
            if task not in needs[a.image_path]:
                needs[a.image_path].append(task)
    device = encoder.log_logit_scale.device
    size = int(encoder.config.image_size)
    was_training = encoder.training
    encoder.eval()
    samples: dict[tuple[Path, str], torch.Tensor] = {}
    paths = list(needs)
    try:
        starts = range(0, len(paths), config.batch_size)
        for start in tqdm(starts, desc="reference bank", disable=not config.progress, leave=False):
            chunk = paths[start : start + config.batch_size]
            tasks = [t for t in TASKS if any(t in needs[p] for p in chunk)]
            images = preprocess([dataset.load_image(p) for p in chunk], size=size).to(device)
            with torch.inference_mode():
                if config.flip:
                    feats = flip_averaged(lambda x: encoder(x, tasks), images)
                else:
                    feats = encoder(images, tasks).float()
            for b, path in enumerate(chunk):
                for t_index, task in enumerate(tasks):
                    if task in needs[path]:
                        samples[(path, task)] = feats[b, t_index].cpu()
    finally:
        encoder.train(was_training)
    bank: dict[str, dict[str, torch.Tensor]] = {}
    for task, rows in chosen.items():
        feats = torch.stack([samples[(a.image_path, task)] for a in rows])
        points = torch.from_numpy(np.stack([a.keypoints for a in rows])).float()
        bank[task] = {
            "embeddings": sample_features(feats, points).to(torch.float16),
            "visible": torch.from_numpy(np.stack([a.visible for a in rows])).bool(),
        }
    return bank


def add_bank(
    model: str | Path, data: str | Path, out: str | Path, config: BankConfig | None = None, device: str = "auto"
) -> Path:
    """Write ``model`` to ``out`` with a reference bank from ``data``'s train-role rows (other extras kept)."""
    encoder = FunctionalEncoder.load(model, resolve_device(device))
    dataset = FunKPointDataset(data, roles=["train"])
    if not dataset.annotations:
        raise ValueError(f"{data}: no train-role rows to build a reference bank from")
    config = config or BankConfig()
    extra = dict(encoder.loaded_extra)
    extra["bank"] = build_reference_bank(encoder, dataset, config)
    extra["bank_source"] = {
        "csv": str(Path(data).resolve()),
        "per_task": config.per_task,
        "seed": config.seed,
        "flip": config.flip,
    }
    resave_with_extra(encoder, out, extra)
    return Path(out)


@command
def main(argv: Sequence[str] | None = None) -> int:
    d = BankConfig()
    parser = argparse.ArgumentParser(prog="python -m funk_perception.train.bank", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="checkpoint to add the bank to")
    parser.add_argument("--data", type=Path, required=True, help="FunKPoint-style CSV; its train-role rows are used")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint to write (may be --model itself)")
    parser.add_argument("--per-task", type=int, default=d.per_task)
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--flip", action="store_true", help="embed references with flip averaging")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    config = BankConfig(per_task=args.per_task, seed=args.seed, flip=args.flip)
    out = add_bank(args.model, args.data, args.out, config, args.device)
    print(f"{args.model} + bank of {args.per_task} references per task from {args.data} -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
