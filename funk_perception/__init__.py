"""funk_perception: functional keypoints for robots (FunKPoint's task-driven modular network on a frozen trunk).

The public surface, loaded lazily so that ``import funk_perception`` (and ``funk_perception.tasks``, which the
ROS parameter code reads) stays free of torch::

    from funk_perception import FunctionalKeypointDetector, default_checkpoint
    detector = FunctionalKeypointDetector.load(default_checkpoint())
    keypoints = detector.detect(rgb_image, tasks=["pour"])   # {task: TaskKeypoints}

Everything else (data generation, training, evaluation, the ROS node) is reached through its module and its
``python -m`` command. The package's own modules import from the module that defines a name, never from here.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from funk_perception.detector import DETECT_METHODS, FunctionalKeypointDetector, TaskKeypoints
    from funk_perception.metrics import confidence_auc, keypoint_distances, pck, pck_correct
    from funk_perception.shipped import DEFAULT_CHECKPOINT, default_checkpoint
    from funk_perception.tasks import KEYPOINTS, TASKS

#: public name -> the module that defines it
_PUBLIC = {
    "FunctionalKeypointDetector": "funk_perception.detector",
    "TaskKeypoints": "funk_perception.detector",
    "DETECT_METHODS": "funk_perception.detector",
    "default_checkpoint": "funk_perception.shipped",
    "DEFAULT_CHECKPOINT": "funk_perception.shipped",
    "TASKS": "funk_perception.tasks",
    "KEYPOINTS": "funk_perception.tasks",
    "pck": "funk_perception.metrics",
    "pck_correct": "funk_perception.metrics",
    "keypoint_distances": "funk_perception.metrics",
    "confidence_auc": "funk_perception.metrics",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'funk_perception' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value  # the next access skips this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})
