"""Training end to end on the CPU: a few hundred steps per encoder, state expert -> demos -> BC warm start,
resume after a kill, the demonstrations reader's errors, the plot."""

from __future__ import annotations

import csv
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from funk_rl.demos import load_demos, main as demos_main, record_demos, save_demos
from funk_rl.envs import HammerConfig
from funk_rl.plot import plot_runs
from funk_rl.train_hammer import TrainConfig, main as train_main, train

ROOT = Path(__file__).resolve().parents[1]
SIZE = 64


def _config(tmp: Path, encoder: str, **overrides: object) -> TrainConfig:
    values = dict(encoder=encoder, n_envs=2, steps=128, seed=0, out=str(tmp / encoder), image_size=SIZE,
                  eval_every=128, eval_episodes=1, eval_envs=1, checkpoint_every=64, n_steps=64, batch_size=64,
                  n_epochs=2, device="cpu", precision="fp32")
    values.update(overrides)
    return TrainConfig(**values)  # type: ignore[arg-type]


def _eval_rows(run: Path) -> list[dict[str, str]]:
    with open(run / "eval.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def expert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("rl")
    summary = train(_config(tmp, "state"))
    assert summary["steps"] == 128 and 0.0 <= summary["success_rate"] <= 1.0
    return tmp / "state"


def test_state_run_writes_logs_checkpoints_and_summary(expert: Path) -> None:
    for name in ("config.json", "eval.csv", "progress.csv", "checkpoint.zip", "final.zip", "state.json",
                 "summary.json", "train.log", "vecnormalize.pkl"):
        assert (expert / name).is_file(), name
    rows = _eval_rows(expert)
    assert [int(r["steps"]) for r in rows] == [0, 128]
    assert float(rows[-1]["return_mean"]) < 0  # the DAPG reward is negative away from the goal
    assert json.loads((expert / "state.json").read_text())["steps"] == 128


@pytest.fixture(scope="module")
def demos(expert: Path) -> Path:
    recorded, summary = record_demos(expert / "final.zip", HammerConfig(), episodes=2, seed=5, keep="best", count=1)
    assert summary["kept"] == 1 and summary["episodes"] == 2 and len(recorded[0].actions) == 200
    path = expert.parent / "demos.pkl"
    save_demos(recorded, path)
    return path


@pytest.mark.parametrize("encoder", ["funk", "funk-keypoints", "imagenet"])
def test_visual_encoders_train_end_to_end_with_a_demo_warm_start(demos: Path, tmp_path: Path, encoder: str) -> None:
    result = train(_config(tmp_path, encoder, demos=str(demos), bc_epochs=3))
    assert result["steps"] == 128 and result["precision"] == "fp32"
    losses = [float(line.split(",")[1]) for line in (tmp_path / encoder / "bc.csv").read_text().splitlines()[1:]]
    assert len(losses) == 3 and losses[-1] < losses[0]
    log = (tmp_path / encoder / "train.log").read_text()
    drift = float(log.split("replay drift ")[1].split()[0])
    assert drift < 1e-3  # our own demos replay exactly in the same simulator
    assert [int(r["steps"]) for r in _eval_rows(tmp_path / encoder)] == [0, 128]


def test_existing_run_needs_resume(expert: Path) -> None:
    with pytest.raises(ValueError, match="--resume"):
        train(_config(expert.parent, "state"))


def test_resume_after_kill_continues_the_run(tmp_path: Path) -> None:
    out = tmp_path / "killed"
    args = ["--encoder", "state", "--n-envs", "2", "--steps", "1536", "--n-steps", "128", "--batch-size", "128",
            "--checkpoint-every", "256", "--eval-every", "512", "--eval-episodes", "1", "--eval-envs", "1",
            "--device", "cpu", "--out", str(out)]
    process = subprocess.Popen([sys.executable, "-m", "funk_rl.train_hammer", *args], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 600  # start-up is slow on a loaded 2-core machine
        while time.monotonic() < deadline and process.poll() is None:
            state = out / "state.json"
            if state.is_file() and json.loads(state.read_text())["steps"] >= 512:
                break
            time.sleep(0.2)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    killed_at = json.loads((out / "state.json").read_text())["steps"]
    assert 512 <= killed_at < 1536 and not (out / "final.zip").exists()
    assert train_main([*args, "--resume"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 1536
    steps = [int(r["steps"]) for r in _eval_rows(out)]
    assert steps == sorted(set(steps)) and steps[0] == 0 and steps[-1] == 1536
    assert (out / f"progress-from-{killed_at}.csv").is_file()


def test_demos_reader_names_the_bad_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = {"observations": np.zeros((5, 46)), "actions": np.zeros((5, 26)),
            "init_state_dict": {"qpos": np.zeros(33), "qvel": np.zeros(33), "board_pos": np.zeros(3),
                                "target_pos": np.zeros(3)}}
    path = tmp_path / "demos.pkl"
    path.write_bytes(pickle.dumps([good]))
    (demo,) = load_demos(path)
    assert demo.actions.shape == (5, 26) and set(demo.init_state) == {"qpos", "qvel", "board_pos"}
    cases = [
        ({"observations": np.zeros((5, 39)), "actions": np.zeros((5, 26))}, "field 'observations': expected shape (T, 46), found (5, 39)"),
        ({"observations": np.zeros((5, 46))}, "missing field 'actions'"),
        ({**good, "actions": np.zeros((4, 26))}, "found 5 and 4"),
        ({**good, "init_state_dict": {"qpos": np.zeros(33)}}, "missing ['board_pos', 'qvel']"),
    ]
    for item, words in cases:
        path.write_bytes(pickle.dumps([good, item]))
        with pytest.raises(ValueError) as info:
            load_demos(path)
        assert "demo 1" in str(info.value) and words in str(info.value)
    path.write_bytes(b"not a pickle")
    assert demos_main(["--expert", str(path), "--out", str(tmp_path / "x.pkl")]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_bad_cli_input_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert train_main(["--encoder", "state", "--steps", "0", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --steps: expected >= 1, found 0")


def test_plot_draws_runs_and_reference(expert: Path, tmp_path: Path) -> None:
    out = plot_runs([expert], tmp_path / "curves.png")
    assert out.stat().st_size > 10_000 and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(FileNotFoundError, match="no config.json"):
        plot_runs([tmp_path], tmp_path / "x.png")
