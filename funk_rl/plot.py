"""Success rate against environment steps for several hammer runs in one figure, RRL's numbers marked.

    python -m funk_rl.plot runs/hammer/funk-s0 runs/hammer/funk-s1 runs/hammer/imagenet-s0 --out results/rl/curves.png

Each run folder's ``eval.csv`` and ``config.json`` (written by train_hammer) give
one thin line; runs of the same encoder share a colour and their mean is drawn
thick. The x axis is logarithmic so that a short CPU run and RRL's reference
(frozen ResNet-34 features, DAPG: 75-94.5 % success at 4M samples, ~98 % at 12M,
3 seeds; docs/RL.md) fit one figure.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from funk_perception.atomic import save_figure_atomic  # noqa: E402
from funk_perception.cli import command  # noqa: E402
from funk_rl.callbacks import read_eval_rows  # noqa: E402

#: RRL (Shah and Kumar 2021) on hammer: (samples, low, high) success in percent.
RRL_REFERENCE = ((4_000_000, 75.0, 94.5), (12_000_000, 98.0, 98.0))
COLOURS = {
    "funk": "tab:red",
    "funk-keypoints": "tab:orange",
    "imagenet": "tab:blue",
    "state": "tab:gray",
    "proprio": "tab:green",
}


def read_run(folder: str | Path) -> tuple[str, np.ndarray, np.ndarray]:
    """(encoder, steps, success rate in %) of one run folder."""
    folder = Path(folder)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{folder}: not a train_hammer run (no config.json)")
    encoder = json.loads(config_path.read_text()).get("encoder")
    if not isinstance(encoder, str):
        raise ValueError(f"{config_path}: field 'encoder': expected a string, found {encoder!r}")
    rows = read_eval_rows(folder / "eval.csv")
    if not rows:
        raise ValueError(f"{folder / 'eval.csv'}: expected at least one evaluation row, found none")
    steps = np.array([int(r["steps"]) for r in rows])
    success = np.array([100.0 * float(r["success_rate"]) for r in rows])
    return encoder, steps, success


def plot_runs(folders: Sequence[str | Path], out: str | Path, title: str = "ADROIT hammer") -> Path:
    """Draw the runs' curves and RRL's reference; returns the PNG's path."""
    if not folders:
        raise ValueError("runs: expected at least one run folder, found none")
    by_encoder: dict[str, list[tuple[np.ndarray, np.ndarray]]] = defaultdict(list)
    for folder in folders:
        encoder, steps, success = read_run(folder)
        by_encoder[encoder].append((steps, success))
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for encoder, runs in sorted(by_encoder.items()):
        colour = COLOURS.get(encoder, None)
        common = sorted(set.intersection(*(set(s.tolist()) for s, _ in runs)))
        for i, (steps, success) in enumerate(runs):
            # Runs evaluated at different steps have no common mean: the first thin line carries the label.
            label = f"{encoder} ({len(runs)} runs, evaluated at different steps)" if not common and i == 0 else None
            ax.plot(np.maximum(steps, 100), success, color=colour, alpha=0.35, linewidth=1, marker=".", label=label)
        if common:
            mean = [np.mean([succ[list(st).index(c)] for st, succ in runs]) for c in common]
            ax.plot(
                np.maximum(common, 100),
                mean,
                color=colour,
                linewidth=2.5,
                marker="o",
                markersize=3,
                label=f"{encoder} ({len(runs)} seed{'s' if len(runs) > 1 else ''})",
            )
    for samples, low, high in RRL_REFERENCE:
        ax.errorbar(
            [samples],
            [(low + high) / 2],
            yerr=[[(high - low) / 2], [(high - low) / 2]],
            fmt="*",
            color="black",
            markersize=10,
            capsize=4,
        )
    ax.plot([], [], "k*", markersize=10, label="RRL ResNet-34 + DAPG (published)")
    ax.set_xscale("log")
    ax.set_xlim(left=100)
    ax.set_ylim(-3, 103)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("success rate (%), nail at goal > 25 of 200 steps")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    out = Path(out)
    save_figure_atomic(fig, out, dpi=120)
    return out


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m funk_rl.plot", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="train_hammer run folders")
    parser.add_argument("--out", default="results/rl/curves.png")
    parser.add_argument("--title", default="ADROIT hammer")
    return parser


@command
def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    print(plot_runs(args.runs, args.out, args.title))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
