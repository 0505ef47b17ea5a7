"""Train a policy that hammers the nail from frozen visual features + proprioception (RRL's setting).

    python -m funk_rl.train_hammer --out runs/hammer/funk-s0                 # the default recipe (funk, 84 px)
    python -m funk_rl.train_hammer --encoder state --out runs/hammer/state-s0
    python -m funk_rl.train_hammer --out runs/hammer/funk-s0 --resume        # after a kill
    python -m funk_rl.train_hammer ... --rl-steps 100000                     # then PPO with the BC term

The recipe (docs/RL.md has the measurements behind each step):

1. **Demonstrations** from the DAPG authors' hammer policy (:mod:`funk_rl.expert`), run in the worker
   processes while the frames are rendered and encoded, or a hand_dapg-format file (``--demos``), replayed.
2. **Behaviour cloning** of a Gaussian MLP whose input layer standardises the observation with statistics
   fitted on the demonstrations and expands the episode's phase into a time code (:mod:`funk_rl.policy`).
3. **DAgger** (:mod:`funk_rl.dagger`): the policy's own rollouts, labelled by the expert in the workers,
   added to the data; the policy refitted on the aggregate.
4. Optionally (``--rl-steps``), **PPO with a decaying behaviour-cloning term** (:mod:`funk_rl.dapg`).

Frozen encoder features come from ONE batched forward pass per vector step (:mod:`funk_rl.vec_env`), on the
GPU when there is one. The final policy is evaluated on ``--eval-episodes`` episodes seeded
``--eval-seed + i``, seeds no training episode uses.

Writes into ``--out``: ``config.json``; ``data-<i>.npz`` (iteration i's pairs: encoder features, not
frames); ``policy-<i>.zip``; ``dagger.csv`` (one row per iteration); ``state.json`` (what finished, for
``--resume``); with ``--rl-steps``: ``checkpoint.zip``, ``eval.csv``, ``progress*.csv``; at the end
``policy.zip`` (the final policy), ``eval.json`` (its evaluation) and ``summary.json``; ``train.log``.
Every file is written atomically.
"""

from __future__ import annotations

import torch  # noqa: F401  isort: skip  (before any GL context: docs/DESIGN.md, "Import torch first")
import torchvision  # noqa: F401  isort: skip
import funk_perception.offscreen_gl  # noqa: F401  isort: skip  (MUJOCO_GL before MuJoCo loads)

import csv
import dataclasses
import importlib.util
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3 import PPO
from stable_baselines3.common.logger import CSVOutputFormat, Logger, TensorBoardOutputFormat
from stable_baselines3.common.vec_env import VecEnv, VecNormalize
from tqdm import tqdm

from funk_perception.atomic import save_npz_atomic, write_json_atomic
from funk_perception.cli import (
    arg,
    command,
    parse_config,
)
from funk_perception.model import resolve_device
from funk_rl.callbacks import RunCallback, save_model_atomic, write_csv_rows
from funk_rl.dagger import FitConfig, aggregate, beta_at, fit_policy
from funk_rl.dapg import PPOWithDemos
from funk_rl.demos import demo_dataset, load_demos
from funk_rl.encoders import (
    DEFAULT_MODEL,
    ENCODERS,
    PRECISIONS,
    FrameEncoder,
    ObservationEncoderConfig,
    build_encoder,
    observation_kind,
)
from funk_rl.envs import CAMERAS, PROPRIO_DIM, REWARDS, HammerConfig
from funk_rl.expert import DEFAULT_EXPERT, DapgExpert
from funk_rl.rollouts import Evaluation, evaluate_policy, run_episodes
from funk_rl.vec_env import make_vec_env, worker_pids

#: Reset seeds, kept apart: demonstrations DEMO_SEED + 10,000 s + k; DAgger iteration i of run seed s
#: ROLLOUT_SEED + 100,000 s + 1,000 i + k; PPO's environments RL_SEED + 1,000 s; evaluation EVAL_SEED + k.
DEMO_SEED = 100_000
ROLLOUT_SEED = 2_000_000
RL_SEED = 4_000_000
EVAL_SEED = 9_000_000
DAGGER_FIELDS = (
    "iteration",
    "beta",
    "rollout_episodes",
    "rollout_success_rate",
    "new_pairs",
    "dataset_pairs",
    "policy_label_mse",
    "bc_mse_first",
    "bc_mse_last",
    "success_rate",
    "successes",
    "eval_episodes",
    "return_mean",
    "wall_s",
    "cpu_s",
    "rss_mb",
)

log = logging.getLogger("funk_rl")


@dataclass
class TrainConfig:
    """One training run; every field is a ``--flag`` (:func:`funk_perception.cli.parse_config`). The defaults are the recipe."""

    encoder: str = field(default="funk", metadata=arg("observation encoder", choices=ENCODERS))
    out: str = field(default="", metadata=arg("run folder (default runs/hammer/<encoder>-s<seed>)"))
    seed: int = field(default=0, metadata=arg("seed of the run (policy initialisation, training episodes)"))
    model: str = field(default=str(DEFAULT_MODEL), metadata=arg("funk checkpoint for the visual encoders"))
    image_size: int = field(default=84, metadata=arg("side of the rendered frame the encoder sees, px"))
    pool: int = field(default=1, metadata=arg("average-pool features over a g x g grid"))
    precision: str = field(default="auto", metadata=arg("encoder precision", choices=PRECISIONS))
    device: str = field(default="auto", metadata=arg("auto (GPU when present), cpu, cuda, cuda:1..."))
    camera: str = field(default="fixed", metadata=arg("camera the frames come from", choices=CAMERAS))
    reward: str = field(default="dapg", metadata=arg("reward (funk_rl.envs)", choices=REWARDS))
    expert: str = field(default=str(DEFAULT_EXPERT), metadata=arg("DAPG expert file (funk_rl.expert)"))
    demos: str = field(default="", metadata=arg("hand_dapg-format demonstrations (default: record the expert)"))
    demo_episodes: int = field(default=25, metadata=arg("expert episodes to record"))
    # 5 divides the default episode counts (25, 10, 50), so no worker runs an episode that is thrown away.
    n_envs: int = field(default=5, metadata=arg("environments in worker processes"))
    threads: int = field(default=1, metadata=arg("torch threads in the main process"))
    net: tuple[int, ...] = field(default=(256, 256), metadata=arg("hidden layers of the policy"))
    log_std_init: float = field(default=-2.0, metadata=arg("log std of the policy's Gaussian (PPO's exploration)"))
    standardise: bool = field(default=True, metadata=arg("standardise observations with the demos' statistics"))
    time_code: bool = field(default=True, metadata=arg("expand the episode phase into a time code"))
    bc_epochs: int = field(default=100, metadata=arg("behaviour-cloning epochs per fit"))
    bc_batch_size: int = field(default=256, metadata=arg("behaviour-cloning batch"))
    bc_learning_rate: float = field(default=1e-3, metadata=arg("behaviour-cloning step size (Adam)"))
    dagger_iterations: int = field(default=2, metadata=arg("DAgger iterations after behaviour cloning"))
    dagger_episodes: int = field(default=10, metadata=arg("policy episodes per DAgger iteration"))
    beta: float = field(default=0.0, metadata=arg("expert's share of executed actions in DAgger iteration 1"))
    beta_decay: float = field(default=0.5, metadata=arg("beta's factor per DAgger iteration"))
    rl_steps: int = field(default=0, metadata=arg("PPO + BC-term environment steps after DAgger (0: none)"))
    ppo_n_steps: int = field(default=256, metadata=arg("PPO rollout length per environment"))
    ppo_batch_size: int = field(default=256, metadata=arg("PPO minibatch"))
    ppo_epochs: int = field(default=5, metadata=arg("PPO epochs per update"))
    ppo_learning_rate: float = field(default=3e-5, metadata=arg("PPO step size"))
    gamma: float = field(default=0.995, metadata=arg("discount (DAPG's)"))
    gae_lambda: float = field(default=0.97, metadata=arg("GAE lambda (DAPG's)"))
    bc_weight: float = field(default=1.0, metadata=arg("DAPG's lambda0: BC-term weight at the first update"))
    bc_decay: float = field(default=0.98, metadata=arg("DAPG's lambda1: BC-term factor per update"))
    rl_eval_every: int = field(default=10_000, metadata=arg("PPO steps between evaluations"))
    checkpoint_every: int = field(default=5_000, metadata=arg("PPO steps between checkpoints"))
    iteration_eval_episodes: int = field(default=10, metadata=arg("evaluation episodes after each fit"))
    eval_episodes: int = field(default=50, metadata=arg("evaluation episodes of the final policy"))
    eval_envs: int = field(default=5, metadata=arg("evaluation environments"))
    eval_seed: int = field(default=EVAL_SEED, metadata=arg("first evaluation episode's reset seed"))
    resume: bool = field(default=False, metadata=arg("continue the run in --out where it stopped"))

    def __post_init__(self) -> None:
        for name, choices in (
            ("encoder", ENCODERS),
            ("precision", PRECISIONS),
            ("camera", CAMERAS),
            ("reward", REWARDS),
        ):
            if getattr(self, name) not in choices:
                raise ValueError(f"--{name}: expected one of {', '.join(choices)}, found {getattr(self, name)!r}")
        for name in (
            "demo_episodes",
            "n_envs",
            "threads",
            "bc_epochs",
            "bc_batch_size",
            "dagger_episodes",
            "ppo_n_steps",
            "ppo_batch_size",
            "ppo_epochs",
            "rl_eval_every",
            "checkpoint_every",
            "iteration_eval_episodes",
            "eval_episodes",
            "eval_envs",
            "image_size",
        ):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"--{name.replace('_', '-')}: expected >= 1, found {getattr(self, name)}")
        for name in ("dagger_iterations", "rl_steps"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"--{name.replace('_', '-')}: expected >= 0, found {getattr(self, name)}")
        if not 0.0 <= float(self.beta) <= 1.0 or not 0.0 <= float(self.beta_decay) <= 1.0:
            raise ValueError(f"--beta, --beta-decay: expected values in [0, 1], found {self.beta}, {self.beta_decay}")
        self.net = tuple(int(n) for n in self.net)
        if not self.out:
            self.out = f"runs/hammer/{self.encoder}-s{self.seed}"

    @property
    def observation(self) -> str:
        return observation_kind(self.encoder)

    def hammer_config(self, render: bool = False) -> HammerConfig:
        return HammerConfig(self.image_size, self.camera, self.reward, render=render)

    def fit_config(self) -> FitConfig:
        return FitConfig(
            self.net,
            self.log_std_init,
            self.bc_epochs,
            self.bc_batch_size,
            self.bc_learning_rate,
            self.standardise,
            self.time_code,
        )

    def build_encoder(self, device: torch.device) -> FrameEncoder | None:
        config = ObservationEncoderConfig(
            self.encoder, self.model, pool=self.pool, precision=self.precision, device=str(device)
        )
        return build_encoder(config, image_size=self.image_size)

    def make_env(
        self, encoder: FrameEncoder | None, n_envs: int, seed: int, expert: bool = False, render: bool = False
    ) -> VecEnv:
        """The run's vectorised environment: its observation with the phase last; the expert labels if asked;
        ``render``: frames for videos (``venv.get_images()``) whatever the observation."""
        return make_vec_env(
            self.hammer_config(render),
            encoder,
            n_envs,
            seed,
            observation=self.observation,
            expert=self.expert if expert else None,
            time_feature=True,
        )


def load_run_config(folder: str | Path) -> TrainConfig:
    """The ``config.json`` of a train_hammer run folder, with a clear error for anything else."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{folder}: not a train_hammer run (no config.json)")
    try:
        values = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON ({exc})") from exc
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown or "encoder" not in values:
        raise ValueError(
            f"{path}: expected a train_hammer config (fields {', '.join(sorted(known))}), "
            f"found {'unknown fields ' + ', '.join(unknown) if unknown else 'no encoder field'}"
        )
    values["net"] = tuple(values.get("net", (256, 256)))
    return TrainConfig(**values)


def _file_log(out: Path) -> logging.Handler:
    handler = logging.FileHandler(out / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    # On the package logger: funk_rl.encoders and the rest propagate to it.
    logging.getLogger("funk_rl").addHandler(handler)
    logging.getLogger("funk_rl").setLevel(logging.INFO)
    return handler


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


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


def _rss_mb() -> float:
    """This process's resident memory now (Linux /proc): DAgger's aggregate must not make it grow by frames."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _file_demonstrations(config: TrainConfig, encoder: FrameEncoder | None) -> dict[str, np.ndarray]:
    """A hand_dapg-format file's pairs in this run's observation space (replayed and encoded if visual)."""
    demos = load_demos(config.demos)
    hammer = config.hammer_config()
    obs, actions, drift = demo_dataset(demos, encoder, hammer, n_envs=config.n_envs, seed=config.seed)
    if config.observation == "proprio":
        obs = obs[:, :PROPRIO_DIM]
    steps = np.concatenate([np.arange(len(d.actions)) for d in demos])
    phase = (steps / hammer.max_episode_steps)[:, None]
    log.info("%s: %d demonstrations, %d pairs (replay drift %.2e)", config.demos, len(demos), len(obs), drift)
    return {
        "obs": np.concatenate([obs, phase], axis=1).astype(np.float32),
        "labels": actions,
        "taken": actions,
        "episode_seed": np.full(len(obs), -1),
        "episode_step": steps,
    }


def _evaluate(model: Any, venv: VecEnv, episodes: int, seed: int, desc: str) -> Evaluation:
    bar = tqdm(total=episodes * venv_steps(venv), unit="step", desc=desc, leave=False, dynamic_ncols=True)
    try:
        return evaluate_policy(model, venv, episodes, seed, venv_steps(venv), progress=bar)
    finally:
        bar.close()


def venv_steps(venv: VecEnv) -> int:
    """Steps per episode of a run environment (its phase wrapper knows)."""
    return int(venv.episode_steps)


def _dagger(
    config: TrainConfig,
    out: Path,
    encoder: FrameEncoder | None,
    device: torch.device,
    state: dict[str, Any],
    ledger: dict[str, float],
) -> Any:
    """Demonstrations, behaviour cloning and the DAgger iterations (resuming after the last finished one)."""
    done = int(state.get("iteration", -1))
    rows: list[dict[str, str]] = []
    if done >= 0:
        with open(out / "dagger.csv", newline="") as handle:
            rows = [r for r in csv.DictReader(handle) if int(r["iteration"]) <= done]
        log.info("resuming %s after iteration %d", out, done)
    data = [_load_npz(out / f"data-{i}.npz") for i in range(done + 1)]
    model = None
    if done >= 0:
        model = PPO.load(str(out / f"policy-{done}.zip"), device=device)
    if done >= config.dagger_iterations:
        return model
    venv = config.make_env(encoder, config.n_envs, config.seed, expert=True)
    eval_env = config.make_env(encoder, config.eval_envs, config.eval_seed)
    clock, cpu, base = time.perf_counter(), time.process_time(), dict(ledger)
    steps = venv_steps(venv)
    try:
        for iteration in range(done + 1, config.dagger_iterations + 1):
            if iteration == 0 and config.demos:
                new, beta, rollout_success = _file_demonstrations(config, encoder), 1.0, float("nan")
            else:
                beta = 1.0 if iteration == 0 else beta_at(config.beta, config.beta_decay, iteration)
                first = (
                    DEMO_SEED + 10_000 * config.seed
                    if iteration == 0
                    else ROLLOUT_SEED + 100_000 * config.seed + 1_000 * iteration
                )
                episodes = config.demo_episodes if iteration == 0 else config.dagger_episodes
                bar = tqdm(
                    total=episodes * steps,
                    unit="step",
                    leave=False,
                    dynamic_ncols=True,
                    desc="expert demonstrations" if iteration == 0 else f"DAgger rollouts {iteration}",
                )
                run = run_episodes(
                    None if iteration == 0 else model,
                    venv,
                    episodes,
                    first,
                    steps,
                    beta=beta,
                    rng=np.random.default_rng([config.seed, iteration]),
                    progress=bar,
                )
                bar.close()
                new, rollout_success = run.rows, float(run.success.mean())
            mse = float(np.mean((new["taken"] - new["labels"]) ** 2))
            save_npz_atomic(out / f"data-{iteration}.npz", new)
            data.append(new)
            model, losses = fit_policy(eval_env, *aggregate(data), config.fit_config(), config.seed, device)
            save_model_atomic(model, out / f"policy-{iteration}.zip")
            result = _evaluate(model, eval_env, config.iteration_eval_episodes, config.eval_seed, "evaluation")
            ledger["wall"] = base.get("wall", 0.0) + time.perf_counter() - clock
            ledger["cpu"] = (
                base.get("cpu", 0.0)
                + time.process_time()
                - cpu
                + _cpu_seconds(worker_pids(venv) + worker_pids(eval_env))
            )
            rows.append(
                {
                    "iteration": str(iteration),
                    "beta": f"{beta:.4f}",
                    "rollout_episodes": str(len(np.unique(new["episode_seed"]))),
                    "rollout_success_rate": f"{rollout_success:.4f}",
                    "new_pairs": str(len(new["obs"])),
                    "dataset_pairs": str(sum(len(d["obs"]) for d in data)),
                    "policy_label_mse": f"{mse:.5f}",
                    "bc_mse_first": f"{losses[0]:.5f}",
                    "bc_mse_last": f"{losses[-1]:.5f}",
                    "success_rate": f"{result.success_rate:.4f}",
                    "successes": str(result.successes),
                    "eval_episodes": str(result.episodes),
                    "return_mean": f"{result.return_mean:.2f}",
                    "wall_s": f"{ledger['wall']:.1f}",
                    "cpu_s": f"{ledger['cpu']:.1f}",
                    "rss_mb": f"{_rss_mb():.0f}",
                }
            )
            write_csv_rows(out / "dagger.csv", DAGGER_FIELDS, rows)
            write_json_atomic(
                out / "state.json", {"stage": "dagger", "iteration": iteration, "ledger": ledger}, indent=2
            )
            log.info(
                "iteration %d: %s pairs (%s new), rollout success %.2f, executed/label MSE %.4f, BC MSE "
                "%.4f -> %.4f, evaluation %d / %d",
                iteration,
                rows[-1]["dataset_pairs"],
                rows[-1]["new_pairs"],
                rollout_success,
                mse,
                losses[0],
                losses[-1],
                result.successes,
                result.episodes,
            )
    finally:
        venv.close()
        eval_env.close()
    return model


def _logger(out: Path, resumed_at: int) -> Logger:
    # SB3's CSV writer truncates its file, so a resumed run logs to a file of its own.
    name = "progress.csv" if resumed_at == 0 else f"progress-from-{resumed_at}.csv"
    formats: list[Any] = [CSVOutputFormat(str(out / name))]
    if importlib.util.find_spec("tensorboard") is not None:
        formats.append(TensorBoardOutputFormat(str(out / "tensorboard")))
    return Logger(str(out), formats)


def _fine_tune(
    config: TrainConfig,
    out: Path,
    encoder: FrameEncoder | None,
    device: torch.device,
    dagger_model: Any,
    ledger: dict[str, float],
) -> Any:
    """PPO with DAPG's decaying BC term on the demonstration and DAgger pairs, from the DAgger policy."""
    checkpoint = out / "checkpoint.zip"
    venv = config.make_env(encoder, config.n_envs, RL_SEED + 1_000 * config.seed)
    eval_env = None
    try:
        norm = out / "vecnormalize.pkl"
        # Returns are ~-240 per episode: unscaled, PPO's value function explains none of their variance; a
        # running return std fixes that. Observations are standardised inside the policy (funk_rl.policy).
        if checkpoint.is_file() and norm.is_file():
            venv = VecNormalize.load(str(norm), venv)
        else:
            venv = VecNormalize(venv, norm_obs=False, norm_reward=True, gamma=config.gamma)
        eval_env = config.make_env(encoder, config.eval_envs, config.eval_seed)
        if checkpoint.is_file():
            model = PPOWithDemos.load(str(checkpoint), env=venv, device=device)
            model.set_random_seed(config.seed + model.num_timesteps)
            log.info("resumed PPO at %d steps", model.num_timesteps)
        else:
            model = PPOWithDemos(
                "MlpPolicy",
                venv,
                n_steps=config.ppo_n_steps,
                batch_size=config.ppo_batch_size,
                n_epochs=config.ppo_epochs,
                learning_rate=config.ppo_learning_rate,
                gamma=config.gamma,
                gae_lambda=config.gae_lambda,
                policy_kwargs=dagger_model.policy_kwargs,
                seed=config.seed,
                device=device,
                verbose=0,
                bc_weight=config.bc_weight,
                bc_decay=config.bc_decay,
            )
            model.policy.load_state_dict(dagger_model.policy.state_dict())
        model.set_demonstrations(
            *aggregate([_load_npz(out / f"data-{i}.npz") for i in range(config.dagger_iterations + 1)]),
            seed=config.seed,
        )
        done = model.num_timesteps
        model.set_logger(_logger(out, done))
        callback = RunCallback(
            out,
            eval_env,
            config.rl_eval_every,
            config.iteration_eval_episodes,
            config.eval_seed,
            config.checkpoint_every,
            config.rl_steps,
            ledger,
            episode_steps=venv_steps(eval_env),
        )
        if config.rl_steps > done:
            model.learn(total_timesteps=config.rl_steps - done, reset_num_timesteps=False, callback=callback)
        else:
            callback.init_callback(model)
            callback.on_training_start({}, {})
            callback.on_training_end()
        callback.finish()
        return model
    finally:
        venv.close()
        if eval_env is not None:
            eval_env.close()


def train(config: TrainConfig) -> dict[str, Any]:
    """Run (or resume) the recipe; returns the summary also written to ``summary.json``."""
    out = Path(config.out)
    state_path = out / "state.json"
    if state_path.exists() and not config.resume:
        raise ValueError(
            f"{out}: a run is already there (state.json); pass --resume to continue it or choose another --out"
        )
    # A bad expert or demonstrations file fails before any folder is made or worker started.
    DapgExpert.load(config.expert)
    if config.demos:
        load_demos(config.demos)
    out.mkdir(parents=True, exist_ok=True)
    handler = _file_log(out)
    started = time.perf_counter()
    try:
        state = json.loads(state_path.read_text()) if state_path.is_file() else {}
        if state:
            saved = load_run_config(out)
            if saved.encoder != config.encoder or saved.image_size != config.image_size:
                raise ValueError(
                    f"{out}: the run there used --encoder {saved.encoder} at {saved.image_size} px, "
                    f"this one asks for {config.encoder} at {config.image_size} px"
                )
        else:
            write_json_atomic(out / "config.json", dataclasses.asdict(config), indent=2)
        ledger: dict[str, float] = dict(state.get("ledger", {}))
        torch.set_num_threads(config.threads)
        device = resolve_device(config.device)
        encoder = config.build_encoder(device)
        model = _dagger(config, out, encoder, device, state, ledger)
        if config.rl_steps > 0:
            model = _fine_tune(config, out, encoder, device, model, ledger)
        save_model_atomic(model, out / "policy.zip")
        eval_env = config.make_env(encoder, config.eval_envs, config.eval_seed)
        try:
            final = _evaluate(model, eval_env, config.eval_episodes, config.eval_seed, "final evaluation")
        finally:
            eval_env.close()
        write_json_atomic(out / "eval.json", {"encoder": config.encoder, **final.as_dict()}, indent=2)
        summary = {
            "encoder": config.encoder,
            "seed": config.seed,
            "image_size": config.image_size,
            "demonstrations": config.demos or f"{config.demo_episodes} expert episodes",
            "dagger_iterations": config.dagger_iterations,
            "rl_steps": config.rl_steps,
            "success_rate": final.success_rate,
            "successes": final.successes,
            "episodes": final.episodes,
            "success_interval_95": list(final.interval),
            "device": str(device),
            "precision": "bf16" if encoder is not None and encoder.dtype is not None else "fp32",
            "wall_s_this_session": round(time.perf_counter() - started, 1),
            "seconds": {k: round(v, 1) for k, v in ledger.items()},
        }
        write_json_atomic(out / "summary.json", summary, indent=2)
        write_json_atomic(
            state_path, {"stage": "done", "iteration": config.dagger_iterations, "ledger": ledger}, indent=2
        )
        log.info("done: %d / %d successes (%s)", final.successes, final.episodes, out)
        return summary
    finally:
        logging.getLogger("funk_rl").removeHandler(handler)
        handler.close()


#: Flags of the PPO-only train_hammer that have new names; they still work, with a warning.
RENAMED = {
    "--steps": "--rl-steps",
    "--n-steps": "--ppo-n-steps",
    "--batch-size": "--ppo-batch-size",
    "--n-epochs": "--ppo-epochs",
    "--learning-rate": "--ppo-learning-rate",
    "--eval-every": "--rl-eval-every",
}


def config_from_args(argv: Sequence[str] | None = None) -> TrainConfig:
    args = list(sys.argv[1:] if argv is None else argv)
    for i, given in enumerate(args):
        name, eq, value = given.partition("=")
        if name in RENAMED:
            log.warning(
                "%s is now %s (the recipe's PPO stage, after behaviour cloning and DAgger)", name, RENAMED[name]
            )
            args[i] = RENAMED[name] + eq + value
    return parse_config(TrainConfig, args, "python -m funk_rl.train_hammer", __doc__.split("\n\n")[0])


@command
def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    train(config_from_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
