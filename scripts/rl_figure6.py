"""The paper's Figure 6 at the scale this CPU allows: does funk's encoder beat ImageNet features for hammering?

    python scripts/rl_figure6.py demos --out runs/fig6          # success after BC and BC + DAgger vs demonstrations
    python scripts/rl_figure6.py rl --out runs/fig6 --demos 1   # success vs environment steps, PPO + BC term
    python scripts/rl_figure6.py plot --out runs/fig6           # figures, a markdown table and figure6.json

**Demonstration efficiency** (``demos``). For each encoder, ``--pool`` expert demonstrations are recorded and
encoded once (reset seeds POOL_SEED + k). For each number of demonstrations N and seed s, a policy is
behaviour-cloned on N of them (drawn by s; the policy's initialisation seeded by s), evaluated, then one DAgger
iteration (``--dagger-episodes`` rollouts labelled by the expert) refits it on the aggregate, and it is
evaluated again. Every policy of one encoder is evaluated in one vectorised environment (one worker per
policy, one batched forward pass per step for all of them), ``--eval-episodes`` episodes each; policy k's
episodes reset with seeds EVAL_SEED + g * K + k, the same for every encoder. Results go to
``<out>/demos/<encoder>.json`` (resumable per encoder).

**Sample efficiency** (``rl``). ``python -m funk_rl.train_hammer`` with ``--demo-episodes N
--dagger-iterations 0 --rl-steps STEPS`` per encoder and seed, in ``<out>/rl/<encoder>-s<seed>`` (each run
resumable with ``--resume``, which this script passes when a run folder exists; a later call may raise
``--steps``).

Nothing here is part of the installed package: it runs the public pieces of ``funk_rl``.
"""

from __future__ import annotations

import torch  # noqa: F401  isort: skip  (before any GL context: docs/DESIGN.md, "Import torch first")
import torchvision  # noqa: F401  isort: skip
import funk_perception.offscreen_gl  # noqa: F401  isort: skip  (MUJOCO_GL before MuJoCo loads)

import argparse
import csv
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy.stats import binomtest  # noqa: E402
from stable_baselines3 import PPO  # noqa: E402
from tqdm import tqdm  # noqa: E402

from funk_perception.atomic import (  # noqa: E402
    save_figure_atomic,
    save_npz_atomic,
    write_json_atomic,
    write_text_atomic,
)
from funk_perception.model import resolve_device  # noqa: E402
from funk_rl.dagger import fit_policy  # noqa: E402
from funk_rl.envs import EPISODE_STEPS  # noqa: E402
from funk_rl.plot import COLOURS, RRL_REFERENCE  # noqa: E402
from funk_rl.rollouts import run_episodes  # noqa: E402
from funk_rl.train_hammer import TrainConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
POOL_SEED = 300_000
ROLLOUT_SEED = 3_500_000
EVAL_SEED = 9_500_000
ENCODERS = ("funk", "funk-keypoints", "imagenet", "state", "proprio")


class PolicyBank:
    """K policies acting in one vectorised environment: rows ``k * m .. (k + 1) * m`` belong to policy k."""

    def __init__(self, models: Sequence[PPO], envs_per_policy: int) -> None:
        self.models = list(models)
        self.m = envs_per_policy

    def predict(self, observation: np.ndarray, deterministic: bool = True) -> tuple[np.ndarray, None]:
        parts = [
            model.predict(observation[k * self.m : (k + 1) * self.m], deterministic=deterministic)[0]
            for k, model in enumerate(self.models)
        ]
        return np.concatenate(parts).astype(np.float32), None


def _policy_of_episode(episodes: int, k_total: int) -> np.ndarray:
    """Which policy ran each episode of a PolicyBank run (one environment per policy)."""
    return np.arange(episodes) % k_total


def _episode_rows(rows: dict[str, np.ndarray], episodes: np.ndarray) -> dict[str, np.ndarray]:
    index = (episodes[:, None] * EPISODE_STEPS + np.arange(EPISODE_STEPS)).reshape(-1)
    return {key: value[index] for key, value in rows.items()}


def _interval(successes: int, episodes: int) -> list[float]:
    ci = binomtest(successes, episodes).proportion_ci(confidence_level=0.95, method="wilson")
    return [float(ci.low), float(ci.high)]


def _evaluate_bank(models: list[PPO], config: TrainConfig, encoder: Any, episodes: int) -> list[int]:
    """Successes of each policy over ``episodes`` episodes each, all policies stepping together."""
    k = len(models)
    venv = config.make_env(encoder, k, EVAL_SEED)
    try:
        bar = tqdm(total=k * episodes * EPISODE_STEPS, unit="step", desc="evaluation", leave=False)
        run = run_episodes(
            PolicyBank(models, 1), venv, k * episodes, EVAL_SEED, EPISODE_STEPS, labels=False, progress=bar
        )
        bar.close()
    finally:
        venv.close()
    owner = _policy_of_episode(k * episodes, k)
    return [int(run.success[owner == i].sum()) for i in range(k)]


def demos_experiment(args: argparse.Namespace, encoder_name: str) -> dict[str, Any]:
    out = Path(args.out) / "demos"
    path = out / f"{encoder_name}.json"
    if path.is_file():
        return json.loads(path.read_text())
    out.mkdir(parents=True, exist_ok=True)
    started, cpu = time.perf_counter(), time.process_time()
    config = TrainConfig(
        encoder=encoder_name, image_size=args.image_size, n_envs=2, device=args.device, bc_epochs=args.bc_epochs
    )
    device = resolve_device(args.device)
    torch.set_num_threads(1)
    encoder = config.build_encoder(device)
    pool_path = out / f"{encoder_name}-pool.npz"
    if pool_path.is_file():
        with np.load(pool_path) as data:
            pool = {k: data[k] for k in data.files}
    else:
        venv = config.make_env(encoder, 2, POOL_SEED, expert=True)
        try:
            bar = tqdm(total=args.pool * EPISODE_STEPS, unit="step", desc=f"{encoder_name} demonstrations")
            pool = run_episodes(None, venv, args.pool, POOL_SEED, EPISODE_STEPS, progress=bar).rows
            bar.close()
        finally:
            venv.close()
        save_npz_atomic(pool_path, pool)
    cells = [(n, s) for n in args.counts for s in args.seeds]
    subsets = {
        cell: np.sort(np.random.default_rng([cell[1], cell[0]]).choice(args.pool, cell[0], replace=False))
        for cell in cells
    }
    probe = config.make_env(encoder, 1, 0)  # the spaces fit_policy's fresh policies are made for
    try:
        demos = {cell: _episode_rows(pool, subsets[cell]) for cell in cells}
        models = [
            fit_policy(probe, demos[c]["obs"], demos[c]["labels"], config.fit_config(), c[1], device)[0] for c in cells
        ]
    finally:
        probe.close()
    bc = _evaluate_bank(models, config, encoder, args.eval_episodes)
    # One DAgger iteration for every cell at once: its policy's rollouts, labelled by the expert in the workers.
    k = len(cells)
    venv = config.make_env(encoder, k, ROLLOUT_SEED, expert=True)
    try:
        bar = tqdm(total=k * args.dagger_episodes * EPISODE_STEPS, unit="step", desc="DAgger rollouts", leave=False)
        run = run_episodes(
            PolicyBank(models, 1), venv, k * args.dagger_episodes, ROLLOUT_SEED, EPISODE_STEPS, progress=bar
        )
        bar.close()
    finally:
        venv.close()
    owner = _policy_of_episode(k * args.dagger_episodes, k)
    probe = config.make_env(encoder, 1, 0)
    try:
        refit = []
        for i, cell in enumerate(cells):
            mine = _episode_rows(run.rows, np.flatnonzero(owner == i))
            obs = np.concatenate([demos[cell]["obs"], mine["obs"]])
            labels = np.concatenate([demos[cell]["labels"], mine["labels"]])
            refit.append(fit_policy(probe, obs, labels, config.fit_config(), cell[1], device)[0])
    finally:
        probe.close()
    dagger = _evaluate_bank(refit, config, encoder, args.eval_episodes)
    result = {
        "encoder": encoder_name,
        "image_size": args.image_size,
        "pool": args.pool,
        "eval_episodes": args.eval_episodes,
        "dagger_episodes": args.dagger_episodes,
        "cells": [
            {
                "demos": n,
                "seed": s,
                "subset": subsets[(n, s)].tolist(),
                "bc_successes": bc[i],
                "bc_interval": _interval(bc[i], args.eval_episodes),
                "dagger_successes": dagger[i],
                "dagger_interval": _interval(dagger[i], args.eval_episodes),
            }
            for i, (n, s) in enumerate(cells)
        ],
        "wall_s": round(time.perf_counter() - started, 1),
        "cpu_s_main": round(time.process_time() - cpu, 1),
    }
    write_json_atomic(path, result, indent=2)
    return result


def rl_experiment(args: argparse.Namespace) -> None:
    for seed in args.seeds:
        for encoder in args.encoders:
            out = Path(args.out) / "rl" / f"{encoder}-s{seed}"
            command = [
                sys.executable,
                "-m",
                "funk_rl.train_hammer",
                "--encoder",
                encoder,
                "--seed",
                str(seed),
                "--out",
                str(out),
                "--image-size",
                str(args.image_size),
                "--demo-episodes",
                str(args.demos),
                "--dagger-iterations",
                "0",
                "--rl-steps",
                str(args.steps),
                "--n-envs",
                str(args.n_envs),
                "--rl-eval-every",
                str(args.eval_every),
                "--iteration-eval-episodes",
                "10",
                "--eval-episodes",
                str(args.eval_episodes),
                "--device",
                args.device,
            ]
            if (out / "state.json").is_file():
                command.append("--resume")
            print(" ".join(command), flush=True)
            subprocess.run(command, check=True, cwd=ROOT)


def _mean_curve(runs: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    common = sorted(set.intersection(*[set(s.tolist()) for s, _ in runs]))
    return np.array(common), np.mean([[r[s.tolist().index(c)] for c in common] for s, r in runs], axis=0)


def plot(args: argparse.Namespace) -> None:
    out = Path(args.out)
    lines = [
        "| encoder | demos | BC success (mean of seeds, %) | BC + 1 DAgger iteration (%) | per seed (BC / DAgger) |",
        "| --- | --- | --- | --- | --- |",
    ]
    demos = {n: out / "demos" / f"{n}.json" for n in ENCODERS if (out / "demos" / f"{n}.json").is_file()}
    summary: dict[str, Any] = {"demos": {}, "rl": []}  # what the figures show, kept beside them
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for name, path in demos.items():
        result = json.loads(path.read_text())
        summary["demos"][name] = result
        episodes = result["eval_episodes"]
        counts = sorted({c["demos"] for c in result["cells"]})
        for ax, key in zip(axes, ("bc_successes", "dagger_successes")):
            per_seed = [[100 * c[key] / episodes for c in result["cells"] if c["demos"] == n] for n in counts]
            means = [np.mean(v) for v in per_seed]
            ax.plot(counts, means, "o-", color=COLOURS[name], label=name, lw=2)
            for n, values in zip(counts, per_seed):
                ax.scatter([n] * len(values), values, color=COLOURS[name], s=10, alpha=0.5)
        for n in counts:
            cells = [c for c in result["cells"] if c["demos"] == n]
            bc = np.mean([c["bc_successes"] for c in cells]) / episodes
            dg = np.mean([c["dagger_successes"] for c in cells]) / episodes
            seeds = ", ".join(f"{c['bc_successes']}/{c['dagger_successes']}" for c in cells)
            lines.append(f"| {name} | {n} | {100 * bc:.0f} | {100 * dg:.0f} | {seeds} (of {episodes}) |")
    for ax, title in zip(axes, ("behaviour cloning", "behaviour cloning + 1 DAgger iteration")):
        ax.set_xscale("log")
        ax.set_xlabel("expert demonstrations")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("success (%), DAPG rule")
    axes[0].legend()
    fig.tight_layout()
    if demos:  # a folder with the PPO runs alone keeps whatever demos figure it has
        save_figure_atomic(fig, out / "demos.png", dpi=120)
    plt.close(fig)

    rl_lines = [
        "| encoder | seed | env steps | success at the start (%) | at the end (%) | final evaluation |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    fig, ax = plt.subplots(figsize=(6, 4))
    curves: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for folder in sorted((out / "rl").glob("*-s*")):
        eval_csv = folder / "eval.csv"
        if not eval_csv.is_file():
            continue
        config = json.loads((folder / "config.json").read_text())
        with open(eval_csv, newline="") as handle:
            rows = list(csv.DictReader(handle))
        steps = np.array([int(r["steps"]) for r in rows])
        success = np.array([100 * float(r["success_rate"]) for r in rows])
        curves.setdefault(config["encoder"], []).append((steps, success))
        ax.plot(np.maximum(steps, 1), success, color=COLOURS[config["encoder"]], lw=0.8, alpha=0.5)
        final = json.loads((folder / "eval.json").read_text()) if (folder / "eval.json").is_file() else None
        summary["rl"].append(
            {
                "encoder": config["encoder"],
                "seed": config["seed"],
                "steps": steps.tolist(),
                "success_percent": success.tolist(),
                "final": None if final is None else {k: final[k] for k in ("successes", "episodes")},
            }
        )
        rl_lines.append(
            f"| {config['encoder']} | {config['seed']} | {steps[-1]} | {success[0]:.0f} | "
            f"{success[-1]:.0f} | " + (f"{final['successes']}/{final['episodes']}" if final else "running") + " |"
        )
    for name, runs in curves.items():
        steps, mean = _mean_curve(runs)
        ax.plot(np.maximum(steps, 1), mean, color=COLOURS[name], lw=2.5, label=f"{name} (mean of {len(runs)})")
    for samples, low, high in RRL_REFERENCE:
        ax.vlines(samples, low, high, color="black", lw=3)
    ax.text(RRL_REFERENCE[0][0], 70, "RRL (ResNet-34)", ha="center", fontsize=8)
    ax.set_xscale("symlog", linthresh=1e4)
    ax.set_xlabel("environment steps of PPO + BC term")
    ax.set_ylabel("success (%), 10 evaluation episodes")
    ax.set_ylim(-3, 103)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure_atomic(fig, out / "rl.png", dpi=120)
    plt.close(fig)
    write_text_atomic(out / "figure6.md", "\n".join(lines) + "\n\n" + "\n".join(rl_lines) + "\n")
    write_json_atomic(out / "figure6.json", summary, indent=1)
    print((out / "figure6.md").read_text())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stage", choices=("demos", "rl", "plot"))
    parser.add_argument("--out", default="runs/fig6")
    parser.add_argument("--encoders", nargs="+", default=None, choices=ENCODERS)
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 3, 10])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--pool", type=int, default=10, help="demonstrations recorded per encoder")
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--dagger-episodes", type=int, default=5, help="rollouts per policy in the DAgger iteration")
    parser.add_argument("--bc-epochs", type=int, default=100)
    parser.add_argument("--image-size", type=int, default=TrainConfig().image_size)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--demos", type=int, default=1, help="rl: demonstrations behind the BC start")
    parser.add_argument("--steps", type=int, default=100_000, help="rl: PPO environment steps per run")
    parser.add_argument("--n-envs", type=int, default=8, help="rl: environments per run")
    parser.add_argument("--eval-every", type=int, default=25_000, help="rl: steps between evaluations")
    args = parser.parse_args(argv)
    if args.stage == "demos":
        for name in args.encoders or ENCODERS:
            result = demos_experiment(args, name)
            print(
                name,
                [(c["demos"], c["seed"], c["bc_successes"], c["dagger_successes"]) for c in result["cells"]],
                f"{result['wall_s']} s",
                flush=True,
            )
    elif args.stage == "rl":
        args.encoders = args.encoders or ["state", "funk", "imagenet"]
        rl_experiment(args)
    else:
        plot(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
