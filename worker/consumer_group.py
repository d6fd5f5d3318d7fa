"""A stage that reads its topics in batches with a plain consumer group of its own, inside the worker.

Faust's consumer loop costs ~70 us a record; `getmany` hands over a batch for ~3 us a record. The
stages that need no table read Kafka this way, and only the join goes through Faust (see
`worker/app.py`). The rules, all of them ours:
- a batch is processed whole, its writes acknowledged by Kafka, and only then are the partitions'
  positions committed: at least once, in order, never past a record not processed;
- before partitions move (a rebalance, a shutdown) the batch under way finishes and is committed,
  so the next owner repeats nothing;
- a batch that fails is read again from the committed offsets, after a pause;
- a partition this group never committed starts where the Faust app's group had committed it (an
  upgrade from the worker whose stages were Faust agents), else at its beginning.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import mode
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError, for_code

from worker.kafka_security import admin_client, client_options
from worker.settings import Settings

log = logging.getLogger(__name__)

Batch = dict[TopicPartition, list[ConsumerRecord]]


class BatchStage(mode.Service):
    """Subclasses say what a batch means in `process`; it returns once every write it made is acknowledged."""

    def __init__(self, settings: Settings, name: str, topics: list[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.name = name
        self.group = settings.group_of(name)
        self.topics = topics
        self.consumer: AIOKafkaConsumer | None = None
        self.batch_turn = asyncio.Lock()  # a batch runs whole, or a hand-over waits for it
        self.assigned = asyncio.Event()

    async def process(self, batch: Batch) -> None:
        raise NotImplementedError

    async def on_start(self) -> None:
        self.consumer = AIOKafkaConsumer(
            **client_options(self.settings), group_id=self.group, enable_auto_commit=False,
            auto_offset_reset="earliest", isolation_level="read_committed",
            session_timeout_ms=10_000, heartbeat_interval_ms=3_000, max_partition_fetch_bytes=4 << 20)
        self.consumer.subscribe(self.topics, listener=HandOver(self))
        await self.consumer.start()

    async def on_stop(self) -> None:
        if self.consumer is not None:
            async with self.batch_turn:
                await self.commit()
            await self.consumer.stop()  # leaves the group: the others take over at once

    @mode.Service.task
    async def read(self) -> None:
        while not self.should_stop:
            try:
                batch = await self.consumer.getmany(timeout_ms=self.settings.join_batch_linger_s * 1000 or 1,
                                                    max_records=self.settings.join_batch_size)
                async with self.batch_turn:
                    assigned = self.consumer.assignment()
                    # Records fetched before a rebalance belong to their partition's next owner.
                    batch = {tp: records for tp, records in batch.items() if tp in assigned}
                    if batch:
                        await self.process(batch)
                    await self.commit()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: a batch failed; reading it again from the committed offsets", self.name)
                await self.start_over()

    async def lag(self) -> dict[TopicPartition, int]:
        """Records behind the end of each assigned partition, as of the last fetch."""
        lags = {}
        for tp in self.consumer.assignment():
            end = self.consumer.highwater(tp)
            if end is not None:
                lags[tp] = max(0, end - await self.consumer.position(tp))
        return lags

    async def commit(self) -> None:
        """Commit every assigned partition's position: everything before it was processed (markers of
        transactions included, which no record stands for)."""
        positions = {tp: await self.consumer.position(tp) for tp in self.consumer.assignment()}
        try:
            await self.consumer.commit(positions)
        except KafkaError as exc:  # a rebalance under way: the next owner reads what is not committed
            log.info("%s: commit deferred (%r)", self.name, exc)

    async def start_over(self) -> None:
        await seek_to_committed(self.consumer)
        await asyncio.sleep(1.0)  # a failure that repeats does not spin

    async def take_over(self, assigned: set[TopicPartition]) -> None:
        """Before the partitions assigned (all of this member's, at every rebalance) are read."""
        await adopt_faust_commits(self.consumer, self.settings, self.group, assigned)


async def seek_to_committed(consumer: AIOKafkaConsumer) -> None:
    """Read every assigned partition again from its committed offset (its beginning, if never committed)."""
    for tp in consumer.assignment():
        committed = await consumer.committed(tp)
        if committed is None:
            await consumer.seek_to_beginning(tp)
        else:
            consumer.seek(tp, committed)


async def adopt_faust_commits(consumer: AIOKafkaConsumer, settings: Settings, group: str,
                              assigned: set[TopicPartition] | list[TopicPartition]) -> None:
    """A partition `group` never committed continues where the Faust app's group committed it: an
    upgrade from the worker whose stage was a Faust agent neither skips nor repeats its backlog."""
    if not assigned:
        return
    async with admin_client(settings) as admin:
        ours = await admin.list_consumer_group_offsets(group, partitions=list(assigned))
        fresh = [tp for tp in assigned if tp not in ours or ours[tp].offset < 0]
        faust = await admin.list_consumer_group_offsets(settings.app_id, partitions=fresh) if fresh else {}
    for tp, committed in faust.items():
        if committed.offset >= 0:
            log.info("%s: %s[%s] continues at offset %s, where the Faust app had committed it",
                     group, tp.topic, tp.partition, committed.offset)
            consumer.seek(tp, committed.offset)


async def member_client_ids(settings: Settings, group: str) -> list[str]:
    """The Kafka client ids of a consumer group's members (none while it has none)."""
    async with admin_client(settings) as admin:
        [response] = await admin.describe_consumer_groups([group])
    [described] = response.groups  # (error_code, group, state, protocol_type, protocol, members, ...)
    error_code, members = described[0], described[5]
    if error_code:
        raise for_code(error_code)(f"describing the consumer group {group}")
    return [member[1] for member in members]  # (member_id, client_id, client_host, metadata, assignment)


class HandOver(ConsumerRebalanceListener):
    def __init__(self, stage: BatchStage) -> None:
        self.stage = stage

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.stage.assigned.clear()
        async with self.stage.batch_turn:
            if revoked:
                await self.stage.commit()

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.stage.take_over(assigned)
        self.stage.assigned.set()
