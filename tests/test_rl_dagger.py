"""DAgger with the DAPG expert: the aggregate grows by the visited steps, the labels are the expert's actions at
the visited states (computed in the workers), beta mixes in the expert's executed actions, the same seed gives
the same data, and memory holds features rather than frames."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from funk_rl.envs import EPISODE_STEPS, STATE_DIM, HammerConfig, make_hammer_env
from funk_rl.expert import DapgExpert
from funk_rl.train_hammer import TrainConfig, train

EPISODES = 2


def _config(out: Path, **overrides: object) -> TrainConfig:
    values = dict(
        encoder="state",
        out=str(out),
        seed=3,
        n_envs=2,
        demo_episodes=1,
        dagger_iterations=1,
        dagger_episodes=EPISODES,
        beta=0.5,
        bc_epochs=2,
        iteration_eval_episodes=1,
        eval_episodes=1,
        eval_envs=1,
        device="cpu",
        eval_seed=7_100_000,
    )
    values.update(overrides)
    return TrainConfig(**values)  # type: ignore[arg-type]


def _rows(out: Path) -> list[dict[str, str]]:
    with open(out / "dagger.csv", newline="") as handle:
        return [{k: v for k, v in r.items() if k not in ("wall_s", "cpu_s", "rss_mb")} for r in csv.DictReader(handle)]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dagger") / "a"
    train(_config(out))
    return out


def test_the_aggregate_grows_by_the_visited_steps(run: Path) -> None:
    rows = _rows(run)
    visited = EPISODES * EPISODE_STEPS
    assert [r["iteration"] for r in rows] == ["0", "1"]
    assert int(rows[0]["dataset_pairs"]) == EPISODE_STEPS  # one demonstration
    assert int(rows[1]["new_pairs"]) == visited
    assert int(rows[1]["dataset_pairs"]) == EPISODE_STEPS + visited
    data = np.load(run / "data-1.npz")
    assert data["obs"].shape == (visited, STATE_DIM + 1)  # the state and the phase
    np.testing.assert_allclose(data["obs"][:, -1], data["episode_step"] / EPISODE_STEPS, atol=1e-7)
    assert 0 < np.isclose(data["taken"], data["labels"]).all(axis=1).mean() < 1  # beta 0.5 mixed the two


def test_labels_are_the_experts_actions_at_the_visited_states(run: Path) -> None:
    data = np.load(run / "data-1.npz")
    expert = DapgExpert.load()
    # Replay each visited episode with the actions executed: each stored label is the expert's action there.
    env = make_hammer_env(HammerConfig(), observation="state")
    try:
        for episode_seed in np.unique(data["episode_seed"]):
            rows_of = np.flatnonzero(data["episode_seed"] == episode_seed)
            obs, _ = env.reset(seed=int(episode_seed))
            for i in rows_of:
                np.testing.assert_array_equal(data["obs"][i, :STATE_DIM], obs)
                np.testing.assert_allclose(data["labels"][i], expert.act(env.unwrapped._get_obs()), atol=1e-6)
                obs, *_ = env.step(data["taken"][i])
    finally:
        env.close()
    # The demonstrations are the expert's own episodes: what it executed is what it labelled.
    demos = np.load(run / "data-0.npz")
    np.testing.assert_array_equal(demos["taken"], demos["labels"])


def test_the_same_seed_gives_the_same_data(run: Path, tmp_path: Path) -> None:
    again = tmp_path / "b"
    train(_config(again))
    assert _rows(again) == _rows(run)
    for name in ("obs", "labels", "taken"):
        np.testing.assert_array_equal(np.load(again / "data-1.npz")[name], np.load(run / "data-1.npz")[name])
