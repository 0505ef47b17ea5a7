"""int8 encoder graphs by ONNX Runtime's static quantization, calibrated on synthetic renders only.

The activation ranges come from running the fp32 graph on calibration images, and those must never be
the photos a model is scored on: :func:`check_synthetic` accepts only a CSV in a folder that
``python -m funk_perception.data.synth`` wrote (its ``manifest.json`` names the generator), such as the
shipped ``samples/synth/annotations.csv``. The images go through the caller's ``prepare`` (the detector's
own letterbox and normalisation, :meth:`funk_perception.detector.FunctionalKeypointDetector.network_input`),
so the ranges are those of what ``detect`` feeds the graph.

Choices, measured on the shipped joined lite0 encoder (one CPU thread, docs/DEPLOY.md):

- QDQ format, uint8 activations and per-channel int8 weights: ONNX Runtime fuses it into integer
  convolutions (VNNI where the CPU has it). int8 activations ran the same graph 4x slower than fp32,
  uint8 ones 2.5x to 3.5x faster.
- The trunk stays fp32 (:data:`FLOAT_TRUNK`); the modular networks, where most of the time is, are int8.
  Of the 15 recipes benchmarks/bench_int8_variants.py compares (benchmarks/results/int8-variants.md),
  chosen on held-out synthetic renders: with the whole graph int8, 5.3 % of ``detect``'s keypoints moved
  by more than 5 % of the image from fp32's; with the trunk fp32, 1.5 %, at 2.7x to 2.8x fp32's speed
  instead of 2.8x to 3.3x. Calibration methods and other float parts changed little.
- MinMax ranges over the calibration set (percentile and entropy: no better there; ONNX Runtime 1.32's
  entropy calibration chose the MinMax ranges).
- Only :data:`QUANTIZED_OPS`: convolutions, the task mixes and the element-wise ops between them.
  The unit normalisation and the concatenation of the members stay float (quantizing a unit vector's
  division and the concatenated embedding costs precision and no time).
"""

from __future__ import annotations

import fnmatch
import json
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from funk_perception.atomic import write_bytes_atomic
from funk_perception.data.annotations import FunKPointDataset
from funk_perception.model.onnx_graph import INPUT_NAME, require_deploy

#: What ``python -m funk_perception.data.synth`` writes into its manifest.json's "generator" field.
SYNTH_GENERATOR = "funk_perception.data.synth"
QUANTIZED_OPS: tuple[str, ...] = ("Conv", "MatMul", "Add", "Relu", "Clip", "Reshape", "Transpose")
#: Calibration images used at most (the first of the CSV, in its order): the ranges settle well before.
DEFAULT_CALIBRATION_IMAGES = 64
#: How activation ranges are read from the calibration runs: each name's member of ONNX Runtime's CalibrationMethod.
CALIBRATION_METHODS: dict[str, str] = {"minmax": "MinMax", "percentile": "Percentile", "entropy": "Entropy"}
#: The trunk's nodes (funk_perception/model/onnx_graph.py names them ``/trunk/...``): kept fp32 by default.
FLOAT_TRUNK: tuple[str, ...] = ("/trunk/*",)


@dataclass(frozen=True)
class Int8Recipe:
    """How an int8 graph is made from the fp32 one; part of a cached graph's name (funk_perception/onnx_backend.py).

    ``method``: one of :data:`CALIBRATION_METHODS`; ``percentile``: the range's percentile for "percentile";
    ``float_nodes``: :mod:`fnmatch` patterns of the names of graph nodes kept in float (e.g. ``/trunk/*``,
    the trunk; ``/blocks.3/*``, each head's last convolution; the names are those
    funk_perception/model/onnx_graph.py's export gives). A graph may lack some of them (a one-task graph has
    no ``/Transpose*``); one that matches none of them is refused."""

    method: str = "minmax"
    percentile: float = 99.999
    float_nodes: tuple[str, ...] = FLOAT_TRUNK

    def __post_init__(self) -> None:
        if self.method not in CALIBRATION_METHODS:
            raise ValueError(
                f"Int8Recipe(method): expected one of {', '.join(CALIBRATION_METHODS)}, found {self.method!r}"
            )
        if not 0.0 < float(self.percentile) <= 100.0:
            raise ValueError(f"Int8Recipe(percentile): expected a value in (0, 100], found {self.percentile}")
        object.__setattr__(self, "float_nodes", tuple(str(n) for n in self.float_nodes))


def check_synthetic(csv: str | Path) -> Path:
    """``csv`` if it lies in a dataset folder the synthetic generator wrote, else raise naming what was found."""
    csv = Path(csv)
    manifest = csv.parent / "manifest.json"
    expected = (
        f"{manifest} whose field 'generator' is {SYNTH_GENERATOR!r} (a dataset rendered by python -m "
        f"{SYNTH_GENERATOR}; calibration never uses the photos a model is scored on)"
    )
    if not csv.is_file():
        raise FileNotFoundError(f"calibration CSV {csv} not found")
    if not manifest.is_file():
        raise ValueError(f"{csv}: calibration needs synthetic renders: expected {expected}, found no manifest.json")
    try:
        generator = json.loads(manifest.read_text()).get("generator")
    except (ValueError, AttributeError) as exc:
        raise ValueError(f"{manifest}: expected a JSON object, found unreadable content ({exc})") from None
    if generator != SYNTH_GENERATOR:
        raise ValueError(f"{csv}: calibration needs synthetic renders: expected {expected}, found {generator!r}")
    return csv


def calibration_inputs(
    csv: str | Path, prepare: Callable[[Sequence[np.ndarray]], torch.Tensor], limit: int = DEFAULT_CALIBRATION_IMAGES
) -> np.ndarray:
    """The first ``limit`` distinct images of the synthetic ``csv`` through ``prepare``: float32 (N, 3, S, S)."""
    dataset = FunKPointDataset(check_synthetic(csv))
    paths = dataset.image_paths[: max(1, int(limit))]
    if not paths:
        raise ValueError(f"{csv}: expected at least one image row for calibration, found none")
    return np.concatenate([prepare([dataset.load_image(p)]).cpu().numpy().astype(np.float32) for p in paths])


def quantize_int8(
    fp32: str | Path,
    out: str | Path,
    inputs: np.ndarray,
    metadata: dict[str, str] | None = None,
    batch: int = 1,
    recipe: Int8Recipe | None = None,
) -> Path:
    """Statically quantize the fp32 graph ``fp32`` with activation ranges from ``inputs`` (N, 3, S, S) into
    ``out`` (atomically); ``metadata`` is added to the fp32 graph's ``metadata_props``. ``batch``: images per
    calibration run, the graph's static batch (1 also serves a dynamic one). ``recipe``: how (default
    :class:`Int8Recipe`'s defaults)."""
    require_deploy("int8 quantization")
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    if len(inputs) < batch:
        raise ValueError(
            f"quantize_int8: expected at least {batch} calibration images (the graph's batch), found {len(inputs)}"
        )

    class Reader(CalibrationDataReader):
        """``batch`` images at a time (a static graph takes no other count); a last partial batch is left out."""

        def __init__(self) -> None:
            self.starts = iter(range(0, len(inputs) - batch + 1, batch))

        def get_next(self) -> dict[str, np.ndarray] | None:
            i = next(self.starts, None)
            return None if i is None else {INPUT_NAME: inputs[i : i + batch]}

    recipe = recipe or Int8Recipe()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".onnx-int8-", dir=out.parent) as tmp:
        prepared, quantized = Path(tmp) / "prepared.onnx", Path(tmp) / "int8.onnx"
        quant_pre_process(str(fp32), str(prepared))  # shape inference, as ONNX Runtime's docs ask before quantizing
        names = [node.name for node in onnx.load(str(prepared), load_external_data=False).graph.node]
        excluded = [n for n in names if any(fnmatch.fnmatchcase(n, pattern) for pattern in recipe.float_nodes)]
        if recipe.float_nodes and not excluded:  # some parts exist only at some task counts: refuse only a miss
            raise ValueError(
                f"Int8Recipe(float_nodes): expected patterns of node names in {fp32}, found none of "
                f"{list(recipe.float_nodes)} matching there"
            )
        quantize_static(
            str(prepared),
            str(quantized),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod[CALIBRATION_METHODS[recipe.method]],
            op_types_to_quantize=list(QUANTIZED_OPS),
            nodes_to_exclude=excluded,
            extra_options={"CalibPercentile": float(recipe.percentile)},
        )
        model = onnx.load(str(quantized))
    source = {p.key: p.value for p in onnx.load(str(fp32), load_external_data=False).metadata_props}
    del model.metadata_props[:]
    recipe_entry = {"funk.int8_recipe": json.dumps(asdict(recipe), sort_keys=True)}
    for key, value in {**source, **(metadata or {}), **recipe_entry}.items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    write_bytes_atomic(out, model.SerializeToString())
    return out
