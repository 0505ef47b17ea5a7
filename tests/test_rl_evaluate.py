"""python -m funk_rl.evaluate: episode i resets with seed S + i exactly, the JSON a script reads, action noise,
a video of what the policy sees (keypoints drawn for funk-keypoints), and bad input in one error line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from funk_rl.envs import EPISODE_STEPS, HammerConfig, make_hammer_env
from funk_rl.evaluate import main as evaluate_main
from funk_rl.rollouts import run_episodes
from funk_rl.train_hammer import TrainConfig, train
from funk_rl.vec_env import make_vec_env

ROOT = Path(__file__).resolve().parents[1]
SEED = 7_200_000


def _train(out: Path, encoder: str) -> Path:
    torch.set_num_threads(1)
    train(
        TrainConfig(
            encoder=encoder,
            out=str(out),
            image_size=64,
            n_envs=2,
            demo_episodes=1,
            dagger_iterations=0,
            bc_epochs=3,
            iteration_eval_episodes=1,
            eval_episodes=1,
            eval_envs=1,
            device="cpu",
            precision="fp32",
            eval_seed=SEED,
        )
    )
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("eval")
    return {name: _train(tmp / name, name) for name in ("proprio", "funk-keypoints")}


class StandStill:
    """A policy that sends zero actions: the episodes' starts are all this test looks at."""

    def predict(self, observation: np.ndarray, deterministic: bool = True) -> tuple[np.ndarray, None]:
        return np.zeros((len(observation), 26), np.float32), None


def test_episode_i_resets_with_seed_s_plus_i() -> None:
    hammer = HammerConfig()
    venv = make_vec_env(hammer, None, 2, 0, observation="state", time_feature=True)
    starts: list[np.ndarray] = []
    try:
        run = run_episodes(
            StandStill(),
            venv,
            3,
            SEED,
            EPISODE_STEPS,
            labels=False,  # type: ignore[arg-type]
            on_step=lambda obs, t: starts.append(obs.copy()) if t == 0 else None,
        )
    finally:
        venv.close()
    assert run.seeds.tolist() == [SEED, SEED + 1, SEED + 2]
    env = make_hammer_env(hammer, observation="state")
    try:
        for i in range(3):
            reference, _ = env.reset(seed=SEED + i)
            np.testing.assert_array_equal(starts[i // 2][i % 2, :-1], reference)
    finally:
        env.close()
    assert not np.array_equal(starts[0][0], starts[0][1])  # the board's height differs between seeds


def test_json_and_video_of_a_keypoints_run(runs: dict[str, Path], tmp_path: Path) -> None:
    out, video = tmp_path / "eval.json", tmp_path / "episode.mp4"
    argv = [
        str(runs["funk-keypoints"]),
        "--episodes",
        "2",
        "--seed",
        str(SEED),
        "--json",
        str(out),
        "--video",
        str(video),
        "--device",
        "cpu",
    ]
    assert evaluate_main(argv) == 0
    result = json.loads(out.read_text())
    assert result["encoder"] == "funk-keypoints" and result["episodes"] == 2
    assert result["seeds"] == {"first": SEED, "last": SEED + 1}
    assert 0 <= result["successes"] <= 2 and result["success_rate"] == result["successes"] / 2
    frames = iio.imread(video, extension=".mp4")
    assert frames.shape[0] == EPISODE_STEPS and frames.shape[1] == frames.shape[2] >= 256
    # The same evaluation again gives the same numbers: deterministic policy, exact seeds.
    again = tmp_path / "again.json"
    assert (
        evaluate_main(
            [
                str(runs["funk-keypoints"]),
                "--episodes",
                "2",
                "--seed",
                str(SEED),
                "--json",
                str(again),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert json.loads(again.read_text())["return_mean"] == result["return_mean"]


def test_action_noise_changes_the_episodes(runs: dict[str, Path], tmp_path: Path) -> None:
    results = []
    for noise in ("0", "0.3"):
        out = tmp_path / f"noise-{noise}.json"
        assert (
            evaluate_main(
                [
                    str(runs["proprio"]),
                    "--episodes",
                    "1",
                    "--seed",
                    str(SEED),
                    "--action-noise",
                    noise,
                    "--json",
                    str(out),
                ]
            )
            == 0
        )
        results.append(json.loads(out.read_text()))
    assert results[1]["action_noise"] == 0.3 and results[0]["return_mean"] != results[1]["return_mean"]


def _error(*argv: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "funk_rl.evaluate", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_bad_input_is_one_error_line(runs: dict[str, Path], tmp_path: Path) -> None:
    assert "not a train_hammer run (no config.json)" in _error(str(tmp_path))
    # A policy from a run of another encoder: the shapes disagree, and the message says so.
    foreign = tmp_path / "foreign"
    shutil.copytree(runs["proprio"], foreign)
    shutil.copy(runs["funk-keypoints"] / "policy.zip", foreign / "policy.zip")
    assert "was policy.zip copied from a run of another encoder?" in _error(str(foreign))
    # No video codec: named before any episode runs, nothing written.
    video = tmp_path / "x.mp4"
    env = {**os.environ, "IMAGEIO_FFMPEG_EXE": str(tmp_path / "no-ffmpeg")}
    assert "no video codec" in _error(str(runs["proprio"]), "--video", str(video), env=env)
    assert not video.exists()
    assert "expected an .mp4 path" in _error(str(runs["proprio"]), "--video", str(tmp_path / "x.avi"))
