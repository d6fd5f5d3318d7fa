"""Offset commits that never step over an unprocessed record, for faust-streaming 0.15.3's consumer.

What Faust does, and what goes wrong with it around a rebalance:
- it commits the first run of acknowledged offsets, even when that run starts one past the committed
  offset (which is the next offset to read: faust-streaming#606), and checks nothing at all while the
  committed offset is unknown or 0;
- it resumes fetching before it seeks back to the committed offset, counts the offsets skipped by an
  early fetch as a "gap" to commit, and drops the records re-fetched after the seek as already read;
- its fetch loop drops records it has fetched when the flow stops or the generation changes mid-batch,
  or when their partition is paused; the consumer's position has moved past them and, when no seek
  follows, this process never sees them;
- it fetches a topic's records before a stream iterates it (the join and delivery agents wait for
  the integrations topic first), and passes them to nobody.

What `SafeCommits` makes of it:
- a commit only extends a run of acknowledged offsets that starts exactly at the committed offset, and
  nothing is committed while that offset is unknown (between a revoke and the seek after the next
  assignment; a partition never committed starts at its first offset);
- read offsets are unknown to the fetch loop, so it neither commits a gap nor drops a re-fetched record;
- records a fetch brought and the loop did not hand on are read again: the consumer seeks back to the
  first of them, unless a seek (a rebalance's) has come since that fetch;
- offsets that hold no record (transaction markers, records compacted away) are never handed on;
  when a partition's commit waits on such offsets for `STALL_SECONDS`, they count as done;
- a partition whose commit waits on a record for `RESEEK_SECONDS`, with nothing of it in processing,
  is read again from its committed offset: a batch an agent gave up on (an exception) is left so, and
  so are records fetched for nobody.
"""

from __future__ import annotations

import logging
from collections import Counter
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.types import TP, EventT

log = logging.getLogger(__name__)

# Longer than a batch takes to be acknowledged in order, short next to a lag alert.
STALL_SECONDS = 5.0
RESEEK_SECONDS = 15.0


class UnknownReadOffsets(dict):
    """The fetch loop's view of read offsets: always unknown (see the module's docstring)."""

    def __getitem__(self, tp):
        return None


class SafeCommits:
    def __init__(self, consumer: Any, client_options: dict[str, Any]):
        self.consumer = consumer
        self.client_options = client_options
        self._faust_new_offset = consumer._new_offset
        self._faust_perform_seek = consumer.perform_seek
        self._faust_getmany = consumer.getmany
        self._faust_wait_next_records = consumer._wait_next_records
        consumer._read_offset = UnknownReadOffsets()
        consumer._new_offset = self.new_offset
        consumer.perform_seek = self.perform_seek
        consumer.getmany = self.getmany
        consumer._wait_next_records = self._wait_next_records
        self._seeks = 0  # how many seeks so far: a fetch older than the last seek needs no reading again
        self._fetched: dict[TP, list] = {}  # the records of the fetch being handed on
        # tp -> (committed offset, when it was first seen waiting, when its offsets were last looked at)
        self._stalled: dict[TP, tuple[int, float, float]] = {}
        self._probe: AIOKafkaConsumer | None = None

    def new_offset(self, tp: TP) -> int | None:
        acked, committed = self.consumer._acked[tp], self.consumer._committed_offset[tp]
        if not acked or committed is None:
            return None
        if min(acked) < committed:  # acknowledged by a batch that started before the last seek
            self._forget(tp, [offset for offset in acked if offset < committed])
        if not acked or min(acked) > committed:
            return None
        return self._faust_new_offset(tp)

    async def _wait_next_records(self, timeout: float):
        records, active_partitions = await self._faust_wait_next_records(timeout)
        self._fetched = records or {}
        return records, active_partitions

    async def getmany(self, timeout: float):
        """Faust's fetch loop, watched: what it drops of a fetch is read again."""
        seeks = self._seeks
        handed_on: Counter[TP] = Counter()
        async for tp, message in self._faust_getmany(timeout):
            handed_on[tp] += 1
            yield tp, message
        if seeks == self._seeks:
            # Faust hands a partition's records on in order: what it drops is the end of the list.
            for tp, records in self._fetched.items():
                if handed_on[tp] < len(records):
                    await self._read_again(tp, records[handed_on[tp]].offset)

    async def _read_again(self, tp: TP, offset: int) -> None:
        consumer = self.consumer
        committed = consumer._committed_offset[tp]
        if (consumer.should_stop or consumer.app.rebalancing or tp not in consumer.assignment()
                or committed is None or offset < committed):
            return  # stopping, or the seek that ends the rebalance reads it again
        log.warning("%s[%s]: records from offset %s were fetched but never processed; reading them again",
                    tp.topic, tp.partition, offset)
        self._seeks += 1
        await consumer.seek(tp, offset)

    async def perform_seek(self) -> None:
        self._seeks += 1
        await self._faust_perform_seek()
        consumer = self.consumer
        # Faust keeps no committed offset for a partition never committed (nor for one committed at 0).
        unknown = [tp for tp in consumer.assignment() if consumer._committed_offset[tp] is None]
        if unknown:
            consumer._committed_offset.update(await consumer.earliest_offsets(*unknown))

    def committed(self, tp: TP) -> int | None:
        """Where the partition's reading starts again: every record before it is processed (None until
        known, between a revoke and the seek after the next assignment)."""
        return self.consumer._committed_offset.get(tp)

    async def heal(self, now: float) -> None:
        """Unblock partitions whose commit waits on offsets that hold no record (or were dropped)."""
        consumer = self.consumer
        in_flight = {message.tp for message in list(consumer._unacked_messages)}
        for tp in consumer.assignment():
            committed = consumer._committed_offset[tp]
            if committed is None or not consumer.app.topics.acks_enabled_for(tp.topic):
                continue
            acked = consumer._acked.get(tp) or []
            if acked:  # offsets after the committed one are done, the committed one is not
                end = max(acked) + 1 if min(acked) > committed else committed
            elif tp not in in_flight and committed < (consumer.highwater(tp) or 0):
                end = await consumer.position(tp) or 0  # read, not being processed, not committed
            else:
                end = committed
            since = self._stalled.get(tp)
            if end <= committed or since is None or since[0] != committed:
                self._stalled[tp] = (committed, now, now)
                continue
            if now - since[2] < STALL_SECONDS:
                continue
            self._stalled[tp] = (committed, since[1], now)
            records, end = await self._record_offsets(tp, committed, end)
            if committed not in records:
                self._acknowledge(tp, [offset for offset in range(committed, end) if offset not in records])
            elif now - since[1] >= RESEEK_SECONDS and tp not in in_flight:
                await self._read_again(tp, committed)

    async def close(self) -> None:
        if self._probe is not None:
            await self._probe.stop()

    async def _record_offsets(self, tp: TP, start: int, end: int) -> tuple[set[int], int]:
        """(the offsets in [start, end) that hold a record, where reading them stopped), read by a
        consumer of our own."""
        if self._probe is None:
            # From the log start when `start` is no longer in the log (retention): the offsets before it
            # hold nothing any more, and the records after it are still to be processed.
            probe = AIOKafkaConsumer(**self.client_options, enable_auto_commit=False, auto_offset_reset="earliest")
            try:
                await probe.start()
            except BaseException:  # Kafka away: the stall check tries again at its next tick
                await probe.stop()
                raise
            self._probe = probe
        partition = TopicPartition(tp.topic, tp.partition)
        self._probe.assign([partition])
        self._probe.seek(partition, start)
        offsets: set[int] = set()
        while await self._probe.position(partition) < end:
            batch = await self._probe.getmany(partition, timeout_ms=1000, max_records=1000)
            if not batch:
                break
            offsets.update(record.offset for record in batch[partition] if record.offset < end)
        return offsets, min(end, await self._probe.position(partition))

    def _acknowledge(self, tp: TP, offsets: Sequence[int]) -> None:
        acked, index = self.consumer._acked[tp], self.consumer._acked_index[tp]
        fresh = [offset for offset in offsets if offset not in index]
        acked.extend(fresh)
        index.update(fresh)

    def _forget(self, tp: TP, offsets: Sequence[int]) -> None:
        acked, index, gone = self.consumer._acked[tp], self.consumer._acked_index[tp], set(offsets)
        acked[:] = [offset for offset in acked if offset not in gone]
        index.difference_update(gone)


def never_commit(events: Sequence[EventT]) -> None:
    """Keep Faust from ever recording these events' offsets as processed.

    `Stream.take_events` acknowledges every event of a batch once the agent leaves it, processed
    or not; a message already marked acknowledged is not recorded again. Its partition's commit
    then stops before it, and whoever reads the partition next reads it again.
    """
    for event in events:
        event.message.acked = True


@contextmanager
def uncommitted_on_failure(batch: Sequence[EventT]) -> Iterator[None]:
    """A batch the agent leaves by an exception or a cancellation (shutdown) is never committed."""
    try:
        yield
    except BaseException:
        never_commit(batch)
        raise
