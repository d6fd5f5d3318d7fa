"""Offsets are committed in order: a partition's offset moves past an event only once it and
every event before it in the partition are finished (a final result written, or parked).

Outcomes arrive in any order (pixels, retries), so finished events wait here until they form
an unbroken run from the oldest unfinished one. Every event held here, finished or not, counts
against `TIKTOK_MAX_PENDING_EVENTS`.
"""

from __future__ import annotations

from collections import defaultdict, deque
from typing import Hashable


class InOrderAcks:
    def __init__(self) -> None:
        self._open: dict[Hashable, deque[list]] = defaultdict(deque)  # partition -> [[offset, finished], ...]
        self.held = 0

    def track(self, partition: Hashable, offset: int) -> list:
        entry = [offset, False]
        self._open[partition].append(entry)
        self.held += 1
        return entry

    def finished(self, partition: Hashable, entry: list) -> int | None:
        """Mark one event finished; return the offset the partition may now commit (the next to read), if any."""
        entry[1] = True
        line = self._open.get(partition)
        commit = None
        while line and line[0][1]:
            commit = line.popleft()[0] + 1
            self.held -= 1
        return commit

    def forget_all(self) -> None:
        """After a rebalance every partition is read again from its committed offset."""
        self._open.clear()
        self.held = 0
