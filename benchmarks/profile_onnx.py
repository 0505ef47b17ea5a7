"""Where the encoder's time goes, per operator, in eager torch and in ONNX Runtime (fp32, int8), on one CPU thread.

    python benchmarks/profile_onnx.py [--model models/funk-lite0-synth.pt] [--calls 10]

For 1 task (pour) and all 10 at batch 1, 224 x 224: ONNX Runtime's own profiler (per operator type, ms per
call) on the graphs the detector's backend runs (funk_perception/onnx_backend.py), and torch's profiler
on :meth:`FunctionalKeypointDetector.encode` with the torch backend. The convolutions' multiply-adds
are counted from the fp32 graph's shapes, so each runtime's convolution rate (GMAC/s) says how close it
runs to what the core can do: the ceiling of any fp32 speed-up (docs/DEPLOY.md). Writes
benchmarks/results/onnx-profile.json and .md.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch  # before anything that could create a GL context (docs/DESIGN.md, "Import torch first")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_onnx import SAMPLE, machine  # noqa: E402
from common import model_record, report_header, report_main  # noqa: E402

from funk_perception.detector import FunctionalKeypointDetector  # noqa: E402
from funk_perception.shipped import DEFAULT_CHECKPOINT  # noqa: E402
from funk_perception.tasks import TASKS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "benchmarks" / "results"
TASK_SETS = {"1 task": ["pour"], "10 tasks": list(TASKS)}


def conv_macs(path: Path) -> int:
    """Multiply-adds of every Conv of the (static-shape) ONNX graph at ``path``."""
    import onnx

    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in model.graph.value_info}
    shapes.update({v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in model.graph.output})
    weights = {t.name: list(t.dims) for t in model.graph.initializer}
    total = 0
    for node in model.graph.node:
        if node.op_type == "Conv":
            out = shapes[node.output[0]]
            kernel = weights[node.input[1]]  # (C_out, C_in / groups, kh, kw)
            total += int(np.prod(out)) * int(np.prod(kernel[1:]))
    return total


def ort_profile(path: Path, image: np.ndarray, calls: int) -> dict[str, float]:
    """ms per call by operator type, ONNX Runtime's profiler, one thread; two warm-up calls left out."""
    import onnxruntime as ort

    warmup = 2
    with tempfile.TemporaryDirectory(prefix="ort-profile-") as tmp:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "profile")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        for _ in range(warmup + calls):
            session.run(None, {"images": image})
        events = json.loads(Path(session.end_profiling()).read_text())
    nodes = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    per_run = len(nodes) // (warmup + calls)
    total: collections.Counter[str] = collections.Counter()
    for event in nodes[warmup * per_run :]:
        total[event["args"]["op_name"]] += event["dur"] / 1e3
    return {op: ms / calls for op, ms in total.most_common()}


def torch_profile(detector: FunctionalKeypointDetector, prepared: torch.Tensor, tasks: list[str], calls: int) -> dict:
    """ms per call by aten operator (self time), torch's profiler, after two warm-up calls."""
    from torch.profiler import ProfilerActivity, profile

    with torch.inference_mode():
        for _ in range(2):
            detector.encode(prepared, tasks)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(calls):
                detector.encode(prepared, tasks)
    per_op = {e.key: e.self_cpu_time_total / 1e3 / calls for e in prof.key_averages()}
    return dict(sorted(per_op.items(), key=lambda kv: -kv[1]))


def summary(per_op: dict[str, float], conv_ops: Sequence[str], macs: int) -> dict:
    total = sum(per_op.values())
    conv = sum(ms for op, ms in per_op.items() if op in conv_ops)
    return {
        "total_ms": total,
        "conv_ms": conv,
        "conv_share": conv / total if total else 0.0,
        "conv_gmac_per_s": macs / conv / 1e6 if conv else None,
        "top": dict(list(per_op.items())[:8]),
    }


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(1)
    image = cv2.cvtColor(cv2.imread(str(SAMPLE)), cv2.COLOR_BGR2RGB)
    torch_detector = FunctionalKeypointDetector.load(args.model, device="cpu")
    prepared = torch_detector.prepare_batch([image])
    batch = np.ascontiguousarray(prepared.numpy().astype(np.float32))
    runtimes = {}
    for precision in ("fp32", "int8"):
        detector = FunctionalKeypointDetector.load(args.model, device="cpu")
        detector.use_backend("onnxruntime", precision, threads=1)
        runtimes[precision] = detector.runtime
    rows = []
    for label, tasks in TASK_SETS.items():
        fp32_graph = runtimes["fp32"].graph_file(tasks)
        macs = conv_macs(fp32_graph)
        row = {"tasks": label, "conv_gmac": macs / 1e9}
        row["torch"] = summary(
            torch_profile(torch_detector, prepared, tasks, args.calls),
            ("aten::mkldnn_convolution", "aten::thnn_conv2d", "aten::_slow_conv2d_forward", "aten::convolution"),
            macs,
        )
        for precision, runtime in runtimes.items():
            per_op = ort_profile(runtime.graph_file(tasks), batch, args.calls)
            row[f"ort-{precision}"] = summary(per_op, ("Conv", "QLinearConv", "NchwcConv", "FusedConv"), macs)
        rows.append(row)
        print(label, json.dumps(row, indent=1), flush=True)
    return {
        **report_header(["benchmarks/profile_onnx.py", *args.argv]),
        "machine": machine(),
        "load_average": list(os.getloadavg()),
        **model_record(args.model),
        "calls": args.calls,
        "rows": rows,
    }


def markdown(results: dict) -> str:
    lines = [
        "# The encoder per operator: eager torch, ONNX Runtime fp32 and int8 (one CPU thread)",
        "",
        f"`{results['command']}`, {results['date']}. Model `{results['model']}` (sha256 "
        f"{results['model_sha256'][:12]}), 224 x 224, batch 1, {results['calls']} profiled calls. Machine: "
        f"{results['machine']['cpu']}, torch {results['machine']['torch']}, onnxruntime "
        f"{results['machine']['onnxruntime']}; load average {results['load_average'][0]:.2f} after. Profilers "
        "add a little to every operator; the totals are close to, not equal to, bench_onnx.py's latencies.",
        "",
        "| tasks | conv GMAC | runtime | total ms | conv ms | conv share | conv GMAC/s | largest operators (ms) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in results["rows"]:
        for runtime in ("torch", "ort-fp32", "ort-int8"):
            s = row[runtime]
            top = ", ".join(f"{op} {ms:.1f}" for op, ms in list(s["top"].items())[:4])
            rate = "-" if s["conv_gmac_per_s"] is None else f"{s['conv_gmac_per_s']:.0f}"
            lines.append(
                f"| {row['tasks']} | {row['conv_gmac']:.2f} | {runtime} | {s['total_ms']:.1f} | {s['conv_ms']:.1f} | "
                f"{100 * s['conv_share']:.0f} % | {rate} | {top} |"
            )
    lines += [
        "",
        "conv GMAC/s: the fp32 graph's convolution multiply-adds over the convolutions' time (for int8, the "
        "same count over all its convolutions' time, integer and float).",
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(ROOT / DEFAULT_CHECKPOINT))
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "onnx-profile")
    return report_main(parser, argv, run, markdown)


if __name__ == "__main__":
    raise SystemExit(main())
