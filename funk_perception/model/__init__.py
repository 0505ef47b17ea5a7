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
    "NAMED_CONFIGS",
    "TRUNKS",
    "CheckpointError",
    "EncoderConfig",
    "FunctionalEncoder",
    "GatingNetwork",
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
