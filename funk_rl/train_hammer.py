"""Train a policy for ADROIT hammering from frozen visual features + proprioception (RRL's setting).

    python -m funk_rl.train_hammer --encoder funk --n-envs 4 --steps 20000 --seed 0
    python -m funk_rl.train_hammer --encoder funk --demos runs/hammer/demos.pkl ...   # BC warm start
    python -m funk_rl.train_hammer ... --resume                                       # after a kill

Algorithm: PPO (stable-baselines3). RRL and DAPG use an on-policy natural
policy gradient warm-started by behaviour cloning; PPO is stable-baselines3's
closest relative (on-policy, a trust region through clipping), it takes a
Gaussian MLP policy that behaviour cloning initialises directly, it consumes the
N vectorised environments' batched steps as they come, and its update costs
little per sample. SAC reuses samples better but updates after every step:
measured at ~65 state steps/s against PPO's ~400 on this 2-core machine
(FIELD-NOTES), and for visual encoders, where the encoder already takes most
of the time, an off-policy learner would also have to store the features of
every frame in a replay buffer.

Writes into ``--out`` (default ``runs/hammer/<encoder>-s<seed>``):
``config.json``, ``eval.csv`` (deterministic evaluation on separately seeded
episodes: success rate by the DAPG rule, return), ``progress*.csv``
(stable-baselines3's training log; TensorBoard events too when tensorboard is
installed), ``checkpoint.zip`` + ``state.json`` (atomic, for ``--resume``),
``final.zip``, ``bc.csv`` (warm-start losses) and ``train.log``.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import torch  # noqa: E402  (before anything that can make a GL context, FIELD-NOTES)
import torchvision  # noqa: E402,F401

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Sequence  # noqa: E402

from stable_baselines3 import PPO  # noqa: E402
from stable_baselines3.common.logger import CSVOutputFormat, Logger, TensorBoardOutputFormat  # noqa: E402
from stable_baselines3.common.utils import set_random_seed  # noqa: E402
from stable_baselines3.common.vec_env import VecNormalize  # noqa: E402

from funk_perception.atomic import write_json_atomic, write_text_atomic  # noqa: E402
from funk_perception.cli import command  # noqa: E402
from funk_perception.model import resolve_device  # noqa: E402
from funk_rl.bc import behaviour_clone  # noqa: E402
from funk_rl.callbacks import RunCallback, save_model_atomic  # noqa: E402
from funk_rl.demos import demo_dataset, load_demos  # noqa: E402
from funk_rl.encoders import DEFAULT_MODEL, ENCODERS, PRECISIONS, EncoderConfig, build_encoder  # noqa: E402
from funk_rl.envs import CAMERAS, REWARDS, HammerConfig  # noqa: E402
from funk_rl.features import make_vec_env  # noqa: E402

EVAL_SEED_OFFSET = 1_000_000  # evaluation episodes never share a seed with training ones

log = logging.getLogger("funk_rl")


@dataclass
class ObservationConfig:
    """The environment and encoder settings every funk_rl job shares (:func:`add_observation_arguments`)."""

    encoder: str = "funk"
    model: str = str(DEFAULT_MODEL)
    pool: int = 1
    precision: str = "auto"
    device: str = "auto"
    image_size: int = 224
    camera: str = "fixed"
    reward: str = "dapg"

    def hammer_config(self) -> HammerConfig:
        return HammerConfig(self.image_size, self.camera, self.reward)

    def build_observation_encoder(self, device: torch.device):
        """The observation encoder of ``encoder`` on ``device``."""
        return build_encoder(
            EncoderConfig(self.encoder, self.model, pool=self.pool, precision=self.precision, device=str(device)),
            image_size=self.image_size,
        )


@dataclass
class TrainConfig(ObservationConfig):
    """One training run. The defaults run on a CPU; the PPO values follow DAPG's (gamma 0.995, GAE 0.97)."""

    n_envs: int = 4
    steps: int = 20_000
    seed: int = 0
    out: str = ""
    batched: bool = True
    eval_every: int = 10_000
    eval_episodes: int = 10
    eval_envs: int = 2
    eval_at_start: bool = True
    checkpoint_every: int = 5_000
    demos: str | None = None
    bc_epochs: int = 20
    n_steps: int = 256
    batch_size: int = 256
    n_epochs: int = 5
    learning_rate: float = 3e-4
    gamma: float = 0.995
    gae_lambda: float = 0.97
    net: tuple[int, ...] = (256, 256)
    log_std_init: float = -0.5
    threads: int = 1
    resume: bool = False

    def __post_init__(self) -> None:
        if self.encoder not in ENCODERS:
            raise ValueError(f"--encoder: expected one of {', '.join(ENCODERS)}, found {self.encoder!r}")
        for name in ("n_envs", "steps", "eval_every", "eval_episodes", "eval_envs", "checkpoint_every", "n_steps",
                     "batch_size", "n_epochs", "threads"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"--{name.replace('_', '-')}: expected >= 1, found {getattr(self, name)}")
        self.net = tuple(int(n) for n in self.net)
        if not self.out:
            self.out = f"runs/hammer/{self.encoder}-s{self.seed}"


def _logger(out: Path, resumed_at: int) -> Logger:
    # SB3's CSV writer truncates its file, so a resumed run logs to a file of its own.
    name = "progress.csv" if resumed_at == 0 else f"progress-from-{resumed_at}.csv"
    formats: list[Any] = [CSVOutputFormat(str(out / name))]
    if importlib.util.find_spec("tensorboard") is not None:
        formats.append(TensorBoardOutputFormat(str(out / "tensorboard")))
    return Logger(str(out), formats)


def _file_log(out: Path) -> logging.Handler:
    handler = logging.FileHandler(out / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    # On the package logger: funk_rl.callbacks, funk_rl.encoders... propagate to it.
    logging.getLogger("funk_rl").addHandler(handler)
    logging.getLogger("funk_rl").setLevel(logging.INFO)
    return handler


def _warm_start(model: PPO, config: TrainConfig, encoder: Any, hammer: HammerConfig, out: Path) -> None:
    demos = load_demos(config.demos)
    start = time.perf_counter()
    obs, actions, drift = demo_dataset(demos, encoder, hammer, n_envs=config.n_envs, seed=config.seed)
    losses = behaviour_clone(model, obs, actions, epochs=config.bc_epochs, seed=config.seed)
    write_text_atomic(out / "bc.csv", "epoch,nll\n" + "".join(f"{i + 1},{v:.5f}\n" for i, v in enumerate(losses)))
    log.info("behaviour cloning on %d demos (%d pairs): NLL %.3f -> %.3f in %.1f s; replay drift %.2e",
             len(demos), len(obs), losses[0], losses[-1], time.perf_counter() - start, drift)


def train(config: TrainConfig) -> dict[str, Any]:
    """Run (or resume) one training run; returns the summary also written to ``summary.json``."""
    out = Path(config.out)
    checkpoint = out / "checkpoint.zip"
    if checkpoint.exists() and not config.resume:
        raise ValueError(f"{out}: a run is already there (checkpoint.zip); pass --resume to continue it or choose "
                         "another --out")
    out.mkdir(parents=True, exist_ok=True)
    handler = _file_log(out)
    torch.set_num_threads(config.threads)
    set_random_seed(config.seed)
    device = resolve_device(config.device)
    hammer = config.hammer_config()
    encoder = config.build_observation_encoder(device)
    resuming = config.resume and checkpoint.exists()
    state = json.loads((out / "state.json").read_text()) if resuming and (out / "state.json").is_file() else {}
    ledger: dict[str, float] = dict(state.get("ledger", {}))
    venv = make_vec_env(hammer, encoder, config.n_envs, config.seed, batched=config.batched)
    # Returns are ~-240 per episode: unscaled, PPO's value function explained none of their variance in a
    # 100k-step state run; scaling rewards by a running return std fixes that. Observations stay raw, so
    # evaluation, demonstrations and behaviour cloning need no statistics.
    norm = out / "vecnormalize.pkl"
    if resuming and norm.is_file():
        venv = VecNormalize.load(str(norm), venv)
    else:
        venv = VecNormalize(venv, norm_obs=False, norm_reward=True, gamma=config.gamma)
    eval_env = None
    try:
        eval_env = make_vec_env(hammer, encoder, config.eval_envs, config.seed + EVAL_SEED_OFFSET)
        if resuming:
            model = PPO.load(str(checkpoint), env=venv, device=device)
            model.set_random_seed(config.seed + model.num_timesteps)
            log.info("resumed %s at %d steps", out, model.num_timesteps)
        else:
            write_json_atomic(out / "config.json", dataclasses.asdict(config), indent=2)
            model = PPO(
                "MlpPolicy", venv, n_steps=config.n_steps, batch_size=config.batch_size, n_epochs=config.n_epochs,
                learning_rate=config.learning_rate, gamma=config.gamma, gae_lambda=config.gae_lambda,
                policy_kwargs={"net_arch": list(config.net), "log_std_init": config.log_std_init},
                seed=config.seed, device=device, verbose=0,
            )
            if config.demos:
                _warm_start(model, config, encoder, hammer, out)
        done = model.num_timesteps
        model.set_logger(_logger(out, done))
        callback = RunCallback(out, eval_env, config.eval_every, config.eval_episodes,
                               config.seed + EVAL_SEED_OFFSET, config.checkpoint_every, config.steps, ledger,
                               eval_at_start=config.eval_at_start)
        if config.steps > done:
            model.learn(total_timesteps=config.steps - done, reset_num_timesteps=False, callback=callback)
        else:  # already at its step count: only the closing checkpoint / evaluation, if missing
            callback.init_callback(model)
            callback.on_training_start({}, {})
            callback.on_training_end()
        callback.finish()
        save_model_atomic(model, out / "final.zip")
        last = callback.rows[-1]
        summary = {
            "encoder": config.encoder, "seed": config.seed, "steps": model.num_timesteps,
            "success_rate": float(last["success_rate"]), "return_mean": float(last["return_mean"]),
            "device": str(device), "precision": "bf16" if encoder is not None and encoder.dtype is not None else "fp32",
            "seconds": {k: round(v, 1) for k, v in ledger.items()},
        }
        write_json_atomic(out / "summary.json", summary, indent=2)
        log.info("done: %s", summary)
        return summary
    finally:
        venv.close()
        if eval_env is not None:
            eval_env.close()
        logging.getLogger("funk_rl").removeHandler(handler)
        handler.close()


def add_observation_arguments(parser: argparse.ArgumentParser, defaults: ObservationConfig) -> None:
    """The environment and encoder options every funk_rl job shares (``defaults``: its config), but --encoder."""
    parser.add_argument("--model", default=defaults.model, help="funk checkpoint for the visual encoders")
    parser.add_argument("--pool", type=int, default=defaults.pool, help="average-pool features over a g x g grid")
    parser.add_argument("--precision", choices=PRECISIONS, default=defaults.precision)
    parser.add_argument("--device", default=defaults.device, help="auto (GPU when present), cpu, cuda, cuda:1...")
    parser.add_argument("--image-size", type=int, default=defaults.image_size)
    parser.add_argument("--camera", choices=CAMERAS, default=defaults.camera)
    parser.add_argument("--reward", choices=REWARDS, default=defaults.reward)


def _parser() -> argparse.ArgumentParser:
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(prog="python -m funk_rl.train_hammer", description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoder", choices=ENCODERS, default=defaults.encoder)
    parser.add_argument("--n-envs", type=int, default=defaults.n_envs)
    parser.add_argument("--steps", type=int, default=defaults.steps, help="environment steps in all")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--out", default="", help="run folder (default runs/hammer/<encoder>-s<seed>)")
    add_observation_arguments(parser, defaults)
    parser.add_argument("--per-env-features", action="store_true", help="one forward pass per env (RRL's design)")
    parser.add_argument("--eval-every", type=int, default=defaults.eval_every)
    parser.add_argument("--eval-episodes", type=int, default=defaults.eval_episodes)
    parser.add_argument("--eval-envs", type=int, default=defaults.eval_envs)
    parser.add_argument("--no-initial-eval", action="store_true", help="skip the evaluation before training")
    parser.add_argument("--checkpoint-every", type=int, default=defaults.checkpoint_every)
    parser.add_argument("--demos", default=None, help="demonstrations (hand_dapg pickle) for a BC warm start")
    parser.add_argument("--bc-epochs", type=int, default=defaults.bc_epochs)
    parser.add_argument("--n-steps", type=int, default=defaults.n_steps, help="PPO rollout length per env")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--n-epochs", type=int, default=defaults.n_epochs)
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    parser.add_argument("--threads", type=int, default=defaults.threads, help="torch threads in the main process")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    return parser


def config_from_args(argv: Sequence[str] | None = None) -> TrainConfig:
    args = vars(_parser().parse_args(argv))
    args["batched"] = not args.pop("per_env_features")
    args["eval_at_start"] = not args.pop("no_initial_eval")
    return TrainConfig(**args)


@command
def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    train(config_from_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
