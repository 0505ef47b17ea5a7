"""DAgger with the scripted expert: a tiny run end to end, the aggregate grows by the visited steps, the labels
are the expert's actions at the visited states, the phase feature, the same seed gives the same numbers, and
--resume continues after the last finished iteration."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from funk_rl.dagger import DaggerConfig, run
from funk_rl.demos import SCRIPTED, record_demos, save_demos
from funk_rl.envs import EPISODE_STEPS, STATE_DIM, HammerConfig, make_hammer_env
from funk_rl.scripted import ScriptedHammerExpert

EPISODES = 2


@pytest.fixture(scope="module")
def demos_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    demos, _ = record_demos(SCRIPTED, HammerConfig(), episodes=1, seed=31)
    path = tmp_path_factory.mktemp("demos") / "scripted.pkl"
    save_demos(demos, path)
    return path


def _config(demos: Path, out: Path, iterations: int = 1, **kwargs) -> DaggerConfig:
    return DaggerConfig(encoder="state", demos=str(demos), iterations=iterations, episodes_per_iter=EPISODES,
                        seed=3, out=str(out), n_envs=2, eval_episodes=2, eval_envs=2, bc_epochs=2, device="cpu",
                        **kwargs)


def _rows(out: Path) -> list[dict[str, str]]:
    with open(out / "dagger.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def _numbers(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{k: v for k, v in r.items() if k not in ("wall_s", "cpu_s")} for r in rows]


def test_dagger_aggregates_expert_labels_reproducibly_and_resumes(demos_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "a"
    rows = run(_config(demos_path, out, beta=0.5))
    assert [r["iteration"] for r in rows] == ["0", "1"] and rows == _rows(out)
    visited = EPISODES * EPISODE_STEPS
    assert int(rows[0]["dataset_pairs"]) == EPISODE_STEPS  # one demonstration
    assert int(rows[1]["new_pairs"]) == visited
    assert int(rows[1]["dataset_pairs"]) == int(rows[0]["dataset_pairs"]) + visited
    assert all((out / f"{name}-{i}.{ext}").is_file() for i in (0, 1) for name, ext in (("data", "npz"),
                                                                                       ("policy", "zip")))

    data = dict(np.load(out / "data-1.npz"))
    assert data["obs"].shape == (visited, STATE_DIM + 1)  # the state and the phase
    np.testing.assert_allclose(data["obs"][:, -1], data["episode_step"] / EPISODE_STEPS, atol=1e-7)
    assert 0 < np.isclose(data["taken"], data["labels"]).all(axis=1).mean() < 1  # beta 0.5 mixed the two

    # Replay each visited episode with the actions executed: the stored label is the expert's action in that state.
    env = make_hammer_env(HammerConfig(), pixels=False)
    expert = ScriptedHammerExpert(env)
    try:
        for episode_seed in np.unique(data["episode_seed"]):
            rows_of = np.flatnonzero(data["episode_seed"] == episode_seed)
            obs, _ = env.reset(seed=int(episode_seed))
            expert.reset()
            for i in rows_of:
                t = int(data["episode_step"][i])
                np.testing.assert_array_equal(data["obs"][i, :STATE_DIM], obs)
                np.testing.assert_array_equal(data["labels"][i], expert.label(t))
                obs, *_ = env.step(data["taken"][i])
    finally:
        env.close()

    again = tmp_path / "b"
    run(_config(demos_path, again, beta=0.5))
    assert _numbers(_rows(again)) == _numbers(rows)  # same seed, same numbers
    np.testing.assert_array_equal(dict(np.load(again / "data-1.npz"))["labels"], data["labels"])

    with pytest.raises(ValueError, match="--resume"):
        run(_config(demos_path, out, beta=0.5))
    resumed = run(_config(demos_path, out, iterations=2, beta=0.5, resume=True))
    assert [r["iteration"] for r in resumed] == ["0", "1", "2"] and _numbers(resumed[:2]) == _numbers(rows)
    assert int(resumed[2]["dataset_pairs"]) == int(rows[1]["dataset_pairs"]) + visited
