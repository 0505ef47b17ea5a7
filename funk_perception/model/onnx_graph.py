"""The encoder as an ONNX graph: trunk, modular network(s) and trunk blend for a fixed list of tasks.

What the graph computes is exactly :meth:`FunctionalEncoder.forward` for the tasks it was made for:
ImageNet-normalised ``images`` ``(B, 3, S, S)`` -> unit ``embeddings`` ``(B, T, D, S/16, S/16)``. It is
written again here, in the operations an exporter and TensorRT's ONNX parser handle best, rather than
traced from the training module:

- the tasks are fixed, so the gating network's mixing weights are constants of the graph (no task input,
  no embedding lookup, no softmax at run time);
- the task mixes are MatMuls over the module axis instead of ``einsum`` (ONNX Runtime's Einsum cost 14 of
  109 ms of the ten-task encoder on one CPU thread; TensorRT's Einsum layer takes fewer equations);
- layer 1 runs its convolutions before the mix when there are more tasks than layer-0 modules, as
  :meth:`funk_perception.model.modular.ModularNetwork.forward_with_weights` does (conv is linear).

:func:`export_encoder` writes it (opset :data:`OPSET`, constant-folded, the batch static or dynamic),
folds it, checks it with ``onnx.checker`` and stores the caller's metadata in ``metadata_props``;
:func:`compare_with_torch` runs it in ONNX Runtime against the torch encoder. tests/test_onnx_export.py
holds the graph to the torch encoder. onnx and onnxruntime are imported only when a function needs them,
so this module imports without the deploy extra, and :func:`require_deploy` names that extra when they
are missing.
"""

from __future__ import annotations

import contextlib
import io
import math
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from funk_perception.atomic import write_bytes_atomic
from funk_perception.model.encoder import FunctionalEncoder
from funk_perception.model.modular import ModularNetwork
from funk_perception.tasks import normalize_task

#: Opset 17: the newest that TensorRT 8.5 and later (JetPack 5 and 6) parse, and enough for every op here.
OPSET = 17
INPUT_NAME = "images"
OUTPUT_NAME = "embeddings"
#: Bumped whenever the graph written for the same weights changes (part of the backend's cache key).
GRAPH_VERSION = "1"


class EncoderGraph(nn.Module):
    """``FunctionalEncoder`` for the fixed ``tasks``, in export-friendly operations (the module docstring)."""

    def __init__(self, encoder: FunctionalEncoder, tasks: Sequence[str]) -> None:
        super().__init__()
        self.tasks = tuple(normalize_task(t) for t in tasks)
        if not self.tasks:
            raise ValueError("EncoderGraph(tasks): expected at least one task, found none")
        self.trunk = encoder.trunk
        heads = [encoder.head, *getattr(encoder, "extra_heads", ())]
        self.heads = nn.ModuleList(heads)
        self.trunk_weight = float(encoder.config.trunk_weight)
        ids = encoder.task_ids(list(self.tasks))
        #: per head, the buffer names of its mixing weights, per layer after the first: (T, M_i, M_(i-1)).
        #: Buffers, so that ``.to(device)`` moves them: the module also serves a CUDA graph or torch.compile
        #: (benchmarks/gpu_suite.py), where the gating network's host-side checks could not run.
        self.mix_names: list[list[str]] = []
        with torch.no_grad():
            for h, head in enumerate(heads):
                names = []
                for i, weight in enumerate(head.gating(ids)):
                    self.register_buffer(f"mix_{h}_{i}", weight.detach().float().clone(), persistent=False)
                    names.append(f"mix_{h}_{i}")
                self.mix_names.append(names)
        self.eval()

    def _modular(self, head: ModularNetwork, weights: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """Trunk features (B, C, h, w) -> raw features (B, T, F, h', w') of ``head`` for the graph's tasks.

        Every reshape leaves the batch as -1 and every other size a number, so a graph traced at batch 1
        holds no batch size anywhere and can be given a dynamic one (:func:`export_encoder`)."""
        config = head.config
        count = len(self.tasks)
        o = head.blocks[0](head.project(x) if config.input_projection else x)
        if len(head.blocks) == 1:
            return o.unsqueeze(1) * o.new_ones(1, count, 1, 1, 1)  # a broadcast, not an Expand to a traced shape
        first = config.modules_per_layer[0]
        for i in range(1, len(head.blocks)):
            w = weights[i - 1].to(o.dtype)
            modules, inputs = int(w.shape[1]), int(w.shape[2])
            channels, height, width = int(o.shape[1]), int(o.shape[2]), int(o.shape[3])
            cells = channels // inputs * height * width  # one module's output, flattened
            if i == 1 and count > first:
                # each module's conv on each shared layer-0 output once, then the mix (conv is linear)
                conv, norm_relu = head.blocks[1][0], head.blocks[1][1:]
                y = F.conv2d(
                    o.reshape(-1, channels // inputs, height, width), conv.weight, None, conv.stride, conv.padding
                )
                out_channels, out_height, out_width = int(y.shape[1]), int(y.shape[2]), int(y.shape[3])
                y = y.reshape(-1, inputs, modules, out_channels // modules * out_height * out_width).transpose(1, 2)
                mixed = torch.matmul(w.transpose(0, 1), y)  # (M_1, T, M_0) @ (B, M_1, M_0, P) -> (B, M_1, T, P)
                o = norm_relu(mixed.transpose(1, 2).reshape(-1, out_channels, out_height, out_width))
                continue
            shared = o.reshape(-1, 1 if i == 1 else count, inputs, cells)
            mixed = torch.matmul(w, shared)  # (T, M_i, M_(i-1)) @ (B, 1 or T, M_(i-1), P) -> (B, T, M_i, P)
            o = head.blocks[i](mixed.reshape(-1, modules * channels // inputs, height, width))
        return o.reshape(-1, count, int(o.shape[1]), int(o.shape[2]), int(o.shape[3]))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.trunk(images)
        mixes = [[getattr(self, name) for name in names] for names in self.mix_names]
        parts = [unit(self._modular(h, w, features), dim=2) for h, w in zip(self.heads, mixes)]
        if self.trunk_weight > 0:
            trunk = unit(features, dim=1).unsqueeze(1) * features.new_ones(1, len(self.tasks), 1, 1, 1)
            parts.append(self.trunk_weight * trunk)
        if len(parts) == 1:
            return parts[0]
        return torch.cat(parts, dim=2) / math.sqrt(len(self.heads) + self.trunk_weight**2)


def unit(x: torch.Tensor, dim: int, eps: float = 1e-12) -> torch.Tensor:
    """``F.normalize(x, dim=dim)`` as a broadcast division: F.normalize exports an Expand to the traced
    shape, which would carry the batch size of the trace into the graph."""
    return x / x.norm(p=2, dim=dim, keepdim=True).clamp(min=eps)


class BackendUnavailable(ImportError, ValueError):
    """onnx or onnxruntime is not installed: the message names the extra that installs them. A ValueError
    too, so that a command line ends in one ``error:`` line (funk_perception/cli.py) rather than a traceback."""


#: The pip extra that pins onnx and onnxruntime (setup.py).
DEPLOY_EXTRA = "deploy"
INSTALL_HINT = f'pip install -e ".[{DEPLOY_EXTRA}]"'


def require_deploy(what: str = "the onnxruntime backend") -> None:
    """Raise :class:`BackendUnavailable` naming the deploy extra unless onnx and onnxruntime import."""
    for package in ("onnx", "onnxruntime"):
        try:
            __import__(package)
        except ImportError as exc:
            raise BackendUnavailable(
                f"{what} needs the {package} package, which is not installed here ({exc}); "
                f"the {DEPLOY_EXTRA} extra pins it: {INSTALL_HINT}"
            ) from None


def export_encoder(
    encoder: FunctionalEncoder,
    out: str | Path,
    tasks: Sequence[str],
    size: int,
    batch: int | None = None,
    metadata: Mapping[str, str] | None = None,
    opset: int = OPSET,
) -> Path:
    """Write ``encoder`` for ``tasks`` at ``size x size`` to ``out`` (atomically) and return it.

    ``batch``: a static batch size (what TensorRT builds fastest and the ONNX Runtime backend runs), or
    None for a dynamic one; check that at two batch sizes (:func:`compare_with_torch`): a trunk whose
    export bakes the batch into an op (the multi-stage trunks' resize) would fail there.
    ``metadata``: string pairs stored in the model's ``metadata_props``. The graph is traced at a fixed
    size, constant-folded by ONNX Runtime's basic (portable, standard-op) optimisations and must pass
    ``onnx.checker.check_model`` before it is written."""
    require_deploy("exporting to ONNX")
    import onnx
    import onnxruntime as ort

    if int(size) < 16 or int(size) % 16:
        raise ValueError(f"export_encoder(size): expected a multiple of 16 (the trunk's stride), found {size}")
    if batch is not None and int(batch) < 1:
        raise ValueError(f"export_encoder(batch): expected >= 1 or None (dynamic), found {batch}")
    graph = EncoderGraph(encoder.cpu().float().eval(), tasks)
    example = torch.zeros(int(batch or 1), 3, int(size), int(size))
    out = Path(out)
    with tempfile.TemporaryDirectory(prefix=".onnx-export-", dir=out.parent if out.parent.exists() else None) as tmp:
        traced, folded = Path(tmp) / "traced.onnx", Path(tmp) / "folded.onnx"
        with warnings.catch_warnings(), torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
            # the trunk's shape checks and the sizes EncoderGraph reads trace to constants: right for a fixed
            # input size. The TorchScript exporter: the dynamo one needs onnxscript, for no gain here.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                graph,
                (example,),
                str(traced),
                dynamo=False,
                opset_version=int(opset),
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                do_constant_folding=True,
            )
        # timm's "same" padding traces to Shape/Ceil/Pad arithmetic that torch's folding keeps; ONNX Runtime's
        # basic level folds it into the convolutions (and BatchNorm into them) using standard ops only
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(folded)
        ort.InferenceSession(str(traced), options, providers=["CPUExecutionProvider"])
        model = onnx.load(str(folded))
    used = {node.domain for node in model.graph.node}
    kept = [o for o in model.opset_import if o.domain in used or o.domain in ("", "ai.onnx")]
    del model.opset_import[:]
    model.opset_import.extend(kept)  # the optimiser lists every domain it knows; TensorRT needs none but ONNX's
    if batch is None:
        # traced at batch 1, where every reshape keeps the batch as -1 (EncoderGraph): name it instead.
        # Tracing with dynamic_axes would leave the padding arithmetic unfolded, and ONNX Runtime's
        # quantizer would then quantize it as if it were image data.
        for value in (model.graph.input[0], model.graph.output[0]):
            value.type.tensor_type.shape.dim[0].ClearField("dim_value")
            value.type.tensor_type.shape.dim[0].dim_param = "batch"
        del model.graph.value_info[:]
    for key, value in (metadata or {}).items():
        model.metadata_props.add(key=str(key), value=str(value))
    onnx.checker.check_model(model, full_check=True)
    write_bytes_atomic(out, model.SerializeToString())
    return out


def read_metadata(path: str | Path) -> dict[str, str]:
    """The ``metadata_props`` of the ONNX file ``path`` (the weights are not loaded)."""
    require_deploy("reading an ONNX file")
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


def compare_with_torch(
    session_run: object, encoder: FunctionalEncoder, tasks: Sequence[str], images: torch.Tensor
) -> float:
    """Max absolute difference between ``session_run(images_numpy) -> embeddings`` and the torch encoder's
    embeddings of ``tasks`` for ``images`` (B, 3, S, S), ImageNet-normalised."""
    with torch.inference_mode():
        expected = encoder(images.to(encoder.log_logit_scale.device), list(tasks)).float().cpu().numpy()
    found = np.asarray(session_run(images.cpu().numpy().astype(np.float32)))  # type: ignore[operator]
    if found.shape != expected.shape:
        raise ValueError(f"ONNX embeddings: expected shape {expected.shape}, found {found.shape}")
    return float(np.abs(found - expected).max())
