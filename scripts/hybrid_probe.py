"""Transfer with a checkpoint's task embeddings concatenated with its own trunk's features.

Why: on the real dev set the learned head beats the raw trunk across categories
but loses to it within a category (lite0-ms, 300 steps: same-category 57.0
against the trunk's 68.5), so the two carry different information. Matching on
``[e, w * t] / sqrt(1 + w^2)`` (``e`` the unit task embedding, ``t`` the unit
trunk feature) scores ``(cos_e + w^2 cos_t) / (1 + w^2)``: a fixed blend of the
two similarities, no training.

    python scripts/hybrid_probe.py --data ../shared/data/funkpoint-real-dev/annotations.csv \
        --model models/funk-lite0-synth.pt --weight 0 --weight 1 --out results/hybrid-probe/dev.json
"""

from __future__ import annotations

from pathlib import Path

from trunk_stage_probe import probe_config, probe_parser, transfer_pck, write_probe

from funk_perception.eval_methods import Method
from funk_perception.model import FunctionalEncoder
from funk_perception.train.ensemble import join_encoders


def main(argv: list[str] | None = None) -> int:
    parser = probe_parser(__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, action="append", required=True)
    parser.add_argument("--weight", type=float, action="append", required=True)
    parser.add_argument(
        "--ensemble", action="store_true", help="one method from all --model (their embeddings concatenated)"
    )
    args = parser.parse_args(argv)
    first = FunctionalEncoder.load(args.model[0], "cpu")
    encoders = {path: FunctionalEncoder.load(path, "cpu", trunk=first.trunk) for path in args.model}
    groups = [list(args.model)] if args.ensemble else [[path] for path in args.model]
    methods = []
    for group in groups:
        members = [encoders[path] for path in group]
        for w in args.weight:
            name = " + ".join(str(path) for path in group) + f" + {w:g} x trunk"
            # the shipped mechanism itself (EncoderConfig.members / trunk_weight), not a copy of its arithmetic
            joined = join_encoders(members, w)
            methods.append(
                Method(
                    name, "model", lambda im, tasks, e=joined: e(im, tasks).float(), int(joined.config.image_size), True
                )
            )
    write_probe(args, "scripts/hybrid_probe.py", argv, transfer_pck(probe_config(args), methods))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
