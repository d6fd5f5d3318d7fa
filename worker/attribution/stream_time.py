"""Stage 2, pure: how far in time the join has read each partition of `by-ttclid`.

An app event waiting for its click may leave without it only once its grace period is over *as the
stream sees it*: the partition has been processed past every record written before the deadline. By
the wall clock alone, a replica that took over a partition (after a crash, or behind a backlog) would
release events whose click is already in the log, only not yet read.

The join observes each partition's end (its next offset) at known wall times; once the records before
an observed end are processed, every record written before that time has been: the partition's stream
time is the latest such observation.
"""

from __future__ import annotations

import math
from collections import deque

# Observations kept per partition while the join is behind; past it, new ones wait for room (the stream
# time then advances in coarser steps, never past what was read).
MAX_MARKS = 600


class StreamTime:
    def __init__(self) -> None:
        self._marks: dict[int, deque[tuple[float, int]]] = {}  # partition -> (wall time, end offset then)
        self._read: dict[int, int] = {}  # partition -> next offset to process
        self._time: dict[int, float] = {}

    def clear(self) -> None:
        """A rebalance: what this replica knew of its partitions is for their next owner to learn."""
        self._marks.clear()
        self._read.clear()
        self._time.clear()

    def processed(self, partition: int, offset: int) -> None:
        self._read[partition] = max(self._read.get(partition, 0), offset + 1)

    def observe(self, partition: int, at: float, end: int, committed: int | None) -> None:
        """The partition's end offset at wall time `at`; `committed`, where its reading starts (every
        record before it is in the state this replica rebuilt), if known."""
        marks = self._marks.setdefault(partition, deque())
        if len(marks) < MAX_MARKS:
            if marks and marks[-1][1] == end:
                marks[-1] = (at, end)  # nothing written since: the later time says more
            else:
                marks.append((at, end))
        if committed is not None:
            self.processed(partition, committed - 1)
        read = self._read.get(partition)
        while marks and read is not None and marks[0][1] <= read:
            self._time[partition] = marks.popleft()[0]

    def of(self, partition: int) -> float:
        """The latest wall time before which every record written to the partition has been processed."""
        return self._time.get(partition, -math.inf)
