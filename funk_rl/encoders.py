"""Observation encoders: a batch of frames -> one feature vector per frame, on the model's device.

- ``funk``: task-conditioned embeddings of the shipped checkpoint for the hammer's
  two FunKPoint tasks (``mash_pound``, ``pull_out_nail``), average-pooled over a
  ``pool x pool`` grid. The default (both tasks, global pooling: 256-d) is chosen
  by the linear-probe measurement in ``benchmarks/bench_rl_probe.py`` (docs/RL.md).
- ``funk-keypoints``: the five functional keypoints of each of those tasks as
  normalised ``(x, y)`` plus their confidence: 2 x 5 x 3 = 30 numbers.
- ``imagenet``: the same frozen ImageNet trunk without the modular network,
  pooled the same way (112-d): what funk's head adds is the difference to this.
- ``state``: no frames at all; the environment's 46-d state (handled by the env): the ceiling.
- ``proprio``: no frames either; the 26 joint positions alone (handled by the env): the floor that says
  what the image adds.

Mirror-averaging (the detector's ``flip``) is off by default: it makes keypoint
embeddings mirror-equivariant for FunKPoint's semantic labels, which a policy
watching one fixed camera does not need, and it doubles the forward pass.

Precision: ``"auto"`` runs bf16 autocast when, on the first batch, it keeps the
output within :data:`BF16_TOLERANCE` (relative L2 per frame) of float32 and is
faster than float32 on this device (GPUs, CPUs with bf16 units), and float32
otherwise; ``"bf16"`` asks for it whenever it is within tolerance, ``"fp32"`` never.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import torch

from funk_perception.detector import FunctionalKeypointDetector
from funk_perception.shipped import default_checkpoint
from funk_perception.tasks import NUM_KEYPOINTS, normalize_task

ENCODERS = ("funk", "funk-keypoints", "imagenet", "state", "proprio")
VISUAL_ENCODERS = ENCODERS[:3]
HAMMER_TASKS = ("mash_pound", "pull_out_nail")
PRECISIONS = ("auto", "fp32", "bf16")
BF16_TOLERANCE = 0.02
DEFAULT_MODEL = default_checkpoint()

log = logging.getLogger(__name__)


@dataclass
class ObservationEncoderConfig:
    """Which observation encoder, on which checkpoint, for which tasks, pooled how."""

    name: str = "funk"
    model: str = str(DEFAULT_MODEL)
    tasks: tuple[str, ...] = HAMMER_TASKS
    pool: int = 1
    precision: str = "auto"
    device: str = "auto"
    flip: bool = False

    def __post_init__(self) -> None:
        if self.name not in ENCODERS:
            raise ValueError(f"encoder: expected one of {', '.join(ENCODERS)}, found {self.name!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision: expected one of {', '.join(PRECISIONS)}, found {self.precision!r}")
        if int(self.pool) < 1:
            raise ValueError(f"pool: expected >= 1, found {self.pool}")
        self.tasks = tuple(normalize_task(t) for t in self.tasks)
        if not self.tasks:
            raise ValueError("tasks: expected at least one task, found none")


class FrameEncoder:
    """``encoder(frames)``: uint8 ``(N, H, W, 3)`` (numpy or torch) -> float32 ``(N, dim)`` on ``device``."""

    def __init__(self, detector: FunctionalKeypointDetector, config: ObservationEncoderConfig) -> None:
        if config.name not in VISUAL_ENCODERS:
            raise ValueError(
                f"FrameEncoder: expected a visual encoder ({', '.join(VISUAL_ENCODERS)}), found {config.name!r}"
            )
        self.detector = detector
        self.config = config
        self.device = detector.device
        self.dtype: torch.dtype | None = None
        self._checked = config.precision == "fp32"
        pool = int(config.pool)
        if config.name == "funk":
            self.dim = len(config.tasks) * detector.encoder.embedding_dim * pool * pool
        elif config.name == "imagenet":
            self.dim = detector.encoder.trunk.out_channels * pool * pool
        else:
            self.dim = len(config.tasks) * NUM_KEYPOINTS * 3

    @property
    def image_size(self) -> int:
        return self.detector.image_size

    def encode(self, frames: np.ndarray | torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
        """``(N, dim)`` features at an explicit precision (``None``: float32); calling the encoder picks one."""
        config, detector = self.config, self.detector
        if config.name == "funk":
            out = detector.features_batch(frames, config.tasks, pool=config.pool, dtype=dtype, flip=config.flip)
        elif config.name == "imagenet":
            out = detector.trunk_features_batch(frames, pool=config.pool, dtype=dtype)
        else:
            points, confidence = detector.keypoints_batch(frames, config.tasks, dtype=dtype, flip=config.flip)
            out = torch.cat([points, confidence.unsqueeze(-1)], dim=-1)
        return out.reshape(out.shape[0], -1)

    def _seconds(self, frames: np.ndarray | torch.Tensor, dtype: torch.dtype | None) -> float:
        # CPU time on the CPU (other jobs' load does not count), synchronised wall time on a GPU.
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            start = time.perf_counter()
            self.encode(frames, dtype)
            torch.cuda.synchronize(self.device)
            return time.perf_counter() - start
        start = time.process_time()
        self.encode(frames, dtype)
        return time.process_time() - start

    def _choose_precision(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        reference = self.encode(frames, None)
        candidate = self.encode(frames, torch.bfloat16)
        error = float(((candidate - reference).norm(dim=1) / reference.norm(dim=1).clamp_min(1e-8)).max())
        # bf16 only where it is both close enough and faster: CPUs without bf16 units run it slower.
        fp32_s, bf16_s = self._seconds(frames, None), self._seconds(frames, torch.bfloat16)
        keep = error <= BF16_TOLERANCE and (self.config.precision == "bf16" or bf16_s < fp32_s)
        self.dtype = torch.bfloat16 if keep else None
        self._checked = True
        log.info(
            "encoder %s: bf16 relative error %.4f (tolerance %.3f), %.0f ms against fp32's %.0f: running %s",
            config_name(self.config),
            error,
            BF16_TOLERANCE,
            1000 * bf16_s,
            1000 * fp32_s,
            "bf16" if keep else "fp32",
        )
        return candidate if keep else reference

    def __call__(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        if not self._checked:
            return self._choose_precision(frames)
        return self.encode(frames, self.dtype)


def observation_kind(name: str) -> str:
    """What the workers must return for encoder ``name``: ``pixels``, ``state`` or ``proprio``."""
    return "pixels" if name in VISUAL_ENCODERS else name


def config_name(config: ObservationEncoderConfig) -> str:
    """A short label such as ``funk[mash_pound+pull_out_nail,pool1]``."""
    if config.name not in VISUAL_ENCODERS:
        return config.name
    detail = "+".join(config.tasks) if config.name != "imagenet" else "trunk"
    return (
        f"{config.name}[{detail},pool{config.pool}]" if config.name != "funk-keypoints" else f"{config.name}[{detail}]"
    )


def build_encoder(config: ObservationEncoderConfig, image_size: int | None = None) -> FrameEncoder | None:
    """Load the checkpoint and wrap it; ``None`` for the ``state`` and ``proprio`` encoders, which need no frames.

    ``image_size``: the side of the frames it will get, when not the checkpoint's own (the encoder is fully
    convolutional; smaller frames trade feature quality for speed). The checkpoint's bank, heatmap head and
    detect method come along at any size, so ``funk-keypoints`` runs the shipped ``detect``.
    """
    if config.name not in VISUAL_ENCODERS:
        return None
    detector = FunctionalKeypointDetector.load(config.model, device=config.device, image_size=image_size)
    return FrameEncoder(detector, config)
