"""The job runner of the resumable generators (:mod:`funk_perception.data.synth`, :mod:`funk_grasp.generate`).

A generator splits its work into independent jobs, each of which writes its own files atomically and its record
last; a rerun hands :func:`run_jobs` only the jobs without a complete record (:func:`read_record`) made with the
same settings (:func:`settings_fingerprint`), so a killed run resumes where it stopped. :func:`log_to_file` keeps a run's log beside its output.

This module imports neither torch nor MuJoCo.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["log_to_file", "read_record", "run_jobs", "settings_fingerprint"]

J = TypeVar("J")
R = TypeVar("R")


def run_jobs(worker: Callable[..., R], jobs: Sequence[J], *args: Any, workers: int = 1) -> Iterator[R]:
    """``worker(job, *args)`` for every job in ``jobs``; yields each result as soon as it is done.

    With ``workers == 1`` (or at most one job) the jobs run here, in order. Otherwise they run in a pool of
    ``workers`` processes started with ``spawn``, since a forked child would inherit the parent's GL/EGL state
    (and hang or crash); results then come in the order they finish, and ``worker`` (a module-level function)
    and ``args`` must pickle. A job's exception propagates (from the pool, once it has finished the other jobs).
    """
    if workers == 1 or len(jobs) <= 1:
        for job in jobs:
            yield worker(job, *args)
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
        futures = [pool.submit(worker, job, *args) for job in jobs]
        for future in as_completed(futures):
            yield future.result()


def settings_fingerprint(config: Any, generator_version: str) -> dict[str, Any]:
    """The settings of a generator's dataclass ``config`` that decide its output bytes, as JSON values: every
    field but ``out`` (where it goes) and ``workers`` (how fast), tuples as lists, then ``generator_version``."""

    def plain(value: Any) -> Any:
        if isinstance(value, (tuple, list)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    settings = {k: plain(v) for k, v in dataclasses.asdict(config).items() if k not in ("out", "workers")}
    return {**settings, "generator_version": generator_version}


def read_record(path: Path) -> dict | None:
    """A job's JSON record, or None if there is none to trust yet: the file is missing or does not parse (a torn
    write cannot happen, the records are written atomically, but an edited file can)."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


@contextlib.contextmanager
def log_to_file(logger: logging.Logger, path: str | Path) -> Iterator[None]:
    """While the block runs, ``logger`` logs INFO and above also to ``path`` (appended), one timestamped line each."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        handler.close()
