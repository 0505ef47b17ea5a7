"""Grasp-success model: patch features (three kinds) + the 18-way angle one-hot -> a 2-layer MLP (docs/DESIGN.md, "Grasp success").

Feature kinds, the three rows of the paper's Table 4:

- ``trunk``: the ImageNet trunk's stride-16 map (EfficientNet-Lite0, 112
  channels), pooled.
- ``trunk_categories``: the same trunk whose last stage was fine-tuned to
  classify the 20 training categories (:mod:`funk_grasp.categories`), pooled.
- ``funk``: the shipped funk encoder's task embeddings (unit-norm, 128-d per
  task), pooled per task and concatenated over the chosen tasks.

Every kind splits into a frozen *base* (the trunk up to its last stage, the
same weights in all three rows, so one cache of base maps serves them all) and
a *top* that fine-tuning may change (the trunk's last stage, plus the funk
modular network for ``funk``). The trunk's BatchNorm statistics stay
ImageNet's during fine-tuning (small batches would only add noise to them).

Pooling, over the patch's feature grid (the grasp point is the patch centre):
``mean`` (the whole patch), ``centre`` (the 2 x 2 cells around the grasp
point), ``mean_centre`` (both, concatenated). Which one the benchmark uses
is measured on the validation split (docs/GRASP.md).
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from funk_grasp.data import ANGLE_BINS
from funk_perception.atomic import torch_save_atomic
from funk_perception.model import FunctionalEncoder, Trunk
from funk_perception.shipped import DEFAULT_CHECKPOINT
from funk_perception.tasks import TASKS, normalize_task

FEATURE_KINDS: tuple[str, ...] = ("trunk", "trunk_categories", "funk")
POOLINGS: tuple[str, ...] = ("mean", "centre", "mean_centre")
CHECKPOINT_FORMAT = "funk-grasp"
CHECKPOINT_VERSION = 1
DEFAULT_ENCODER = Path(DEFAULT_CHECKPOINT)  # relative: result files record it as given


@dataclass(frozen=True)
class FeatureConfig:
    """Which features, from where, pooled how."""

    kind: str = "funk"
    tasks: tuple[str, ...] = TASKS  # funk only: the task embeddings used
    pooling: str = "mean_centre"
    encoder: str = str(DEFAULT_ENCODER)  # funk checkpoint (its trunk is the trunk of every row)
    categories_checkpoint: str = ""  # trunk_categories: the file funk_grasp.categories wrote
    image_size: int = 128  # patches are resized to this side before the trunk (the simulated patches' size)

    def __post_init__(self) -> None:
        if self.kind not in FEATURE_KINDS:
            raise ValueError(f"FeatureConfig.kind: expected one of {', '.join(FEATURE_KINDS)}, found {self.kind!r}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"FeatureConfig.pooling: expected one of {', '.join(POOLINGS)}, found {self.pooling!r}")
        tasks = tuple(normalize_task(t) for t in self.tasks)
        if not tasks:
            raise ValueError("FeatureConfig.tasks: expected at least one task")
        object.__setattr__(self, "tasks", tasks)
        if self.kind == "trunk_categories" and not self.categories_checkpoint:
            raise ValueError(
                "FeatureConfig.categories_checkpoint: the trunk_categories row needs the file written by "
                "python -m funk_grasp.categories"
            )


def pool(maps: torch.Tensor, pooling: str) -> torch.Tensor:
    """(B, C, h, w) -> (B, C) or (B, 2C): the grid mean and/or the 2 x 2 cells at the centre."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling: expected one of {', '.join(POOLINGS)}, found {pooling!r}")
    h, w = maps.shape[-2:]
    parts = []
    if pooling in ("mean", "mean_centre"):
        parts.append(maps.mean(dim=(-2, -1)))
    if pooling in ("centre", "mean_centre"):
        r0, c0 = max((h - 1) // 2, 0), max((w - 1) // 2, 0)
        parts.append(maps[..., r0 : r0 + 2, c0 : c0 + 2].mean(dim=(-2, -1)))
    return torch.cat(parts, dim=1)


class _FrozenBatchNorm(nn.Module):
    """Keeps a wrapped module in eval mode (ImageNet BatchNorm statistics) while its weights train."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def train(self, mode: bool = True) -> _FrozenBatchNorm:
        super().train(mode)
        self.module.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)


class GraspFeatures(nn.Module):
    """Patch images -> pooled features, as base (frozen, cacheable) then top (tunable)."""

    def __init__(self, config: FeatureConfig, encoder: FunctionalEncoder) -> None:
        super().__init__()
        self.config = config
        trunk: Trunk = encoder.trunk
        # The trunk is frozen and runs under no_grad; copies of its layers are used here so the last stage can
        # learn (Trunk.split_last_stage, the trunk's public hook for this).
        base, stage = trunk.split_last_stage()
        self.base = base.requires_grad_(False).eval()
        in_scale, in_shift = trunk.native_affine()
        self.register_buffer("in_scale", in_scale, persistent=False)
        self.register_buffer("in_shift", in_shift, persistent=False)
        self.stage = _FrozenBatchNorm(stage.requires_grad_(True))
        if config.kind == "trunk_categories":
            state = torch.load(config.categories_checkpoint, map_location="cpu", weights_only=True)
            if not isinstance(state, dict) or "stage" not in state:
                raise ValueError(
                    f"{config.categories_checkpoint}: expected a funk_grasp.categories checkpoint with 'stage'"
                )
            self.stage.module.load_state_dict(state["stage"])
        self.encoder = None
        if config.kind == "funk":
            # the modular network, gating and task embeddings learn; its own frozen trunk is never run here
            self.encoder = copy.deepcopy(encoder)
            self.dim_per_map = encoder.embedding_dim
            self.maps = len(config.tasks)
        else:
            self.dim_per_map = trunk.out_channels
            self.maps = 1
        self.out_dim = self.dim_per_map * self.maps * (2 if config.pooling == "mean_centre" else 1)

    def base_maps(self, images: torch.Tensor) -> torch.Tensor:
        """ImageNet-normalised (B, 3, H, W) -> the frozen base's (B, C, H/16, W/16) map."""
        with torch.no_grad():
            x = images.to(self.in_scale.device) * self.in_scale + self.in_shift
            return self.base(x.contiguous(memory_format=torch.channels_last))

    def top(self, base: torch.Tensor) -> torch.Tensor:
        """Base maps -> (B, out_dim) pooled features (differentiable in the top's weights)."""
        x = self.stage(base.to(self.in_scale.device, torch.float32))
        if self.encoder is None:
            return pool(x, self.config.pooling)
        emb = self.encoder.embed(x, self.config.tasks)  # (B, T, D, h, w), unit-norm
        b, t, d, h, w = emb.shape
        return pool(emb.reshape(b, t * d, h, w), self.config.pooling)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.top(self.base_maps(images))


class GraspHead(nn.Module):
    """Features + angle one-hot -> success logit: LayerNorm on the features, then a 2-layer MLP."""

    def __init__(self, feature_dim: int, hidden: int = 256, dropout: float = 0.2) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(feature_dim)
        self.mlp = nn.Sequential(
            nn.Linear(feature_dim + ANGLE_BINS, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 1)
        )
        self.feature_dim, self.hidden, self.dropout = feature_dim, hidden, dropout

    def forward(self, features: torch.Tensor, angle_one_hot: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.cat([self.norm(features), angle_one_hot.to(features.dtype)], dim=1)).squeeze(1)


class GraspModel(nn.Module):
    """Patch + angle bin -> success logit. ``features`` may be None when the head runs on cached features."""

    def __init__(
        self, config: FeatureConfig, encoder: FunctionalEncoder, hidden: int = 256, dropout: float = 0.2
    ) -> None:
        super().__init__()
        self.features = GraspFeatures(config, encoder)
        self.head = GraspHead(self.features.out_dim, hidden, dropout)

    def forward(self, images: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
        one_hot = F.one_hot(bins.long().to(images.device), ANGLE_BINS).float()
        return self.head(self.features(images), one_hot)

    def trained_state(self, tuned_top: bool) -> dict[str, torch.Tensor]:
        """What training changed: the head, plus the feature top when it was fine-tuned (never the frozen base)."""
        keep = ("head.", "features.stage.") if tuned_top else ("head.",)
        # the encoder's learned part is what it says it is (FunctionalEncoder.head_state_dict: never the trunk)
        encoder = self.features.encoder
        learned = (
            set() if not tuned_top or encoder is None else {f"features.encoder.{k}" for k in encoder.head_state_dict()}
        )
        return {k: v.detach().cpu() for k, v in self.state_dict().items() if k.startswith(keep) or k in learned}

    def save(self, path: str | Path, extra: dict[str, Any] | None = None, tuned_top: bool = True) -> None:
        """Write a checkpoint atomically: the feature config and :meth:`trained_state`.

        A head-only checkpoint (``tuned_top=False``) rebuilds its features from the
        files its config names (the funk encoder, the categories checkpoint).
        """
        torch_save_atomic(
            {
                "format": CHECKPOINT_FORMAT,
                "version": CHECKPOINT_VERSION,
                "features": asdict(self.features.config),
                "head": {"hidden": self.head.hidden, "dropout": self.head.dropout},
                "tuned_top": bool(tuned_top),
                "state_dict": self.trained_state(tuned_top),
                "extra": dict(extra or {}),
            },
            path,
        )

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> GraspModel:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: grasp model checkpoint not found")
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
            found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
            raise ValueError(
                f"{path}: not a funk grasp checkpoint: expected format {CHECKPOINT_FORMAT!r}, found {found!r}"
            )
        if payload.get("version") != CHECKPOINT_VERSION:
            raise ValueError(
                f"{path}: checkpoint version {payload.get('version')!r}, this code reads {CHECKPOINT_VERSION}"
            )
        features = dict(payload["features"])
        features["tasks"] = tuple(features["tasks"])
        config = FeatureConfig(**features)
        model = cls(config, load_encoder(config.encoder), **payload["head"])
        missing, unexpected = model.load_state_dict(payload["state_dict"], strict=False)
        expected = set(model.trained_state(bool(payload.get("tuned_top", True))))
        missing = [k for k in missing if k in expected]
        if missing or unexpected:
            raise ValueError(
                f"{path}: state_dict does not match its config: missing {missing}, unexpected {unexpected}"
            )
        model.extra = payload.get("extra", {})
        return model.to(device).eval()


def load_encoder(path: str | Path = DEFAULT_ENCODER, device: str | torch.device = "cpu") -> FunctionalEncoder:
    """The funk encoder whose trunk every row shares (and whose modular network the funk row uses)."""
    return FunctionalEncoder.load(path, device)


__all__ = [
    "FEATURE_KINDS",
    "FeatureConfig",
    "GraspFeatures",
    "GraspHead",
    "GraspModel",
    "POOLINGS",
    "load_encoder",
    "pool",
]
