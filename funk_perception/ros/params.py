"""The keypoint node's parameters: names, defaults, ranges, descriptions and validation, without rclpy.

The node declares exactly these; the launch file, ``config/keypoints.yaml``,
the bag tool and the tests read them from here, so none can drift apart.
:func:`validate` is the one check of a value (type, range, choices, task
names) for the node at start-up, the node at run time and the bag tool's
options; it accepts an integer for a floating-point parameter and a single
string for a list of strings (``-p tasks:=pour``), and returns the value in
the declared type.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from funk_perception.ros.convert import MAX_PIXELS
from funk_perception.shipped import DEFAULT_CHECKPOINT
from funk_perception.tasks import TASKS, normalize_task

DEVICES = ("auto", "cpu", "cuda")
QOS_PROFILES = ("sensor_data", "reliable")
#: funk_perception.reference_bank.REFERENCE_MODES, repeated so that this module stays free of torch
#: (tests/test_references.py holds the two equal)
REFERENCE_MODES = ("add", "replace")
#: funk_perception.onnx_backend.BACKENDS and PRECISIONS, repeated likewise (tests/test_onnx_export.py holds them equal)
BACKENDS = ("torch", "onnxruntime")
PRECISIONS = ("fp32", "int8")


@dataclass(frozen=True)
class Param:
    """One node parameter. ``low``/``high``/``step`` become the rclpy range; ``choices`` are checked here."""

    name: str
    default: Any
    description: str
    read_only: bool = False
    low: float | None = None
    high: float | None = None
    step: float | None = None
    choices: tuple[str, ...] = ()


PARAMETERS: tuple[Param, ...] = (
    Param("model", "", f"checkpoint path; empty = the shipped {DEFAULT_CHECKPOINT}", read_only=True),
    Param(
        "references",
        "",
        "bank file of your own labelled photos (python -m funk_perception.references add); "
        "empty = the shipped bank alone",
        read_only=True,
    ),
    Param(
        "references_mode",
        "add",
        "how the references join the shipped bank: add (beside it) or replace "
        "(instead of it, for the tasks they cover)",
        read_only=True,
        choices=REFERENCE_MODES,
    ),
    Param("device", "auto", "auto (CUDA when present), cpu or cuda[:N]", read_only=True, choices=DEVICES),
    Param("threads", 0, "CPU threads for torch; 0 keeps torch's default", read_only=True, low=0, high=256, step=1),
    Param(
        "backend",
        "torch",
        "where the encoder runs: torch, or onnxruntime (CPU; needs the deploy extra; docs/DEPLOY.md)",
        read_only=True,
        choices=BACKENDS,
    ),
    Param(
        "precision",
        "fp32",
        "with backend onnxruntime: fp32 or int8 (quantized, calibrated on synthetic renders)",
        read_only=True,
        choices=PRECISIONS,
    ),
    Param("tasks", list(TASKS), "tasks to detect (pour, scoop, ..., any FunKPoint spelling); changeable at run time"),
    Param(
        "min_confidence",
        0.0,
        "keypoints below this confidence are left out of every output; changeable at run time",
        low=0.0,
        high=1.0,
    ),
    Param("publish_markers", True, "publish keypoints/markers (visualization_msgs/MarkerArray)"),
    Param("publish_image", True, "publish keypoints/image (the frame with keypoints drawn)"),
    Param(
        "image_qos",
        "sensor_data",
        "QoS of the input subscriptions: sensor_data (best effort, matches any publisher) or reliable",
        read_only=True,
        choices=QOS_PROFILES,
    ),
    Param("compressed", False, "subscribe to image/compressed (jpeg/png) instead of image", read_only=True),
    Param("use_depth", False, "subscribe to depth and camera_info and publish 3D keypoints", read_only=True),
    Param(
        "depth_tolerance",
        0.02,
        "seconds between a colour frame's and its depth frame's stamps still matched",
        low=0.0,
        high=1.0,
    ),
    Param(
        "depth_window",
        5,
        "side in pixels of the window whose median valid depth a keypoint gets (odd)",
        low=1,
        high=31,
        step=2,
    ),
    Param(
        "roi",
        [0, 0, 0, 0],
        "region of interest [x, y, width, height] in pixels; width or height 0 = whole "
        "image; the roi topic overrides it",
    ),
    Param(
        "max_pixels", MAX_PIXELS, "frames with more pixels than this are refused unread", low=1, high=1 << 30, step=1
    ),
    Param(
        "roi_timeout",
        2.0,
        "seconds after the last roi message before its region expires and the roi parameter applies again; 0 = never",
        low=0.0,
        high=3600.0,
    ),
    Param(
        "hardware_id",
        "",
        "hardware_id of the diagnostics status; empty = the device and the model file",
        read_only=True,
    ),
    Param(
        "expected_rate",
        0.0,
        "keypoint clouds per second the diagnostics' frequency status expects at "
        "least (within 10 %); 0 = no minimum; changeable at run time",
        low=0.0,
        high=1000.0,
    ),
)

PARAMETER_NAMES: tuple[str, ...] = tuple(p.name for p in PARAMETERS)
BY_NAME: dict[str, Param] = {p.name: p for p in PARAMETERS}


def parse_tasks(value: Sequence[str], available: Sequence[str]) -> list[str]:
    """Task names as given (any FunKPoint spelling) -> canonical names; raises ValueError naming the bad one."""
    if isinstance(value, str) or not len(value):
        raise ValueError(f"tasks: expected a non-empty list of task names from {', '.join(available)}, found {value!r}")
    out: list[str] = []
    for name in value:
        try:
            task = normalize_task(str(name))
        except ValueError:
            raise ValueError(f"tasks: unknown task {name!r}; expected names from {', '.join(available)}") from None
        if task not in available:
            raise ValueError(
                f"tasks: {name!r} has no keypoint prototype in this model; expected {', '.join(available)}"
            )
        if task not in out:
            out.append(task)
    return out


def _found(value: Any) -> str:
    kind = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}.get(type(value))
    if value is None:
        return "nothing (an empty list or no value)"
    return f"{value!r} ({kind})" if kind else f"{list(value) if _is_sequence(value) else value!r}"


def _is_sequence(value: Any) -> bool:
    # rclpy gives integer and double arrays as array.array, string arrays as lists
    return not isinstance(value, (str, bytes)) and hasattr(value, "__len__") and hasattr(value, "__iter__")


def _number(param: Param, value: Any) -> float | int:
    integer = isinstance(param.default, int)
    span = f"from {param.low:.0f} to {param.high:.0f}" if integer else f"from {param.low:g} to {param.high:g}"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and isinstance(value, float)):
        raise ValueError(
            f"{param.name}: expected {'an integer' if integer else 'a number'} {span}, found {_found(value)}"
        )
    value = int(value) if integer else float(value)
    if not math.isfinite(value) or not param.low <= value <= param.high:
        raise ValueError(f"{param.name}: expected a value {span}, found {value!r}")
    if param.name == "depth_window" and value % 2 == 0:
        raise ValueError(f"depth_window: expected an odd number of pixels, found {value}")
    return value


def coerce(name: str, value: Any) -> Any:
    """``value`` in parameter ``name``'s declared type where that is unambiguous (an integer for a
    floating-point parameter, one string for a list of strings); anything else unchanged."""
    param = BY_NAME.get(name)
    if param is None:
        return value
    if isinstance(param.default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(param.default, list) and isinstance(value, str) and all(isinstance(v, str) for v in param.default):
        return [value]
    return value


def validate(name: str, value: Any, available_tasks: Sequence[str] = TASKS) -> Any:
    """Parameter ``name``'s ``value`` in its declared type (tasks canonical); raises ValueError naming the
    parameter, what was expected and what was found. Names not in :data:`PARAMETERS` pass unchanged."""
    param = BY_NAME.get(name)
    if param is None:
        return value
    value = coerce(name, value)
    default = param.default
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError(f"{name}: expected true or false, found {_found(value)}")
        return value
    if isinstance(default, (int, float)):
        return _number(param, value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ValueError(f"{name}: expected a string, found {_found(value)}")
        if param.choices and not (value in param.choices or (name == "device" and value.startswith("cuda:"))):
            raise ValueError(f"{name}: expected one of {', '.join(param.choices)}, found {value!r}")
        return value
    if name == "tasks":
        if not _is_sequence(value) or not all(isinstance(v, str) for v in value):
            raise ValueError(
                f"tasks: expected a non-empty list of task names from {', '.join(available_tasks)}, "
                f"found {_found(value)}"
            )
        return parse_tasks(list(value), available_tasks)
    if name == "roi":
        if value is None:  # ``roi:=[]`` reaches rclpy as an unset value: no region, as [0, 0, 0, 0]
            return [0, 0, 0, 0]
        if (
            not _is_sequence(value)
            or len(value) != 4
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
            or min(value[2], value[3]) < 0
        ):
            raise ValueError(
                f"roi: expected [x, y, width, height] (integers, width and height >= 0), found {_found(value)}"
            )
        return [int(v) for v in value]
    raise AssertionError(f"parameter {name}: no validation for a default of type {type(default).__name__}")


def check_value(name: str, value: Any, available_tasks: Sequence[str] = TASKS) -> str | None:
    """Why ``value`` is refused for parameter ``name`` (None when accepted): :func:`validate`'s reason."""
    try:
        validate(name, value, available_tasks)
    except ValueError as exc:
        return str(exc)
    return None
