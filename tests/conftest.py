"""Test-session setup shared by every test file.

torch must be imported before any MuJoCo/GL context exists (triton's LLVM vs
Mesa's LLVM segfault, docs/DESIGN.md, "Import torch first"), and MuJoCo renders offscreen through EGL.
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import torch  # noqa: E402,F401  (import order matters, see above)
import torchvision  # noqa: E402,F401
