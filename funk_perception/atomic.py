"""Atomic file writes: a file is either its old self or completely new, never half-written.

Training, cache building and dataset generation run for hours and get killed
(Ctrl-C, OOM killer, a preempted machine); resuming trusts whatever files are
on disk. So every result file is written to a temporary file in the same folder
and moved into place with ``os.replace`` (atomic on POSIX and Windows within
one filesystem) only once it is complete: a killed job never leaves a
half-written checkpoint, cache index, CSV or dataset file behind, only at worst
a stray temp file, which the writers here delete on any exception.

The final file gets the permissions a plain ``open(path, "w")`` would give
(0o666 minus the umask), not ``mkstemp``'s 0o600.

This module imports neither torch nor OpenCV at import time (the data modules
and the generator's workers stay torch-free); :func:`torch_save_atomic` and
:func:`write_png_atomic` import them when called.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, BinaryIO, Literal, TextIO, overload

import numpy as np

__all__ = [
    "atomic_open",
    "save_figure_atomic",
    "save_npz_atomic",
    "torch_save_atomic",
    "write_bytes_atomic",
    "write_json_atomic",
    "write_png_atomic",
    "write_text_atomic",
]


def _create_temp(folder: Path, prefix: str, suffix: str) -> tuple[int, Path]:
    """A new, exclusively created file ``<prefix><random><suffix>`` in ``folder``: (fd, path)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        temp = folder / f"{prefix}{secrets.token_hex(6)}{suffix}"
        try:
            return os.open(temp, flags, 0o666), temp
        except FileExistsError:
            continue
    raise FileExistsError(f"{folder}: could not create a unique temporary file {prefix}*{suffix}")


@overload
def atomic_open(
    path: str | Path,
    mode: Literal["wb"] = "wb",
    *,
    fsync: bool = True,
    temp_prefix: str | None = None,
    temp_suffix: str = ".tmp",
    **open_kwargs: Any,
) -> contextlib.AbstractContextManager[BinaryIO]: ...


@overload
def atomic_open(
    path: str | Path,
    mode: Literal["w"],
    *,
    fsync: bool = True,
    temp_prefix: str | None = None,
    temp_suffix: str = ".tmp",
    **open_kwargs: Any,
) -> contextlib.AbstractContextManager[TextIO]: ...


def atomic_open(
    path: str | Path,
    mode: str = "wb",
    *,
    fsync: bool = True,
    temp_prefix: str | None = None,
    temp_suffix: str = ".tmp",
    **open_kwargs: Any,
) -> contextlib.AbstractContextManager[IO[Any]]:
    """Open ``path`` for writing through a temp file that replaces ``path`` when the block ends cleanly.

    ``mode`` is ``"wb"`` or ``"w"``; ``open_kwargs`` go to :func:`open` (``encoding``,
    ``newline``...). The temp file lies in ``path``'s folder (created if missing), named
    ``<temp_prefix><random><temp_suffix>`` (default prefix ``.<name>.``, so it is hidden).
    On a clean exit the handle is flushed, fsync'ed (unless ``fsync=False``) and closed,
    then ``os.replace``d onto ``path``; on any exception the temp file is removed, ``path``
    is left as it was and the exception propagates.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open({path}): expected mode 'w' or 'wb', found {mode!r}")
    return _atomic_open(Path(path), mode, fsync, temp_prefix, temp_suffix, open_kwargs)


@contextlib.contextmanager
def _atomic_open(
    path: Path, mode: str, fsync: bool, temp_prefix: str | None, temp_suffix: str, open_kwargs: dict[str, Any]
) -> Iterator[IO[Any]]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = _create_temp(path.parent, f".{path.name}." if temp_prefix is None else temp_prefix, temp_suffix)
    try:
        try:
            handle = os.fdopen(fd, mode, **open_kwargs)
        except BaseException:
            os.close(fd)
            raise
        with handle:
            yield handle
            handle.flush()
            if fsync:
                os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


def write_bytes_atomic(
    path: str | Path, data: bytes, *, fsync: bool = True, temp_prefix: str | None = None, temp_suffix: str = ".tmp"
) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_open` for the options)."""
    with atomic_open(path, "wb", fsync=fsync, temp_prefix=temp_prefix, temp_suffix=temp_suffix) as handle:
        handle.write(data)


def write_text_atomic(path: str | Path, text: str, *, encoding: str = "utf-8", newline: str | None = None) -> None:
    """Write ``text`` to ``path`` atomically (``newline`` as for :func:`open`)."""
    with atomic_open(path, "w", encoding=encoding, newline=newline) as handle:
        handle.write(text)


def write_json_atomic(path: str | Path, payload: Any, **json_kwargs: Any) -> None:
    """``json.dump(payload, ..., **json_kwargs)`` to ``path`` atomically, UTF-8, no trailing newline."""
    with atomic_open(path, "w", encoding="utf-8") as handle:
        json.dump(payload, handle, **json_kwargs)


def write_png_atomic(path: str | Path, rgb: np.ndarray) -> None:
    """Encode an RGB ``uint8`` image ``(H, W, 3)`` as PNG (OpenCV) and write it to ``path`` atomically."""
    import cv2  # lazily: this module stays cheap to import

    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(
            f"write_png_atomic({path}): expected an RGB uint8 array (H, W, 3), found {rgb.dtype} {rgb.shape}"
        )
    ok, buffer = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError(f"write_png_atomic({path}): OpenCV could not encode a {rgb.shape} image as PNG")
    write_bytes_atomic(path, buffer.tobytes())


def torch_save_atomic(payload: Any, path: str | Path) -> None:
    """``torch.save(payload, path)`` atomically (torch is imported only here)."""
    import torch

    with atomic_open(path, "wb") as handle:
        torch.save(payload, handle)


def save_npz_atomic(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez`` of ``arrays`` to ``path``, atomically (a resumed job reads only whole files)."""
    with atomic_open(path, "wb") as handle:
        np.savez(handle, **arrays)


def save_figure_atomic(fig: Any, path: str | Path, dpi: int = 100) -> None:
    """Save a matplotlib figure as PNG to ``path`` atomically, then close it (also on failure)."""
    import matplotlib.pyplot as plt

    try:
        with atomic_open(path, "wb") as handle:
            fig.savefig(handle, dpi=dpi, format="png")
    finally:
        plt.close(fig)
