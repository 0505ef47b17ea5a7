"""DAgger (Ross, Gordon and Bagnell 2011) for ADROIT hammering, with the scripted expert as the queried expert.

    python -m funk_rl.dagger --encoder state --iterations 8 --episodes-per-iter 10 --seed 0
    python -m funk_rl.dagger --encoder imagenet --image-size 128 --iterations 3 --episodes-per-iter 4 --seed 0
    python -m funk_rl.dagger ... --resume                  # after a kill: continues at the next iteration

Iteration 0 is behaviour cloning (funk_rl.bc) on the expert's demonstrations
(``--demos``, from ``python -m funk_rl.demos --expert scripted``). Each later
iteration i rolls out the current policy (deterministic; with probability
``beta * beta_decay ** (i - 1)`` per step the expert's action is executed
instead), labels every visited state with the scripted expert's action in that
state (:class:`funk_rl.scripted.ExpertLabels`, computed in the worker that
holds the simulator), adds the pairs to the aggregate dataset and refits the
policy on all of it from the same initialisation. After every iteration the
deterministic policy is evaluated on separately seeded episodes (success by the
DAPG rule, :func:`funk_rl.callbacks.evaluate`).

``--time-feature`` (on by default) appends the episode's phase, step / 200, to
the observation (:class:`funk_rl.features.PhaseVecEnv`): the expert's phases are
timed by the step count, which the state shows only indirectly.

Writes into ``--out`` (default ``runs/hammer/dagger-<encoder>-s<seed>``):
``config.json``; ``dagger.csv`` (one row per iteration: dataset size, BC loss,
the rollouts' success, the policy's error against the labels on the states it
visited, the evaluation, cumulative wall and CPU seconds); ``data-<i>.npz``
(iteration i's pairs: observations, expert labels, the actions executed, episode
seeds and steps); ``policy-<i>.zip`` (stable-baselines3 PPO checkpoints); and
``state.json`` (the last finished iteration, for ``--resume``). All are written
atomically, and an iteration counts as finished only once its state.json is.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import torch  # noqa: E402  (before anything that can make a GL context, FIELD-NOTES)
import torchvision  # noqa: E402,F401

import argparse  # noqa: E402
import csv  # noqa: E402
import dataclasses  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Sequence  # noqa: E402

import numpy as np  # noqa: E402
from stable_baselines3 import PPO  # noqa: E402
from stable_baselines3.common.utils import set_random_seed  # noqa: E402
from stable_baselines3.common.vec_env import VecEnv  # noqa: E402
from tqdm import tqdm  # noqa: E402

from funk_perception.atomic import write_bytes_atomic, write_json_atomic  # noqa: E402
from funk_perception.cli import command  # noqa: E402
from funk_perception.model import resolve_device  # noqa: E402
from funk_rl.bc import BC_LOSSES, behaviour_clone  # noqa: E402
from funk_rl.callbacks import evaluate, save_model_atomic, write_csv_rows  # noqa: E402
from funk_rl.demos import demo_dataset, load_demos  # noqa: E402
from funk_rl.encoders import ENCODERS  # noqa: E402
from funk_rl.envs import HammerConfig  # noqa: E402
from funk_rl.features import make_vec_env, worker_pids  # noqa: E402
from funk_rl.scripted import EXPERT_ACTION  # noqa: E402
from funk_rl.train_hammer import EVAL_SEED_OFFSET, ObservationConfig, add_observation_arguments  # noqa: E402

#: Rollout episodes of iteration i, run seed s: reset seeds ROLLOUT_SEED + 100_000 s + 1_000 i + episode
#: (apart from the demonstrations' 100,000 + k and the evaluation's 1,000,000 + s).
ROLLOUT_SEED = 2_000_000
FIELDS = ("iteration", "beta", "rollout_episodes", "rollout_success_rate", "new_pairs", "dataset_pairs",
          "policy_label_mse", "bc_nll_first", "bc_nll_last", "success_rate", "successes", "eval_episodes",
          "return_mean", "return_std", "wall_s", "cpu_s")

log = logging.getLogger("funk_rl")


@dataclass
class DaggerConfig(ObservationConfig):
    """One DAgger run; the BC and policy settings are train_hammer's (a 256 x 256 Gaussian MLP)."""

    encoder: str = "state"
    demos: str = "runs/hammer/demos-scripted.pkl"
    iterations: int = 5
    episodes_per_iter: int = 10
    seed: int = 0
    out: str = ""
    n_envs: int = 2
    eval_episodes: int = 10
    eval_envs: int = 2
    bc_epochs: int = 50
    bc_loss: str = "nll"
    batch_size: int = 256
    learning_rate: float = 1e-3
    beta: float = 0.0
    beta_decay: float = 0.5
    time_feature: bool = True
    net: tuple[int, ...] = (256, 256)
    log_std_init: float = -0.5
    threads: int = 1
    resume: bool = False

    def __post_init__(self) -> None:
        if self.encoder not in ENCODERS:
            raise ValueError(f"--encoder: expected one of {', '.join(ENCODERS)}, found {self.encoder!r}")
        for name in ("episodes_per_iter", "n_envs", "eval_episodes", "eval_envs", "bc_epochs", "batch_size",
                     "threads"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"--{name.replace('_', '-')}: expected >= 1, found {getattr(self, name)}")
        if self.bc_loss not in BC_LOSSES:
            raise ValueError(f"--bc-loss: expected one of {', '.join(BC_LOSSES)}, found {self.bc_loss!r}")
        if int(self.iterations) < 0:
            raise ValueError(f"--iterations: expected >= 0, found {self.iterations}")
        if not 0.0 <= float(self.beta) <= 1.0 or not 0.0 <= float(self.beta_decay) <= 1.0:
            raise ValueError(f"--beta, --beta-decay: expected values in [0, 1], found {self.beta}, {self.beta_decay}")
        self.net = tuple(int(n) for n in self.net)
        if not self.out:
            self.out = f"runs/hammer/dagger-{self.encoder}-s{self.seed}"

    def beta_at(self, iteration: int) -> float:
        """The expert's share of the executed actions in iteration ``iteration`` (>= 1)."""
        return float(self.beta) * float(self.beta_decay) ** (iteration - 1)


def rollout(
    model: PPO, venv: VecEnv, episodes: int, seed: int, episode_steps: int, beta: float = 0.0,
    rng: np.random.Generator | None = None, progress: tqdm | None = None,
) -> dict[str, np.ndarray]:
    """Run the deterministic policy (the expert with probability ``beta`` per step) for ``episodes`` episodes
    with reset seeds ``seed, seed + 1, ...`` in a venv made with ``expert_labels=True``; every visited state
    with its expert label.

    Returns ``obs`` (N, D), ``labels`` (N, 26), ``taken`` (N, 26, the actions executed), ``episode_seed`` and
    ``episode_step`` (N,), and ``success`` (episodes,) by the DAPG rule.
    """
    rng = rng or np.random.default_rng(seed)
    n = venv.num_envs
    keys = ("obs", "labels", "taken", "episode_seed", "episode_step")
    batches: list[dict[str, np.ndarray]] = []
    success: list[bool] = []
    for first in range(0, episodes, n):
        keep = min(n, episodes - first)
        rows: dict[str, list[np.ndarray]] = {k: [] for k in keys}
        venv.seed(seed + first)
        obs = venv.reset()
        for t in range(episode_steps):
            action, _ = model.predict(obs, deterministic=True)
            mixed = rng.random(n) < beta
            sent = np.array(action, dtype=np.float32)
            sent[mixed] = EXPERT_ACTION
            next_obs, _, dones, infos = venv.step(sent)
            labels = np.stack([info["expert_action"] for info in infos])
            steps = np.array([info["episode_step"] for info in infos])
            if (steps != t).any():
                raise RuntimeError(f"rollout: the workers' episodes are at steps {steps.tolist()}, expected {t}")
            rows["obs"].append(np.asarray(obs[:keep], dtype=np.float32))
            rows["labels"].append(labels[:keep].astype(np.float32))
            rows["taken"].append(np.where(mixed[:, None], labels, action)[:keep].astype(np.float32))
            rows["episode_seed"].append(seed + first + np.arange(keep))
            rows["episode_step"].append(steps[:keep])
            obs = next_obs
            if progress is not None:
                progress.update(keep)
        if not dones.all():
            raise RuntimeError(f"rollout: episodes did not end after {episode_steps} steps")
        success += [bool(infos[i].get("is_success", False)) for i in range(keep)]
        # Episode-major order: the rows of one episode together, by step.
        batches.append({k: np.stack(v, axis=1).reshape(-1, *np.shape(v[0])[1:]) for k, v in rows.items()})
    return {**{k: np.concatenate([b[k] for b in batches]) for k in keys}, "success": np.array(success)}


def _cpu_seconds(pids: Sequence[int]) -> float:
    """CPU seconds (user + system) the given live processes have used so far (Linux /proc)."""
    total, tick = 0.0, os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_bytes_atomic(path, buffer.getvalue())


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def _demo_data(config: DaggerConfig, encoder: Any, hammer: HammerConfig) -> dict[str, np.ndarray]:
    demos = load_demos(config.demos)
    obs, actions, drift = demo_dataset(demos, encoder, hammer, n_envs=config.n_envs, seed=config.seed)
    steps = np.concatenate([np.arange(len(d.actions)) for d in demos])
    if config.time_feature:
        obs = np.concatenate([obs, (steps / hammer.max_episode_steps)[:, None]], axis=1).astype(np.float32)
    log.info("%d demonstrations, %d pairs (replay drift %.2e)", len(demos), len(obs), drift)
    return {"obs": obs, "labels": actions, "taken": actions, "episode_seed": np.full(len(obs), -1),
            "episode_step": steps}


def _fit(config: DaggerConfig, venv: VecEnv, data: list[dict[str, np.ndarray]], iteration: int,
         device: torch.device) -> tuple[PPO, list[float]]:
    # The same initialisation every iteration (DAgger trains each policy on the aggregate from scratch).
    set_random_seed(config.seed)
    model = PPO("MlpPolicy", venv, n_steps=64, batch_size=64, seed=config.seed, device=device, verbose=0,
                policy_kwargs={"net_arch": list(config.net), "log_std_init": config.log_std_init})
    obs = np.concatenate([d["obs"] for d in data])
    labels = np.concatenate([d["labels"] for d in data])
    losses = behaviour_clone(model, obs, labels, epochs=config.bc_epochs, batch_size=config.batch_size,
                             lr=config.learning_rate, seed=config.seed + iteration, loss=config.bc_loss)
    return model, losses


def run(config: DaggerConfig) -> list[dict[str, str]]:
    """Run (or resume) DAgger; returns the rows of ``dagger.csv``."""
    out = Path(config.out)
    state_path = out / "state.json"
    if state_path.exists() and not config.resume:
        raise ValueError(f"{out}: a run is already there (state.json); pass --resume to continue it or choose "
                         "another --out")
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(config.threads)
    device = resolve_device(config.device)
    hammer = config.hammer_config()
    steps = hammer.max_episode_steps
    state = json.loads(state_path.read_text()) if config.resume and state_path.is_file() else {}
    done = int(state.get("iteration", -1))
    ledger: dict[str, float] = dict(state.get("ledger", {}))
    rows: list[dict[str, str]] = []
    if done >= 0:
        with open(out / "dagger.csv", newline="") as handle:
            rows = [r for r in csv.DictReader(handle) if int(r["iteration"]) <= done]
        log.info("resuming %s after iteration %d", out, done)
    else:
        write_json_atomic(out / "config.json", dataclasses.asdict(config), indent=2)
    encoder = config.build_observation_encoder(device)
    venv = eval_env = None
    clock, cpu = time.perf_counter(), time.process_time()
    base = dict(ledger)

    def tick() -> None:
        pids = [p for v in (venv, eval_env) if v is not None for p in worker_pids(v)]
        ledger["wall"] = base.get("wall", 0.0) + time.perf_counter() - clock
        ledger["cpu_main"] = base.get("cpu_main", 0.0) + time.process_time() - cpu
        ledger["cpu_workers"] = base.get("cpu_workers", 0.0) + _cpu_seconds(pids)

    try:
        venv = make_vec_env(hammer, encoder, config.n_envs, config.seed, expert_labels=True,
                            time_feature=config.time_feature)
        eval_env = make_vec_env(hammer, encoder, config.eval_envs, config.seed + EVAL_SEED_OFFSET,
                                time_feature=config.time_feature)
        data = [_load_npz(out / f"data-{i}.npz") for i in range(done + 1)]
        model = PPO.load(str(out / f"policy-{done}.zip"), device=device) if done >= 0 else None
        bar = tqdm(total=config.iterations + 1, initial=done + 1, unit="iter", desc=out.name, dynamic_ncols=True)
        for iteration in range(done + 1, config.iterations + 1):
            if iteration == 0:
                new, beta, rollout_success = _demo_data(config, encoder, hammer), 0.0, float("nan")
                mse = float("nan")
            else:
                beta = config.beta_at(iteration)
                seed = ROLLOUT_SEED + 100_000 * config.seed + 1_000 * iteration
                inner = tqdm(total=config.episodes_per_iter * steps, unit="step", desc=f"rollout {iteration}",
                             leave=False, dynamic_ncols=True)
                new = rollout(model, venv, config.episodes_per_iter, seed, steps, beta,
                              np.random.default_rng([config.seed, iteration]), inner)
                inner.close()
                rollout_success = float(new.pop("success").mean())
                mse = float(np.mean((new["taken"] - new["labels"]) ** 2))
            _save_npz(out / f"data-{iteration}.npz", new)
            data.append(new)
            model, losses = _fit(config, eval_env, data, iteration, device)
            save_model_atomic(model, out / f"policy-{iteration}.zip")
            result = evaluate(model, eval_env, config.eval_episodes, config.seed + EVAL_SEED_OFFSET)
            tick()
            rows.append({
                "iteration": str(iteration), "beta": f"{beta:.4f}", "rollout_episodes": str(
                    0 if iteration == 0 else config.episodes_per_iter),
                "rollout_success_rate": f"{rollout_success:.4f}", "new_pairs": str(len(new["obs"])),
                "dataset_pairs": str(sum(len(d["obs"]) for d in data)), "policy_label_mse": f"{mse:.5f}",
                "bc_nll_first": f"{losses[0]:.3f}", "bc_nll_last": f"{losses[-1]:.3f}",
                "success_rate": f"{result.success_rate:.4f}",
                "successes": str(round(result.success_rate * result.episodes)), "eval_episodes": str(result.episodes),
                "return_mean": f"{result.return_mean:.2f}", "return_std": f"{result.return_std:.2f}",
                "wall_s": f"{ledger['wall']:.1f}", "cpu_s": f"{ledger['cpu_main'] + ledger['cpu_workers']:.1f}",
            })
            write_csv_rows(out / "dagger.csv", FIELDS, rows)
            write_json_atomic(state_path, {"iteration": iteration, "ledger": ledger}, indent=2)
            # The workers' CPU so far is in the ledger now; a resumed run's new workers start from zero.
            log.info("iteration %d: %s pairs, rollout success %.2f, policy/label MSE %.4f, BC NLL %.2f -> %.2f, "
                     "eval success %s / %d (return %.1f)", iteration, rows[-1]["dataset_pairs"], rollout_success,
                     mse, losses[0], losses[-1], rows[-1]["successes"], result.episodes, result.return_mean)
            bar.update(1)
        bar.close()
        return rows
    finally:
        for v in (venv, eval_env):
            if v is not None:
                v.close()


def _parser() -> argparse.ArgumentParser:
    d = DaggerConfig()
    parser = argparse.ArgumentParser(prog="python -m funk_rl.dagger", description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoder", choices=ENCODERS, default=d.encoder)
    parser.add_argument("--demos", default=d.demos, help="the expert's demonstrations for iteration 0 (funk_rl.demos)")
    parser.add_argument("--iterations", type=int, default=d.iterations, help="DAgger iterations after the BC one")
    parser.add_argument("--episodes-per-iter", type=int, default=d.episodes_per_iter)
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--out", default="", help="run folder (default runs/hammer/dagger-<encoder>-s<seed>)")
    add_observation_arguments(parser, d)
    parser.add_argument("--n-envs", type=int, default=d.n_envs, help="rollout environments (worker processes)")
    parser.add_argument("--eval-episodes", type=int, default=d.eval_episodes)
    parser.add_argument("--eval-envs", type=int, default=d.eval_envs)
    parser.add_argument("--bc-epochs", type=int, default=d.bc_epochs)
    parser.add_argument("--bc-loss", choices=BC_LOSSES, default=d.bc_loss,
                        help="nll: the Gaussian's likelihood (funk_rl.bc); mse: the mean's squared error "
                             "(the bc_nll_* columns then hold it)")
    parser.add_argument("--batch-size", type=int, default=d.batch_size)
    parser.add_argument("--learning-rate", type=float, default=d.learning_rate)
    parser.add_argument("--beta", type=float, default=d.beta,
                        help="probability of executing the expert's action at a step of iteration 1")
    parser.add_argument("--beta-decay", type=float, default=d.beta_decay, help="beta's factor per iteration")
    parser.add_argument("--time-feature", action=argparse.BooleanOptionalAction, default=d.time_feature,
                        help="append the episode phase (step / 200) to the observation")
    parser.add_argument("--threads", type=int, default=d.threads, help="torch threads in the main process")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out after its last iteration")
    return parser


def config_from_args(argv: Sequence[str] | None = None) -> DaggerConfig:
    return DaggerConfig(**vars(_parser().parse_args(argv)))


@command
def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    run(config_from_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
