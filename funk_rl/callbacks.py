"""Training callbacks: periodic deterministic evaluation, atomic checkpoints, a progress bar, a time ledger.

Evaluation and checkpoints happen at the start of a rollout, right after a PPO
update: the saved policy and ``num_timesteps`` then agree, so a resumed run
neither repeats nor skips an update.
"""

from __future__ import annotations

import csv
import io
import logging
import pickle
import time
from collections.abc import Sequence
from pathlib import Path

from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv
from tqdm import tqdm

from funk_perception.atomic import write_bytes_atomic, write_json_atomic, write_text_atomic
from funk_rl.rollouts import Evaluation, evaluate_policy

EVAL_FIELDS = ("steps", "success_rate", "return_mean", "return_std", "episodes", "wall_s")

log = logging.getLogger(__name__)


def read_eval_rows(path: Path, up_to_steps: int | None = None) -> list[dict[str, str]]:
    """Rows of an ``eval.csv`` (those at or before ``up_to_steps``: a resumed run redoes the later ones)."""
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    missing = set(EVAL_FIELDS) - set(rows[0]) if rows else set()
    if missing:
        raise ValueError(f"{path}: expected columns {', '.join(EVAL_FIELDS)}, missing {sorted(missing)}")
    return [r for r in rows if up_to_steps is None or int(r["steps"]) <= up_to_steps]


def write_csv_rows(path: Path, fields: Sequence[str], rows: list[dict[str, str]]) -> None:
    """Write ``rows`` under the header ``fields`` atomically (a kill never leaves half a log)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(fields), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buffer.getvalue())


def write_eval_rows(path: Path, rows: list[dict[str, str]]) -> None:
    write_csv_rows(path, EVAL_FIELDS, rows)


def save_model_atomic(model: BaseAlgorithm, path: Path) -> None:
    """``model.save`` to ``path`` atomically: SB3 writes its zip in place, which a kill can leave torn."""
    buffer = io.BytesIO()
    model.save(buffer)
    write_bytes_atomic(path, buffer.getvalue())


class RunCallback(BaseCallback):
    """Evaluation every ``eval_every`` steps (and before training unless ``eval_at_start=False``), a checkpoint
    every ``checkpoint_every``, progress and timings.

    ``ledger`` holds wall seconds per activity (``learn``: PPO updates, ``eval``,
    ``checkpoint``) and carries over a resume through ``state.json``.
    """

    def __init__(
        self,
        out: Path,
        eval_env: VecEnv,
        eval_every: int,
        eval_episodes: int,
        eval_seed: int,
        checkpoint_every: int,
        total_steps: int,
        ledger: dict[str, float],
        eval_at_start: bool = True,
        episode_steps: int = 200,
    ) -> None:
        super().__init__()
        self.out = out
        self.eval_env = eval_env
        self.eval_every = eval_every
        self.eval_episodes = eval_episodes
        self.eval_seed = eval_seed
        self.checkpoint_every = checkpoint_every
        self.total_steps = total_steps
        self.ledger = ledger
        self.eval_at_start = eval_at_start
        self.episode_steps = episode_steps
        self._base = dict(ledger)
        self.rows: list[dict[str, str]] = []
        self.last_checkpoint = -1
        self._update_started: float | None = None
        self._clock = time.perf_counter()
        self._bar: tqdm | None = None

    def _tick(self) -> None:
        now = time.perf_counter()
        self.ledger["wall"] = self.ledger.get("wall", 0.0) + now - self._clock
        self._clock = now
        # The feature wrapper's own clock (waiting on the workers, encoding), since this process started.
        for key, seconds in getattr(self.training_env, "timings", {}).items():
            self.ledger[key] = self._base.get(key, 0.0) + seconds

    def _on_training_start(self) -> None:
        done = self.model.num_timesteps
        self.rows = read_eval_rows(self.out / "eval.csv", up_to_steps=done)
        self.last_checkpoint = done
        self._clock = time.perf_counter()
        self._bar = tqdm(total=self.total_steps, initial=done, unit="step", desc=self.out.name, dynamic_ncols=True)

    def _on_rollout_end(self) -> None:
        self._update_started = time.perf_counter()

    def _on_rollout_start(self) -> None:
        if self._update_started is not None:
            self.ledger["learn"] = self.ledger.get("learn", 0.0) + time.perf_counter() - self._update_started
            self._update_started = None
        steps = self.model.num_timesteps
        if steps - self.last_checkpoint >= self.checkpoint_every:
            self.checkpoint()
        last_eval = int(self.rows[-1]["steps"]) if self.rows else (None if self.eval_at_start else 0)
        if last_eval is None or steps - last_eval >= self.eval_every:
            self.run_eval()

    def _on_step(self) -> bool:
        if self._bar is not None:
            self._bar.update(self.training_env.num_envs)
        return True

    def _on_training_end(self) -> None:
        if self._update_started is not None:
            self.ledger["learn"] = self.ledger.get("learn", 0.0) + time.perf_counter() - self._update_started
            self._update_started = None
        if self._bar is not None:
            self._bar.close()

    def finish(self) -> None:
        """The end of the run: a checkpoint and an evaluation at the final step count, unless just done."""
        if self.last_checkpoint != self.model.num_timesteps:
            self.checkpoint()
        if not self.rows or int(self.rows[-1]["steps"]) != self.model.num_timesteps:
            self.run_eval()

    def run_eval(self) -> Evaluation:
        start = time.perf_counter()
        result = evaluate_policy(self.model, self.eval_env, self.eval_episodes, self.eval_seed, self.episode_steps)
        self.ledger["eval"] = self.ledger.get("eval", 0.0) + time.perf_counter() - start
        self._tick()
        steps = self.model.num_timesteps
        self.rows = [r for r in self.rows if int(r["steps"]) != steps]
        self.rows.append(
            {
                "steps": str(steps),
                "success_rate": f"{result.success_rate:.4f}",
                "return_mean": f"{result.return_mean:.3f}",
                "return_std": f"{result.return_std:.3f}",
                "episodes": str(result.episodes),
                "wall_s": f"{self.ledger['wall']:.1f}",
            }
        )
        write_eval_rows(self.out / "eval.csv", self.rows)
        self.logger.record("eval/success_rate", result.success_rate)
        self.logger.record("eval/return_mean", result.return_mean)
        log.info(
            "eval at %d steps: success %.2f, return %.1f +- %.1f (%d episodes)",
            steps,
            result.success_rate,
            result.return_mean,
            result.return_std,
            result.episodes,
        )
        return result

    def checkpoint(self) -> None:
        start = time.perf_counter()
        save_model_atomic(self.model, self.out / "checkpoint.zip")
        normalizer = self.model.get_vec_normalize_env()
        if normalizer is not None:  # its running return statistics, which a resumed run continues from
            write_bytes_atomic(self.out / "vecnormalize.pkl", pickle.dumps(normalizer))
        self.ledger["checkpoint"] = self.ledger.get("checkpoint", 0.0) + time.perf_counter() - start
        self._tick()
        write_json_atomic(self.out / "state.json", {"steps": self.model.num_timesteps, "ledger": self.ledger}, indent=2)
        self.last_checkpoint = self.model.num_timesteps
