"""Offset commits never step over an unprocessed record, and never stall on offsets that hold none.

The commit rules run on Faust's own `_new_offset` (a consumer's bookkeeping without a broker);
the stall healing runs against the real broker, with a worker reading input written in transactions,
whose commit markers take offsets that no consumer ever receives.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from types import SimpleNamespace

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
from faust.transport.consumer import Consumer as FaustConsumer
from faust.types import TP
from intervaltree import IntervalTree

from tests.support import Kafka
from worker.offsets import SafeCommits

TOPIC_PARTITION = TP("app-events", 0)


def consumer_with(committed: int | None, acked: list[int]) -> SafeCommits:
    """Faust's commit bookkeeping for one partition, with `SafeCommits` installed over it."""
    consumer = SimpleNamespace(
        _acked=defaultdict(list, {TOPIC_PARTITION: list(acked)}),
        _acked_index=defaultdict(set, {TOPIC_PARTITION: set(acked)}),
        _committed_offset=defaultdict(lambda: None, {TOPIC_PARTITION: committed}),
        _gap=defaultdict(IntervalTree),
        _read_offset={},
        should_stop=False,
        app=SimpleNamespace(rebalancing=False),
        assignment=lambda: {TOPIC_PARTITION},
        seeks=[],
    )

    async def seek(tp: TP, offset: int) -> None:
        consumer.seeks.append((tp, offset))

    consumer.seek = seek
    consumer._new_offset = FaustConsumer._new_offset.__get__(consumer)
    consumer.perform_seek = consumer.getmany = consumer._wait_next_records = None
    return SafeCommits(consumer, {})


def test_a_run_of_processed_offsets_from_the_committed_one_is_committed():
    assert consumer_with(10, [10, 11, 12, 14]).new_offset(TOPIC_PARTITION) == 13


def test_a_run_that_starts_past_the_committed_offset_is_not_committed():
    # Faust alone commits 13 here, stepping over offset 10 (faust-streaming#606).
    assert consumer_with(10, [11, 12]).new_offset(TOPIC_PARTITION) is None


def test_nothing_is_committed_while_the_committed_offset_is_unknown():
    # Faust alone commits 6 here, whatever came before offset 4.
    assert consumer_with(None, [4, 5]).new_offset(TOPIC_PARTITION) is None


def test_offsets_processed_before_a_seek_back_do_not_block_the_run():
    assert consumer_with(10, [3, 4, 10, 11]).new_offset(TOPIC_PARTITION) == 12


def fetch_loop(safe: SafeCommits, fetched: list[int], handed_on: int) -> None:
    """Faust's fetch loop as `SafeCommits` sees it: a fetch of these offsets, of which it hands on the first few."""
    records = {TOPIC_PARTITION: [SimpleNamespace(offset=offset) for offset in fetched]}

    async def wait_next_records(timeout: float):
        return records, {TOPIC_PARTITION}

    async def getmany(timeout: float):
        await safe._wait_next_records(timeout)
        for record in records[TOPIC_PARTITION][:handed_on]:
            yield TOPIC_PARTITION, record

    safe._faust_wait_next_records, safe._faust_getmany = wait_next_records, getmany


async def test_records_the_fetch_loop_drops_are_read_again():
    safe = consumer_with(10, [])
    fetch_loop(safe, [10, 11, 12], handed_on=1)  # e.g. the flow stopped after the first one
    assert [offset async for _, offset in as_offsets(safe.getmany(1.0))] == [10]
    assert safe.consumer.seeks == [(TOPIC_PARTITION, 11)]


async def test_records_dropped_during_a_rebalance_are_left_to_its_seek():
    safe = consumer_with(10, [])
    fetch_loop(safe, [10, 11, 12], handed_on=0)
    safe.consumer.app.rebalancing = True
    assert [offset async for _, offset in as_offsets(safe.getmany(1.0))] == []
    assert safe.consumer.seeks == []


async def as_offsets(messages):
    async for tp, record in messages:
        yield tp, record.offset


async def test_input_written_in_transactions_is_processed_and_committed_to_its_end(kafka: Kafka, start_worker):
    await start_worker()
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, transactional_id=f"{kafka.prefix}upstream")
    await producer.start()
    try:
        for transaction in range(3):
            async with producer.transaction():
                for i in range(10):
                    # No ttclid: each gets its final result (`unattributed`) in the ingest stage.
                    event = {"event_id": f"tx{transaction}-{i}", "app_id": "app1", "name": "trial_started",
                             "occurred_at": "2026-11-25T17:00:00Z"}
                    await producer.send(kafka.topic("app-events"), key=b"one-partition", value=orjson.dumps(event))
    finally:
        await producer.stop()

    results = await kafka.consume("delivery-results", 30)
    assert sorted(r["key"] for r in results) == sorted(f"tx{t}-{i}" for t in range(3) for i in range(10))

    # Each transaction's commit marker takes an offset after its records: 33 offsets, 30 records.
    group = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap, group_id=f"{kafka.prefix}worker-ingest",
                             enable_auto_commit=False)
    await group.start()
    try:
        partitions = [TopicPartition(kafka.topic("app-events"), p) for p in range(4)]  # TOPIC_PARTITIONS
        ends = await group.end_offsets(partitions)
        assert sum(ends.values()) == 33
        committed = {}
        for _ in range(60):  # a stalled commit is looked at after 5 s
            committed = {tp: await group.committed(tp) or 0 for tp in partitions}
            if committed == ends:
                break
            await asyncio.sleep(0.5)
        assert committed == ends, "the worker's commits reach the end of a topic written in transactions"
    finally:
        await group.stop()


async def test_offsets_below_the_log_start_hold_nothing_and_those_after_it_are_still_records(kafka: Kafka):
    """A committed offset that retention has overtaken: the stall check counts the deleted offsets as done,
    never the records that are still in the log (it once jumped to the log's end and committed them unread)."""
    topic = kafka.topic("retained")
    await kafka.produce("retained", [(b"one-partition", {"n": n}) for n in range(10)])
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    await admin.start()
    try:
        await admin.delete_records({TopicPartition(topic, 0): RecordsToDelete(before_offset=5)})
    finally:
        await admin.close()
    safe = consumer_with(0, [])
    safe.client_options = {"bootstrap_servers": kafka.bootstrap}
    try:
        assert await safe._record_offsets(TP(topic, 0), 0, 10) == ({5, 6, 7, 8, 9}, 10)
    finally:
        await safe.close()
