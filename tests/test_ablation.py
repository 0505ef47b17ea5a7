"""The gating-ablation summary: grouping by gating and seed, statistics, and errors on bad input."""

from __future__ import annotations

import json
import math

import pytest
from ablation import AblationError, main, markdown, summarize


def _row(gating: str, seed: int, pck: float, data: str = "datasets/synth-v12/annotations.csv") -> dict:
    return {
        "name": f"{gating} gating (seed {seed})",
        "kind": "model",
        "info": {"gating": gating, "metadata": {"train_config": {"seed": seed, "data": data}}},
        "results": {
            "refined": {"overall": {"0.1": pck, "keypoints": 1000}},
            "argmax": {"overall": {"0.1": pck - 5, "keypoints": 1000}},
        },
    }


def _results(rows: list[dict], mirror: bool = False) -> dict:
    prior = {"name": "image-blind prior", "kind": "prior", "results": {}}
    return {
        "data": "../shared/data/funkpoint-real-dev/annotations.csv",
        "mirror": mirror,
        "command": "evaluate ...",
        "date": "2026-12-01T00:00:00+00:00",
        "methods": [prior, *rows],
    }


def test_groups_by_gating_and_seed_with_the_refined_overall_pck() -> None:
    results = _results(
        [
            _row("task", 0, 40.0),
            _row("task", 1, 42.0),
            _row("uniform", 0, 38.0),
            _row("uniform", 1, 37.0),
            _row("shared", 0, 36.0),
        ]
    )
    (evaluation,) = summarize([("dev.json", results)])["evaluations"]
    assert evaluation["label"] == "funkpoint-real-dev"
    task = evaluation["gating"]["task"]
    assert task["seeds"] == {"0": 40.0, "1": 42.0}
    assert task["mean"] == pytest.approx(41.0)
    assert task["std"] == pytest.approx(math.sqrt(2.0))
    assert evaluation["gating"]["shared"]["std"] is None  # one seed: no spread
    p = (41.0 + 37.5 + 36.0) / 300  # mean of the three gating means
    assert evaluation["sampling_se"] == pytest.approx(100 * math.sqrt(p * (1 - p) / 1000), rel=1e-3)


def test_mirrored_evaluations_get_their_own_column() -> None:
    summary = summarize(
        [("a.json", _results([_row("task", 0, 40.0)])), ("b.json", _results([_row("task", 0, 43.0)], mirror=True))]
    )
    labels = [e["label"] for e in summary["evaluations"]]
    assert labels == ["funkpoint-real-dev", "funkpoint-real-dev (mirrored)"]
    table = markdown(summary)
    assert "| task | 40.0 (40.0) | 43.0 (43.0) | 58.4 |" in table
    assert "| uniform | not run | not run | 52.8 |" in table


@pytest.mark.parametrize(
    "rows, message",
    [
        ([_row("task", 0, 40.0), _row("task", 0, 41.0)], "two checkpoints with task gating and training seed 0"),
        (
            [_row("task", 0, 40.0), _row("uniform", 0, 38.0, data="datasets/synth/annotations.csv")],
            "trained on different data",
        ),
        ([], "no checkpoint rows"),
    ],
)
def test_rejects_results_that_are_not_one_ablation(rows: list[dict], message: str) -> None:
    with pytest.raises(AblationError, match=message):
        summarize([("dev.json", _results(rows))])


def test_names_the_field_when_the_seed_is_missing() -> None:
    row = _row("task", 0, 40.0)
    del row["info"]["metadata"]["train_config"]["seed"]
    with pytest.raises(AblationError, match=r"dev.json: methods\[1\]\.info\.metadata\.train_config\.seed"):
        summarize([("dev.json", _results([row]))])


def test_cli_writes_table_json_and_figure_and_rejects_a_bad_file(tmp_path, capsys) -> None:
    good = tmp_path / "results.json"
    good.write_text(json.dumps(_results([_row("task", 0, 40.0), _row("uniform", 0, 38.0)])))
    out = tmp_path / "out"
    assert main([str(good), "--out", str(out)]) == 0
    assert json.loads((out / "ablation.json").read_text())["evaluations"][0]["gating"]["uniform"]["mean"] == 38.0
    assert (out / "ablation.md").read_text().startswith("# Gating ablation")
    assert (out / "ablation.png").read_bytes()[:4] == b"\x89PNG"
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main([str(bad), "--out", str(out)]) == 2
    assert "bad.json: not JSON" in capsys.readouterr().err


def test_seeds_evaluated_in_separate_runs_are_merged_into_one_column() -> None:
    first = _results([_row("task", 0, 40.0), _row("uniform", 0, 38.0)])
    second = {**_results([_row("task", 1, 44.0), _row("uniform", 1, 36.0)]), "command": "evaluate seed 1"}
    (evaluation,) = summarize([("s0.json", first), ("s1.json", second)])["evaluations"]
    assert evaluation["gating"]["task"]["seeds"] == {"0": 40.0, "1": 44.0}
    assert evaluation["gating"]["uniform"]["mean"] == pytest.approx(37.0)
    assert evaluation["file"] == "s0.json, s1.json" and "evaluate seed 1" in evaluation["command"]
    with pytest.raises(AblationError, match="s1.json: two checkpoints with task gating and training seed 0"):
        summarize([("s0.json", first), ("s1.json", _results([_row("task", 0, 41.0)]))])


def test_joined_checkpoints_are_identified_by_their_members_seeds() -> None:
    def joined(gating: str, pck: float, seeds=(0, 1)) -> dict:
        row = _row(gating, 0, pck)
        row["info"]["metadata"] = {"member_metadata": [{"train_config": {"seed": s, "data": "d.csv"}} for s in seeds]}
        return row

    (evaluation,) = summarize([("dev.json", _results([joined("task", 50.0), joined("uniform", 48.0)]))])["evaluations"]
    assert evaluation["gating"]["task"]["seeds"] == {"0+1": 50.0} and evaluation["trained_on"] == "d.csv"
    assert evaluation["gating"]["uniform"]["std"] is None
    broken = joined("task", 50.0)
    del broken["info"]["metadata"]["member_metadata"][1]["train_config"]["seed"]
    with pytest.raises(AblationError, match=r"member_metadata\[\]\.train_config\.seed"):
        summarize([("dev.json", _results([broken]))])
