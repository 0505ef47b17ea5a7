"""Evaluate a trained hammer policy (or the DAPG expert): success by DAPG's rule with a 95 % interval, returns,
and a video of an episode showing the camera frame the policy sees.

    python -m funk_rl.evaluate runs/hammer/funk-s0 --episodes 50 --video results/rl/funk.mp4 --json eval.json
    python -m funk_rl.evaluate runs/hammer/funk-s0 --action-noise 0.1
    python -m funk_rl.evaluate --expert funk_rl/experts/dapg-hammer-v0.npz --episodes 50   # the expert itself

Episode ``i`` resets with seed ``--seed + i``, exactly (:func:`funk_rl.rollouts.run_episodes`); the default
first seed is train_hammer's evaluation seed, which no training episode uses. The policy acts
deterministically; ``--action-noise`` adds Gaussian noise to its actions. The run folder's ``config.json``
rebuilds its environment and encoder; ``policy.zip`` is the policy.
"""

from __future__ import annotations

import torch  # noqa: F401  isort: skip  (before any GL context: docs/DESIGN.md, "Import torch first")
import torchvision  # noqa: F401  isort: skip
import funk_perception.offscreen_gl  # noqa: F401  isort: skip  (MUJOCO_GL before MuJoCo loads)


import io
import logging
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecEnv

from funk_perception.atomic import write_bytes_atomic, write_json_atomic
from funk_perception.cli import (
    command,
    parse_config,
)
from funk_perception.model import resolve_device
from funk_rl.envs import EPISODE_STEPS
from funk_rl.expert import DapgExpert
from funk_rl.policy import observation_code
from funk_rl.rollouts import Evaluation, evaluate_policy
from funk_rl.train_hammer import EVAL_SEED, TrainConfig, load_run_config

#: The video's frame side: the policy's frames (84 px by default) scaled up, nearest neighbour, to be seen.
VIDEO_SIZE = 336
VIDEO_FPS = 25
#: Keypoint colours (BGR for OpenCV drawing on RGB frames read as such: red, orange, yellow, green, blue).
KEYPOINT_COLOURS = ((255, 0, 0), (255, 140, 0), (230, 220, 0), (0, 190, 0), (0, 90, 255))

log = logging.getLogger("funk_rl")


@dataclass
class EvaluateConfig:
    """What to evaluate and how; ``run`` is the positional run folder."""

    run: str = field(default="", metadata={"help": "train_hammer run folder"})
    expert: str = field(default="", metadata={"help": "evaluate this DAPG expert file instead of a run"})
    episodes: int = field(default=50, metadata={"help": "evaluation episodes"})
    seed: int = field(default=EVAL_SEED, metadata={"help": "episode i resets with seed + i"})
    action_noise: float = field(default=0.0, metadata={"help": "Gaussian noise added to every action (std)"})
    n_envs: int = field(default=2, metadata={"help": "environments in worker processes"})
    video: str = field(default="", metadata={"help": "write an .mp4 of the first episode here"})
    json: str = field(default="", metadata={"help": "write the result as JSON here"})
    device: str = field(default="auto", metadata={"help": "auto (GPU when present), cpu, cuda..."})

    def __post_init__(self) -> None:
        if bool(self.run) == bool(self.expert):
            raise ValueError(
                f"expected a run folder or --expert FILE (exactly one), found {'both' if self.run else 'neither'}"
            )
        for name in ("episodes", "n_envs"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"--{name.replace('_', '-')}: expected >= 1, found {getattr(self, name)}")
        if float(self.action_noise) < 0:
            raise ValueError(f"--action-noise: expected >= 0, found {self.action_noise}")
        if self.video and not self.video.endswith(".mp4"):
            raise ValueError(f"--video: expected an .mp4 path, found {self.video!r}")


class ExpertPolicy:
    """The DAPG expert behind ``predict``, acting on the 46-d state (the phase column dropped)."""

    def __init__(self, expert: DapgExpert) -> None:
        self.expert = expert

    def predict(self, observation: np.ndarray, deterministic: bool = True) -> tuple[np.ndarray, None]:
        return self.expert.act(np.asarray(observation)[:, :-1]), None


def load_policy(folder: str | Path, run: TrainConfig, device: torch.device) -> PPO:
    """``policy.zip`` of a run folder, checked against the run's encoder."""
    path = Path(folder) / "policy.zip"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no final policy (is the run finished? train_hammer --resume ends it)")
    try:
        model = PPO.load(str(path), device=device)
    except Exception as exc:  # SB3 raises many kinds for a foreign or truncated zip
        raise ValueError(f"{path}: not a stable-baselines3 policy ({type(exc).__name__}: {exc})") from exc
    observation_code(model)
    return model


def _check_encoder(model: PPO, venv: VecEnv, path: Path, encoder: str) -> None:
    expected, found = venv.observation_space.shape, model.observation_space.shape
    if expected != found:
        raise ValueError(
            f"{path}: the policy reads observations of shape {found}, the run's --encoder {encoder} "
            f"gives {expected} (was policy.zip copied from a run of another encoder?)"
        )


class VideoRecorder:
    """Frames of the first episode's first environment, with ``funk-keypoints``' points drawn on them."""

    def __init__(self, venv: VecEnv, keypoints: int) -> None:
        self.venv = venv
        self.keypoints = keypoints
        self.frames: list[np.ndarray] = []

    def __call__(self, observation: np.ndarray, step: int) -> None:
        if len(self.frames) >= EPISODE_STEPS:
            return
        frame = self.venv.get_images()[0]
        frame = cv2.resize(frame, (VIDEO_SIZE, VIDEO_SIZE), interpolation=cv2.INTER_NEAREST)
        if self.keypoints:
            points = observation[0, : 3 * self.keypoints].reshape(-1, 3)
            for k, (x, y, confidence) in enumerate(points):
                colour = KEYPOINT_COLOURS[k % len(KEYPOINT_COLOURS)]
                centre = (int(round(x * VIDEO_SIZE)), int(round(y * VIDEO_SIZE)))
                cv2.circle(
                    frame,
                    centre,
                    6 if k < len(KEYPOINT_COLOURS) else 4,
                    colour,
                    2 if confidence >= 0.5 else 1,
                    cv2.LINE_AA,
                )
        cv2.putText(frame, f"step {step}", (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
        self.frames.append(np.ascontiguousarray(frame))

    def write(self, path: Path) -> None:
        check_video_codec(path)
        buffer = io.BytesIO()
        iio.imwrite(
            buffer, np.stack(self.frames), extension=".mp4", fps=VIDEO_FPS, codec="libx264", macro_block_size=16
        )
        write_bytes_atomic(path, buffer.getvalue())


def check_video_codec(path: str | Path) -> None:
    """The ffmpeg executable imageio writes .mp4 with (imageio-ffmpeg's, or ``IMAGEIO_FFMPEG_EXE``), or an error."""
    try:
        exe = imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as exc:
        raise ValueError(f"{path}: no video codec: expected an ffmpeg executable ({exc})") from exc
    if shutil.which(exe) is None:
        raise ValueError(
            f"{path}: no video codec: expected an ffmpeg executable at {exe} "
            "(IMAGEIO_FFMPEG_EXE, or the imageio-ffmpeg package: pip install -e '.[rl]')"
        )


def evaluate_run(config: EvaluateConfig) -> dict[str, Any]:
    """Evaluate a run folder or the expert; writes ``--json`` and ``--video`` when asked."""
    if config.video:
        check_video_codec(config.video)  # before minutes of episodes, not after
    torch.set_num_threads(1)
    device = resolve_device(config.device)
    if config.expert:
        run = TrainConfig(encoder="state", expert=config.expert)
        policy: Any = ExpertPolicy(DapgExpert.load(config.expert))
        encoder = None
        label = f"expert {config.expert}"
    else:
        run = load_run_config(config.run)
        encoder = run.build_encoder(device)
        policy = load_policy(config.run, run, device)
        label = f"{config.run} (encoder {run.encoder})"
    venv = run.make_env(encoder, config.n_envs, config.seed, render=bool(config.video))
    try:
        if not config.expert:
            _check_encoder(policy, venv, Path(config.run) / "policy.zip", run.encoder)
        recorder = None
        if config.video:
            keypoints = 10 if run.encoder == "funk-keypoints" else 0
            recorder = VideoRecorder(venv, keypoints)
        result: Evaluation = evaluate_policy(
            policy,
            venv,
            config.episodes,
            config.seed,
            EPISODE_STEPS,
            action_noise=config.action_noise,
            on_step=recorder,
        )
    finally:
        venv.close()
    summary = {"evaluated": label, "encoder": run.encoder, **result.as_dict()}
    log.info(
        "%s: %d / %d successes (%.0f %%, 95 %% interval %.0f-%.0f %%), return %.1f +- %.1f, seeds %d-%d",
        label,
        result.successes,
        result.episodes,
        100 * result.success_rate,
        100 * result.interval[0],
        100 * result.interval[1],
        result.return_mean,
        result.return_std,
        *result.seeds,
    )
    if recorder is not None:
        recorder.write(Path(config.video))
        log.info("video of episode seed %d: %s", config.seed, config.video)
    if config.json:
        write_json_atomic(config.json, summary, indent=2)
    return summary


def config_from_args(argv: Sequence[str] | None = None) -> EvaluateConfig:
    args = list(sys.argv[1:] if argv is None else argv)
    # The run folder is positional, as in the module's usage; the rest are the dataclass's flags.
    if args and not args[0].startswith("-"):
        args = ["--run", args[0], *args[1:]]
    return parse_config(EvaluateConfig, args, "python -m funk_rl.evaluate", __doc__.split("\n\n")[0])


@command
def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    evaluate_run(config_from_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
