"""Offsets are committed in order: an outbox event is acked only once it and every event
before it in its partition have their final result written.

Outcomes arrive in any order (pixels, retries), but Faust's consumer commits past an
un-acked offset when later ones are acked (faust-streaming#606), so acks are held back
here until they form an unbroken run from the oldest unfinished event.
"""

from __future__ import annotations

from collections import defaultdict, deque
from typing import Any


class InOrderAcks:
    def __init__(self) -> None:
        self._open: dict[int, deque[list]] = defaultdict(deque)  # partition -> [[event, finished], ...]

    def track(self, partition: int, event: Any) -> list:
        entry = [event, False]
        self._open[partition].append(entry)
        return entry

    def finished(self, partition: int, entry: list) -> list[Any]:
        """Mark one event finished; return the events that may now be acked, oldest first."""
        entry[1] = True
        line = self._open[partition]
        ready = []
        while line and line[0][1]:
            ready.append(line.popleft()[0])
        return ready

    def forget_all(self) -> None:
        """After a rebalance Faust reads every partition again from its committed offset."""
        self._open.clear()
