#!/usr/bin/env bash
# Create .venv/ at the repository root and install funk with its pinned dependencies.
# Idempotent: rerunning only installs what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  py=$(command -v python3.11 || command -v python3)
  "$py" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# torch first and on its own: the CUDA build runs on the CPU too, and later
# packages must see this exact version rather than pull another.
.venv/bin/python -m pip install -q torch==2.14.1 torchvision==0.29.1
.venv/bin/python -m pip install -q -e ".[dev,ros,rl,deploy]"
.venv/bin/python -m pip check
