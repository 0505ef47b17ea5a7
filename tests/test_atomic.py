"""funk_perception.atomic: all-or-nothing writes, no temp file left behind."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from funk_perception.atomic import (
    atomic_open,
    torch_save_atomic,
    write_bytes_atomic,
    write_json_atomic,
    write_png_atomic,
    write_text_atomic,
)


class Boom(Exception):
    pass


@pytest.mark.parametrize("mode, first, partial", [("wb", b"old bytes", b"half"), ("w", "old text", "half")])
def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path: Path, mode: str, first, partial) -> None:
    path = tmp_path / "file.dat"
    with atomic_open(path, mode) as handle:
        handle.write(first)
    with pytest.raises(Boom):
        with atomic_open(path, mode) as handle:
            handle.write(partial)
            handle.flush()
            raise Boom
    assert (path.read_bytes() if mode == "wb" else path.read_text()) == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.dat"]


def test_failed_first_write_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(Boom):
        with atomic_open(tmp_path / "new.bin") as handle:
            handle.write(b"x")
            raise Boom
    assert list(tmp_path.iterdir()) == []


def test_failed_torch_save_keeps_previous_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "state.pt"
    torch_save_atomic({"step": 1}, path)

    class Unpicklable:
        def __reduce__(self):
            raise Boom

    with pytest.raises(Boom):
        torch_save_atomic({"step": 2, "bad": Unpicklable()}, path)
    assert torch.load(path, weights_only=True) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["state.pt"]


def test_success_replaces_content(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("before, and longer than after")
    write_text_atomic(path, "after")
    assert path.read_text() == "after"
    write_bytes_atomic(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    write_json_atomic(path, {"b": [1, 2.5], "a": "x"}, indent=1, sort_keys=True)
    assert path.read_text() == json.dumps({"b": [1, 2.5], "a": "x"}, indent=1, sort_keys=True)
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_creates_parent_folders_and_uses_plain_open_permissions(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "out.json"
    write_json_atomic(path, [1])
    assert json.loads(path.read_text()) == [1]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_text_options_reach_open(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    with atomic_open(path, "w", newline="", encoding="utf-8") as handle:
        handle.write("a,\u00e9\r\n")
    assert path.read_bytes() == "a,\u00e9\r\n".encode()


def test_temp_name_options(tmp_path: Path) -> None:
    path = tmp_path / "img.jpg"
    seen = []
    with atomic_open(path, temp_prefix="img.jpg.tmp-", temp_suffix="", fsync=False) as handle:
        seen = [p.name for p in tmp_path.iterdir()]
        handle.write(b"jpg")
    assert len(seen) == 1 and seen[0].startswith("img.jpg.tmp-") and seen[0] != "img.jpg.tmp-"
    assert [p.name for p in tmp_path.iterdir()] == ["img.jpg"]


def test_rejects_read_and_append_modes(tmp_path: Path) -> None:
    for mode in ("r", "a", "ab", "w+"):
        with pytest.raises(ValueError, match="mode"):
            atomic_open(tmp_path / "x", mode)  # type: ignore[call-overload]


def test_write_png_round_trips_through_imread(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(17, 23, 3), dtype=np.uint8)
    path = tmp_path / "sub" / "image.png"
    write_png_atomic(path, rgb)
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None
    np.testing.assert_array_equal(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), rgb)
    assert [p.name for p in path.parent.iterdir()] == ["image.png"]


def test_write_png_rejects_non_rgb_uint8(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="RGB uint8"):
        write_png_atomic(tmp_path / "f.png", np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="RGB uint8"):
        write_png_atomic(tmp_path / "g.png", np.zeros((4, 4), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_save_figure_atomic_writes_a_png_and_closes_the_figure(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from funk_perception.atomic import save_figure_atomic

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    save_figure_atomic(fig, tmp_path / "plots" / "line.png", dpi=50)
    assert (tmp_path / "plots" / "line.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not plt.fignum_exists(fig.number)
    assert [p.name for p in (tmp_path / "plots").iterdir()] == ["line.png"]
