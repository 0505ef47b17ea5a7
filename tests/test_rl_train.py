"""train_hammer's recipe on the CPU: behaviour cloning from a few expert demonstrations hammers (state), the
policy carries its input statistics, every encoder runs end to end, PPO with the BC term, resume after a
kill, and bad input ends in one error line."""

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
from stable_baselines3 import PPO

from funk_rl.dapg import PPOWithDemos
from funk_rl.demos import load_demos, record_demos, save_demos
from funk_rl.demos import main as demos_main
from funk_rl.envs import EPISODE_STEPS, PROPRIO_DIM, STATE_DIM, HammerConfig
from funk_rl.expert import DEFAULT_EXPERT
from funk_rl.policy import observation_code
from funk_rl.train_hammer import TrainConfig, train
from funk_rl.train_hammer import main as train_main

ROOT = Path(__file__).resolve().parents[1]
SIZE = 64
#: Evaluation seeds of these tests: apart from train_hammer's training seeds and from its default EVAL_SEED.
EVAL = 7_000_000


def _config(out: Path, encoder: str, **overrides: object) -> TrainConfig:
    values = dict(
        encoder=encoder,
        out=str(out),
        image_size=SIZE,
        n_envs=2,
        demo_episodes=1,
        dagger_iterations=0,
        bc_epochs=3,
        iteration_eval_episodes=1,
        eval_episodes=1,
        eval_envs=1,
        device="cpu",
        precision="fp32",
        eval_seed=EVAL,
    )
    values.update(overrides)
    return TrainConfig(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def state_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("rl") / "state"
    # Three demonstrations, behaviour cloning only: the recipe's floor. A policy on raw observations, or
    # without the time code, got 0 of 50 from 25 demonstrations (docs/RL.md).
    train(_config(out, "state", demo_episodes=3, bc_epochs=100, eval_episodes=10, eval_envs=2))
    return out


def test_behaviour_cloning_from_three_expert_demonstrations_hammers(state_run: Path) -> None:
    result = json.loads((state_run / "eval.json").read_text())
    assert result["episodes"] == 10 and result["successes"] >= 9, result
    assert result["seeds"] == {"first": EVAL, "last": EVAL + 9}
    low, high = result["success_interval_95"]
    assert low < result["success_rate"] <= high <= 1.0
    for name in (
        "config.json",
        "data-0.npz",
        "policy-0.zip",
        "policy.zip",
        "dagger.csv",
        "state.json",
        "summary.json",
        "train.log",
    ):
        assert (state_run / name).is_file(), name


def test_policy_saves_and_restores_its_input_statistics(state_run: Path) -> None:
    data = np.load(state_run / "data-0.npz")
    obs = data["obs"]
    assert obs.shape == (3 * EPISODE_STEPS, STATE_DIM + 1)  # the state and the phase
    np.testing.assert_allclose(obs[:, -1], data["episode_step"] / EPISODE_STEPS, atol=1e-7)
    code = observation_code(PPO.load(str(state_run / "policy.zip"), device="cpu"))
    np.testing.assert_allclose(code.mean.numpy(), obs[:, :-1].mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(code.std.numpy(), np.maximum(obs[:, :-1].std(0, ddof=1), 1e-3), rtol=1e-4, atol=1e-6)
    # The standardised demonstrations have zero mean and unit spread where they vary.
    coded = code(torch.as_tensor(obs)).numpy()
    varying = obs[:, :-1].std(0) > 1e-2
    np.testing.assert_allclose(coded[:, :STATE_DIM][:, varying].mean(0), 0.0, atol=1e-4)


@pytest.mark.parametrize("encoder", ["funk", "funk-keypoints", "imagenet", "proprio"])
def test_every_encoder_runs_the_recipe_end_to_end(tmp_path: Path, encoder: str) -> None:
    out = tmp_path / encoder
    summary = train(_config(out, encoder, dagger_iterations=1, dagger_episodes=1))
    assert summary["episodes"] == 1 and summary["precision"] == "fp32"
    rows = list(csv.DictReader(open(out / "dagger.csv", newline="")))
    assert [r["iteration"] for r in rows] == ["0", "1"]
    assert [int(r["dataset_pairs"]) for r in rows] == [EPISODE_STEPS, 2 * EPISODE_STEPS]
    data = np.load(out / "data-1.npz")
    if encoder == "proprio":
        assert data["obs"].shape == (EPISODE_STEPS, PROPRIO_DIM + 1)
    else:  # features, then the 26 joint positions, then the phase: features, not frames, are stored
        assert data["obs"].shape[1] > PROPRIO_DIM + 1 and data["obs"].dtype == np.float32


def test_ppo_fine_tuning_keeps_a_decaying_behaviour_cloning_term(tmp_path: Path) -> None:
    out = tmp_path / "ppo"
    train(
        _config(
            out,
            "state",
            rl_steps=256,
            ppo_n_steps=64,
            ppo_batch_size=64,
            ppo_epochs=1,
            checkpoint_every=128,
            rl_eval_every=128,
            bc_decay=0.5,
        )
    )
    model = PPOWithDemos.load(str(out / "checkpoint.zip"), device="cpu")
    assert model.num_timesteps == 256 and model.updates == 2  # 256 steps of 2 x 64 per update
    assert model.bc_coefficient() == pytest.approx(0.25)
    progress = list(csv.DictReader(open(out / "progress.csv", newline="")))
    # SB3 writes an update's log lines at the next rollout: the first update's weight is there.
    assert [float(r["train/bc_weight"]) for r in progress if r.get("train/bc_weight")][0] == 1.0
    steps = [int(r["steps"]) for r in csv.DictReader(open(out / "eval.csv", newline=""))]
    assert steps[0] == 0 and steps[-1] == 256


def test_existing_run_needs_resume(state_run: Path) -> None:
    with pytest.raises(ValueError, match="--resume"):
        train(_config(state_run, "state"))
    with pytest.raises(ValueError, match="used --encoder state at 64 px"):
        train(_config(state_run, "proprio", resume=True))


def test_resume_after_kill_continues_after_the_last_iteration(tmp_path: Path) -> None:
    out = tmp_path / "killed"
    args = [
        "--encoder",
        "state",
        "--n-envs",
        "2",
        "--demo-episodes",
        "2",
        "--dagger-iterations",
        "3",
        "--dagger-episodes",
        "4",
        "--bc-epochs",
        "5",
        "--iteration-eval-episodes",
        "2",
        "--eval-episodes",
        "2",
        "--device",
        "cpu",
        "--eval-seed",
        str(EVAL),
        "--out",
        str(out),
    ]
    process = subprocess.Popen(
        [sys.executable, "-m", "funk_rl.train_hammer", *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        deadline = time.monotonic() + 600  # start-up is slow on a loaded 2-core machine
        while time.monotonic() < deadline and process.poll() is None:
            state = out / "state.json"
            if state.is_file() and json.loads(state.read_text())["iteration"] >= 1:
                break
            time.sleep(0.1)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    killed_at = json.loads((out / "state.json").read_text())["iteration"]
    assert 1 <= killed_at < 3 and not (out / "policy.zip").exists()
    before = list(csv.DictReader(open(out / "dagger.csv", newline="")))
    assert train_main([*args, "--resume"]) == 0
    rows = list(csv.DictReader(open(out / "dagger.csv", newline="")))
    assert [r["iteration"] for r in rows] == ["0", "1", "2", "3"]
    assert rows[: killed_at + 1] == before[: killed_at + 1]
    assert int(rows[3]["dataset_pairs"]) == 2 * EPISODE_STEPS + 3 * 4 * EPISODE_STEPS
    assert json.loads((out / "summary.json").read_text())["episodes"] == 2


def test_a_hand_dapg_demonstrations_file_still_works(tmp_path: Path) -> None:
    demos, summary = record_demos(DEFAULT_EXPERT, HammerConfig(), episodes=1, seed=11)
    assert summary["successes"] == 1
    path = tmp_path / "demos.pkl"
    save_demos(demos, path)
    out = tmp_path / "from-file"
    train(_config(out, "funk", demos=str(path)))
    data = np.load(out / "data-0.npz")
    assert len(data["obs"]) == EPISODE_STEPS
    np.testing.assert_array_equal(data["labels"], demos[0].actions.astype(np.float32))
    log = (out / "train.log").read_text()
    assert float(log.split("replay drift ")[1].split(")")[0]) < 1e-3  # our own demos replay exactly


def test_demos_reader_names_the_bad_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = {
        "observations": np.zeros((5, 46)),
        "actions": np.zeros((5, 26)),
        "init_state_dict": {
            "qpos": np.zeros(33),
            "qvel": np.zeros(33),
            "board_pos": np.zeros(3),
            "target_pos": np.zeros(3),
        },
    }
    path = tmp_path / "demos.pkl"
    path.write_bytes(pickle.dumps([good]))
    (demo,) = load_demos(path)
    assert demo.actions.shape == (5, 26) and set(demo.init_state) == {"qpos", "qvel", "board_pos"}
    cases = [
        (
            {"observations": np.zeros((5, 39)), "actions": np.zeros((5, 26))},
            "field 'observations': expected shape (T, 46), found (5, 39)",
        ),
        ({"observations": np.zeros((5, 46))}, "missing field 'actions'"),
        ({**good, "actions": np.zeros((4, 26))}, "found 5 and 4"),
        ({**good, "init_state_dict": {"qpos": np.zeros(33)}}, "missing ['board_pos', 'qvel']"),
    ]
    for item, words in cases:
        path.write_bytes(pickle.dumps([good, item]))
        with pytest.raises(ValueError) as info:
            load_demos(path)
        assert "demo 1" in str(info.value) and words in str(info.value)
    # Through the CLI: one error line naming the file, exit 2, no run folder half-written.
    out = tmp_path / "bad-demos"
    assert train_main(["--encoder", "state", "--demos", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: demo 1") and not (out / "policy-0.zip").exists()
    path.write_bytes(b"not a pickle")
    assert demos_main(["--expert", str(path), "--out", str(tmp_path / "x.pkl")]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_bad_cli_input_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert train_main(["--encoder", "state", "--eval-episodes", "0", "--out", str(tmp_path / "x")]) == 2
    assert capsys.readouterr().err.startswith("error: --eval-episodes: expected >= 1, found 0")
    not_expert = tmp_path / "expert.npz"
    np.savez(not_expert, w0=np.zeros((3, 3)))
    assert train_main(["--encoder", "state", "--expert", str(not_expert), "--out", str(tmp_path / "y")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {not_expert}: ") and not (tmp_path / "y").exists()
