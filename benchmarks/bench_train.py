"""Training throughput (pairs/s) of the encoder head on cached trunk features, on this machine.

Builds a throwaway FunKPoint-style dataset of random images (content does not
change the cost), caches lite0 features at 224 x 224 as training does, then
times Trainer.step for each encoder config. Writes benchmarks/results/train.json
and train.md with machine, date and command.

    PYTHONPATH=. python benchmarks/bench_train.py [--configs paper uniform shared] [--steps 5] [--batch-pairs 64]
"""

from __future__ import annotations

import torch  # noqa: F401  isort: skip  (before any GL context, see docs/DESIGN.md, "Import torch first")

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from funk_perception.data.annotations import Annotation, FunKPointDataset, write_annotations
from funk_perception.model.encoder import FunctionalEncoder, resolve_device
from funk_perception.model.trunk import build_trunk
from funk_perception.tasks import TASK_CATEGORIES, TASKS
from funk_perception.train import TrainConfig, Trainer
from funk_perception.train.loop import prepare_cache, set_seed

RESULTS = Path(__file__).resolve().parent / "results"


def make_dataset(folder: Path, images: int, seed: int = 0) -> Path:
    """``images`` random 224 x 224 images spread over the categories of every task, one row per (image, task)."""
    rng = np.random.default_rng(seed)
    categories = sorted({c for t in TASKS for c in TASK_CATEGORIES[t]})
    rows = []
    for i in range(images):
        category = categories[i % len(categories)]
        path = folder / f"img_{i:04d}.png"
        cv2.imwrite(str(path), rng.integers(0, 255, size=(224, 224, 3), dtype=np.uint8))
        for task in TASKS:
            if category in TASK_CATEGORIES[task]:
                rows.append(
                    Annotation(
                        path,
                        path.name,
                        task,
                        category,
                        "train",
                        rng.uniform(0.1, 0.9, (5, 2)),
                        instance_id=f"{category}_{i}",
                    )
                )
    csv_path = folder / "annotations.csv"
    write_annotations(csv_path, rows)
    return csv_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", default=["paper", "uniform", "shared"])
    parser.add_argument("--steps", type=int, default=5, help="timed steps per config (after 1 warm-up step)")
    parser.add_argument("--batch-pairs", type=int, default=TrainConfig.batch_pairs)
    parser.add_argument("--images", type=int, default=120)
    parser.add_argument("--views", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    torch.set_num_threads(args.threads)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = make_dataset(Path(tmp), args.images)
        dataset = FunKPointDataset(csv_path, roles=["train"])
        trunk = build_trunk("lite0").to(device)
        for name in args.configs:
            config = TrainConfig(
                encoder=name,
                data=str(csv_path),
                views=args.views,
                batch_pairs=args.batch_pairs,
                device=str(device),
                cache_root=str(Path(tmp) / "cache"),
                progress=False,
                num_threads=args.threads,
            )
            cache = prepare_cache(config, config.encoder_config(), trunk, dataset)
            set_seed(0)
            trainer = Trainer(config, FunctionalEncoder(config.encoder_config(), trunk=trunk), cache, device)
            trainer.step()  # warm-up: allocator, first-call overheads
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(args.steps):
                trainer.step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds = (time.perf_counter() - start) / args.steps
            results.append(
                {
                    "config": name,
                    "batch_pairs": args.batch_pairs,
                    "s_per_step": round(seconds, 4),
                    "pairs_per_s": round(args.batch_pairs / seconds, 1),
                }
            )
            print(f"{name}: {seconds:.3f} s/step, {args.batch_pairs / seconds:.1f} pairs/s", flush=True)
    device_name = (
        torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    )
    payload = {
        "benchmark": "training throughput on cached lite0 features, 224 x 224 (14 x 14 grid)",
        "machine": f"{platform.node()} {device_name}, {os.cpu_count()} cores, torch threads {args.threads}",
        "device": str(device),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": "PYTHONPATH=. python benchmarks/bench_train.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "torch": torch.__version__,
        "results": results,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    suffix = "" if device.type == "cpu" else f"_{device.type}"
    (out / f"train{suffix}.json").write_text(json.dumps(payload, indent=2) + "\n")
    lines = [
        f"# Training throughput ({payload['device']})",
        "",
        f"{payload['benchmark']}.",
        "",
        f"Machine: {payload['machine']}. Date: {payload['date']}. Command: `{payload['command']}`.",
        "",
        "| config | pairs per step | s per step | pairs/s |",
        "| --- | ---: | ---: | ---: |",
    ]
    lines += [f"| {r['config']} | {r['batch_pairs']} | {r['s_per_step']} | {r['pairs_per_s']} |" for r in results]
    (out / f"train{suffix}.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
