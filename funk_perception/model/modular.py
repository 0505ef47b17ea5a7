"""The task-driven modular network and its gating network (docs/DESIGN.md, "Model").

Layer 0 has ``M_0`` modules that all read the trunk output. Module ``j`` of a
later layer ``i`` reads ``sum_k W_t[i, j, k] * o_(i-1)k``, a task-dependent
convex mix of the previous layer's module outputs; the network's output is the
single module of the last layer. Each module is conv + BatchNorm + ReLU.

Everything is batched: layer 0 does not depend on the task, so it runs once
for all tasks as one convolution with ``M_0 * F`` output channels; the later
layers fold the tasks into the batch and run the ``M_i`` modules of a layer as
one grouped convolution (``groups=M_i``), the mixing being one matmul over the
module axis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

GATINGS: tuple[str, ...] = ("task", "uniform", "shared")


def _as_tuple(value: object, name: str) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,)
    try:
        return tuple(int(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"ModularConfig.{name}: expected a sequence of ints, found {value!r}") from exc


@dataclass
class ModularConfig:
    """Sizes of the modular network; the defaults are the paper's (docs/DESIGN.md, "Model").

    ``filters`` is one int for every layer or one int per layer. ``in_channels``
    is the trunk's channel count (the encoder sets it from its trunk).
    ``final_relu``: the paper's modules all end in a ReLU, the last one
    included; set False to let the embedding use the whole sphere.
    ``input_projection``: when > 0, a learned 1 x 1 convolution first maps the
    trunk's channels to this many, so that a wide trunk (the multi-stage ones,
    432 channels) does not multiply the cost of layer 0's 7 x 7 convolutions,
    which already are most of the network's compute; 0: none (the paper).
    """

    in_channels: int = 1024
    modules_per_layer: tuple[int, ...] = (6, 6, 6, 1)
    filters: int | tuple[int, ...] = 128
    kernels: tuple[int, ...] = (7, 3, 3, 1)
    strides: tuple[int, ...] = (1, 1, 1, 1)
    paddings: tuple[int, ...] = (3, 1, 1, 0)
    gating: str = "task"
    num_tasks: int = 10
    embedding_dim: int = 100
    gating_hidden: int = 100
    final_relu: bool = True
    input_projection: int = 0

    def __post_init__(self) -> None:
        # Accept lists (as they come back from a checkpoint or a CLI) and check sizes early.
        self.modules_per_layer = _as_tuple(self.modules_per_layer, "modules_per_layer")
        self.kernels = _as_tuple(self.kernels, "kernels")
        self.strides = _as_tuple(self.strides, "strides")
        self.paddings = _as_tuple(self.paddings, "paddings")
        if not isinstance(self.filters, int):
            self.filters = _as_tuple(self.filters, "filters")
        n = len(self.modules_per_layer)
        if n < 1:
            raise ValueError("ModularConfig.modules_per_layer: expected at least one layer, found none")
        for name in ("kernels", "strides", "paddings") + (() if isinstance(self.filters, int) else ("filters",)):
            value = getattr(self, name)
            if len(value) != n:
                raise ValueError(
                    f"ModularConfig.{name}: expected {n} values (one per layer of modules_per_layer="
                    f"{self.modules_per_layer}), found {len(value)}: {value}"
                )
        if self.modules_per_layer[-1] != 1:
            raise ValueError(
                f"ModularConfig.modules_per_layer: the last layer must have 1 module (the output), "
                f"found {self.modules_per_layer[-1]}"
            )
        positive = {
            "modules_per_layer": self.modules_per_layer,
            "kernels": self.kernels,
            "strides": self.strides,
            "filters": self.layer_filters,
            "in_channels": (self.in_channels,),
            "num_tasks": (self.num_tasks,),
            "embedding_dim": (self.embedding_dim,),
            "gating_hidden": (self.gating_hidden,),
        }
        for name, values in positive.items():
            if any(v < 1 for v in values):
                raise ValueError(f"ModularConfig.{name}: expected positive values, found {values}")
        if self.input_projection < 0:
            raise ValueError(f"ModularConfig.input_projection: expected >= 0 (0: none), found {self.input_projection}")
        if any(p < 0 for p in self.paddings):
            raise ValueError(f"ModularConfig.paddings: expected values >= 0, found {self.paddings}")
        if self.gating not in GATINGS:
            raise ValueError(f"ModularConfig.gating: expected one of {', '.join(GATINGS)}, found {self.gating!r}")

    @property
    def layer_filters(self) -> tuple[int, ...]:
        if isinstance(self.filters, int):
            return (self.filters,) * len(self.modules_per_layer)
        return tuple(self.filters)

    @property
    def out_channels(self) -> int:
        return self.layer_filters[-1]

    @classmethod
    def from_dict(cls, values: dict) -> ModularConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"ModularConfig: unknown fields {unknown}; expected a subset of {sorted(known)}")
        return cls(**values)


class GatingNetwork(nn.Module):
    """Task id -> the mixing weights of every modular layer after the first.

    ``task``: a learned embedding per task -> 2-layer MLP -> logits, softmax
    over the inputs ``k`` of each module. ``shared``: the same, with one
    embedding used for every task (one learned gating). ``uniform``: every
    weight is ``1 / M_(i-1)``, nothing learned.
    """

    def __init__(self, config: ModularConfig) -> None:
        super().__init__()
        self.mode = config.gating
        self.num_tasks = config.num_tasks
        m = config.modules_per_layer
        self.shapes: tuple[tuple[int, int], ...] = tuple((m[i], m[i - 1]) for i in range(1, len(m)))
        total = sum(a * b for a, b in self.shapes)
        if self.mode == "uniform" or total == 0:
            self.embedding = None
            self.mlp = None
        else:
            self.embedding = nn.Embedding(config.num_tasks if self.mode == "task" else 1, config.embedding_dim)
            self.mlp = nn.Sequential(
                nn.Linear(config.embedding_dim, config.gating_hidden),
                nn.ReLU(inplace=True),
                nn.Linear(config.gating_hidden, total),
            )

    def forward(self, task_ids: torch.Tensor) -> list[torch.Tensor]:
        """``(T,)`` task ids -> per layer ``i >= 1`` a ``(T, M_i, M_(i-1))`` tensor, rows on the simplex."""
        if task_ids.dim() != 1:
            raise ValueError(f"task_ids: expected shape (T,), found {tuple(task_ids.shape)}")
        if task_ids.numel() and (int(task_ids.min()) < 0 or int(task_ids.max()) >= self.num_tasks):
            raise ValueError(f"task_ids: expected values in [0, {self.num_tasks}), found {task_ids.tolist()}")
        count = task_ids.shape[0]
        if self.embedding is None or self.mlp is None:
            device = task_ids.device
            return [torch.full((count, a, b), 1.0 / b, device=device) for a, b in self.shapes]
        if self.mode == "task":
            logits = self.mlp(self.embedding(task_ids))
        else:
            # Computed once and repeated, so every task gets bit-identical weights.
            logits = self.mlp(self.embedding.weight).expand(count, -1)
        weights: list[torch.Tensor] = []
        start = 0
        for a, b in self.shapes:
            weights.append(logits[:, start : start + a * b].reshape(count, a, b).softmax(dim=-1))
            start += a * b
        return weights


def _nhwc(t: torch.Tensor) -> torch.Tensor:
    """(N, C, h, w) -> (N, h, w, C); free for a channels-last tensor."""
    return t.permute(0, 2, 3, 1)


def _nchw(t: torch.Tensor) -> torch.Tensor:
    """(N, h, w, C) contiguous -> (N, C, h, w) channels-last view."""
    return t.permute(0, 3, 1, 2)


def _block(
    in_channels: int, out_channels: int, kernel: int, stride: int, padding: int, groups: int, relu: bool
) -> nn.Sequential:
    # bias=False: the BatchNorm right after has its own shift.
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel, stride, padding, groups=groups, bias=False),
        nn.BatchNorm2d(out_channels),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class ModularNetwork(nn.Module):
    """The modular network and its gating, batched over tasks.

    ``forward(x, task_ids)``: trunk features ``(B, C, h, w)`` and ``(T,)`` task
    ids -> ``(B, T, F_out, h', w')`` raw features (not normalised), every
    image for every listed task. ``forward_per_sample(x, task_ids)``: ``(B,)``
    task ids, one per image -> ``(B, F_out, h', w')`` (what training needs).
    """

    def __init__(self, config: ModularConfig) -> None:
        super().__init__()
        self.config = config
        m, f = config.modules_per_layer, config.layer_filters
        k, s, p = config.kernels, config.strides, config.paddings
        last = len(m) - 1
        self.gating = GatingNetwork(config)
        if config.input_projection:
            self.project = nn.Conv2d(config.in_channels, config.input_projection, 1, bias=False)
            self.project.to(memory_format=torch.channels_last)
        width = config.input_projection or config.in_channels
        self.blocks = nn.ModuleList()
        # Layer 0: all M_0 modules read the same trunk output -> one dense conv.
        self.blocks.append(_block(width, m[0] * f[0], k[0], s[0], p[0], 1, config.final_relu or last > 0))
        for i in range(1, len(m)):
            relu = config.final_relu or i < last
            self.blocks.append(_block(m[i] * f[i - 1], m[i] * f[i], k[i], s[i], p[i], m[i], relu))
        self.blocks.to(memory_format=torch.channels_last)

    @property
    def stride(self) -> int:
        return math.prod(self.config.strides)

    @property
    def out_channels(self) -> int:
        return self.config.out_channels

    def _first(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.config.in_channels:
            raise ValueError(
                f"modular network: expected trunk features of shape (B, {self.config.in_channels}, h, w), "
                f"found {tuple(x.shape)}"
            )
        x = x.contiguous(memory_format=torch.channels_last)
        if self.config.input_projection:
            x = self.project(x)
        return self.blocks[0](x)

    def _second_conv_then_mix(self, prev: torch.Tensor, w: torch.Tensor, h: int, wd: int) -> torch.Tensor:
        """Layer 1 for many tasks: run each module on each shared input once, then mix.

        ``prev``: layer 0's output as ``(B, h*w, M_0, F_0)``. Conv is linear, so
        ``conv_j(sum_k W[t,j,k] o_k) = sum_k W[t,j,k] conv_j(o_k)``: ``M_0 * M_1``
        convolutions however many tasks, instead of ``T * M_1``. Returns layer
        1's output ``(B*T, M_1*F_1, h', w')``; BatchNorm and ReLU act after the
        mix, exactly as in the module.
        """
        batch, _, m0, f0 = prev.shape
        conv, norm_relu = self.blocks[1][0], self.blocks[1][1:]
        images = _nchw(prev.permute(0, 2, 1, 3).reshape(batch * m0, h, wd, f0))
        # A grouped conv's weight (M_1*F_1, F_0, k, k) used densely applies every module to one input.
        y = F.conv2d(images, conv.weight, None, conv.stride, conv.padding)
        m1, h2, w2 = w.shape[1], y.shape[2], y.shape[3]
        y = _nhwc(y).reshape(batch, m0, h2 * w2, m1, -1)  # (B, k, p, j, f)
        mixed = torch.einsum("tjk,bkpjf->btpjf", w, y)
        return norm_relu(_nchw(mixed.reshape(batch * w.shape[0], h2, w2, -1)))

    def forward_with_weights(
        self, x: torch.Tensor, weights: list[torch.Tensor], per_sample: bool = False
    ) -> torch.Tensor:
        """Run with explicit gating weights (``(T, M_i, M_(i-1))`` per layer, or ``(B, ...)`` if ``per_sample``).

        Activations stay channels-last (NHWC in memory): oneDNN's CPU
        convolutions, grouped ones especially, are faster that way, and the
        module axis is then a plain reshape of the channel axis.
        """
        batch = x.shape[0]
        o = self._first(x)
        if len(self.blocks) == 1:
            return o.contiguous()
        count = weights[0].shape[0]
        if per_sample and count != batch:
            raise ValueError(f"per-sample gating: {count} weight sets for a batch of {batch} images")
        m0 = self.config.modules_per_layer[0]
        for i in range(1, len(self.blocks)):
            w = weights[i - 1].to(o.dtype)
            mk = w.shape[2]
            h, wd = o.shape[-2:]
            prev = _nhwc(o).reshape(o.shape[0], h * wd, mk, -1)  # (N, h*w, M_(i-1), F)
            if per_sample:
                mixed = torch.einsum("bjk,bpkf->bpjf", w, prev)
            elif i == 1 and count > m0:
                o = self._second_conv_then_mix(prev, w, h, wd)
                continue
            elif i == 1:
                # Layer 0's output is shared by every task.
                mixed = torch.einsum("tjk,bpkf->btpjf", w, prev)
            else:
                prev = prev.reshape(batch, count, h * wd, mk, -1)
                mixed = torch.einsum("tjk,btpkf->btpjf", w, prev)
            o = self.blocks[i](_nchw(mixed.reshape(-1, h, wd, mixed.shape[-2] * mixed.shape[-1])))
        if per_sample:
            return o.contiguous()
        return o.reshape(batch, count, *o.shape[1:]).contiguous()

    def forward(self, x: torch.Tensor, task_ids: torch.Tensor) -> torch.Tensor:
        weights = self.gating(task_ids)
        if len(self.blocks) == 1:
            o = self._first(x)
            return o.unsqueeze(1).expand(-1, task_ids.shape[0], -1, -1, -1)
        return self.forward_with_weights(x, weights)

    def forward_per_sample(self, x: torch.Tensor, task_ids: torch.Tensor) -> torch.Tensor:
        """``(B, C, h, w)`` features and ``(B,)`` task ids (one per image) -> ``(B, F_out, h', w')``."""
        if task_ids.dim() != 1 or task_ids.shape[0] != x.shape[0]:
            raise ValueError(
                f"forward_per_sample: expected one task id per image, shape ({x.shape[0]},), "
                f"found {tuple(task_ids.shape)}"
            )
        if len(self.blocks) == 1:
            return self._first(x)
        return self.forward_with_weights(x, self.gating(task_ids), per_sample=True)
