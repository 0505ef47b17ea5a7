"""Which funk features to hand the hammer policy: a linear probe of the scene state from each candidate.

    python benchmarks/bench_rl_probe.py [--episodes 20] [--frames 15] [--image-size 224]

Frames come from the real hammer scene (the ``fixed`` camera) with the hammer
placed at random (+-3 cm, +-0.3 rad around its rest pose), the board at its
seeded random height and random hand actions. For every candidate observation
(funk: the hammer's two tasks, one task, all ten; global or 2 x 2 pooling;
funk-keypoints; the imagenet trunk) a ridge regression predicts what the
policy has to know and the proprioception does not tell it: hammer position
and orientation, nail position, palm position (each coordinate standardised;
those that never vary in the data are left out).
The score is R^2 on held-out episodes (5-fold, folds by episode; the ridge
strength picked per candidate from 1e-2..1e3 by the same folds). Writes
benchmarks/results/rl_probe.json and rl_probe.md.
"""

from __future__ import annotations

import torch  # noqa: F401  isort: skip  (before any GL context: docs/DESIGN.md, "Import torch first")
import torchvision  # noqa: F401  isort: skip
import funk_perception.offscreen_gl  # noqa: F401  isort: skip  (MUJOCO_GL before MuJoCo loads)

import argparse
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import report_header, write_report  # noqa: E402

from funk_perception.detector import FunctionalKeypointDetector
from funk_perception.tasks import TASKS
from funk_rl.encoders import DEFAULT_MODEL, HAMMER_TASKS
from funk_rl.envs import HammerConfig, env_state, make_hammer_env

RESULTS_DIR = Path(__file__).resolve().parent / "results"
TARGETS = {
    "hammer position": slice(36, 39),
    "hammer rotation": slice(39, 42),
    "nail position": slice(42, 45),
    "palm position": slice(33, 36),
}
ALPHAS = (1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)
FOLDS = 5
OBJECT_JOINTS = slice(27, 33)  # OBJTx, OBJTy, OBJTz, OBJRx, OBJRy, OBJRz


def collect(episodes: int, frames: int, image_size: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frames (M, S, S, 3), states (M, 46), episode index (M,)) from randomised hammer scenes."""
    env = make_hammer_env(HammerConfig(image_size=image_size), observation="pixels")
    rng = np.random.default_rng(seed)
    images, states, groups = [], [], []
    try:
        for episode in range(episodes):
            env.reset(seed=seed + episode)
            start = env_state(env)
            start["qpos"][OBJECT_JOINTS] += np.concatenate(
                [rng.uniform(-0.03, 0.03, 3) * [1, 1, 0], rng.uniform(-0.3, 0.3, 3) * [0, 0, 1]]
            )
            obs, _ = env.reset(seed=seed + episode, options={"initial_state_dict": start})
            for _ in range(frames):
                for _ in range(3):  # a few control steps between frames, so frames of an episode differ
                    obs, *_ = env.step(rng.uniform(-1, 1, 26).astype(np.float32))
                images.append(obs["pixels"])
                states.append(obs["state"])
                groups.append(episode)
    finally:
        env.close()
    return np.stack(images), np.stack(states).astype(np.float64), np.array(groups)


def _ridge_predict(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, alpha: float) -> np.ndarray:
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    a, b = (x_train - mean) / std, (x_test - mean) / std
    y_mean = y_train.mean(0)
    # The dual form: fewer samples than features for the wide candidates.
    gram = a @ a.T + alpha * np.eye(len(a))
    return b @ (a.T @ np.linalg.solve(gram, y_train - y_mean)) + y_mean


def probe(features: np.ndarray, targets: np.ndarray, groups: np.ndarray) -> dict[str, float]:
    """Cross-validated R^2 (folds by episode), best ridge strength; overall and per target.

    Coordinates that do not vary in the data (the nail only moves up and down with
    the board) are left out: there is nothing to predict and R^2 is undefined.
    """
    varies = targets.std(0) > 1e-6
    targets = (targets - targets.mean(0)) / np.where(varies, targets.std(0), 1.0)
    folds = np.unique(groups) % FOLDS
    fold_of = folds[np.searchsorted(np.unique(groups), groups)]
    best: dict[str, float] | None = None
    for alpha in ALPHAS:
        predictions = np.zeros_like(targets)
        for fold in range(FOLDS):
            test = fold_of == fold
            predictions[test] = _ridge_predict(features[~test], targets[~test], features[test], alpha)
        residual = ((predictions - targets) ** 2).sum(0) / ((targets - targets.mean(0)) ** 2).sum(0)
        r2 = 1.0 - residual
        result = {"r2": float(r2[varies].mean()), "alpha": alpha}
        offset = 0
        for name, part in TARGETS.items():
            width = part.stop - part.start
            result[name] = float(r2[offset : offset + width][varies[offset : offset + width]].mean())
            offset += width
        if best is None or result["r2"] > best["r2"]:
            best = result
    assert best is not None
    return best


def candidates(detector: FunctionalKeypointDetector, images: np.ndarray, batch: int) -> dict[str, np.ndarray]:
    """Every candidate observation for all frames (the encoder runs once per batch for all ten tasks)."""
    funk, trunk, keypoints = [], [], []
    for start in range(0, len(images), batch):
        chunk = images[start : start + batch]
        funk.append(detector.features_batch(chunk, TASKS).numpy())
        trunk.append(detector.trunk_features_batch(chunk).numpy())
        points, confidence = detector.keypoints_batch(chunk, HAMMER_TASKS)
        keypoints.append(torch.cat([points, confidence.unsqueeze(-1)], -1).flatten(1).numpy())
    full, trunk_maps = np.concatenate(funk), np.concatenate(trunk)  # (M, 10, D, h, w), (M, C, h, w)
    index = {t: i for i, t in enumerate(TASKS)}

    def pooled(maps: np.ndarray, grid: int) -> np.ndarray:
        tensor = torch.from_numpy(maps.reshape(-1, *maps.shape[-3:]))
        out = torch.nn.functional.adaptive_avg_pool2d(tensor, grid).numpy()
        return out.reshape(len(maps), -1)

    hammer = full[:, [index[t] for t in HAMMER_TASKS]]
    return {
        "funk mash_pound+pull_out_nail, pool 1": pooled(hammer, 1),
        "funk mash_pound+pull_out_nail, pool 2": pooled(hammer, 2),
        "funk mash_pound, pool 1": pooled(full[:, [index["mash_pound"]]], 1),
        "funk all 10 tasks, pool 1": pooled(full, 1),
        "funk-keypoints (2 tasks)": np.concatenate(keypoints),
        "imagenet trunk, pool 1": pooled(trunk_maps[:, None], 1),
        "imagenet trunk, pool 2": pooled(trunk_maps[:, None], 2),
    }


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    images, states, groups = collect(args.episodes, args.frames, args.image_size, args.seed)
    detector = FunctionalKeypointDetector.load(args.model, device="cpu", image_size=args.image_size)
    targets = np.concatenate([states[:, part] for part in TARGETS.values()], axis=1)
    rows = []
    for name, features in candidates(detector, images, args.batch).items():
        result = probe(features.astype(np.float64), targets, groups)
        rows.append({"candidate": name, "dim": int(features.shape[1]), **result})
        print(f"{name:>40}: R^2 {result['r2']:.3f} (dim {features.shape[1]}, alpha {result['alpha']:g})", flush=True)
    return {
        **report_header(),
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "torch": torch.__version__},
        "model": str(args.model),
        "frames": int(len(images)),
        "episodes": args.episodes,
        "image_size": args.image_size,
        "seconds": round(time.perf_counter() - start, 1),
        "rows": rows,
    }


def markdown(results: dict) -> str:
    names = list(TARGETS)
    lines = [
        "# Linear probe of the hammer scene from candidate observations",
        "",
        f"{results['date']}, `{results['command']}`, model {Path(results['model']).name}, "
        f"{results['frames']} frames from {results['episodes']} randomised episodes at {results['image_size']} px, "
        f"{results['seconds']} s on {results['machine']['cpu_count']} CPUs. Held-out-episode R^2 (5 folds) of a "
        "ridge regression, higher is better.",
        "",
        "| candidate | dim | R^2 (mean) | " + " | ".join(names) + " | ridge alpha |",
        "|---|---|---|" + "---|" * len(names) + "---|",
    ]
    for r in results["rows"]:
        lines.append(
            f"| {r['candidate']} | {r['dim']} | {r['r2']:.3f} | "
            + " | ".join(f"{r[n]:.3f}" for n in names)
            + f" | {r['alpha']:g} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--frames", type=int, default=15, help="frames per episode")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    return write_report(args.out, "rl_probe", run(args), markdown)


if __name__ == "__main__":
    raise SystemExit(main())
