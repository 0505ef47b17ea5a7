"""Seeded episodes on the vectorised hammer environment: demonstrations, DAgger rollouts and evaluation all
run through :func:`run_episodes`.

Episode ``i`` of a call resets with seed ``seed + i``, exactly: the N workers are reseeded before each group
of N episodes (``VecEnv.seed`` applies at the next reset), and every group runs the environment's fixed
200 steps, so all N end together. The policy acts deterministically (its Gaussian's mean); the expert
(:class:`funk_rl.envs.ExpertLabels`, in the workers) acts instead with probability ``beta`` per step, or
always when there is no policy (demonstrations).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecEnv
from tqdm import tqdm

from funk_rl.envs import EXPERT_ACTION

#: Per-step rows of an episode batch (episode-major: the rows of one episode together, by step).
ROW_KEYS = ("obs", "labels", "taken", "episode_seed", "episode_step")


@dataclass(frozen=True)
class Episodes:
    """What :func:`run_episodes` saw: per-step ``rows`` (:data:`ROW_KEYS`; ``labels`` only with an expert)
    and per-episode ``seeds``, ``success`` (DAPG's rule) and ``returns``."""

    rows: dict[str, np.ndarray]
    seeds: np.ndarray
    success: np.ndarray
    returns: np.ndarray


def run_episodes(
    model: PPO | None,
    venv: VecEnv,
    episodes: int,
    seed: int,
    episode_steps: int,
    beta: float = 0.0,
    action_noise: float = 0.0,
    rng: np.random.Generator | None = None,
    labels: bool = True,
    progress: tqdm | None = None,
    on_step: Callable[[np.ndarray, int], None] | None = None,
) -> Episodes:
    """Run ``episodes`` episodes with reset seeds ``seed, seed + 1, ...``.

    ``model=None`` executes the expert's actions (the venv must be made with an ``expert``); ``labels``: read
    ``info["expert_action"]`` (likewise). ``action_noise``: Gaussian noise of that standard deviation added
    to every executed action (clipped to [-1, 1]). ``on_step(obs, t)`` sees each step's observations (the
    video writer).
    """
    if episodes < 1:
        raise ValueError(f"episodes: expected >= 1, found {episodes}")
    if model is None and not labels:
        raise ValueError(
            "run_episodes: model=None executes the expert's actions, which only an environment made "
            "with an expert knows (labels=True)"
        )
    if action_noise > 0 and (model is None or beta > 0 or labels):
        # The expert's action is known only in the worker: noise on it would need a second channel, so noisy
        # runs execute the policy alone.
        raise ValueError("run_episodes: action_noise applies to a policy's own actions (beta 0, labels=False)")
    rng = rng or np.random.default_rng(seed)
    n = venv.num_envs
    batches: list[dict[str, np.ndarray]] = []
    success: list[bool] = []
    returns: list[float] = []
    for first in range(0, episodes, n):
        keep = min(n, episodes - first)
        rows: dict[str, list[np.ndarray]] = {k: [] for k in ROW_KEYS if labels or k != "labels"}
        venv.seed(seed + first)
        obs = venv.reset()
        total = np.zeros(n)
        dones = np.zeros(n, dtype=bool)
        infos: list[dict] = []
        for t in range(episode_steps):
            if on_step is not None:
                on_step(obs, t)
            if model is None:
                sent = np.tile(EXPERT_ACTION, (n, 1))
            else:
                action, _ = model.predict(obs, deterministic=True)
                sent = np.array(action, dtype=np.float32)
                sent[rng.random(n) < beta] = EXPERT_ACTION
            expert_steps = np.isnan(sent).all(axis=1)
            if action_noise > 0:
                sent = np.clip(sent + rng.normal(0.0, action_noise, sent.shape).astype(np.float32), -1.0, 1.0)
            next_obs, rewards, dones, infos = venv.step(sent)
            total += rewards
            if labels:
                expert = np.stack([info["expert_action"] for info in infos]).astype(np.float32)
                steps = np.array([info["episode_step"] for info in infos])
                if (steps != t).any():
                    raise RuntimeError(
                        f"run_episodes: the workers' episodes are at steps {steps.tolist()}, expected {t}"
                    )
                rows["labels"].append(expert[:keep])
                sent = np.where(expert_steps[:, None], expert, sent)
            rows["obs"].append(np.asarray(obs[:keep], dtype=np.float32))
            rows["taken"].append(sent[:keep].astype(np.float32))
            rows["episode_seed"].append(seed + first + np.arange(keep))
            rows["episode_step"].append(np.full(keep, t))
            obs = next_obs
            if progress is not None:
                progress.update(keep)
        if not dones.all():
            raise RuntimeError(f"run_episodes: episodes did not end after {episode_steps} steps")
        success += [bool(infos[i].get("is_success", False)) for i in range(keep)]
        returns += [float(r) for r in total[:keep]]
        batches.append({k: np.stack(v, axis=1).reshape(-1, *np.shape(v[0])[1:]) for k, v in rows.items()})
    merged = {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}
    return Episodes(merged, seed + np.arange(episodes), np.array(success), np.array(returns))


@dataclass(frozen=True)
class Evaluation:
    """Success by DAPG's rule over seeded episodes, with its 95 % Wilson interval, and the returns."""

    episodes: int
    successes: int
    success_rate: float
    interval: tuple[float, float]
    return_mean: float
    return_std: float
    seeds: tuple[int, int]
    action_noise: float

    def as_dict(self) -> dict[str, object]:
        return {
            "episodes": self.episodes,
            "successes": self.successes,
            "success_rate": self.success_rate,
            "success_interval_95": list(self.interval),
            "return_mean": self.return_mean,
            "return_std": self.return_std,
            "seeds": {"first": self.seeds[0], "last": self.seeds[1]},
            "action_noise": self.action_noise,
        }


def evaluate_policy(
    model: PPO,
    venv: VecEnv,
    episodes: int,
    seed: int,
    episode_steps: int,
    action_noise: float = 0.0,
    on_step: Callable[[np.ndarray, int], None] | None = None,
    progress: tqdm | None = None,
) -> Evaluation:
    """The deterministic policy on episodes seeded ``seed .. seed + episodes - 1`` (the venv needs no expert)."""
    run = run_episodes(
        model,
        venv,
        episodes,
        seed,
        episode_steps,
        action_noise=action_noise,
        rng=np.random.default_rng([seed, 1]),
        labels=False,
        progress=progress,
        on_step=on_step,
    )
    successes = int(run.success.sum())
    ci = binomtest(successes, episodes).proportion_ci(confidence_level=0.95, method="wilson")
    return Evaluation(
        episodes,
        successes,
        successes / episodes,
        (float(ci.low), float(ci.high)),
        float(run.returns.mean()),
        float(run.returns.std()),
        (seed, seed + episodes - 1),
        float(action_noise),
    )
