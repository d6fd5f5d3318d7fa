"""Stage 3, Kafka edge: read the outbox and the parked retries, hand events to the TikTok sink,
write each outcome (a final result, or the event parked on the retry topic), and only then let
the event's offset be committed (in order, see `acks`).

A plain consumer group of its own (`<app id>-delivery`), not a Faust agent: before its partitions
move on a rebalance or a shutdown, this replica stops sending for their pixels and commits what
is finished (a rebalance listener), so two replicas never send to one pixel at once and the next
owner repeats almost nothing; and a failure in the loop starts it over with a working sink.
The outbox and the retry topic are both keyed by pixel with as many partitions, so the range
assignment gives one replica both partitions of a pixel.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import mode
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from worker.app import app, settings
from worker.consumer_group import adopt_faust_commits, seek_to_committed
from worker.delivery.acks import InOrderAcks
from worker.delivery.replay import kept_for_replay, replayable
from worker.delivery.sink import Final, Parked, TikTokSink
from worker.analytics.stats import row_key
from worker.dead_letters import dead_letter
from worker.integrations.catalog import catalog
from worker.kafka_security import client_options
from worker.metrics import DEAD_LETTERS, INTERNAL_ERRORS, RESULTS, STAGE_SECONDS
from worker.results import utc_now_iso
from worker.topics import TopicNames

log = logging.getLogger(__name__)
topics = TopicNames.of(settings)
GROUP = settings.group_of("delivery")
COMMIT_INTERVAL_S = 1.0
# What one request may still take once sent, and its outcome's write: the bound of a hand-over.
HAND_OVER_S = settings.request_timeout_s + 5


def parked_record(ticket: Any, due: float) -> dict[str, Any]:
    return {"record": ticket.record, "attempts": ticket.attempts, "first_attempt": ticket.first_attempt, "due": due}


class OutboxDelivery(mode.Service):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.acks = InOrderAcks()
        self.sink = TikTokSink(settings, catalog.get, self.write)
        self.to_commit: dict[TopicPartition, int] = {}
        self.last_commit = 0.0
        self.paused_until: dict[TopicPartition, float] = {}  # retry partitions whose next record is not due
        self.batch = asyncio.Lock()  # a batch is taken in whole, or a hand-over waits for it
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        self.reading: asyncio.Task | None = None

    async def on_start(self) -> None:
        self.producer = AIOKafkaProducer(**client_options(settings), acks="all", linger_ms=5,
                                         max_batch_size=262144)
        await self.producer.start()
        self.consumer = AIOKafkaConsumer(
            **client_options(settings), group_id=GROUP, enable_auto_commit=False, auto_offset_reset="earliest",
            session_timeout_ms=10_000, heartbeat_interval_ms=3_000)
        self.consumer.subscribe([topics.outbox, topics.delivery_retry], listener=HandOver(self))
        await self.consumer.start()
        await self.sink.start()
        self.reading = asyncio.create_task(self.read(), name="outbox-delivery")

    async def on_stop(self) -> None:
        if self.reading is not None:
            self.reading.cancel()
            await asyncio.gather(self.reading, return_exceptions=True)
        await self.hand_over()
        await self.sink.stop(0)
        await self.consumer.stop()  # leaves the group: the others take over at once
        await self.producer.stop()

    async def read(self) -> None:
        await catalog.caught_up.wait()
        while True:
            try:
                await self.read_batch()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("delivery: reading the outbox failed; starting over from the committed offsets")
                await self.start_over()

    async def read_batch(self) -> None:
        self.resume_due()
        room = settings.max_pending_events - self.acks.held
        if room <= 0:  # back-pressure: what is not read stays in Kafka
            await asyncio.sleep(0.05)
        else:
            batch = await self.consumer.getmany(timeout_ms=200, max_records=min(room, settings.join_batch_size))
            async with self.batch:
                assigned = self.consumer.assignment()
                for tp, records in batch.items():
                    if tp not in assigned:
                        continue  # fetched before a rebalance: the partition's next owner reads it
                    for record in records:
                        if not await self.take(tp, record):
                            break
        if time.monotonic() - self.last_commit >= COMMIT_INTERVAL_S:
            await self.commit()

    async def take(self, tp: TopicPartition, record: Any) -> bool:
        """Hand one record to the sink; False when it is a parked event not due yet (read it again then)."""
        try:
            value = orjson.loads(record.value)
            if tp.topic == topics.delivery_retry:
                if value["due"] > time.time():
                    self.consumer.seek(tp, record.offset)
                    self.consumer.pause(tp)
                    self.paused_until[tp] = value["due"]
                    return False
                self.sink.submit(value["record"], (tp, self.acks.track(tp, record.offset)),
                                 value["attempts"], value["first_attempt"])
            else:
                self.sink.submit(value, (tp, self.acks.track(tp, record.offset)))
        except Exception as exc:  # one unreadable record costs that record alone
            log.exception("delivery: %s[%s] offset %s is unusable; dead-lettered", tp.topic, tp.partition,
                          record.offset)
            INTERNAL_ERRORS.labels("delivery").inc()
            DEAD_LETTERS.labels("internal_error").inc()
            entry = self.acks.track(tp, record.offset)
            await self.send_all([(topics.dead_letter, record.key, dead_letter(
                "internal_error", f"{type(exc).__name__}: {exc}"[:500], tp.topic, tp.partition, record.offset,
                record.key, record.value, utc_now_iso()))])
            self.finished(tp, entry)
        return True

    def resume_due(self) -> None:
        now = time.time()
        for tp, due in list(self.paused_until.items()):
            if due <= now:
                del self.paused_until[tp]
                if tp in self.consumer.assignment():
                    self.consumer.resume(tp)

    async def write(self, finals: list[Final], parked: list[Parked]) -> None:
        """The sink's outcomes: written (retried until Kafka takes them), then their offsets may be committed."""
        records = []
        for ticket, result in finals:
            records.append((topics.delivery_results, result["event_id"], result))
            records.append((topics.by_campaign, row_key(result), result))  # re-keyed for the analytics table
            if replayable(result):
                records.append((topics.dead_letter, result["event_id"], kept_for_replay(ticket, result)))
        for ticket, due in parked:
            records.append((topics.delivery_retry, ticket.record["pixel_id"], parked_record(ticket, due)))
        await self.send_all(records)
        for _, result in finals:
            RESULTS.labels(result["status"], result["reason"] or "").inc()
            STAGE_SECONDS.labels("read_to_final").observe(result["latency_ms"] / 1000)
        for ticket, _ in [*finals, *parked]:
            self.finished(*ticket.handle)

    def finished(self, tp: TopicPartition, entry: list) -> None:
        offset = self.acks.finished(tp, entry)
        if offset is not None:
            self.to_commit[tp] = offset

    async def send_all(self, records: list[tuple[str, str | bytes | None, Any]]) -> None:
        """Write every record; what Kafka refuses is written again (the same record: never a different result)."""
        pending, pause = records, 0.5
        while True:
            outcomes = await asyncio.gather(*(self.send(*record) for record in pending), return_exceptions=True)
            failed = [(record, outcome) for record, outcome in zip(pending, outcomes) if isinstance(outcome, Exception)]
            if not failed:
                return
            log.warning("delivery: Kafka refused %d of %d records (%r); writing them again in %.1f s",
                        len(failed), len(pending), failed[0][1], pause)
            await asyncio.sleep(pause)
            pending, pause = [record for record, _ in failed], min(pause * 2, 30.0)

    async def send(self, topic: str, key: str | bytes | None, value: Any) -> None:
        key = key.encode() if isinstance(key, str) else key
        await (await self.producer.send(topic, orjson.dumps(value), key=key))

    async def commit(self) -> None:
        self.last_commit = time.monotonic()
        if not self.to_commit:
            return
        offsets, self.to_commit = self.to_commit, {}
        try:
            await self.consumer.commit(offsets)
        except KafkaError as exc:  # a rebalance under way: the hand-over commits, or the next owner reads again
            log.info("delivery: commit deferred (%r)", exc)
            self.to_commit = {**offsets, **self.to_commit}

    async def hand_over(self) -> None:
        """Before the partitions move: stop sending, let sent requests end, commit what is finished."""
        async with self.batch:
            await self.sink.hand_over(HAND_OVER_S)
            await self.commit()
            self.acks.forget_all()
            self.to_commit.clear()
            self.consumer.resume(*[tp for tp in self.paused_until if tp in self.consumer.assignment()])
            self.paused_until.clear()

    async def adopt_faust_commits(self, assigned: set[TopicPartition]) -> None:
        """Upgrading from the Faust delivery agent: an outbox partition this group never committed starts
        where the Faust app's group had committed it, not at the outbox's beginning (a mass re-send)."""
        await adopt_faust_commits(self.consumer, settings, GROUP, [tp for tp in assigned if tp.topic == topics.outbox])

    async def start_over(self) -> None:
        await self.hand_over()
        await seek_to_committed(self.consumer)
        await asyncio.sleep(1.0)  # a failure that repeats does not spin


class HandOver(ConsumerRebalanceListener):
    def __init__(self, delivery: OutboxDelivery) -> None:
        self.delivery = delivery

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.delivery.hand_over()

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.delivery.adopt_faust_commits(assigned)


app.service(OutboxDelivery)
