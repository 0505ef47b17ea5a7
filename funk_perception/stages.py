"""Where one frame's time goes: wall-clock milliseconds per named stage, and their running sums.

    times = StageTimes()
    with times("decode"):
        ...
    found = detector.detect(rgb, tasks, stages=times)    # adds letterbox, trunk, modular, locate, postprocess
    totals.add(times, total_ms)                          # StageTotals: sums since start-up, for diagnostics

The stages of the keypoint node, in the order a frame meets them (:data:`STAGES`): ``queue`` (received,
waiting for the inference thread), ``sync`` (waiting for the matching depth frame, with ``use_depth``),
``decode``, ``letterbox`` (letterbox and normalise), ``trunk`` and ``modular`` (the torch backend's frozen
trunk and modular network) or ``encoder`` (both in one ONNX Runtime graph, funk_perception/onnx_backend.py),
``locate`` (the detect method's matching / heatmap, funk_perception/detect_methods.py), ``postprocess``
(back to image pixels, depth back-projection), ``messages`` (building the outputs) and ``publish``.
Stages never overlap, so their sum is at most the frame's total; the rest is time between them.
No rclpy or torch here.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator

#: The node's stages in the order a frame meets them (module docstring).
STAGES: tuple[str, ...] = (
    "queue",
    "sync",
    "decode",
    "letterbox",
    "trunk",
    "modular",
    "encoder",
    "locate",
    "postprocess",
    "messages",
    "publish",
)


class StageTimes:
    """Milliseconds per stage of one frame; ``with times(name):`` times a stage (one entered twice adds up).
    ``on_exit``: called as each stage ends, before its clock is read (the detector synchronises CUDA there)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, on_exit: Callable[[], None] | None = None) -> None:
        self.ms: dict[str, float] = {}
        self.clock = clock
        self.on_exit = on_exit

    def add(self, name: str, ms: float) -> None:
        self.ms[name] = self.ms.get(name, 0.0) + float(ms)

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = self.clock()
        try:
            yield
        finally:
            if self.on_exit is not None:
                self.on_exit()
            self.add(name, 1000.0 * (self.clock() - start))


def timed(stages: StageTimes | None, name: str) -> contextlib.AbstractContextManager:
    """``stages(name)``, or nothing when no one is timing."""
    return contextlib.nullcontext() if stages is None else stages(name)


class StageTotals:
    """Running sums over frames since start-up: milliseconds per stage, the frames' totals and their count.
    Cumulative like the node's other counters, so a reader takes the mean over any span from two readings
    (benchmarks/bench_ros.py). Thread-safe: the inference thread adds, the diagnostics timer reads."""

    def __init__(self) -> None:
        self._ms: dict[str, float] = {}
        self._total_ms = 0.0
        self._frames = 0
        self._lock = threading.Lock()

    def add(self, times: StageTimes, total_ms: float) -> None:
        with self._lock:
            for name, ms in times.ms.items():
                self._ms[name] = self._ms.get(name, 0.0) + ms
            self._total_ms += float(total_ms)
            self._frames += 1

    def values(self) -> dict[str, float | int]:
        """``stage_frames``, ``stage_ms_sum.total`` and ``stage_ms_sum.<stage>`` for each stage seen, in
        :data:`STAGES` order (a stage not in it after them)."""
        with self._lock:
            ms, total, frames = dict(self._ms), self._total_ms, self._frames
        order = [s for s in STAGES if s in ms] + sorted(s for s in ms if s not in STAGES)
        return {
            "stage_frames": frames,
            "stage_ms_sum.total": total,
            **{f"stage_ms_sum.{s}": ms[s] for s in order},
        }


def stage_means(before: dict[str, str], after: dict[str, str]) -> tuple[int, dict[str, float]]:
    """Frames and mean milliseconds per stage (``total`` included) between two diagnostics readings
    (values as published: strings) of :meth:`StageTotals.values`."""
    frames = int(after.get("stage_frames", 0)) - int(before.get("stage_frames", 0))
    prefix = "stage_ms_sum."
    means = {}
    for key, value in after.items():
        if key.startswith(prefix) and frames > 0:
            means[key[len(prefix) :]] = (float(value) - float(before.get(key, 0.0))) / frames
    return frames, means
