"""The ONNX Runtime backend of the detector: the encoder's forward pass, and nothing else, in ONNX Runtime.

``FunctionalKeypointDetector.load(..., backend="onnxruntime", precision="fp32" | "int8")`` hands its
encoder's forward to :class:`OnnxRuntimeEncoder`; letterboxing, normalisation and every detect method stay
the detector's own code (docs/DESIGN.md, "One product path"), so ``evaluate --backend`` and the node's
``backend`` parameter measure and run what ``detect`` does.

Graphs are build outputs. One graph per set of tasks (the gating weights are constants of the graph,
funk_perception/model/onnx_graph.py), static batch 1 (images of a batch run one after another: on a CPU
the convolutions are as fast one image at a time, and a static graph quantizes and folds cleanly), made
on first use and kept in :func:`default_cache_folder` under a name derived from everything that
changes its bytes: the encoder's weights (:func:`funk_perception.reference_bank.encoder_fingerprint`),
the tasks, input size, precision, the calibration set, the detector's metadata, and the versions of the
code and packages that write it. A file is written atomically, so two processes that race to build
the same graph both end with a whole one.

int8 graphs are calibrated on synthetic renders only (funk_perception/model/onnx_int8.py): by default
the shipped ``samples/synth/annotations.csv``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from funk_perception.model.encoder import FunctionalEncoder
from funk_perception.model.onnx_graph import GRAPH_VERSION, INPUT_NAME, OPSET, export_encoder, require_deploy
from funk_perception.model.onnx_int8 import DEFAULT_CALIBRATION_IMAGES, Int8Recipe, calibration_inputs, quantize_int8
from funk_perception.shipped import shipped_file
from funk_perception.tasks import TASKS, normalize_task

BACKENDS: tuple[str, ...] = ("torch", "onnxruntime")
PRECISIONS: tuple[str, ...] = ("fp32", "int8")
#: Set to a folder to keep the ONNX files there instead of :func:`default_cache_folder`'s choice.
CACHE_VARIABLE = "FUNK_ONNX_CACHE"
DEFAULT_CALIBRATION = "samples/synth/annotations.csv"


def check_backend(backend: str, precision: str) -> None:
    """Raise ValueError unless ``backend`` and ``precision`` are known and go together."""
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {', '.join(BACKENDS)}, found {backend!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision: expected one of {', '.join(PRECISIONS)}, found {precision!r}")
    if backend == "torch" and precision != "fp32":
        raise ValueError(
            f"precision {precision!r}: expected fp32 with backend 'torch' (int8 is made by ONNX "
            f"Runtime's quantization), found backend {backend!r}; use backend 'onnxruntime'"
        )


def default_cache_folder() -> Path:
    """``$FUNK_ONNX_CACHE``; else ``cache/onnx`` of the source checkout (git-ignored); else
    ``~/.cache/funk/onnx`` (``$XDG_CACHE_HOME/funk/onnx``) for an installed package."""
    if os.environ.get(CACHE_VARIABLE):
        return Path(os.environ[CACHE_VARIABLE])
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "setup.py").is_file() and (checkout / ".git").exists():
        return checkout / "cache" / "onnx"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "funk" / "onnx"


def default_calibration() -> Path:
    """The shipped synthetic renders (:func:`funk_perception.shipped.shipped_file`)."""
    return shipped_file(DEFAULT_CALIBRATION)


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def calibration_fingerprint(csv: Path, limit: int) -> str:
    """What identifies a calibration set: its CSV's and its manifest's bytes (a new render rewrites both)."""
    manifest = csv.parent / "manifest.json"
    parts = [_file_digest(csv), _file_digest(manifest) if manifest.is_file() else "", str(limit)]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def canonical_tasks(tasks: Sequence[str]) -> tuple[str, ...]:
    """Task names -> the distinct canonical names in :data:`funk_perception.tasks.TASKS` order."""
    names = {normalize_task(t) for t in tasks}
    if not names:
        raise ValueError("tasks: expected at least one task, found an empty list")
    return tuple(t for t in TASKS if t in names)


class OnnxRuntimeEncoder:
    """``(B, 3, S, S)`` ImageNet-normalised images and task names -> ``(B, T, D, h, w)`` unit embeddings, as
    ``encoder(images, tasks)`` gives them, computed by ONNX Runtime on the CPU.

    ``prepare``: the detector's preprocessing (calibration images go through it); ``metadata``: what the
    detector records in each graph (detect method, preprocessing); ``threads``: ONNX Runtime's intra-op
    threads (default: torch's, so the ``threads`` the node sets applies to both backends); ``int8``: how int8
    graphs are made (default :class:`funk_perception.model.onnx_int8.Int8Recipe`'s defaults)."""

    def __init__(
        self,
        encoder: FunctionalEncoder,
        image_size: int,
        fingerprint: str,
        prepare: Callable[[Sequence[np.ndarray]], torch.Tensor],
        metadata: Mapping[str, str] | None = None,
        precision: str = "fp32",
        cache: str | Path | None = None,
        calibration: str | Path | None = None,
        calibration_images: int = DEFAULT_CALIBRATION_IMAGES,
        threads: int | None = None,
        int8: Int8Recipe | None = None,
    ) -> None:
        require_deploy()
        check_backend("onnxruntime", precision)
        self.encoder = encoder
        self.image_size = int(image_size)
        self.fingerprint = fingerprint
        self.prepare = prepare
        self.metadata = dict(metadata or {})
        self.precision = precision
        self.cache = Path(cache) if cache is not None else default_cache_folder()
        self.calibration = Path(calibration) if calibration is not None else default_calibration()
        self.calibration_images = int(calibration_images)
        self.threads = threads
        self.int8 = int8 or Int8Recipe()
        self.sessions: dict[tuple[str, ...], object] = {}

    @staticmethod
    def check_installed() -> None:
        """Raise :class:`funk_perception.model.onnx_graph.BackendUnavailable`, naming the deploy extra, unless
        onnx and onnxruntime import."""
        require_deploy()

    def graph_file(self, tasks: Sequence[str]) -> Path:
        """The cached ONNX file for ``tasks`` at this precision, exported (and quantized) first if missing."""
        import onnxruntime

        names = canonical_tasks(tasks)
        versions = {
            "graph": GRAPH_VERSION,
            "opset": OPSET,
            "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__,
        }
        key = {
            "encoder": self.fingerprint,
            "tasks": names,
            "size": self.image_size,
            "batch": 1,
            "precision": self.precision,
            "metadata": self.metadata,
            "versions": versions,
        }
        if self.precision == "int8":
            key["calibration"] = calibration_fingerprint(self.calibration, self.calibration_images)
            key["int8"] = asdict(self.int8)
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
        label = "all" if names == TASKS else "+".join(names) if len(names) <= 3 else f"{len(names)}tasks"
        path = self.cache / f"{self.fingerprint[:12]}-{label}-{self.image_size}-b1-{self.precision}-{digest[:12]}.onnx"
        if path.is_file():
            return path
        metadata = {
            **self.metadata,
            "funk.tasks": json.dumps(list(names)),
            "funk.precision": self.precision,
            "funk.encoder_fingerprint": self.fingerprint,
        }
        if self.precision == "fp32":
            return export_encoder(self.encoder, path, names, self.image_size, batch=1, metadata=metadata)
        fp32 = path.with_name(path.stem + ".fp32-source.onnx")
        export_encoder(self.encoder, fp32, names, self.image_size, batch=1, metadata=metadata)
        try:
            inputs = calibration_inputs(self.calibration, self.prepare, self.calibration_images)
            calibration = {"funk.calibration": str(self.calibration), "funk.calibration_images": str(len(inputs))}
            return quantize_int8(fp32, path, inputs, calibration, recipe=self.int8)
        finally:
            fp32.unlink(missing_ok=True)

    def session(self, tasks: Sequence[str]) -> object:
        """The ONNX Runtime session of ``tasks``' graph (made once per task set)."""
        import onnxruntime as ort

        names = canonical_tasks(tasks)
        if names not in self.sessions:
            options = ort.SessionOptions()
            options.intra_op_num_threads = int(self.threads or torch.get_num_threads())
            options.inter_op_num_threads = 1
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            self.sessions[names] = ort.InferenceSession(
                str(self.graph_file(names)), options, providers=["CPUExecutionProvider"]
            )
        return self.sessions[names]

    def __call__(self, images: torch.Tensor, tasks: Sequence[str]) -> torch.Tensor:
        """Embeddings of ``images`` for ``tasks`` in the order given, float32 on the CPU."""
        names = canonical_tasks(tasks)
        if images.dim() != 4 or tuple(images.shape[1:]) != (3, self.image_size, self.image_size):
            raise ValueError(
                f"onnxruntime backend: expected images (B, 3, {self.image_size}, {self.image_size}), "
                f"found {tuple(images.shape)}"
            )
        session = self.session(names)
        batch = np.ascontiguousarray(images.detach().to("cpu", torch.float32).numpy())
        out = np.concatenate(
            [
                session.run(None, {INPUT_NAME: batch[i : i + 1]})[0]  # type: ignore[attr-defined]
                for i in range(len(batch))
            ]
        )
        order = [names.index(normalize_task(t)) for t in tasks]
        result = torch.from_numpy(out)
        return result if order == list(range(len(names))) else result[:, order]
