"""The functional encoder: frozen trunk, task-driven modular network, save/load.

Import the public names from here (``from funk_perception.model import FunctionalEncoder``).
"""

from funk_perception.model.encoder import (
    NAMED_CONFIGS,
    CheckpointError,
    EncoderConfig,
    FunctionalEncoder,
    named_config,
    resolve_device,
)

# not the function letterbox(): it would shadow its own module's name on this package
from funk_perception.model.letterbox import LETTERBOX_PADS, Letterbox
from funk_perception.model.modular import GATINGS, GatingNetwork, ModularConfig, ModularNetwork
from funk_perception.model.trunk import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    TRUNKS,
    Trunk,
    build_trunk,
    find_resnet50_weights,
    load_efficientnet_lite,
    preprocess,
)

__all__ = [
    "GATINGS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "LETTERBOX_PADS",
    "NAMED_CONFIGS",
    "TRUNKS",
    "CheckpointError",
    "EncoderConfig",
    "FunctionalEncoder",
    "GatingNetwork",
    "Letterbox",
    "ModularConfig",
    "ModularNetwork",
    "Trunk",
    "build_trunk",
    "find_resnet50_weights",
    "load_efficientnet_lite",
    "named_config",
    "preprocess",
    "resolve_device",
]
