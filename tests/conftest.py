"""Test-session setup shared by every test file.

torch must be imported before any MuJoCo/GL context exists (triton's LLVM vs
Mesa's LLVM segfault, docs/DESIGN.md, "Import torch first"), and MuJoCo renders offscreen through EGL.
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import torch  # noqa: E402,F401  (import order matters, see above)
import torchvision  # noqa: E402,F401

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

# research code (report, ablation, few-shot, classify) lives in scripts/, outside the installed package
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
