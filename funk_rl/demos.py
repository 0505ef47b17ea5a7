"""Hammer demonstrations: read the hand_dapg format, record them from a state expert, turn them into (obs, action).

The file format is the public hand_dapg one: a pickled list of dicts, each with
``observations`` (T, 46), ``actions`` (T, 26) and, to re-render it for a visual
encoder, ``init_state_dict`` (``qpos`` (33,), ``qvel`` (33,), ``board_pos`` (3,)).
The recorder's expert is the DAPG authors' hammer policy (:mod:`funk_rl.expert`, the default) or a
state-observation PPO checkpoint from train_hammer. A visual encoder needs
frames the file does not hold, so each demonstration is
replayed from its initial state with its actions in the rendering environment,
the way RRL re-rendered the DAPG demos; the replayed states are compared with
the recorded ones and the largest difference is reported (demos recorded in
another simulator version drift).

    python -m funk_rl.demos --episodes 25 --out runs/hammer/demos.pkl           # the DAPG expert
    python -m funk_rl.demos --expert runs/hammer/state-s0/policy.zip --out runs/hammer/demos-state.pkl
"""

from __future__ import annotations

import argparse
import logging
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from funk_perception.atomic import write_bytes_atomic
from funk_perception.cli import command
from funk_rl.encoders import FrameEncoder
from funk_rl.envs import ACTION_DIM, STATE_DIM, HammerConfig, env_state, make_hammer_env
from funk_rl.expert import DEFAULT_EXPERT, DapgExpert

STATE_SHAPES = {"qpos": (33,), "qvel": (33,), "board_pos": (3,)}
KEEP = ("success", "best")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Demo:
    """One demonstration: states (T, 46), actions (T, 26) in [-1, 1], the state it starts from (or None)."""

    observations: np.ndarray
    actions: np.ndarray
    init_state: dict[str, np.ndarray] | None


def _array(value: Any, shape: tuple[int | None, ...], where: str) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: expected a numeric array of shape {shape}, found {type(value).__name__}") from exc
    if array.ndim != len(shape) or any(s is not None and a != s for a, s in zip(array.shape, shape)):
        wanted = ", ".join("T" if s is None else str(s) for s in shape)
        raise ValueError(f"{where}: expected shape ({wanted}), found {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{where}: expected finite values, found NaN or inf")
    return array


def load_demos(path: str | Path) -> list[Demo]:
    """Read and check a hand_dapg-style demonstrations file (raises ValueError naming the field)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: demonstrations file not found")
    try:
        with open(path, "rb") as handle:
            payload = pickle.load(handle)
    except Exception as exc:  # pickle raises many kinds for a foreign or truncated file
        raise ValueError(f"{path}: not a pickled demonstrations file ({type(exc).__name__}: {exc})") from exc
    if not isinstance(payload, (list, tuple)) or not payload:
        found = f"an empty {type(payload).__name__}" if isinstance(payload, (list, tuple)) else type(payload).__name__
        raise ValueError(f"{path}: expected a non-empty list of dicts with 'observations' and 'actions', found {found}")
    demos = []
    for i, item in enumerate(payload):
        where = f"{path}: demo {i}"
        if not isinstance(item, dict):
            raise ValueError(f"{where}: expected a dict, found {type(item).__name__}")
        for key in ("observations", "actions"):
            if key not in item:
                raise ValueError(f"{where}: missing field {key!r} (fields found: {sorted(item)})")
        obs = _array(item["observations"], (None, STATE_DIM), f"{where} field 'observations'")
        actions = _array(item["actions"], (None, ACTION_DIM), f"{where} field 'actions'")
        if len(obs) != len(actions) or len(obs) == 0:
            raise ValueError(
                f"{where}: expected as many observations as actions (>= 1), found {len(obs)} and {len(actions)}"
            )
        init = item.get("init_state_dict")
        if init is not None:
            if not isinstance(init, dict):
                raise ValueError(f"{where} field 'init_state_dict': expected a dict, found {type(init).__name__}")
            missing = sorted(set(STATE_SHAPES) - set(init))
            if missing:
                raise ValueError(f"{where} field 'init_state_dict': missing {missing} (found {sorted(init)})")
            init = {k: _array(init[k], s, f"{where} field 'init_state_dict.{k}'") for k, s in STATE_SHAPES.items()}
        demos.append(Demo(obs, np.clip(actions, -1.0, 1.0), init))
    return demos


def save_demos(demos: Sequence[Demo], path: str | Path) -> None:
    """Write demonstrations in the hand_dapg format, atomically."""
    payload = [{"observations": d.observations, "actions": d.actions, "init_state_dict": d.init_state} for d in demos]
    write_bytes_atomic(path, pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL))


class Expert(Protocol):
    """What the recorder runs: ``act`` on each state observation."""

    def act(self, observation: np.ndarray) -> np.ndarray: ...


class PolicyExpert:
    """A state-observation stable-baselines3 PPO checkpoint, run deterministically."""

    def __init__(self, path: str | Path) -> None:
        from stable_baselines3 import PPO

        self.model = PPO.load(str(path), device="cpu")
        if self.model.observation_space.shape != (STATE_DIM,):
            raise ValueError(
                f"{path}: expected a policy on the {STATE_DIM}-d state (--encoder state), "
                f"found observations of shape {self.model.observation_space.shape}"
            )

    def act(self, observation: np.ndarray) -> np.ndarray:
        action, _ = self.model.predict(observation, deterministic=True)
        return np.asarray(action)


def record_demos(
    expert: str | Path, hammer: HammerConfig, episodes: int, seed: int, keep: str = "success", count: int | None = None
) -> tuple[list[Demo], dict[str, Any]]:
    """Run an expert for ``episodes`` seeded episodes (reset seeds ``seed``, ``seed + 1``...).

    ``expert`` is a DAPG expert file (``.npz``, :mod:`funk_rl.expert`) or a state-observation SB3
    checkpoint (``.zip``), run deterministically.
    ``keep="success"`` keeps the episodes that succeed by the DAPG rule (an error if
    none does); ``"best"`` keeps the ``count`` (default: half) with the highest return,
    for experts too weak to succeed. Returns the demos and a summary.
    """
    if keep not in KEEP:
        raise ValueError(f"keep: expected one of {', '.join(KEEP)}, found {keep!r}")
    # A bad file fails before the simulator starts.
    policy: Expert = PolicyExpert(expert) if str(expert).endswith(".zip") else DapgExpert.load(expert)
    env = make_hammer_env(hammer, observation="state")
    rollouts = []
    try:
        for episode in range(episodes):
            obs, _ = env.reset(seed=seed + episode)
            init = env_state(env)
            states, actions, total, success, nail_in = [], [], 0.0, False, 0
            done = False
            while not done:
                action = policy.act(obs)
                states.append(np.asarray(obs, dtype=np.float64))
                actions.append(np.asarray(action, dtype=np.float64))
                obs, reward, terminated, truncated, info = env.step(action)
                total += float(reward)
                done = terminated or truncated
                success = bool(info.get("is_success", False))
                nail_in = int(info.get("success_steps", 0))
            rollouts.append((Demo(np.stack(states), np.clip(np.stack(actions), -1, 1), init), total, success, nail_in))
    finally:
        env.close()
    successes = [r for r in rollouts if r[2]]
    if keep == "success":
        if not successes:
            raise ValueError(
                f"{expert}: the expert succeeded in 0 of {episodes} episodes; train it longer or "
                "pass --keep best to record its highest-return episodes"
            )
        chosen = successes
    else:
        chosen = sorted(rollouts, key=lambda r: -r[1])[: count or max(1, episodes // 2)]
    summary = {
        "expert": str(expert),
        "episodes": episodes,
        "successes": len(successes),
        "kept": len(chosen),
        "keep": keep,
        "kept_return_mean": float(np.mean([r[1] for r in chosen])),
        "all_return_mean": float(np.mean([r[1] for r in rollouts])),
        "nail_in_steps": [r[3] for r in rollouts],  # per episode: steps with the nail at its goal
    }
    return [r[0] for r in chosen], summary


def demo_dataset(
    demos: Sequence[Demo], encoder: FrameEncoder | None, hammer: HammerConfig, n_envs: int = 2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, float]:
    """(observations, actions) for behaviour cloning, in the encoder's observation space.

    For the ``state`` encoder (``encoder=None``) the recorded states are used as
    they are. For a visual one every demo is replayed in worker processes and its
    frames go through the encoder in batches; also returned is the largest
    absolute difference between replayed and recorded states (0 for ``state``).
    """
    actions = np.concatenate([d.actions for d in demos]).astype(np.float32)
    if encoder is None:
        return np.concatenate([d.observations for d in demos]).astype(np.float32), actions, 0.0
    from funk_rl.vec_env import make_worker_vec_env

    missing = [i for i, d in enumerate(demos) if d.init_state is None]
    if missing:
        raise ValueError(f"demos {missing[:10]}: no 'init_state_dict'; a visual encoder needs it to re-render them")
    longest = max(len(d.actions) for d in demos)
    replay = HammerConfig(hammer.image_size, hammer.camera, hammer.reward, max_episode_steps=longest + 1)
    n_envs = max(1, min(n_envs, len(demos)))
    venv = make_worker_vec_env(replay, n_envs, seed, observation="pixels")
    observations: list[np.ndarray] = [np.empty(0)] * len(demos)
    drift = 0.0
    try:
        for start in range(0, len(demos), n_envs):
            group = list(demos[start : start + n_envs])
            group += [group[-1]] * (n_envs - len(group))  # idle workers replay a copy, discarded below
            venv.set_options([{"initial_state_dict": d.init_state} for d in group])
            obs = venv.reset()
            per_env: list[list[np.ndarray]] = [[] for _ in group]
            for t in range(longest):
                feats = encoder(obs["pixels"]).cpu().numpy()
                for j, demo in enumerate(group):
                    if t < len(demo.actions):
                        per_env[j].append(np.concatenate([feats[j], obs["proprio"][j]]))
                        drift = max(drift, float(np.abs(obs["state"][j] - demo.observations[t]).max()))
                step = np.stack([d.actions[min(t, len(d.actions) - 1)] for d in group]).astype(np.float32)
                obs, _, _, _ = venv.step(step)
            for j in range(min(n_envs, len(demos) - start)):
                observations[start + j] = np.stack(per_env[j])
    finally:
        venv.close()
    return np.concatenate(observations).astype(np.float32), actions, drift


def main_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m funk_rl.demos", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--expert",
        default=str(DEFAULT_EXPERT),
        help="a DAPG expert file (.npz, funk_rl.expert; default: the DAPG authors' hammer policy) "
        "or a state-observation PPO checkpoint (.zip) from train_hammer",
    )
    parser.add_argument("--out", required=True, help="demonstrations file to write (hand_dapg pickle format)")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=100_000, help="first episode seed (kept apart from training)")
    parser.add_argument("--keep", choices=KEEP, default="success")
    parser.add_argument("--count", type=int, default=None, help="with --keep best: how many episodes to keep")
    parser.add_argument("--reward", choices=("dapg", "v1"), default="dapg")
    return parser


@command
def main(argv: Sequence[str] | None = None) -> int:
    args = main_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    demos, summary = record_demos(
        args.expert, HammerConfig(reward=args.reward), args.episodes, args.seed, args.keep, args.count
    )
    save_demos(demos, args.out)
    log.info("wrote %d demonstrations to %s (%s)", len(demos), args.out, summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
