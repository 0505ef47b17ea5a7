"""The gating ablation (the paper's Table 2 rows; docs/DESIGN.md, "Model" and "Evaluation"): task vs uniform vs shared gating over seeds.

    python scripts/ablation.py results/ablation-dev/results.json results/ablation-dev-mirror/results.json \\
        --out results/gating-ablation

Reads ``results.json`` files written by :mod:`funk_perception.evaluate` (each with
one or more checkpoints evaluated on one dataset), groups the checkpoint rows by
gating and training seed, and writes ``ablation.json``, ``ablation.md`` and
``ablation.png``: transfer PCK (refined, overall) per gating as the mean and
standard deviation over seeds, every seed's value, and the paper's number.
``scripts/gating_ablation.sh`` trains the checkpoints and runs the evaluations.

The seed spread only covers training randomness. The dev set has 200 triplets
(1,000 keypoints), so a PCK near 40 % also carries a sampling standard error of
about 1.5 points (binomial, keypoints treated as independent, which flatters
it); :func:`summarize` reports that figure beside each column so that gaps are
read against both.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from funk_perception.atomic import save_figure_atomic, write_text_atomic
from funk_perception.cli import command
from funk_perception.evaluate import PAPER_TABLE2

GATINGS: tuple[str, ...] = ("task", "uniform", "shared")
PAPER_BY_GATING: dict[str, float] = {
    "task": PAPER_TABLE2["ours, task embedding"],
    "uniform": PAPER_TABLE2["ours, uniform gating"],
    "shared": PAPER_TABLE2["ours, shared learned gating"],
}
THRESHOLD = "0.1"


class AblationError(ValueError):
    """An input file is not an evaluate results file of the expected shape."""


def _label(results: dict, path: str) -> str:
    data = results.get("data")
    if not isinstance(data, str):
        raise AblationError(f"{path}: field 'data': expected the evaluated CSV path, found {data!r}")
    return (
        Path(data).parent.name
        + ("/" + Path(data).stem if Path(data).stem != "annotations" else "")
        + (" (mirrored)" if results.get("mirror") else "")
    )


def _model_rows(results: dict, path: str) -> list[tuple[str, int | str, str, float, int]]:
    """(gating, seed, training data, PCK@0.1, keypoints) for every checkpoint row of one results file."""
    methods = results.get("methods")
    if not isinstance(methods, list):
        raise AblationError(f"{path}: field 'methods': expected a list of rows, found {type(methods).__name__}")
    rows = []
    for i, method in enumerate(methods):
        if method.get("kind") != "model":
            continue
        info = method.get("info") or {}
        gating = info.get("gating")
        metadata = info.get("metadata") or {}
        if gating not in GATINGS:
            raise AblationError(
                f"{path}: methods[{i}].info.gating: expected one of {', '.join(GATINGS)}, found {gating!r}"
            )
        # a joined checkpoint (funk_perception.train.ensemble) is identified by its members' seeds, "0+1"
        members = metadata.get("member_metadata")
        trains = (
            [(m or {}).get("train_config") or {} for m in members]
            if isinstance(members, list)
            else [metadata.get("train_config") or {}]
        )
        field = "member_metadata[].train_config" if isinstance(members, list) else "train_config"
        for train in trains:
            if not isinstance(train.get("seed"), int):
                raise AblationError(
                    f"{path}: methods[{i}].info.metadata.{field}.seed: expected the training seed, "
                    f"found {train.get('seed')!r}"
                )
        seed = trains[0]["seed"] if len(trains) == 1 else "+".join(str(t["seed"]) for t in trains)
        train = trains[0]
        try:
            overall = method["results"]["refined"]["overall"]
            value, keypoints = float(overall[THRESHOLD]), int(overall["keypoints"])
        except (KeyError, TypeError, ValueError) as error:
            raise AblationError(
                f"{path}: methods[{i}].results.refined.overall: expected PCK at {THRESHOLD} and "
                f"'keypoints', found {error!r}"
            ) from None
        rows.append((gating, seed, str(train.get("data", "")), value, keypoints))
    if not rows:
        raise AblationError(f"{path}: no checkpoint rows (kind 'model') in 'methods'")
    return rows


def summarize(files: Sequence[tuple[str, dict]]) -> dict:
    """Group ``(path, results)`` pairs into per-evaluation, per-gating statistics over seeds.

    Files of the same evaluation (same data, same mirroring: one label) are merged, so the seeds
    of an ablation can be evaluated in separate runs; one recipe (training data) per evaluation."""
    grouped: dict[str, list[tuple[str, dict, list]]] = {}
    for path, results in files:
        grouped.setdefault(_label(results, path), []).append((path, results, _model_rows(results, path)))
    evaluations = []
    for label, members in grouped.items():
        trained_on = sorted({r[2] for _, _, rows in members for r in rows})
        if len(trained_on) > 1:
            names = ", ".join(path for path, _, _ in members)
            raise AblationError(
                f"{names}: checkpoints trained on different data {trained_on}; an ablation compares one recipe"
            )
        seen: dict[tuple[str, int | str], float] = {}
        keypoints = {r[4] for _, _, rows in members for r in rows}
        if len(keypoints) > 1:
            raise AblationError(
                f"{label}: the merged files scored different keypoint counts {sorted(keypoints)}; "
                f"they are not the same evaluation"
            )
        for path, _, rows in members:
            for gating, seed, _, value, _ in rows:
                if (gating, seed) in seen:
                    raise AblationError(f"{path}: two checkpoints with {gating} gating and training seed {seed}")
                seen[(gating, seed)] = value
        by_gating = {}
        for gating in GATINGS:
            values = {seed: v for (g, seed), v in sorted(seen.items(), key=lambda kv: str(kv[0])) if g == gating}
            if not values:
                continue
            array = np.array(list(values.values()))
            by_gating[gating] = {
                "seeds": {str(s): v for s, v in values.items()},
                "mean": float(array.mean()),
                "std": float(array.std(ddof=1)) if len(array) > 1 else None,
                "n": len(array),
            }
        mean = np.mean([g["mean"] for g in by_gating.values()]) / 100.0
        count = keypoints.pop()
        evaluations.append(
            {
                "label": label,
                "file": ", ".join(path for path, _, _ in members),
                "command": " ; ".join(str(results.get("command")) for _, results, _ in members),
                "date": max(str(results.get("date")) for _, results, _ in members),
                "trained_on": trained_on[0],
                "keypoints": count,
                "sampling_se": 100.0 * math.sqrt(mean * (1 - mean) / count) if count else None,
                "gating": by_gating,
            }
        )
    return {
        "metric": f"transfer PCK@{THRESHOLD} (refined, overall), %",
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "paper": PAPER_BY_GATING,
        "evaluations": evaluations,
    }


def _cell(entry: dict | None) -> str:
    if entry is None:
        return "not run"
    seeds = ", ".join(f"{v:.1f}" for v in entry["seeds"].values())
    spread = f" +- {entry['std']:.1f}" if entry["std"] is not None else ""
    return f"{entry['mean']:.1f}{spread} ({seeds})"


def markdown(summary: dict) -> str:
    evaluations = summary["evaluations"]
    lines = [
        f"# Gating ablation: {summary['metric']}",
        "",
        "Mean +- standard deviation over training seeds, each seed's value in brackets.",
        "",
        "| gating | " + " | ".join(e["label"] for e in evaluations) + " | paper (real FunKPoint) |",
        "| --- | " + " | ".join("---" for _ in evaluations) + " | --- |",
    ]
    for gating in GATINGS:
        cells = [_cell(e["gating"].get(gating)) for e in evaluations]
        lines.append(f"| {gating} | " + " | ".join(cells) + f" | {summary['paper'][gating]} |")
    lines.append(
        "| sampling s.e. | "
        + " | ".join(
            f"{e['sampling_se']:.1f} ({e['keypoints']} keypoints)" if e["sampling_se"] is not None else "-"
            for e in evaluations
        )
        + " | |"
    )
    lines += ["", "Commands:", ""] + [f"- {e['label']}: `{e['command']}` ({e['date']})" for e in evaluations] + [""]
    return "\n".join(lines)


def plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    evaluations = summary["evaluations"]
    fig, ax = plt.subplots(figsize=(1.8 + 2.2 * len(evaluations), 3.6))
    width = 0.8 / len(GATINGS)
    for g, gating in enumerate(GATINGS):
        for e, evaluation in enumerate(evaluations):
            entry = evaluation["gating"].get(gating)
            if entry is None:
                continue
            x = e + (g - (len(GATINGS) - 1) / 2) * width
            ax.bar(x, entry["mean"], width * 0.9, color=f"C{g}", label=gating if e == 0 else None)
            ax.plot([x] * entry["n"], list(entry["seeds"].values()), "k.", markersize=5)
    ax.set_xticks(range(len(evaluations)), [e["label"] for e in evaluations], fontsize=8)
    ax.set_ylabel(summary["metric"])
    ax.legend(title="gating", fontsize=8)
    ax.set_title("Gating ablation (bars: mean over seeds; dots: seeds)", fontsize=9)
    fig.tight_layout()
    save_figure_atomic(fig, path)


def load(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except OSError as error:
        raise AblationError(f"{path}: cannot read ({error.strerror})") from None
    except json.JSONDecodeError as error:
        raise AblationError(f"{path}: not JSON ({error.msg} at line {error.lineno})") from None


@command
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python scripts/ablation.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, nargs="+", help="results.json files written by funk_perception.evaluate")
    parser.add_argument("--out", type=Path, default=Path("results/gating-ablation"))
    args = parser.parse_args(argv)
    summary = summarize([(str(p), load(p)) for p in args.results])
    write_text_atomic(args.out / "ablation.json", json.dumps(summary, indent=2) + "\n")
    text = markdown(summary)
    write_text_atomic(args.out / "ablation.md", text)
    plot(summary, args.out / "ablation.png")
    print(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
