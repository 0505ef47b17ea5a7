"""Export a checkpoint's encoder to ONNX: ``python -m funk_perception.model.export_onnx CKPT OUT.onnx``.

    python -m funk_perception.model.export_onnx models/funk-lite0-synth.pt cache/onnx/funk-all.onnx
    python -m funk_perception.model.export_onnx models/funk-lite0-synth.pt cache/onnx/pour.onnx --tasks pour --batch 1
    python -m funk_perception.model.export_onnx models/funk-lite0-synth.pt cache/onnx/int8.onnx --int8 \\
        --calibration samples/synth/annotations.csv

The graph is the encoder (trunk, modular network or networks, trunk blend) for the tasks given, with
the gating weights folded in (funk_perception/model/onnx_graph.py): ImageNet-normalised ``images``
``(B, 3, S, S)`` -> unit ``embeddings`` ``(B, T, D, S/16, S/16)``. What ``detect`` does after it stays
in Python (funk_perception/detector.py; docs/DEPLOY.md says why and what it costs). The checkpoint's
detect method, its preprocessing (letterbox, pad, normalisation) and the tasks are in the model's
``metadata_props``. The file passes ``onnx.checker`` and is compared with the torch encoder on the
shipped synthetic samples before this command succeeds (fp32: max abs difference at most
:data:`FP32_TOLERANCE`; int8: the mean cosine to torch's embeddings is printed). ``--batch N`` gives
static shapes (TensorRT, docs/DEPLOY.md), ``--batch dynamic`` a dynamic batch. ``--int8`` quantizes
statically with activation ranges from the synthetic renders of ``--calibration`` (never real photos,
funk_perception/model/onnx_int8.py); that file is for ONNX Runtime on a CPU. ONNX files are build
outputs: keep them out of git (``cache/`` is ignored).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from funk_perception.cli import command
from funk_perception.data.annotations import FunKPointDataset
from funk_perception.detector import FunctionalKeypointDetector
from funk_perception.model.onnx_graph import OPSET, export_encoder, require_deploy
from funk_perception.model.onnx_int8 import DEFAULT_CALIBRATION_IMAGES, calibration_inputs, quantize_int8
from funk_perception.onnx_backend import canonical_tasks, default_calibration

#: fp32 graphs agree with torch to about 2e-6 on unit embeddings (tests/test_onnx_export.py); this flags a wrong graph.
FP32_TOLERANCE = 1e-4
#: Sample images the export is checked on (the shipped synthetic renders).
CHECK_IMAGES = 4


def batch_value(text: str) -> int | None:
    """``--batch``: a positive integer, or ``dynamic`` (None)."""
    if text.strip().lower() == "dynamic":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'dynamic', found {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'dynamic', found {text!r}")
    return value


def check_inputs(detector: FunctionalKeypointDetector, calibration: Path, count: int = CHECK_IMAGES) -> np.ndarray:
    """``count`` synthetic sample images as ``detect`` feeds them to the encoder: float32 (count, 3, S, S)."""
    dataset = FunKPointDataset(calibration)
    paths = [dataset.image_paths[i % len(dataset.image_paths)] for i in range(count)]
    return detector.prepare_batch([dataset.load_image(p) for p in paths]).numpy().astype(np.float32)


def compare(
    path: Path, detector: FunctionalKeypointDetector, tasks: Sequence[str], inputs: np.ndarray, batch: int | None
) -> dict[str, float]:
    """Run ``path`` in ONNX Runtime on ``inputs`` (in the graph's batch; 1 and 2 when dynamic) against the torch
    encoder: max abs difference and the mean and least cosine of the embeddings."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    sizes = [batch] if batch is not None else [1, 2]
    found, expected = [], []
    for size in sizes:
        for start in range(0, len(inputs) - size + 1, size):
            chunk = inputs[start : start + size]
            found.append(session.run(None, {session.get_inputs()[0].name: chunk})[0])
            with torch.inference_mode():
                expected.append(detector.encoder(torch.from_numpy(chunk), list(tasks)).float().numpy())
    if not found:
        raise ValueError(
            f"{path}: expected at least {sizes[0]} check images for a batch of {sizes[0]}, found {len(inputs)}"
        )
    a, b = np.concatenate(found), np.concatenate(expected)
    cosine = (a * b).sum(axis=2)  # unit vectors along D
    return {
        "max_abs_diff": float(np.abs(a - b).max()),
        "cosine_mean": float(cosine.mean()),
        "cosine_min": float(cosine.min()),
        "images": float(len(a)),
    }


def export(
    checkpoint: Path,
    out: Path,
    tasks: Sequence[str] | None = None,
    size: int | None = None,
    batch: int | None = 1,
    int8: bool = False,
    calibration: Path | None = None,
    calibration_images: int = DEFAULT_CALIBRATION_IMAGES,
    method: str = "auto",
) -> dict:
    """Export ``checkpoint``'s encoder to ``out`` (the module docstring); returns what was checked."""
    require_deploy("exporting to ONNX")
    if calibration is not None and not int8:
        raise ValueError("--calibration: expected with --int8 (only int8 graphs are calibrated), found it without")
    calibration = Path(calibration) if calibration is not None else default_calibration()
    detector = FunctionalKeypointDetector.load(checkpoint, device="cpu", method=method, image_size=size)
    names = canonical_tasks(tasks) if tasks else tuple(detector.tasks)
    metadata = {
        **detector.deployment_metadata(),
        "funk.tasks": json.dumps(list(names)),
        "funk.checkpoint": Path(checkpoint).name,
        "funk.checkpoint_sha256": hashlib.sha256(Path(checkpoint).read_bytes()).hexdigest(),
        "funk.encoder_fingerprint": detector.fingerprint,
        "funk.precision": "int8" if int8 else "fp32",
        "funk.batch": "dynamic" if batch is None else str(batch),
    }
    out = Path(out)
    with tempfile.TemporaryDirectory(prefix=".export-onnx-") as tmp:
        fp32 = Path(tmp) / "fp32.onnx" if int8 else out
        export_encoder(detector.encoder, fp32, names, detector.image_size, batch, metadata)
        checks = {
            "fp32": compare(
                fp32,
                detector,
                names,
                check_inputs(detector, default_calibration(), max(CHECK_IMAGES, batch or 2)),
                batch,
            )
        }
        if checks["fp32"]["max_abs_diff"] > FP32_TOLERANCE:
            raise ValueError(
                f"{fp32}: ONNX Runtime's embeddings differ from torch's by up to "
                f"{checks['fp32']['max_abs_diff']:.2e}, expected at most {FP32_TOLERANCE:g}"
            )
        if int8:
            inputs = calibration_inputs(calibration, detector.prepare_batch, calibration_images)
            quantize_int8(
                fp32,
                out,
                inputs,
                {"funk.calibration": str(calibration), "funk.calibration_images": str(len(inputs))},
                batch or 1,
            )
            checks["int8"] = compare(
                out,
                detector,
                names,
                check_inputs(detector, default_calibration(), max(CHECK_IMAGES, batch or 2)),
                batch,
            )
    import onnx

    model = onnx.load(str(out))
    ops = Counter(node.op_type for node in model.graph.node)
    return {
        "out": str(out),
        "tasks": list(names),
        "image_size": detector.image_size,
        "opset": OPSET,
        "batch": "dynamic" if batch is None else batch,
        "megabytes": round(out.stat().st_size / 1e6, 2),
        "ops": dict(sorted(ops.items())),
        "checks": checks,
    }


@command
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m funk_perception.model.export_onnx", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("checkpoint", type=Path, help="a funk checkpoint (e.g. models/funk-lite0-synth.pt)")
    parser.add_argument("out", type=Path, help="the ONNX file to write (a build output: keep it out of git)")
    parser.add_argument("--tasks", nargs="+", default=None, help="tasks in the graph (default: all the model has)")
    parser.add_argument("--size", type=int, default=None, help="input side in pixels (default: the checkpoint's)")
    parser.add_argument(
        "--batch", type=batch_value, default=1, help="static batch size, or 'dynamic' (default: 1, the node's call)"
    )
    parser.add_argument("--int8", action="store_true", help="quantize statically (ONNX Runtime, CPU)")
    parser.add_argument(
        "--calibration",
        type=Path,
        default=None,
        help="with --int8: a synthetic dataset's CSV (python -m funk_perception.data.synth; "
        "default: the shipped samples/synth/annotations.csv)",
    )
    parser.add_argument(
        "--calibration-images",
        type=int,
        default=DEFAULT_CALIBRATION_IMAGES,
        help="with --int8: calibration images used at most (default: %(default)s)",
    )
    parser.add_argument("--method", default="auto", help="the detect method recorded (default: the checkpoint's)")
    args = parser.parse_args(argv)
    if args.size is not None and (args.size < 16 or args.size % 16):
        parser.error(f"--size: expected a multiple of 16 (the trunk's stride), found {args.size}")
    report = export(
        args.checkpoint,
        args.out,
        args.tasks,
        args.size,
        args.batch,
        args.int8,
        args.calibration,
        args.calibration_images,
        args.method,
    )
    for precision, check in report["checks"].items():
        print(
            f"{precision} vs torch on {check['images']:.0f} synthetic samples: max abs diff {check['max_abs_diff']:.2e}, "
            f"cosine mean {check['cosine_mean']:.4f}, min {check['cosine_min']:.4f}"
        )
    print(
        f"{args.checkpoint} -> {report['out']} ({report['megabytes']} MB, opset {report['opset']}, "
        f"batch {report['batch']}, {report['image_size']} px, tasks {', '.join(report['tasks'])})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
