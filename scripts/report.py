"""docs/RESULTS.md: every experiment's numbers beside the paper's, built from result files only.

    python scripts/report.py              # build docs/RESULTS.md from docs/results/
    python scripts/report.py --collect    # first copy the latest results/ outputs into docs/results/

``bash scripts/make_results.sh`` reruns the evaluations and the few-shot
benchmark with the current checkpoint and then runs ``--collect``. The page is
made from the JSON files in ``docs/results/`` (committed, so anyone can rebuild
it and see what it was built from) and the figures beside them; nothing on it
is typed by hand. :data:`INPUTS` names every input, where ``--collect`` takes
it from and which job writes it. A missing input shows as "not run yet"; a
required one (the few-shot benchmark on the synthetic held-out categories) or a
malformed one ends in an error naming the file.

``--collect`` copies JSON verbatim (after checking it) and re-encodes figures as
JPEG at most :data:`FIGURE_WIDTH` pixels wide: the real-photo figures may be
kept in the repository only as small evaluation figures.
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2

from funk_perception.atomic import save_figure_atomic, write_bytes_atomic, write_text_atomic
from funk_perception.cli import command

FIGURE_WIDTH = 640
RL_FIGURE = "rl-curve.png"
DEFAULT_INPUTS = Path("docs/results")
DEFAULT_OUT = Path("docs/RESULTS.md")


class ReportError(ValueError):
    """A results file is missing where it is required, unreadable or not of the expected shape."""


@dataclass(frozen=True)
class Input:
    """One result file of the page."""

    name: str  # file name in the inputs folder
    kind: str  # evaluate | fewshot | grasp | rl
    source: str  # where --collect takes it from (relative to the repository root)
    written_by: str  # the job that writes ``source``
    required: bool = False
    figures: tuple[str, ...] = ()  # figure files beside ``source`` to collect


INPUTS: tuple[Input, ...] = (
    Input(
        "evaluate-synth.json",
        "evaluate",
        "results/eval-synth/results.json",
        "python -m funk_perception.evaluate --data datasets/synth-v13/annotations.csv --model ... --out results/eval-synth",
        False,
        ("qualitative.png", "dense.png"),
    ),
    Input(
        "evaluate-synth-heldout.json",
        "evaluate",
        "results/eval-synth-heldout/results.json",
        "python -m funk_perception.evaluate --data datasets/synth-v13/heldout.csv --references "
        "datasets/synth-v13/annotations.csv --model ... --out results/eval-synth-heldout",
        False,
        ("qualitative.png",),
    ),
    Input(
        "evaluate-real-dev.json",
        "evaluate",
        "results/eval-real-dev/results.json",
        "python -m funk_perception.evaluate --data ../shared/data/funkpoint-real-dev/annotations.csv --model ... "
        "--out results/eval-real-dev",
        False,
        ("qualitative.png", "dense.png"),
    ),
    Input(
        "fewshot-synth-heldout.json",
        "fewshot",
        "results/fewshot-synth-heldout/fewshot.json",
        "python scripts/fewshot.py --data datasets/synth-fewshot/heldout.csv --out results/fewshot-synth-heldout",
        True,
        ("fewshot.png",),
    ),
    Input(
        "fewshot-real-dev.json",
        "fewshot",
        "results/fewshot-real-dev/fewshot.json",
        "python scripts/fewshot.py --data ../shared/data/funkpoint-real-dev/annotations.csv "
        "--out results/fewshot-real-dev",
        False,
        ("fewshot.png",),
    ),
    Input(
        "grasp.json",
        "grasp",
        "benchmarks/results",
        "python -m funk_grasp.benchmark [--name NAME] (every benchmarks/results/grasp*.json it writes)",
    ),
    Input(
        "gating-ablation.json",
        "ablation",
        "results/gating-ablation/ablation.json",
        "bash scripts/gating_ablation.sh (python scripts/ablation.py over its evaluations)",
        False,
        ("ablation.png",),
    ),
    Input("rl.json", "rl", "runs/fig6", "python scripts/rl_figure6.py demos|rl (docs/RL.md, Figure 6)"),
)
INPUT_BY_NAME = {i.name: i for i in INPUTS}


# --------------------------------------------------------------------------- reading and checking


def _field(data: Any, keys: Sequence[Any], kind: type | tuple[type, ...], where: Path) -> Any:
    """``data[k0][k1]...``, checked to exist and be of ``kind`` (the error names the file and the field)."""
    value = data
    name = "/".join(str(k) for k in keys)
    for key in keys:
        if isinstance(value, list) and isinstance(key, int) and key < len(value):
            value = value[key]
        elif isinstance(value, dict) and key in value:
            value = value[key]
        else:
            raise ReportError(f"{where}: field {name!r}: expected it to exist, found none (at {key!r})")
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ReportError(f"{where}: field {name!r}: expected {names}, found {type(value).__name__} {value!r:.60}")
    return value


NUMBER = (int, float, type(None))


def check_evaluate(data: Any, where: Path) -> None:
    for key in ("command", "date", "data"):
        _field(data, (key,), str, where)
    _field(data, ("pairs", "total"), int, where)
    for i, row in enumerate(_field(data, ("methods",), list, where)):
        _field(row, ("name",), str, where)
        for split in ("overall", "same_category", "cross_category"):
            _field(data, ("methods", i, "results", "refined", split, "0.1"), NUMBER, where)
    if "detect" in data:  # added later to evaluate's output: checked when present
        for i, _ in enumerate(_field(data, ("detect", "rows"), list, where)):
            _field(data, ("detect", "rows", i, "name"), str, where)
            _field(data, ("detect", "rows", i, "results", "overall", "0.1"), NUMBER, where)


def check_fewshot(data: Any, where: Path) -> None:
    if data.get("kind") != "fewshot":
        raise ReportError(f"{where}: field 'kind': expected 'fewshot', found {data.get('kind')!r}")
    for key in ("command", "date", "data"):
        _field(data, (key,), str, where)
    shots = [str(k) for k in _field(data, ("shots",), list, where)]
    _field(data, ("classes",), list, where)
    for i, row in enumerate(_field(data, ("methods",), list, where)):
        _field(row, ("name",), str, where)
        for k in shots:
            for metric in ("accuracy_mean", "accuracy_std"):
                _field(data, ("methods", i, "results", k, metric), (int, float), where)


def check_grasp(data: Any, where: Path) -> None:
    for i, _ in enumerate(_field(data, ("runs",), list, where)):
        for key in ("command", "date", "data", "source"):
            _field(data, ("runs", i, key), str, where)
        for row in _field(data, ("runs", i, "rows"), dict, where):
            for split in _field(data, ("runs", i, "rows", row), dict, where):
                for metric in ("accuracy", "auc"):
                    _field(data, ("runs", i, "rows", row, split, metric, "mean"), NUMBER, where)


def check_rl(data: Any, where: Path) -> None:
    for i, _ in enumerate(_field(data, ("runs",), list, where)):
        for key in ("encoder", "folder"):
            _field(data, ("runs", i, key), str, where)
        steps = _field(data, ("runs", i, "steps"), list, where)
        success = _field(data, ("runs", i, "success_rate"), list, where)
        if len(steps) != len(success) or not steps:
            raise ReportError(
                f"{where}: runs[{i}]: expected as many success rates as steps (at least one), "
                f"found {len(success)} and {len(steps)}"
            )
    for i, _ in enumerate(data.get("demos", []) if isinstance(data, dict) else []):
        _field(data, ("demos", i, "encoder"), str, where)
        _field(data, ("demos", i, "eval_episodes"), int, where)
        for j, _ in enumerate(_field(data, ("demos", i, "cells"), list, where)):
            for key in ("demos", "seed", "bc_successes", "dagger_successes"):
                _field(data, ("demos", i, "cells", j, key), int, where)


def check_ablation(data: Any, where: Path) -> None:
    _field(data, ("metric",), str, where)
    _field(data, ("paper",), dict, where)
    for i, _ in enumerate(_field(data, ("evaluations",), list, where)):
        for key in ("label", "command", "date"):
            _field(data, ("evaluations", i, key), str, where)
        for gating in _field(data, ("evaluations", i, "gating"), dict, where):
            _field(data, ("evaluations", i, "gating", gating, "mean"), (int, float), where)
            _field(data, ("evaluations", i, "gating", gating, "std"), NUMBER, where)
            _field(data, ("evaluations", i, "gating", gating, "seeds"), dict, where)


CHECKS: Mapping[str, Callable[[Any, Path], None]] = {
    "evaluate": check_evaluate,
    "fewshot": check_fewshot,
    "grasp": check_grasp,
    "ablation": check_ablation,
    "rl": check_rl,
}


def read_input(folder: Path, spec: Input) -> dict | None:
    """The checked JSON of one input; None when absent and not required."""
    path = folder / spec.name
    if not path.is_file():
        if spec.required:
            raise ReportError(
                f"{path}: required results file not found; it is written by `{spec.written_by}` "
                "(then `python scripts/report.py --collect`), or all at once by "
                "`bash scripts/make_results.sh`"
            )
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportError(f"{path}: expected a JSON file, found unreadable content ({exc})") from None
    if not isinstance(data, dict):
        raise ReportError(f"{path}: expected a JSON object, found {type(data).__name__}")
    CHECKS[spec.kind](data, path)
    return data


# --------------------------------------------------------------------------- collecting


def _rl_runs(folder: Path) -> dict | None:
    """Figure 6's results under ``folder``: the demonstration-efficiency results (``demos/<encoder>.json``) and
    every finished or running train_hammer PPO run (``rl/<run>/eval.csv``) with its evaluation curve."""
    demos = [json.loads(path.read_text()) for path in sorted(folder.glob("demos/*.json"))]
    runs = []
    for config_path in sorted(folder.glob("rl/*/config.json")):
        run = config_path.parent
        if not (run / "eval.csv").is_file():
            continue
        config = json.loads(config_path.read_text())
        with open(run / "eval.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
        if not rows:
            continue
        final = json.loads((run / "eval.json").read_text()) if (run / "eval.json").is_file() else {}
        runs.append(
            {
                "folder": str(run),
                "encoder": str(config.get("encoder")),
                "seed": config.get("seed"),
                "demonstrations": config.get("demo_episodes"),
                "planned_steps": config.get("rl_steps"),
                "finished": bool(final),
                "final_successes": final.get("successes"),
                "final_episodes": final.get("episodes"),
                "steps": [int(float(r["steps"])) for r in rows],
                "success_rate": [100.0 * float(r["success_rate"]) for r in rows],
                "date": _dt.datetime.fromtimestamp((run / "eval.csv").stat().st_mtime, _dt.UTC).isoformat(
                    timespec="seconds"
                ),
            }
        )
    if not runs and not demos:
        return None
    return {
        "command": "python scripts/rl_figure6.py demos|rl",
        "source": str(folder),
        "success_rule": "nail at its goal for more than 25 of the 200 steps (DAPG/RRL)",
        "runs": runs,
        "demos": demos,
    }


def _grasp_runs(folder: Path) -> dict | None:
    """Every grasp benchmark output (``--name`` variants) in ``folder``; other grasp*.json files are skipped."""
    runs = []
    for path in sorted(folder.glob("grasp*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ReportError(f"{path}: expected a JSON file, found unreadable content ({exc})") from None
        if (
            isinstance(data, dict) and "rows" in data and "paper_accuracy" in data
        ):  # the benchmark's, not the simulator's
            runs.append({**data, "source": str(path)})
    return {"runs": runs} if runs else None


def _small_jpeg(source: Path, target: Path) -> None:
    image = cv2.imread(str(source), cv2.IMREAD_COLOR)
    if image is None:
        raise ReportError(f"{source}: expected a readable figure (PNG/JPEG), found none")
    if image.shape[1] > FIGURE_WIDTH:
        height = round(image.shape[0] * FIGURE_WIDTH / image.shape[1])
        image = cv2.resize(image, (FIGURE_WIDTH, height), interpolation=cv2.INTER_AREA)
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise ReportError(f"{source}: OpenCV could not encode it as JPEG")
    write_bytes_atomic(target, buffer.tobytes())


def figure_name(spec: Input, figure: str) -> str:
    return f"{Path(spec.name).stem}-{Path(figure).stem}.jpg"


def collect(root: Path, inputs: Path) -> list[str]:
    """Copy every available source under ``root`` into ``inputs`` (checked); returns the names written."""
    written = []
    for spec in INPUTS:
        source = root / spec.source
        if spec.kind in ("rl", "grasp"):
            payload = (_rl_runs if spec.kind == "rl" else _grasp_runs)(source) if source.is_dir() else None
            if payload is None:
                continue
            text = json.dumps(payload, indent=1) + "\n"
        elif source.is_file():
            text = source.read_text(encoding="utf-8")
        else:
            continue
        staged = inputs / spec.name
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ReportError(f"{source}: expected a JSON file, found unreadable content ({exc})") from None
        CHECKS[spec.kind](data, source)
        write_text_atomic(staged, text)
        written.append(spec.name)
        if spec.kind == "rl":  # drawn from the collected JSON, so the page and its figure cannot disagree
            plot_rl(data, inputs / "figures" / RL_FIGURE)
            written.append(f"figures/{RL_FIGURE}")
        for run in data["runs"] if spec.kind == "grasp" else []:
            roc = Path(run["source"]).with_name(Path(run["source"]).stem + "_roc.png")
            if roc.is_file():
                _small_jpeg(roc, inputs / "figures" / f"{roc.stem}.jpg")
                written.append(f"figures/{roc.stem}.jpg")
        for figure in spec.figures:
            if (source.parent / figure).is_file():
                _small_jpeg(source.parent / figure, inputs / "figures" / figure_name(spec, figure))
                written.append(f"figures/{figure_name(spec, figure)}")
    return written


# --------------------------------------------------------------------------- formatting


def _num(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def _with_interval(value: Any, row: Mapping) -> str:
    """A PCK cell, with its 95 % bootstrap interval over the images when the evaluation wrote one."""
    interval = (row.get("uncertainty") or {}).get("interval")
    return _num(value) + (f" ({_num(interval[0])}-{_num(interval[1])})" if interval else "")


def _percent(fraction: Any) -> str:
    return _num(None if fraction is None else 100.0 * fraction)


def _machine(data: Mapping) -> str:
    machine = data.get("machine")
    if isinstance(machine, str):
        return machine
    if isinstance(machine, Mapping):
        parts = [f"{machine['cpu_count']}-core CPU" if machine.get("cpu_count") else "CPU"]
        if machine.get("gpu"):
            parts.append(str(machine["gpu"]))
        if machine.get("torch_threads"):
            parts.append(f"{machine['torch_threads']} torch thread(s)")
        if machine.get("device"):
            parts.append(f"device {machine['device']}")
        return ", ".join(parts)
    return "not recorded"


def _provenance(spec: Input, data: Mapping, size: str) -> str:
    date = str(data.get("date", "not recorded"))[:10]
    return (
        f"`{data.get('command', spec.written_by)}` ({date}; {_machine(data)}; {size}; input `docs/results/{spec.name}`)"
    )


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def _not_run(spec: Input) -> list[str]:
    return [f"*Not run yet* (`docs/results/{spec.name}` is absent; it comes from `{spec.written_by}`).", ""]


def _image(path: Path, page: Path, caption: str) -> list[str]:
    if not path.is_file():
        return []
    rel = Path(os.path.relpath(path.resolve(), page.resolve().parent))
    return [f"![{caption}]({rel.as_posix()})", "", f"*{caption}*", ""]


def _figure(spec: Input, figure: str, inputs: Path, page: Path, caption: str) -> list[str]:
    return _image(inputs / "figures" / figure_name(spec, figure), page, caption)


# --------------------------------------------------------------------------- sections


#: The paper's Table 2 rows (docs/DESIGN.md, "Evaluation") that have no funk counterpart (evaluate's JSON carries the others).
PAPER_TABLE2_OTHERS: Mapping[str, float] = {"MAST": 8.3, "AffordanceNet": 15.3, "ours from DINO init": 43.5}
#: Paper Table 2 row that each funk row is set beside: by method kind, and by gating for models.
PAPER_ROW = {
    "trunk": "ImageNet ResNet-50 features",
    "task": "ours, task embedding",
    "uniform": "ours, uniform gating",
    "shared": "ours, shared learned gating",
}


def _paper_pck(paper: Mapping, row: Mapping) -> str:
    key = row.get("kind") if row.get("kind") == "trunk" else (row.get("info") or {}).get("gating")
    value = paper.get(PAPER_ROW.get(str(key), ""))
    return _num(value) if value is not None else "-"


def table2_section(loaded: Mapping[str, dict | None], inputs: Path, page: Path) -> list[str]:
    evaluations = [loaded[k] for k in INPUT_BY_NAME if k.startswith("evaluate") and loaded[k]]
    title = ["## Table 2: functional correspondence (PCK@0.1, %)", ""]
    if not evaluations:
        return title + [
            "*Not run yet* (no `evaluate-*.json` in `docs/results/`; `bash scripts/make_results.sh` "
            "runs the evaluations).",
            "",
        ]
    paper = next((d["paper_table2"] for d in evaluations if isinstance(d.get("paper_table2"), dict)), {})
    columns = [
        ("evaluate-synth.json", "synthetic test: all"),
        ("evaluate-synth.json:same", "same category"),
        ("evaluate-synth.json:cross", "cross category"),
        ("evaluate-synth-heldout.json", "synthetic held-out categories"),
        ("evaluate-real-dev.json", "real photos (dev)"),
    ]
    names = list(dict.fromkeys(r["name"] for d in evaluations for r in d["methods"]))

    def cell(key: str, name: str) -> str:
        file, _, split = key.partition(":")
        data = loaded[file]
        if data is None:
            return "not run yet"
        row = next((r for r in data["methods"] if r["name"] == name), None)
        if row is None:
            return "-"
        split = {"same": "same_category", "cross": "cross_category"}.get(split, "overall")
        value = row["results"]["refined"][split]["0.1"]
        return _with_interval(value, row) if split == "overall" else _num(value)

    rows = []
    for name in names:
        row = next(r for d in evaluations for r in d["methods"] if r["name"] == name)
        rows.append([name] + [cell(k, name) for k, _ in columns] + [_paper_pck(paper, row)])
    matched = {PAPER_ROW[k] for k in PAPER_ROW}
    others = {**PAPER_TABLE2_OTHERS, **{k: v for k, v in paper.items() if k not in matched}}
    for paper_name, value in others.items():
        rows.append([f"paper only: {paper_name}"] + ["-"] * len(columns) + [_num(value)])
    lines = title + [
        "Keypoints of a reference image carried to a target image of the same task (the paper's protocol), "
        "correct within 0.1 of the image size (22.4 px at 224 x 224), sub-cell refined. The paper's column "
        "is FunKPoint's real test set with a ResNet-50 trunk: beside funk's numbers for scale, not a like-for-like "
        "comparison (funk trains on synthetic images with an EfficientNet-Lite0 trunk). In brackets, where the "
        "evaluation wrote one: the 95 % bootstrap interval over its target images (`funk_perception.intervals`).",
        "",
    ]
    lines += _table(["method"] + [c for _, c in columns] + ["paper Table 2 (FunKPoint)"], rows) + [""]
    for file in ("evaluate-synth.json", "evaluate-synth-heldout.json", "evaluate-real-dev.json"):
        data = loaded[file]
        spec = INPUT_BY_NAME[file]
        if data is None:
            lines += [f"- {file}: *not run yet* (`{spec.written_by}`)."]
            continue
        pairs = data["pairs"]
        size = (
            f"{pairs['total']:,} triplets ({pairs.get('same_category', 0):,} same-category, "
            f"{pairs.get('cross_category', 0):,} cross-category) from `{data['data']}`"
        )
        lines += [f"- {file}: {_provenance(spec, data, size)}."]
    lines += [""]
    lines += ablation_section(loaded, inputs, page)
    lines += detect_section(loaded)
    figures = [
        (
            "evaluate-synth.json",
            "qualitative.png",
            "Figure 4-style: keypoint transfer on the synthetic test split "
            "(reference left, prediction and ground truth on the target)",
        ),
        (
            "evaluate-synth.json",
            "dense.png",
            "Figure 5-style: dense correspondence, the model beside trunk-only "
            "features (colours follow reference position)",
        ),
        (
            "evaluate-synth-heldout.json",
            "qualitative.png",
            "Keypoint transfer onto held-out categories never trained on",
        ),
        ("evaluate-real-dev.json", "qualitative.png", "Keypoint transfer on real photos (dev set; small copy)"),
        ("evaluate-real-dev.json", "dense.png", "Dense correspondence on real photos (dev set; small copy)"),
    ]
    shown = [
        line
        for file, figure, caption in figures
        for line in _figure(INPUT_BY_NAME[file], figure, inputs, page, caption)
    ]
    return (
        lines
        + ["### Figures (paper Figures 4 and 5)", ""]
        + (shown or ["*Not run yet* (no evaluation figures in `docs/results/figures/`).", ""])
    )


def ablation_section(loaded: Mapping[str, dict | None], inputs: Path, page: Path) -> list[str]:
    spec = INPUT_BY_NAME["gating-ablation.json"]
    data = loaded[spec.name]
    lines = ["### Gating ablation over training seeds (paper Table 2's three model rows)", ""]
    if data is None:
        return lines + _not_run(spec)
    evaluations = data["evaluations"]

    def cell(entry: Mapping | None) -> str:
        if entry is None:
            return "not run"
        seeds = ", ".join(_num(v) for v in entry["seeds"].values())
        spread = f" +- {_num(entry['std'])}" if entry.get("std") is not None else ""
        return f"{_num(entry['mean'])}{spread} ({seeds})"

    gatings = list(dict.fromkeys([*data["paper"], *(g for e in evaluations for g in e["gating"])]))
    rows = [
        [gating] + [cell(e["gating"].get(gating)) for e in evaluations] + [_num(data["paper"].get(gating))]
        for gating in gatings
    ]
    lines += [
        f"{data['metric']}: mean +- standard deviation over training seeds, each seed in brackets. "
        "Checkpoints trained with the shipped recipe (generator 1.2.0 data); the sampling standard error of "
        "each column is about " + ", ".join(_num(e.get("sampling_se")) for e in evaluations) + " points.",
        "",
    ]
    lines += _table(["gating"] + [e["label"] for e in evaluations] + ["paper (FunKPoint)"], rows) + [""]
    lines += [f"- {e['label']}: `{e['command']}` ({str(e['date'])[:10]})" for e in evaluations]
    lines += [f"- summarised by `{spec.written_by}`, input `docs/results/{spec.name}`.", ""]
    return lines + _figure(
        spec, "ablation.png", inputs, page, "Gating ablation: bars are seed means, dots single seeds"
    )


def detect_section(loaded: Mapping[str, dict | None]) -> list[str]:
    files = [
        f
        for f in ("evaluate-synth.json", "evaluate-synth-heldout.json", "evaluate-real-dev.json")
        if loaded[f] and loaded[f].get("detect")
    ]
    if not files:
        return [
            "### Reference-free detect",
            "",
            "*Not run yet* (no evaluate file here has a `detect` section; "
            "`python -m funk_perception.evaluate` writes one).",
            "",
        ]
    names = list(dict.fromkeys(r["name"] for f in files for r in loaded[f]["detect"]["rows"]))
    rows = []
    for name in names:
        cells = [name]
        for f in files:
            row = next((r for r in loaded[f]["detect"]["rows"] if r["name"] == name), None)
            conf = (row or {}).get("results", {}).get("confidence") or {}
            cells += (
                ["-", "-"]
                if row is None
                else [_with_interval(row["results"]["overall"]["0.1"], row), _num(conf.get("auc"), 2) if conf else "-"]
            )
        rows.append(cells)
    header = ["method"] + [h for f in files for h in (f"{f}: PCK@0.1", "confidence AUC")]
    sizes = ", ".join(f"{loaded[f]['detect'].get('targets', '?')} target rows in {f}" for f in files)
    return (
        [
            "### Reference-free detect",
            "",
            "What `FunctionalKeypointDetector.detect` and the ROS node publish: keypoints with no reference image. "
            "Confidence AUC: ROC AUC of the confidence for a hit (within 0.1) against a miss (0.5 = uninformative). "
            "In brackets, where written: the PCK's 95 % bootstrap interval over the target images. "
            f"Same runs as above ({sizes}).",
            "",
        ]
        + _table(header, rows)
        + [""]
    )


def fewshot_section(loaded: Mapping[str, dict | None], inputs: Path, page: Path) -> list[str]:
    lines = ["## Table 3: few-shot classification (accuracy, %)", ""]
    for file, title in (
        ("fewshot-synth-heldout.json", "Synthetic held-out categories (never trained on)"),
        (
            "fewshot-real-dev.json",
            "Real photos (dev set): a sanity check of size, on categories the model was trained on",
        ),
    ):
        spec = INPUT_BY_NAME[file]
        data = loaded[file]
        lines += [f"### {title}", ""]
        if data is None:
            lines += _not_run(spec)
            continue
        shots = [str(k) for k in data["shots"]]
        rows = [
            [r["name"]]
            + [
                f"{r['results'][k]['accuracy_mean']:.1f} ± {r['results'][k]['accuracy_std']:.1f}"
                if k in r["results"]
                else "-"
                for k in shots
            ]
            for r in data["methods"]
        ]
        if not any(r.get("kind") == "finetuned" for r in data["methods"]):
            rows.insert(1, ["trunk fine-tuned on the 20 training categories"] + ["not run yet"] * len(shots))
        counts = data.get("images_per_class", {})
        seen = data.get("classes_seen_in_training") or []
        if not seen:  # the paper's Table 3 is on categories outside training: set beside those only
            rows += [
                [f"paper Table 3: {name}"] + [_num(v.get(k), 2) for k in shots]
                for name, v in (data.get("paper_table3") or {}).items()
            ]
        size = (
            f"{len(data['classes'])} classes, {sum(counts.values())} distinct images "
            f"({min(counts.values())}-{max(counts.values())} per class), {data.get('splits_per_shot')} splits per "
            "shot count"
            if counts
            else f"{len(data['classes'])} classes"
        )
        lines += _table(["method"] + [f"{k}-shot" for k in shots], rows) + [""]
        lines += [
            f"Mean ± standard deviation over random class-balanced splits; chance is "
            f"{100.0 / len(data['classes']):.1f} %. Classifier: {data.get('classifier', 'linear')}. "
            f"From {_provenance(spec, data, size)}."
        ]
        if data.get("dropped_classes"):
            lines += [
                "Left out for too few distinct photos: "
                + ", ".join(f"{c} ({n})" for c, n in data["dropped_classes"].items())
                + "."
            ]
        if data.get("duplicates_removed"):
            lines += [
                f"{data['duplicates_removed']} image files were copies (or mirror images) of another photo "
                "and count once."
            ]
        if seen:
            lines += [
                f"These categories ({', '.join(seen)}) are among the 20 the funk model and the fine-tuned trunk "
                "were trained on (synthetic renders of them), unlike the held-out categories above: this "
                "table does not test generalisation to new categories."
            ]
        lines += [""]
        lines += _figure(
            spec, "fewshot.png", inputs, page, f"Accuracy against training images per class: {title.lower()}"
        )
    return lines


def grasp_section(loaded: Mapping[str, dict | None], inputs: Path, page: Path) -> list[str]:
    spec = INPUT_BY_NAME["grasp.json"]
    data = loaded["grasp.json"]
    lines = ["## Table 4: grasp success prediction", ""]
    if data is None:
        return lines + _not_run(spec)
    for run in data["runs"]:
        lines += grasp_table(spec, run, inputs, page)
    return lines


def grasp_table(spec: Input, data: Mapping, inputs: Path, page: Path) -> list[str]:
    """One funk_grasp.benchmark output: rows x test splits, accuracy and ROC AUC, beside the paper's accuracy."""
    lines = [f"### `{Path(data['source']).name}`", ""]
    splits = list(dict.fromkeys(s for r in data["rows"].values() for s in r))
    names = {
        "trunk": "trunk only (ImageNet)",
        "trunk_categories": "trunk fine-tuned on the 20 categories",
        "funk": "funk features",
    }
    rows = []
    for key, per_split in data["rows"].items():
        kind, _, mode = key.partition("/")
        cells = [f"{names.get(kind, kind)} ({mode or 'head'})"]
        for s in splits:
            entry = per_split.get(s)
            # funk_grasp writes accuracy as a fraction
            cells += (
                ["-", "-"]
                if entry is None
                else [
                    f"{_percent(entry['accuracy']['mean'])} ± {_percent(entry['accuracy'].get('std'))}",
                    f"{_num(entry['auc']['mean'], 3)} ± {_num(entry['auc'].get('std'), 3)}",
                ]
            )
        cells.append(_num((data.get("paper_accuracy") or {}).get(kind), 2))
        rows.append(cells)
    header = ["row"] + [h for s in splits for h in (f"{s} accuracy (%)", f"{s} ROC AUC")] + ["paper Table 4 accuracy"]
    counts = data.get("counts") or {}
    size = ", ".join(f"{name} {c.get('count')}" for name, c in counts.items()) or "size not recorded"
    lines += _table(header, rows) + [""]
    lines += [
        f"Mean ± standard deviation over seeds {data.get('seeds', '?')}; data: {data.get('data_kind', data['data'])}. "
        f"The paper's accuracies are on the Pinto-Gupta robot data with a ResNet-50 trunk. "
        f"From {_provenance(spec, data, size)}.",
        "",
    ]
    roc = inputs / "figures" / f"{Path(data['source']).stem}_roc.jpg"
    return lines + _image(
        roc, page, f"ROC curves of grasp success prediction, {Path(data['source']).name} (first seed)"
    )


def _demo_means(result: Mapping) -> dict[int, tuple[float, float]]:
    """Per number of demonstrations: mean success (%) over seeds after BC and after BC + DAgger."""
    episodes = result["eval_episodes"]
    out = {}
    for n in sorted({c["demos"] for c in result["cells"]}):
        cells = [c for c in result["cells"] if c["demos"] == n]
        out[n] = (
            100 * sum(c["bc_successes"] for c in cells) / (len(cells) * episodes),
            100 * sum(c["dagger_successes"] for c in cells) / (len(cells) * episodes),
        )
    return out


def plot_rl(data: Mapping, path: Path) -> None:
    """Figure 6 at CPU scale: success against demonstrations (BC, BC + DAgger) and against PPO steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    colours: dict[str, str] = {}
    for result in data.get("demos", []):
        colour = colours.setdefault(result["encoder"], f"C{len(colours)}")
        means = _demo_means(result)
        counts = list(means)
        axes[0].plot(counts, [means[n][0] for n in counts], "o--", color=colour, alpha=0.6)
        axes[0].plot(counts, [means[n][1] for n in counts], "o-", color=colour, label=result["encoder"])
    axes[0].set_xscale("log")
    axes[0].set_xlabel("expert demonstrations (dashed: BC; solid: BC + 1 DAgger iteration)")
    axes[0].set_ylabel("success rate (%), mean of seeds")
    axes[0].set_title("demonstration efficiency")
    for run in data["runs"]:
        colour = colours.setdefault(run["encoder"], f"C{len(colours)}")
        axes[1].plot(
            run["steps"],
            run["success_rate"],
            marker="o",
            markersize=3,
            color=colour,
            lw=1,
            label=f"{run['encoder']} s{run['seed']}",
        )
    axes[1].set_xlabel("environment steps of PPO with the BC term")
    axes[1].set_title("sample efficiency")
    for ax in axes:
        ax.set_ylim(-3, 103)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure_atomic(fig, path, dpi=100)


def rl_section(loaded: Mapping[str, dict | None], inputs: Path, page: Path) -> list[str]:
    spec = INPUT_BY_NAME["rl.json"]
    data = loaded["rl.json"]
    lines = ["## Figure 6 at CPU scale: ADROIT hammering from frozen features", ""]
    if data is None:
        return lines + _not_run(spec)
    rows = []
    for result in data.get("demos", []):
        for n, (bc, dagger) in _demo_means(result).items():
            seeds = sorted({c["seed"] for c in result["cells"] if c["demos"] == n})
            rows.append(
                [result["encoder"], str(n), _num(bc), _num(dagger), str(len(seeds)), str(result["eval_episodes"])]
            )
    if rows:
        lines += _table(
            ["encoder", "demonstrations", "BC success (%)", "BC + DAgger success (%)", "seeds", "episodes per seed"],
            rows,
        ) + [""]
    runs = [
        [
            f"`{Path(r['folder']).name}`",
            r["encoder"],
            str(r.get("seed", "-")),
            str(r.get("demonstrations", "-")),
            f"{r['steps'][-1]:,}",
            f"{r['planned_steps']:,}" if isinstance(r.get("planned_steps"), int) else "-",
            _num(r["success_rate"][0]),
            _num(r["success_rate"][-1]),
            f"{r['final_successes']} / {r['final_episodes']}" if r.get("finished") else "running",
            str(r.get("date", ""))[:10],
        ]
        for r in data["runs"]
    ]
    if runs:
        lines += _table(
            [
                "run",
                "encoder",
                "seed",
                "demonstrations",
                "steps so far",
                "planned steps",
                "success at 0 (%)",
                "last success (%)",
                "final evaluation",
                "date",
            ],
            runs,
        ) + [""]
    lines += [
        f"Success rule: {data.get('success_rule', 'see funk_rl')}. docs/RL.md says what was run and what it "
        "shows. The paper (RRL's protocol, ResNet features, DAPG) reports curves up to 4M samples; these are "
        f"CPU-sized. From `{data.get('command')}`, under `{data.get('source')}`; input "
        f"`docs/results/{spec.name}`.",
        "",
    ]
    return lines + _image(
        inputs / "figures" / RL_FIGURE, page, "Hammer success against demonstrations and against PPO steps, per encoder"
    )


# --------------------------------------------------------------------------- the page


def checkpoints_used(loaded: Mapping[str, dict | None]) -> dict[str, dict[str, str]]:
    """Per input: checkpoint path -> sha256, as its methods record them."""
    used: dict[str, dict[str, str]] = {}
    for name, data in loaded.items():
        methods = (data or {}).get("methods")
        for row in methods if isinstance(methods, list) else []:
            info = row.get("info") if isinstance(row, dict) else None
            if isinstance(info, dict) and info.get("checkpoint") and info.get("checkpoint_sha256"):
                used.setdefault(name, {})[str(info["checkpoint"])] = str(info["checkpoint_sha256"])
    return used


def mixed_checkpoints(used: Mapping[str, Mapping[str, str]]) -> list[str]:
    """A warning line for every checkpoint path that different inputs read with different contents."""
    seen: dict[str, set[str]] = {}
    for per_file in used.values():
        for path, digest in per_file.items():
            seen.setdefault(path, set()).add(digest)
    return [
        f"**Warning:** `{path}` had {len(digests)} different contents across these inputs (a checkpoint was "
        "replaced between runs); rerun `bash scripts/make_results.sh`."
        for path, digests in seen.items()
        if len(digests) > 1
    ] + [""]


def build_page(inputs: Path = DEFAULT_INPUTS, out: Path = DEFAULT_OUT) -> str:
    """Read and check every input in ``inputs``, write the page to ``out``; returns its text."""
    loaded = {spec.name: read_input(inputs, spec) for spec in INPUTS}
    lines = [
        "# funk results beside the paper",
        "",
        "Generated by `python scripts/report.py` from the files in `docs/results/`; do not edit by hand. "
        "To rerun every experiment with the current checkpoint and rebuild this page: `bash scripts/make_results.sh`. "
        "Each table names the command, date, machine and data size behind it. The paper's numbers are on real "
        "FunKPoint photographs with a ResNet-50 trunk; funk trains on synthetic renders with an ImageNet "
        "EfficientNet-Lite0 trunk, so the paper's columns give scale, not a like-for-like comparison.",
        "",
    ]
    lines += table2_section(loaded, inputs, out)
    lines += fewshot_section(loaded, inputs, out)
    lines += grasp_section(loaded, inputs, out)
    lines += rl_section(loaded, inputs, out)
    used = checkpoints_used(loaded)
    rows = [
        [
            f"`{s.name}`",
            "yes" if loaded[s.name] is not None else "not run yet",
            f"`{s.source}`",
            f"`{s.written_by}`",
            ", ".join(f"`{Path(c).name}` {h[:12]}" for c, h in used.get(s.name, {}).items()) or "-",
        ]
        for s in INPUTS
    ]
    lines += (
        ["## Inputs", "", "`python scripts/report.py --collect` copies each source into `docs/results/`.", ""]
        + _table(["file", "present", "collected from", "written by", "checkpoints (sha256)"], rows)
        + [""]
    )
    lines += mixed_checkpoints(used)
    text = "\n".join(lines)
    write_text_atomic(out, text)
    return text


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python scripts/report.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--inputs", type=Path, default=DEFAULT_INPUTS, help="folder of the result JSON files")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the page to write")
    p.add_argument(
        "--collect",
        action="store_true",
        help="first copy the latest outputs (results/, benchmarks/results/, runs/hammer/) into --inputs",
    )
    p.add_argument("--root", type=Path, default=Path("."), help="repository root the sources are relative to")
    return p


@command
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.collect:
        for name in collect(args.root, args.inputs):
            print(f"collected {args.inputs / name}")
    build_page(args.inputs, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
