"""Which region of interest applies to the next frame: the ``roi`` parameter or the ``roi`` topic.

Whichever was set last wins: a message on the topic overrides the parameter,
and setting the parameter (``[0, 0, 0, 0]`` included) clears a region that
came from the topic. A topic region expires ``roi_timeout`` seconds after it
arrived when no newer one follows (an object detector that lost its object
stops publishing; its last box must not stay forever). sensor_msgs/
RegionOfInterest has no header, so the time is the arrival time on this
process's monotonic clock. No rclpy here: the node feeds it, the tests drive
it with made-up times.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from funk_perception.ros.convert import FrameError
from funk_perception.ros.pipeline import parse_roi

Region = tuple[int, int, int, int]
PARAMETER, TOPIC = "roi parameter", "roi topic"


def outside_image(roi: Sequence[int], width: int, height: int, where: str = "roi") -> str | None:
    """Why ``roi`` cannot be used on a ``width`` x ``height`` image (None when it can)."""
    try:
        parse_roi(roi, width, height, where)
    except FrameError as exc:
        return str(exc)
    return None


class RoiState:
    """The parameter's region and the topic's latest region with its arrival time; thread-safe (the
    parameter and topic callbacks run on the executor, :meth:`current` on the inference thread)."""

    def __init__(self, parameter: Sequence[int] = (0, 0, 0, 0)) -> None:
        self._parameter: Region = _region(parameter)
        self._topic: Region | None = None
        self._arrived = 0.0
        self._lock = threading.Lock()

    def set_parameter(self, roi: Sequence[int]) -> None:
        """The ``roi`` parameter was set: it applies from the next frame, and any topic region is cleared."""
        with self._lock:
            self._parameter, self._topic = _region(roi), None

    def set_topic(self, roi: Sequence[int], now: float) -> None:
        """A message on the ``roi`` topic arrived at ``now`` (seconds, monotonic)."""
        with self._lock:
            self._topic, self._arrived = _region(roi), now

    def current(self, now: float, timeout: float) -> tuple[Region, str]:
        """The region for a frame processed at ``now`` and where it came from (:data:`PARAMETER` or
        :data:`TOPIC`); a topic region older than ``timeout`` seconds (> 0) is dropped for good."""
        with self._lock:
            if self._topic is not None and timeout > 0 and now - self._arrived > timeout:
                self._topic = None
            if self._topic is not None:
                return self._topic, TOPIC
            return self._parameter, PARAMETER


def _region(roi: Sequence[int]) -> Region:
    values = tuple(int(v) for v in roi)
    if len(values) != 4:
        raise ValueError(f"roi: expected [x, y, width, height], found {list(roi)}")
    return values  # type: ignore[return-value]
