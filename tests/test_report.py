"""The results page: built from fixture JSON, "not run yet" for absent inputs, clear errors for bad ones."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import report

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "report"


@pytest.fixture
def inputs(tmp_path) -> Path:
    folder = tmp_path / "docs" / "results"
    shutil.copytree(FIXTURES, folder)
    return folder


def test_page_from_fixtures(inputs):
    page = inputs.parent / "RESULTS.md"
    text = report.build_page(inputs, page)
    assert page.read_text() == text
    fewshot = json.loads((inputs / "fewshot-synth-heldout.json").read_text())
    funk = fewshot["methods"][-1]["results"]
    # numbers come from the JSON, formatted mean ± std over splits, beside the paper's Table 3
    expected = " | ".join(f"{funk[k]['accuracy_mean']:.1f} ± {funk[k]['accuracy_std']:.1f}" for k in ("1", "2", "5"))
    assert f"| {fewshot['methods'][-1]['name']} | {expected} |" in text
    assert "| paper Table 3: ours (task-driven modular network) | 47.46 | 55.68 | 56.32 |" in text
    # the fixture has no fine-tuned-trunk row: its place in the table says so
    assert "| trunk fine-tuned on the 20 training categories | not run yet | not run yet | not run yet |" in text
    evaluate = json.loads((inputs / "evaluate-synth.json").read_text())
    model = next(m for m in evaluate["methods"] if m["kind"] == "model")
    overall = model["results"]["refined"]
    assert (
        f"| {model['name']} | {overall['overall']['0.1']:.1f} | {overall['same_category']['0.1']:.1f} | "
        f"{overall['cross_category']['0.1']:.1f} | not run yet | not run yet | 58.4 |"
    ) in text
    assert "| paper only: second human annotator | - | - | - | - | - | 82.5 |" in text
    assert "detect by bank" in text and "confidence AUC" in text
    # the grasp fractions are shown in percent, with the paper's accuracy
    assert "| funk features (head) | 74.0 ± 2.0 | 0.810 ± 0.010 | 89.85 |" in text
    assert "| `imagenet-s0` | imagenet | 0 | 1 | 10,000 | 20,000 | 0.0 | 5.0 | running |" in text
    assert "| `funk-s0` | funk | 0 | 1 | 20,000 | 20,000 | 0.0 | 30.0 | 15 / 50 |" in text
    assert "| funk | 3 | 75.0 | 95.0 | 2 | 20 |" in text  # demonstrations: means over seeds, BC then DAgger
    # absent optional inputs are named as not run yet, with the job that writes them
    assert "*Not run yet* (`docs/results/fewshot-real-dev.json` is absent" in text
    assert "evaluate-real-dev.json: *not run yet*" in text
    for line in text.splitlines():  # every table row has as many cells as its header
        if line.startswith("|"):
            assert line.count("|") >= 3
    assert report.build_page(inputs, page) == text  # the same inputs give the same page


@pytest.mark.parametrize(
    "name, damage, message",
    [
        ("evaluate-synth.json", lambda d: "{not json", r"evaluate-synth.json: expected a JSON file"),
        (
            "evaluate-synth.json",
            lambda d: {**d, "methods": [{"name": "x", "results": {}}]},
            r"evaluate-synth.json: field 'methods/0/results/refined/overall/0.1': expected it to exist",
        ),
        (
            "fewshot-synth-heldout.json",
            lambda d: {**d, "kind": "grasp"},
            r"fewshot-synth-heldout.json: field 'kind': expected 'fewshot', found 'grasp'",
        ),
        (
            "grasp.json",
            lambda d: {"runs": [{**d["runs"][0], "rows": {"funk/head": {"Test": {"accuracy": {"mean": "high"}}}}}]},
            r"grasp.json: field 'runs/0/rows/funk/head/Test/accuracy/mean': expected int or float or NoneType, found str",
        ),
        (
            "rl.json",
            lambda d: {**d, "runs": [{**d["runs"][0], "success_rate": [1.0]}]},
            r"rl.json: runs\[0\]: expected as many success rates as steps",
        ),
    ],
)
def test_malformed_file_is_named(inputs, capsys, name, damage, message):
    path = inputs / name
    damaged = damage(json.loads(path.read_text()))
    path.write_text(damaged if isinstance(damaged, str) else json.dumps(damaged))
    assert report.main(["--inputs", str(inputs), "--out", str(inputs.parent / "RESULTS.md")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}") and err.count("\n") == 2
    assert re.search(message, err), err
    assert not (inputs.parent / "RESULTS.md").exists()


def test_missing_files(inputs, capsys):
    (inputs / "evaluate-synth.json").unlink()  # optional: its table says not run yet
    text = report.build_page(inputs, inputs.parent / "P.md")
    assert "## Table 2: functional correspondence (PCK@0.1, %)\n\n*Not run yet*" in text
    (inputs / "fewshot-synth-heldout.json").unlink()
    assert report.main(["--inputs", str(inputs), "--out", str(inputs.parent / "RESULTS.md")]) == 2
    err = capsys.readouterr().err
    assert "fewshot-synth-heldout.json: required results file not found" in err
    assert "python scripts/fewshot.py" in err and "scripts/make_results.sh" in err


def test_collect_copies_results_and_shrinks_figures(tmp_path):
    root = tmp_path / "repo"
    eval_dir = root / "results" / "eval-synth"
    eval_dir.mkdir(parents=True)
    shutil.copy(FIXTURES / "evaluate-synth.json", eval_dir / "results.json")
    wide = np.random.default_rng(0).integers(0, 255, (600, 2000, 3), dtype=np.uint8)
    cv2.imwrite(str(eval_dir / "qualitative.png"), wide)
    fewshot_dir = root / "results" / "fewshot-synth-heldout"
    fewshot_dir.mkdir(parents=True)
    shutil.copy(FIXTURES / "fewshot-synth-heldout.json", fewshot_dir / "fewshot.json")
    run = root / "runs" / "fig6" / "rl" / "funk-s0"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"encoder": "funk", "seed": 0, "rl_steps": 4000, "demo_episodes": 1}))
    (run / "eval.csv").write_text("steps,success_rate,return_mean\n0,0.0,-250\n2000,0.25,-100\n")
    (root / "runs" / "fig6" / "demos").mkdir()
    (root / "runs" / "fig6" / "demos" / "state.json").write_text(
        json.dumps(
            {
                "encoder": "state",
                "eval_episodes": 10,
                "cells": [
                    {"demos": 1, "seed": 0, "bc_successes": 3, "dagger_successes": 9},
                    {"demos": 1, "seed": 1, "bc_successes": 5, "dagger_successes": 10},
                ],
            }
        )
    )
    bench = root / "benchmarks" / "results"
    bench.mkdir(parents=True)
    grasp = json.loads((FIXTURES / "grasp.json").read_text())["runs"][0]
    (bench / "grasp_fixed.json").write_text(json.dumps({k: v for k, v in grasp.items() if k != "source"}))
    (bench / "grasp_sim.json").write_text(json.dumps({"attempts_per_second": 10.0}))  # another job's: skipped
    inputs = root / "docs" / "results"

    written = report.collect(root, inputs)
    assert written == [
        "evaluate-synth.json",
        "figures/evaluate-synth-qualitative.jpg",
        "fewshot-synth-heldout.json",
        "grasp.json",
        "rl.json",
        "figures/rl-curve.png",
    ]
    collected = json.loads((inputs / "grasp.json").read_text())["runs"]
    assert [r["source"] for r in collected] == [str(bench / "grasp_fixed.json")]
    assert (inputs / "evaluate-synth.json").read_bytes() == (eval_dir / "results.json").read_bytes()
    small = cv2.imread(str(inputs / "figures" / "evaluate-synth-qualitative.jpg"))
    assert small.shape == (192, report.FIGURE_WIDTH, 3)
    rl = json.loads((inputs / "rl.json").read_text())
    assert rl["runs"][0]["steps"] == [0, 2000] and rl["runs"][0]["success_rate"] == [0.0, 25.0]
    assert rl["runs"][0]["finished"] is False

    text = report.build_page(inputs, root / "docs" / "RESULTS.md")
    assert "![Figure 4-style: keypoint transfer" in text and "](results/figures/evaluate-synth-qualitative.jpg)" in text
    assert "](results/figures/rl-curve.png)" in text
    assert "| `funk-s0` | funk | 0 | 1 | 2,000 | 4,000 | 0.0 | 25.0 | running |" in text
    assert "| state | 1 | 40.0 | 95.0 | 2 | 10 |" in text
    assert "### `grasp_fixed.json`" in text and "| funk features (head) | 74.0 ± 2.0 |" in text

    (eval_dir / "results.json").write_text('{"command": 1}')
    with pytest.raises(report.ReportError, match=r"results/eval-synth/results.json: field 'command': expected str"):
        report.collect(root, inputs)


def test_page_warns_when_inputs_used_different_checkpoint_contents(inputs):
    path = inputs / "fewshot-synth-heldout.json"
    data = json.loads(path.read_text())
    model = data["methods"][-1]["info"]
    text = report.build_page(inputs, inputs.parent / "RESULTS.md")
    assert f"`{Path(model['checkpoint']).name}` {model['checkpoint_sha256'][:12]}" in text
    assert "**Warning:**" not in text
    evaluate = json.loads((inputs / "evaluate-synth.json").read_text())
    row = next(m for m in evaluate["methods"] if m["kind"] == "model")
    row["info"].update(checkpoint=model["checkpoint"], checkpoint_sha256="0" * 64)
    (inputs / "evaluate-synth.json").write_text(json.dumps(evaluate))
    text = report.build_page(inputs, inputs.parent / "RESULTS.md")
    assert f"**Warning:** `{model['checkpoint']}` had 2 different contents" in text


def test_gating_ablation_section(inputs):
    text = report.build_page(inputs, inputs.parent / "RESULTS.md")
    section = text.split("### Gating ablation over training seeds")[1].split("\n## ")[0]
    # one seed: no spread, the seed's value in brackets, the paper's row beside it
    assert "| task | 40.8 (40.8) | 58.4 |" in section
    assert "| shared | 36.4 (36.4) | 52.5 |" in section
    assert "sampling standard error of each column is about 1.5 points" in section
    (inputs / "gating-ablation.json").unlink()
    text = report.build_page(inputs, inputs.parent / "RESULTS.md")
    assert "*Not run yet* (`docs/results/gating-ablation.json` is absent" in text


def test_malformed_gating_ablation_is_named(inputs, capsys):
    path = inputs / "gating-ablation.json"
    data = json.loads(path.read_text())
    data["evaluations"][0]["gating"]["task"]["mean"] = "high"
    path.write_text(json.dumps(data))
    assert report.main(["--inputs", str(inputs), "--out", str(inputs.parent / "RESULTS.md")]) == 2
    assert (
        "gating-ablation.json: field 'evaluations/0/gating/task/mean': expected int or float" in capsys.readouterr().err
    )


def test_intervals_are_shown_where_the_evaluation_wrote_them(inputs):
    path = inputs / "evaluate-synth.json"
    data = json.loads(path.read_text())
    model = next(m for m in data["methods"] if m["kind"] == "model")
    model["uncertainty"] = {
        "pck@0.1": model["results"]["refined"]["overall"]["0.1"],
        "interval": [40.04, 61.96],
        "images": 600,
        "level": 0.95,
    }
    path.write_text(json.dumps(data))
    text = report.build_page(inputs, inputs.parent / "RESULTS.md")
    assert f"| {model['name']} | {model['results']['refined']['overall']['0.1']:.1f} (40.0-62.0) | " in text
    prior = data["methods"][0]
    assert (
        f"| {prior['name']} | {prior['results']['refined']['overall']['0.1']:.1f} | " in text
    )  # none written: none shown
