"""Test-session setup shared by every test file.

torch must be imported before any MuJoCo/GL context exists (triton's LLVM vs
Mesa's LLVM segfault, docs/DESIGN.md, "Import torch first"), and MuJoCo renders offscreen through EGL
(funk_perception.offscreen_gl).
"""

import torch  # noqa: F401  isort: skip  (before any GL context: docs/DESIGN.md, "Import torch first")
import torchvision  # noqa: F401  isort: skip
import funk_perception.offscreen_gl  # noqa: F401  isort: skip  (MUJOCO_GL before MuJoCo loads)

import sys
from pathlib import Path

# research code (report, ablation, few-shot, classify) lives in scripts/, outside the installed package
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import pytest

SHIPPED = Path(__file__).resolve().parents[1] / "models" / "funk-lite0-synth.pt"


def _derived(path: Path, drop: tuple[str, ...] = (), perturb: bool = False) -> Path:
    """The shipped checkpoint re-saved without ``drop``'s extra parts, or with its head's weights nudged (another
    encoder): models/ ships the default alone, so tests make the other kinds of checkpoint they need."""
    from funk_perception.model.encoder import FunctionalEncoder
    from funk_perception.model.trunk import build_trunk

    trunk = build_trunk(FunctionalEncoder.read_checkpoint(SHIPPED)["config"]["trunk"], pretrained=False)
    encoder = FunctionalEncoder.load(SHIPPED, device="cpu", trunk=trunk)
    if perturb:
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for _name, value in encoder.head_state_dict().items():
                if value.is_floating_point() and value.dim() > 1:
                    value.add_(1e-2 * torch.randn(value.shape, generator=generator))
    encoder.save(path, {k: v for k, v in encoder.loaded_extra.items() if k not in drop})
    return path


@pytest.fixture(scope="session")
def prototypes_only_checkpoint(tmp_path_factory) -> Path:
    """A checkpoint with prototypes and no bank, heatmap head or named detect method."""
    return _derived(
        tmp_path_factory.mktemp("ckpt") / "prototypes-only.pt",
        drop=("bank", "heatmap_head", "detect_method", "detector_config", "recipe"),
    )


@pytest.fixture(scope="session")
def other_checkpoint(tmp_path_factory) -> Path:
    """Another encoder (the shipped one's head nudged) with every detect method: a foreign fingerprint."""
    return _derived(tmp_path_factory.mktemp("ckpt") / "other-encoder.pt", perturb=True)
