"""Atomic rosbag2 output: a bag is a folder, so it is written under a hidden stage and renamed into place."""

from __future__ import annotations

import secrets
from pathlib import Path


def staged_bag(output: Path) -> Path:
    """Where to write the bag ``output`` before ``os.replace``-ing it into place: a path of the same name
    (rosbags names the storage file after the folder) inside a new hidden folder beside ``output``, so
    the rename stays on one filesystem. The caller removes that hidden folder whatever happens."""
    stage = output.parent / f".{output.name}.{secrets.token_hex(4)}.tmp"
    stage.mkdir(parents=True)
    return stage / output.name
