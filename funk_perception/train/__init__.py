"""Training of the task-conditioned encoder: feature cache, augmentation, loss, loop, prototypes.

``python -m funk_perception.train --config paper --data CSV --out DIR`` runs it
from the shell; :func:`train` with a :class:`TrainConfig` does the same from Python.
"""

from funk_perception.train.augment import AugmentConfig, AugmentedView, augment_view
from funk_perception.train.cache import CacheKey, FeatureCache, build_cache, default_cache_folder, make_key
from funk_perception.train.loop import TrainConfig, Trainer, TrainResult, train
from funk_perception.train.loss import LossOutput, correspondence_loss, sample_at_keypoints
from funk_perception.train.prototypes import compute_prototypes

__all__ = [
    "AugmentConfig",
    "AugmentedView",
    "CacheKey",
    "FeatureCache",
    "LossOutput",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "augment_view",
    "build_cache",
    "compute_prototypes",
    "correspondence_loss",
    "default_cache_folder",
    "make_key",
    "sample_at_keypoints",
    "train",
]
