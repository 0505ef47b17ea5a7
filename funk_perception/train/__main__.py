"""``python -m funk_perception.train``: a thin parser over :func:`funk_perception.train.train`.

Example::

    python -m funk_perception.train --config paper --data datasets/synth/annotations.csv --out runs/paper
    python -m funk_perception.train --config uniform --data ... --out runs/uniform --set views=2 --set model.temperature=0.05

``--set key=value`` sets any TrainConfig field (``views=2``), an augmentation
field (``augment.jpeg_prob=0.2``) or an encoder field (``model.modular.filters=64``);
values are read as JSON when they parse (numbers, true/false, lists), else as text.
"""

from __future__ import annotations

# torch first: a GL context made before it (MuJoCo anywhere in the process) segfaults (docs/DESIGN.md, "Import torch first").
import torch  # noqa: F401  isort: skip

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from typing import Any

from funk_perception.cli import command
from funk_perception.model.encoder import NAMED_CONFIGS
from funk_perception.train.augment import AugmentConfig
from funk_perception.train.loop import TrainConfig, train


def _value(text: str) -> Any:
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def apply_overrides(config: TrainConfig, assignments: Sequence[str]) -> TrainConfig:
    """Apply ``key=value`` strings to a TrainConfig (see the module docstring for the keys)."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    augment_fields = {f.name for f in dataclasses.fields(AugmentConfig)}
    values = dataclasses.asdict(config)
    overrides = dict(config.encoder_overrides)
    for assignment in assignments:
        if "=" not in assignment:
            raise ValueError(f"--set {assignment!r}: expected key=value")
        key, text = assignment.split("=", 1)
        key, value = key.strip(), _value(text)
        if key.startswith("model."):
            overrides[key[len("model.") :]] = value
        elif key.startswith("augment."):
            name = key[len("augment.") :]
            if name not in augment_fields:
                raise ValueError(f"--set {key}: unknown augmentation field; expected one of {sorted(augment_fields)}")
            values["augment"][name] = tuple(value) if isinstance(value, list) else value
        elif key in fields and key not in ("augment", "encoder_overrides"):
            values[key] = value
        else:
            raise ValueError(
                f"--set {key}: unknown key; expected a TrainConfig field ({', '.join(sorted(fields))}), "
                "augment.<field> or model.<EncoderConfig field>"
            )
    values["encoder_overrides"] = overrides
    result = TrainConfig(**values)
    result.encoder_config()  # fail now, not after the cache is built, on a bad model.* key
    return result


@command
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m funk_perception.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="paper", choices=sorted(NAMED_CONFIGS), help="encoder config name")
    parser.add_argument("--data", default=TrainConfig.data, help="FunKPoint-style CSV (train-role rows are used)")
    parser.add_argument("--out", required=True, help="run folder: checkpoint.pt, train_state.pt, metrics.csv, ...")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its train_state.pt")
    parser.add_argument("--seed", type=int, default=TrainConfig.seed)
    parser.add_argument("--steps", type=int, default=TrainConfig.steps)
    parser.add_argument("--batch-pairs", type=int, default=TrainConfig.batch_pairs)
    parser.add_argument("--device", default=TrainConfig.device, help="auto (GPU when present), cpu, cuda, cuda:1")
    parser.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    try:
        config = TrainConfig(
            encoder=args.config,
            data=args.data,
            seed=args.seed,
            steps=args.steps,
            batch_pairs=args.batch_pairs,
            device=args.device,
        )
        config = apply_overrides(config, args.assignments)
    except (ValueError, TypeError) as error:
        parser.error(str(error))
    result = train(config, args.out, resume=args.resume)
    print(
        f"{result.steps_done} steps, loss {result.final_loss:.4f}, train PCK {result.final_pck:.3f}, "
        f"{result.pairs_per_s:.1f} pairs/s, {result.train_time_s:.0f} s -> {result.checkpoint}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
