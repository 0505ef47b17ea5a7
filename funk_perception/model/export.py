"""Re-save a trained checkpoint for shipping: ``python -m funk_perception.model.export SRC DST``.

Training writes float32 checkpoints; the ones committed under ``models/`` are
stored as float16 (half the size, so they stay well under git's comfortable
limits) with every ``extra`` entry (prototypes, training metadata) kept.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import torch

from funk_perception.cli import command
from funk_perception.detector_config import EXTRA_KEY as CONFIG_KEY
from funk_perception.detector_config import DetectorConfig
from funk_perception.model.encoder import FunctionalEncoder
from funk_perception.model.trunk import build_trunk

DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


def resave_with_extra(encoder: FunctionalEncoder, destination: str | Path, extra: dict) -> Path:
    """Write a loaded ``encoder`` with a new ``extra``, keeping the precision its file was stored in."""
    dtype = DTYPES.get(str(extra.get("stored_dtype", "float32")), torch.float32)
    encoder.save(destination, extra, dtype=None if dtype == torch.float32 else dtype)
    return Path(destination)


def export_checkpoint(
    source: str | Path,
    destination: str | Path,
    dtype: str = "float16",
    detect_method: str | None = None,
    recipe: dict | None = None,
) -> Path:
    """Load ``source`` and write it to ``destination`` with the head stored as ``dtype`` and the detector's
    settings as ``extra["detector_config"]`` (:class:`funk_perception.detector_config.DetectorConfig`: the
    source's own, with ``detect_method`` as its method when given), which ``FunctionalKeypointDetector.load``
    then runs by default; ``recipe`` (what ``scripts/build_model.py`` records: recipe, command, data
    fingerprint, code commit) as ``extra["recipe"]``."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype: expected one of {', '.join(DTYPES)}, found {dtype!r}")
    checkpoint = FunctionalEncoder.read_checkpoint(source)
    # checked before the weights load: a typo costs no seconds and writes nothing
    config = DetectorConfig.from_extra(checkpoint.get("extra") or {}, str(source)).override(method=detect_method)
    # exporting touches only the head: an untrained trunk of the right kind avoids loading trunk weights
    trunk = build_trunk(checkpoint["config"]["trunk"], pretrained=False)
    encoder = FunctionalEncoder.load(source, device="cpu", trunk=trunk)
    extra = {k: v for k, v in encoder.loaded_extra.items() if k != "detect_method"}  # now a field of the config
    extra["exported_from"] = str(source)
    extra["stored_dtype"] = dtype
    extra[CONFIG_KEY] = config.to_extra()
    if recipe is not None:
        extra["recipe"] = recipe
    encoder.save(destination, extra=extra, dtype=DTYPES[dtype])
    return Path(destination)


@command
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="checkpoint written by training (runs/NAME/checkpoint.pt)")
    parser.add_argument("destination", help="where to write the shipped checkpoint (e.g. models/NAME.pt)")
    parser.add_argument("--dtype", default="float16", choices=sorted(DTYPES))
    parser.add_argument(
        "--detect-method",
        default=None,
        help="the detect method the checkpoint's users get by default (heatmap, bank, prototypes, "
        "bank_heatmap); unset: the heatmap head when there is one, else the bank, else prototypes",
    )
    args = parser.parse_args(argv)
    out = export_checkpoint(args.source, args.destination, args.dtype, args.detect_method)
    print(f"{args.source} -> {out} ({out.stat().st_size / 1e6:.1f} MB, {args.dtype})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
