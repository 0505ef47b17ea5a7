"""The node's diagnostics as diagnostic_updater publishes them, without it (not installable here).

diagnostic_updater's conventions, followed with plain diagnostic_msgs:

- one DiagnosticArray per update on the absolute topic ``/diagnostics`` (also
  from a node in a namespace: the aggregator and rqt_robot_monitor listen there);
- a status named ``<node name>: <task name>``, here ``keypoint_node: keypoints``,
  with a non-empty ``hardware_id``;
- its FrequencyStatus: events counted between updates over a window of the
  last 5 updates; ERROR "No events recorded." when none came in the window,
  WARN "Frequency too low." under ``min * (1 - tolerance)`` (and too high over
  ``max * (1 + tolerance)`` when a maximum is set), else OK "Desired frequency
  met"; keys "Events in window", "Events since startup", "Duration of window
  (s)", "Actual frequency (Hz)" and the acceptable bounds;
- statuses merged as its CompositeDiagnosticTask does: the highest level, the
  messages of the non-OK parts joined by "; ".

Time is passed in (seconds), so the node uses its monotonic clock and the bag
tool the bag's timestamps. No rclpy here.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

#: diagnostic_msgs/DiagnosticStatus levels
OK, WARN, ERROR, STALE = 0, 1, 2, 3

#: Where diagnostic_updater publishes, whatever the node's namespace.
DIAGNOSTICS_TOPIC = "/diagnostics"

#: The task part of the status name.
STATUS_TASK = "keypoints"


def status_name(node_name: str) -> str:
    """``<node name>: keypoints``, the name diagnostic_updater gives a task of that node."""
    return f"{node_name}: {STATUS_TASK}"


def default_hardware_id(device: Any, model: str | Path) -> str:
    """What the keypoints come from when the user names no hardware: the model file on the device."""
    return f"{Path(str(model)).name} on {device}"


def merge_summary(level: int, message: str, new_level: int, new_message: str) -> tuple[int, str]:
    """diagnostic_updater's ``mergeSummary``: non-OK messages are joined, a higher level's message wins."""
    if new_level > OK and level > OK:
        message = f"{message}; {new_message}" if message else new_message
    elif new_level > level:
        message = new_message
    return max(level, new_level), message


class FrequencyStatus:
    """diagnostic_updater's FrequencyStatus with the time passed in: :meth:`tick` per event, :meth:`run`
    per diagnostics update. ``min_freq`` 0 means no lower bound, ``max_freq`` inf no upper one."""

    def __init__(self, now: float, tolerance: float = 0.1, window_size: int = 5) -> None:
        if window_size < 1:
            raise ValueError(f"FrequencyStatus window_size: expected >= 1, found {window_size}")
        self.tolerance = tolerance
        self.window_size = window_size
        self.count = 0
        self._times = [now] * window_size
        self._counts = [0] * window_size
        self._index = 0
        self._lock = threading.Lock()

    def tick(self) -> None:
        with self._lock:
            self.count += 1

    def run(self, now: float, min_freq: float = 0.0, max_freq: float = math.inf) -> tuple[int, str, dict[str, str]]:
        """(level, message, values) for the window ending ``now``; the window then moves on by one update."""
        with self._lock:
            events = self.count - self._counts[self._index]
            window = now - self._times[self._index]
            freq = events / window if window > 0 else 0.0
            self._counts[self._index], self._times[self._index] = self.count, now
            self._index = (self._index + 1) % self.window_size
            total = self.count
        if events == 0:
            level, message = ERROR, "No events recorded."
        elif freq < min_freq * (1 - self.tolerance):
            level, message = WARN, "Frequency too low."
        elif math.isfinite(max_freq) and freq > max_freq * (1 + self.tolerance):
            level, message = WARN, "Frequency too high."
        else:
            level, message = OK, "Desired frequency met"
        values = {
            "Events in window": f"{events:d}",
            "Events since startup": f"{total:d}",
            "Duration of window (s)": f"{window:f}",
            "Actual frequency (Hz)": f"{freq:f}",
        }
        if math.isfinite(max_freq) and min_freq == max_freq:
            values["Target frequency (Hz)"] = f"{min_freq:f}"
        if min_freq > 0:
            values["Minimum acceptable frequency (Hz)"] = f"{min_freq * (1 - self.tolerance):f}"
        if math.isfinite(max_freq):
            values["Maximum acceptable frequency (Hz)"] = f"{max_freq * (1 + self.tolerance):f}"
        return level, message, values


def keypoint_status(
    frequency: tuple[int, str, Mapping[str, str]],
    counters: Mapping[str, float | int],
    rejected: int,
) -> tuple[int, str, dict[str, str]]:
    """The ``keypoints`` status: the frequency of published clouds merged with the frame counters (WARN
    once any frame was rejected); values: the frequency keys, then the counters."""
    level, message, values = frequency
    if rejected:
        level, message = merge_summary(level, message, WARN, f"{rejected} frames rejected")
    out: dict[str, str] = OrderedDict(values)
    out.update((key, _format(value)) for key, value in counters.items())
    return level, message, out


def diagnostics_array(
    make: Callable[..., Any], header: Any, name: str, hardware_id: str, status: tuple[int, str, Mapping[str, str]]
) -> Any:
    """diagnostic_msgs/DiagnosticArray with the one status ``name`` (built with a message factory, see
    :mod:`funk_perception.ros.messages`)."""
    level, message, values = status
    pairs = [make("diagnostic_msgs/msg/KeyValue", key=key, value=value) for key, value in values.items()]
    entry = make(
        "diagnostic_msgs/msg/DiagnosticStatus",
        level=bytes([level]),
        name=name,
        message=message,
        hardware_id=hardware_id,
        values=pairs,
    )
    return make("diagnostic_msgs/msg/DiagnosticArray", header=header, status=[entry])


def _format(value: float | int | str) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.2f}"
    return str(value)
