"""The two small pieces of timing logic of the node, kept free of rclpy so they are tested alone.

:class:`LatestSlot` is how the node never falls behind its camera: the
subscription callback only drops the newest frame into a one-place slot and
the inference thread takes whatever is there, so a frame that was not taken
in time is replaced (and counted), never queued.

:class:`StampBuffer` stands in for message_filters (not installable here):
depth and camera_info messages are kept for a short while and looked up by
the colour frame's timestamp within a tolerance.
"""

from __future__ import annotations

import bisect
import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class LatestSlot(Generic[T]):
    """A one-place mailbox: ``put`` replaces what is waiting (returns True when it did), ``take`` waits for it."""

    def __init__(self) -> None:
        self._item: T | None = None
        self._full = False
        self._closed = False
        self._cond = threading.Condition()

    def put(self, item: T) -> bool:
        with self._cond:
            replaced = self._full
            self._item, self._full = item, True
            self._cond.notify()
            return replaced

    def take(self, timeout: float | None = None) -> T | None:
        """The waiting item (emptying the slot), or None on timeout or once closed."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._full or self._closed, timeout):
                return None
            if not self._full:
                return None
            item, self._item, self._full = self._item, None, False
            return item

    def close(self) -> None:
        """Wake every waiter; later ``take`` calls return what is left, then None."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class StampBuffer(Generic[T]):
    """The last ``capacity`` items by timestamp (ns); ``nearest`` finds the closest within a tolerance."""

    def __init__(self, capacity: int = 30) -> None:
        if capacity < 1:
            raise ValueError(f"StampBuffer capacity: expected >= 1, found {capacity}")
        self.capacity = capacity
        self._stamps: list[int] = []
        self._items: list[T] = []
        self._cond = threading.Condition()

    def add(self, stamp_ns: int, item: T) -> None:
        with self._cond:
            i = bisect.bisect_right(self._stamps, stamp_ns)
            self._stamps.insert(i, stamp_ns)
            self._items.insert(i, item)
            if len(self._stamps) > self.capacity:
                del self._stamps[0], self._items[0]
            self._cond.notify_all()

    def _nearest(self, stamp_ns: int, tolerance_ns: int) -> T | None:
        i = bisect.bisect_left(self._stamps, stamp_ns)
        best: tuple[int, T] | None = None
        for j in (i - 1, i):
            if 0 <= j < len(self._stamps):
                gap = abs(self._stamps[j] - stamp_ns)
                if gap <= tolerance_ns and (best is None or gap < best[0]):
                    best = (gap, self._items[j])
        return None if best is None else best[1]

    def nearest(self, stamp_ns: int, tolerance_ns: int, wait: float = 0.0) -> T | None:
        """The item closest to ``stamp_ns`` within ``tolerance_ns``; waits up to ``wait`` s for one to arrive
        (depth often lands a few ms after its colour frame)."""
        with self._cond:
            found = self._nearest(stamp_ns, tolerance_ns)
            if found is None and wait > 0:
                self._cond.wait_for(lambda: self._nearest(stamp_ns, tolerance_ns) is not None, wait)
                found = self._nearest(stamp_ns, tolerance_ns)
            return found

    def __len__(self) -> int:
        with self._cond:
            return len(self._stamps)
