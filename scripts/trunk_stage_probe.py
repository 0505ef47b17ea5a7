"""Trunk-only transfer PCK for features of several EfficientNet-Lite stages, alone and concatenated.

Why: the modular network sees only the stride-16 stage today. Before paying for a
new feature cache and a retrain, this measures, on any FunKPoint-style CSV (the
real dev set, the synthetic test split), how well each stage and each
concatenation transfers keypoints with no learned head at all: the stage that
transfers best from raw ImageNet features is the one worth giving the head.

Every stage map is resized to the stride-16 grid (bilinear up from stride 32,
area-averaged down from stride 8), L2-normalised per location on its own (so no
stage dominates by channel count), concatenated and L2-normalised again.
Letterboxed input, as ``evaluate``'s default.

    python scripts/trunk_stage_probe.py --data ../shared/data/funkpoint-real-dev/annotations.csv \
        --out results/trunk-stage-probe-dev.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import torch
import torch.nn.functional as F

from funk_perception.atomic import write_text_atomic
from funk_perception.data.pairs import evaluation_pairs
from funk_perception.eval_config import EvalConfig
from funk_perception.eval_methods import Method, compute_features, letterbox_frames, predict_pairs
from funk_perception.eval_scoring import score_predictions
from funk_perception.evaluate import triplet_annotations
from funk_perception.model.trunk import IMAGENET_MEAN, IMAGENET_STD, TF_MEAN, TF_STD, load_efficientnet_lite

#: variant name -> (trunk, timm feature indices: 2 = stride 8, 3 = stride 16, 4 = stride 32, "head" = conv_head)
VARIANTS: dict[str, tuple[str, tuple]] = {
    "lite0 s16": ("lite0", (3,)),
    "lite0 s8": ("lite0", (2,)),
    "lite0 s32": ("lite0", (4,)),
    "lite0 head1280": ("lite0", ("head",)),
    "lite0 s16+s32": ("lite0", (3, 4)),
    "lite0 s8+s16+s32": ("lite0", (2, 3, 4)),
    "lite0 s16+head1280": ("lite0", (3, "head")),
    "lite2 s16": ("lite2", (3,)),
    "lite2 s32": ("lite2", (4,)),
    "lite2 s16+s32": ("lite2", (3, 4)),
}


class StageFeatures(torch.nn.Module):
    """Chosen stages of a frozen EfficientNet-Lite, each normalised, on the stride-16 grid, concatenated."""

    def __init__(self, trunk: str, stages: tuple) -> None:
        super().__init__()
        self.model = load_efficientnet_lite(trunk).eval()
        self.stages = stages
        mean_in, std_in = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
        mean_n, std_n = torch.tensor(TF_MEAN), torch.tensor(TF_STD)
        self.register_buffer("scale", (std_in / std_n).view(1, 3, 1, 1))
        self.register_buffer("shift", ((mean_in - mean_n) / std_n).view(1, 3, 1, 1))
        # feature_info module names -> block index whose output is that stage
        self.ends = {i: int(f["module"].split(".")[1]) for i, f in enumerate(self.model.feature_info)}

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        m = self.model
        x = m.bn1(m.conv_stem(images * self.scale + self.shift))
        outs: dict = {}
        wanted = {self.ends[s]: s for s in self.stages if s != "head"}
        for index, block in enumerate(m.blocks):
            x = block(x)
            if index in wanted:
                outs[wanted[index]] = x
        if "head" in self.stages:
            outs["head"] = m.bn2(m.conv_head(x))
        grid = (-(-images.shape[2] // 16), -(-images.shape[3] // 16))
        parts = []
        for s in self.stages:
            f = outs[s]
            if f.shape[-2:] != grid:
                f = (
                    F.adaptive_avg_pool2d(f, grid)
                    if f.shape[-1] > grid[1]
                    else F.interpolate(f, size=grid, mode="bilinear", align_corners=False)
                )
            parts.append(F.normalize(f, dim=1))
        return F.normalize(torch.cat(parts, dim=1), dim=1)


def transfer_pck(config: EvalConfig, methods: list[Method]) -> dict[str, dict[str, float]]:
    """Refined transfer PCK (%) at 0.05 / 0.1 / 0.15 of each method on ``config``'s triplets, letterboxed."""
    dataset, annotations, _ = triplet_annotations(config)
    pairs = evaluation_pairs(annotations, config.seed, config.references_per_task, config.max_targets_per_task)
    needs: dict[Path, set[str]] = defaultdict(set)
    for p in pairs:
        needs[annotations[p.source].image_path].add(p.task)
        needs[annotations[p.target].image_path].add(p.task)
    frames = letterbox_frames(dataset, list(needs), 224)
    rows = {}
    for method in methods:
        cache = compute_features(method, dataset, needs, 16, False, False, config.mirror, config.letterbox_pad)
        refined = predict_pairs(method, annotations, pairs, cache, config.refine, frames=frames)["refined"]
        scores = score_predictions(annotations, pairs, refined)["overall"]
        rows[method.name] = {f"pck@{t}": scores[t] for t in ("0.05", "0.1", "0.15")}
        print(
            f"{method.name:40s} PCK@0.1 {scores['0.1']:.1f}  @0.05 {scores['0.05']:.1f}  @0.15 {scores['0.15']:.1f}",
            flush=True,
        )
    return rows


def probe_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--references", type=Path, default=None)
    parser.add_argument("--max-targets-per-task", type=int, default=None)
    parser.add_argument("--mirror", action="store_true")
    parser.add_argument("--out", type=Path, required=True)
    return parser


def probe_config(args: argparse.Namespace) -> EvalConfig:
    torch.manual_seed(0)
    return EvalConfig(
        data=args.data,
        references=args.references,
        max_targets_per_task=args.max_targets_per_task,
        mirror=args.mirror,
        progress=False,
        figures=False,
        detect=False,
    )


def write_probe(args: argparse.Namespace, script: str, argv: list[str] | None, rows: dict) -> None:
    result = {
        "command": " ".join(["python", script, *(sys.argv[1:] if argv is None else argv)]),
        "data": str(args.data),
        "mirror": args.mirror,
        "rows": rows,
    }
    write_text_atomic(args.out, json.dumps(result, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = probe_parser(__doc__.splitlines()[0])
    parser.add_argument("--variant", action="append", default=[], choices=sorted(VARIANTS))
    args = parser.parse_args(argv)
    methods = []
    for name in args.variant or list(VARIANTS):
        net = StageFeatures(*VARIANTS[name])
        methods.append(Method(name, "trunk", lambda im, tasks, net=net: net(im).unsqueeze(1), 224))
    write_probe(args, "scripts/trunk_stage_probe.py", argv, transfer_pck(probe_config(args), methods))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
