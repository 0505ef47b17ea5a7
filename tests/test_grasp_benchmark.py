"""The benchmark, predict and preview entry points end to end on the Pinto-Gupta layout fixture."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from funk_grasp import predict, preview
from funk_grasp.benchmark import PAPER_ACCURACY, BenchmarkConfig, run_benchmark
from funk_grasp.data import read_split
from funk_grasp.generate import main as generate_main

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).parent / "fixtures" / "grasp_pinto"
ENCODER = ROOT / "models" / "funk-lite0-synth.pt"


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("grasp_bench")
    config = BenchmarkConfig(
        data=FIXTURE,
        out=tmp / "out",
        runs=tmp / "runs",
        encoder=ENCODER,
        rows=("trunk", "funk"),
        seeds=(0, 1),
        head_epochs=4,
        measure_pooling=False,
        pooling="mean",
        task_set="lift_something",
        device="cpu",
    )
    return tmp, run_benchmark(config)


def test_benchmark_rows_seeds_and_outputs(bench):
    tmp, result = bench
    assert set(result["rows"]) == {"trunk/head", "funk/head"}
    for row in result["rows"].values():
        assert set(row) == {"Test"}  # the real layout has no held-out-category split
        for metric in ("accuracy", "auc"):
            summary = row["Test"][metric]
            assert len(summary["values"]) == 2
            assert 0.0 <= summary["mean"] <= 1.0
            assert summary["std"] == pytest.approx(np.std(summary["values"]))
    assert result["data_kind"] == "Pinto-Gupta layout"
    saved = json.loads((tmp / "out" / "grasp.json").read_text())
    assert saved["rows"] == result["rows"]
    table = (tmp / "out" / "grasp.md").read_text()
    assert f"{PAPER_ACCURACY['funk']:.2f}" in table and "funk features" in table
    roc = cv2.imread(str(tmp / "out" / "grasp_roc.png"))
    assert roc is not None and roc.shape[0] > 100


def test_predict_ranks_grasps_over_positions_and_angles(bench, tmp_path, capsys):
    tmp, _ = bench
    model = tmp / "runs" / "rows" / "funk-head-seed0" / "best.pt"
    tiles = [cv2.imread(str(p.path)) for p in read_split(FIXTURE / "Test")[:4]]
    tiles = [cv2.resize(t, (128, 128)) for t in tiles]
    image = np.vstack([np.hstack(tiles[:2]), np.hstack(tiles[2:4])])
    cv2.imwrite(str(tmp_path / "scene.png"), image)
    mask = np.zeros(image.shape[:2], np.uint8)
    mask[64:192, 64:192] = 255
    cv2.imwrite(str(tmp_path / "mask.png"), mask)
    out = tmp_path / "ranked.png"
    rc = predict.main(
        [
            str(tmp_path / "scene.png"),
            "--model",
            str(model),
            "--mask",
            str(tmp_path / "mask.png"),
            "--step",
            "32",
            "--top",
            "4",
            "--out",
            str(out),
            "--device",
            "cpu",
        ]
    )
    assert rc == 0
    grasps = json.loads(out.with_suffix(".json").read_text())["grasps"]
    assert len(grasps) == 4
    probs = [g["probability"] for g in grasps]
    assert probs == sorted(probs, reverse=True)
    assert all(64 <= g["x"] < 192 and 64 <= g["y"] < 192 for g in grasps)  # only on the mask
    assert all(0 <= g["angle_bin"] < 18 for g in grasps)
    assert cv2.imread(str(out)).shape == image.shape
    rc = predict.main(
        [
            str(tmp_path / "scene.png"),
            "--model",
            str(model),
            "--mask",
            str(tmp_path / "mask.png"),
            "--step",
            "32",
            "--top",
            "4",
            "--one-per-position",
            "--out",
            str(out),
            "--device",
            "cpu",
        ]
    )
    spread = json.loads(out.with_suffix(".json").read_text())["grasps"]
    assert rc == 0 and len({(g["x"], g["y"]) for g in spread}) == 4
    assert spread[0]["probability"] == pytest.approx(probs[0])


def test_clis_end_bad_input_with_one_error_line(tmp_path, capsys):
    assert predict.main([str(tmp_path / "nope.png"), "--model", str(tmp_path / "m.pt")]) == 2
    assert "error:" in capsys.readouterr().err
    assert preview.main(["--data", str(tmp_path / "missing"), "--out", str(tmp_path / "s.png")]) == 2
    assert "split folder not found" in capsys.readouterr().err
    assert generate_main(["--out", str(tmp_path / "g"), "--attempts", "0"]) == 2
    assert "--attempts: expected >= 1" in capsys.readouterr().err


def test_preview_sheet(tmp_path):
    out = tmp_path / "sheet.png"
    assert preview.main(["--data", str(FIXTURE / "Train"), "--out", str(out), "--count", "8", "--columns", "4"]) == 0
    sheet = cv2.imread(str(out))
    assert sheet.shape == (2 * 128, 4 * 128, 3)
