"""Join encoders trained apart (seeds of one recipe) into one checkpoint, optionally with the trunk blended in.

The joined encoder's embedding is its members' unit embeddings and
``trunk_weight`` times the unit trunk feature, concatenated and scaled to unit
norm (:class:`funk_perception.model.EncoderConfig`, ``members`` and
``trunk_weight``), so every consumer (transfer, ``detect``, the ROS node, RL and
grasp features) uses it unchanged. Why: on the real dev set two seeds of the
shipped recipe score 44.7 and 47.0 transfer PCK@0.1 alone and 48.8 joined, and
the raw trunk, weaker overall, is better within a category than the learned
head (models/README.md). The learned temperature is the members' mean; the
per-task prototypes are recomputed for the joined embedding from the training
cache, exactly as training computes them. The reference bank and the heatmap
head are added afterwards by their own commands, as for any checkpoint
(``scripts/train_shipped_models.sh``).

    python -m funk_perception.train.ensemble --member runs/v12-paper/checkpoint.pt \
        --member runs/v12-paper-seed1/checkpoint.pt --trunk-weight 0.5 \
        --data datasets/synth-v12/annotations.csv --out runs/v12-ensemble/checkpoint.pt
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import math
from collections.abc import Sequence
from pathlib import Path

import torch

from funk_perception.cli import command
from funk_perception.data.annotations import FunKPointDataset
from funk_perception.model import EncoderConfig, FunctionalEncoder, resolve_device
from funk_perception.train.loop import TrainConfig, prepare_cache
from funk_perception.train.prototypes import compute_prototypes


def join_encoders(members: Sequence[FunctionalEncoder], trunk_weight: float = 0.0) -> FunctionalEncoder:
    """One encoder whose embedding is ``members``' (and the weighted trunk's), sharing the first member's trunk."""
    if not members:
        raise ValueError("join_encoders: expected at least one member, found none")
    configs = [dataclasses.replace(m.config, members=1, trunk_weight=0.0) for m in members]
    for i, (member, config) in enumerate(zip(members, configs)):
        if member.config.members != 1:
            raise ValueError(f"join_encoders: member {i} is itself joined ({member.config.members} members)")
        if config != configs[0]:
            raise ValueError(f"join_encoders: member {i}'s config differs from member 0's: {config} != {configs[0]}")
    joined = FunctionalEncoder(
        dataclasses.replace(configs[0], members=len(members), trunk_weight=float(trunk_weight)), trunk=members[0].trunk
    )
    heads = [joined.head, *(joined.extra_heads if len(members) > 1 else ())]
    with torch.no_grad():
        for head, member in zip(heads, members):
            head.load_state_dict(member.head.state_dict())
        scale = sum(float(m.logit_scale) for m in members) / len(members)
        joined.log_logit_scale.copy_(torch.tensor(math.log(scale)))
    return joined.to(members[0].log_logit_scale.device).eval()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def join_checkpoints(
    members: Sequence[Path],
    out: Path,
    data: Path,
    trunk_weight: float = 0.0,
    prototype_views: int = 2,
    num_threads: int = 2,
    device: str = "auto",
    cache_root: Path | None = None,
) -> Path:
    """Join ``members`` into ``out`` (float32) with prototypes recomputed on ``data``'s training cache."""
    torch.set_num_threads(num_threads)
    dev = resolve_device(device)
    first = FunctionalEncoder.load(members[0], dev)
    loaded = [first, *(FunctionalEncoder.load(p, dev, trunk=first.trunk) for p in members[1:])]
    joined = join_encoders(loaded, trunk_weight)
    dataset = FunKPointDataset(data, roles=["train"])
    if not dataset.annotations:
        raise ValueError(f"{data}: no train-role rows to compute prototypes from")
    train_config = TrainConfig(data=str(data), num_threads=num_threads, progress=False)
    if cache_root is not None:
        train_config.cache_root = str(cache_root)
    cache = prepare_cache(train_config, joined.config, joined.trunk, dataset)
    views = None if prototype_views == 0 else range(min(prototype_views, cache.views_per_image))
    prototypes, counts = compute_prototypes(joined, cache, views)
    extra = {
        "prototypes": prototypes,
        "prototype_counts": counts,
        "joined_from": [{"path": str(p), "sha256": _sha256(Path(p))} for p in members],
        "trunk_weight": float(trunk_weight),
        "member_metadata": [
            {
                k: v
                for k, v in m.loaded_extra.items()
                if k not in ("prototypes", "prototype_counts", "bank", "heatmap_head")
            }
            for m in loaded
        ],
    }
    joined.save(out, extra)
    return Path(out)


@command
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m funk_perception.train.ensemble", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--member", type=Path, action="append", required=True, help="a trained checkpoint (repeat)")
    parser.add_argument("--trunk-weight", type=float, default=0.0, help="weight of the unit trunk feature (0: none)")
    parser.add_argument("--data", type=Path, required=True, help="the members' training CSV (for the prototypes)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--prototype-views", type=int, default=2, help="cached views per image for the prototypes")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    EncoderConfig(trunk_weight=args.trunk_weight)  # a bad weight fails here, before any loading
    out = join_checkpoints(
        args.member, args.out, args.data, args.trunk_weight, args.prototype_views, args.threads, args.device
    )
    print(f"joined {len(args.member)} encoders (trunk weight {args.trunk_weight:g}) -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
