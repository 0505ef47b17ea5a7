"""Where the files the package ships are, and which checkpoint is the default.

Every entry point that falls back on "the shipped model" (the demo, the ROS node
and bag player, few-shot, grasping, RL) takes it from :data:`DEFAULT_CHECKPOINT`,
so the default is named once (models/README.md says why it is that file).
"""

from __future__ import annotations

import sys
from pathlib import Path

#: The shipped default checkpoint, relative to the checkout or to ``share/funk_perception``.
DEFAULT_CHECKPOINT = "models/funk-lite0-synth.pt"


def shipped_file(relative: str | Path) -> Path:
    """A file the package ships (``models/...``, ``samples/...``): from the source checkout, from the share
    directory of a sourced colcon workspace (the ament index), or from ``share/funk_perception`` of a pip
    install prefix. The checkout path when none exists, so the error that follows names where it was expected."""
    here = Path(__file__).resolve()
    candidates = [here.parents[1] / relative]
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory("funk_perception")) / relative)
    except (ImportError, LookupError, OSError):  # not a sourced ROS workspace, or not installed there
        pass
    # .../<prefix>/lib/pythonX.Y/site-packages/funk_perception/shipped.py -> <prefix>/share/funk_perception
    if len(here.parents) > 4:
        candidates.append(here.parents[4] / "share" / "funk_perception" / relative)
    candidates.append(Path(sys.prefix) / "share" / "funk_perception" / relative)
    return next((c for c in candidates if c.exists()), candidates[0])


def default_checkpoint() -> Path:
    """The shipped default checkpoint, wherever the package is installed (:func:`shipped_file`)."""
    return shipped_file(DEFAULT_CHECKPOINT)
