"""Import before anything that may import MuJoCo: it renders offscreen through EGL unless the user chose a backend.

MuJoCo picks its GL backend when it is first imported, so the default (``MUJOCO_GL=egl``: headless, this CPU's
llvmpipe) must be set before. A process that also uses torch imports torch and torchvision before any GL context
exists (docs/DESIGN.md, "Import torch first"): the entry points that do both (funk_rl's commands, the RL
benchmarks, tests/conftest.py) import them first themselves, so the data generators' workers stay free of torch.
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
