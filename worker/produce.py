"""Writes that a batch of input must see acknowledged by Kafka before its offsets may be committed.

The stages write through a producer of the worker's own (`KafkaWrites`), whole batches at a time:
a stage collects its records (`Sends`, no per-record await), and `flush()` hands Kafka one record
batch per partition and waits until Kafka has them all. Record by record, aiokafka's `send()` path
and its sender cost about 15% of the worker's CPU (the profile of 0.1.0).
"""

from __future__ import annotations

import asyncio
import random
import struct
from typing import Any

import mode
import orjson
from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition
from faust.types import Message

from worker.analytics.stats import row_key
from worker.dead_letters import dead_letter
from worker.kafka_security import client_options
from worker.metrics import DEAD_LETTERS, RESULTS, STAGE_SECONDS
from worker.results import utc_now_iso
from worker.settings import Settings
from worker.topics import TopicNames

# A record batch per partition and flush is what makes the writes cheap; Kafka takes a batch of up to
# 1 MiB (message.max.bytes), and a record larger than this still goes, alone in its batch.
MAX_BATCH_BYTES = 512 * 1024
WORDS = struct.Struct("<I")


def encode_key(key: str | bytes | None) -> bytes | None:
    return key.encode() if isinstance(key, str) else key


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (the Java client's `Utils.murmur2`), as aiokafka's `partitioner.murmur2`, a word
    at a time instead of a byte at a time."""
    m = 0x5BD1E995
    length = len(data)
    h = 0x9747B28C ^ length
    end = length & ~3
    for (k,) in WORDS.iter_unpack(data[:end]):
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        h = ((h * m) & 0xFFFFFFFF) ^ ((k * m) & 0xFFFFFFFF)
    extra = length & 3
    if extra:
        if extra == 3:
            h ^= data[end + 2] << 16
        if extra >= 2:
            h ^= data[end + 1] << 8
        h = ((h ^ data[end]) * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    return h ^ (h >> 15)


def partition_of(key: bytes | None, partitions: int) -> int:
    """The partition aiokafka's default partitioner (and the Java client's) gives a key: where records
    went when the worker sent them one by one, so keys keep their partitions across an upgrade."""
    if key is None:
        return random.randrange(partitions)
    return (murmur2(key) & 0x7FFFFFFF) % partitions


class KafkaWrites(mode.Service):
    """The producer the stages write with; the app starts it first and stops it last."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.producer: AIOKafkaProducer | None = None

    async def on_start(self) -> None:
        # linger 0: a flush closes its batches, so there is nothing to wait for.
        self.producer = AIOKafkaProducer(**client_options(self.settings), acks="all", linger_ms=0,
                                         max_batch_size=MAX_BATCH_BYTES)
        await self.producer.start()

    async def on_stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()

    async def partitions(self, topic: str) -> int:
        """The topic's partition count (from the producer's metadata, fetched once)."""
        return len(await self.producer.partitions_for(topic))


class Sends:
    """The records one batch of input writes; `flush()` returns once Kafka has all of them.

    Awaiting `flush()` before the batch is acked keeps at-least-once: a crash before it replays the
    batch, never skips it. Records of one partition keep their order.
    """

    def __init__(self, writes: KafkaWrites):
        self._writes = writes
        self._records: list[tuple[str, bytes | None, bytes | None, int | None]] = []

    def send(self, topic: str, key: str | bytes | None, value: bytes | None, partition: int | None = None) -> None:
        self._records.append((topic, encode_key(key), value, partition))

    def send_json(self, topic: str, key: str | bytes | None, value: Any, partition: int | None = None) -> None:
        self.send(topic, key, None if value is None else orjson.dumps(value), partition)

    def send_result(self, topics: TopicNames, result: dict[str, Any]) -> None:
        """The result, and the same result keyed by its campaign row for the analytics table (re-keyed
        here rather than by a stage that reads the results topic again)."""
        RESULTS.labels(result["status"], result["reason"] or "").inc()
        STAGE_SECONDS.labels("read_to_final").observe(result["latency_ms"] / 1000)
        raw = orjson.dumps(result)
        self.send(topics.delivery_results, result["event_id"], raw)
        self.send(topics.by_campaign, row_key(result), raw)

    def send_dead_letter(self, topic: str, message: ConsumerRecord | Message, reason: str, detail: str,
                         part: tuple[bytes | None, bytes] | None = None) -> None:
        """The record as it was read, or the `part` of it (key, value) that failed, with where it was
        read and why it cannot be processed."""
        DEAD_LETTERS.labels(reason).inc()
        key, value = part or (message.key, message.value)
        self.send_json(topic, key, dead_letter(
            reason, detail, message.topic, message.partition, message.offset, key, value, utc_now_iso()))

    async def flush(self) -> dict[TopicPartition, int]:
        """Write the records collected, one record batch per partition, and wait until Kafka has them
        all; the offset of the last record written to each partition."""
        records, self._records = self._records, []
        if not records:
            return {}
        producer = self._writes.producer
        partitions: dict[str, int] = {}
        by_partition: dict[tuple[str, int], list[tuple[bytes | None, bytes | None]]] = {}
        for topic, key, value, partition in records:
            if partition is None:
                if topic not in partitions:
                    partitions[topic] = await self._writes.partitions(topic)
                partition = partition_of(key, partitions[topic])
            by_partition.setdefault((topic, partition), []).append((key, value))
        sent = []
        for (topic, partition), items in by_partition.items():
            batch = producer.create_batch()
            for key, value in items:
                if batch.append(key=key, value=value, timestamp=None) is None:  # full: the rest goes in the next
                    sent.append(await self._send(batch, topic, partition))
                    batch = producer.create_batch()
                    batch.append(key=key, value=value, timestamp=None)
            sent.append(await self._send(batch, topic, partition))
        last: dict[TopicPartition, int] = {}
        for tp, count, delivered in sent:
            end = (await delivered).offset + count - 1
            last[tp] = max(end, last.get(tp, -1))
        return last

    async def _send(self, batch, topic: str, partition: int) -> tuple[TopicPartition, int, asyncio.Future]:
        batch.close()  # nothing else joins it, and it need not linger
        delivered = await self._writes.producer.send_batch(batch, topic, partition=partition)
        return TopicPartition(topic, partition), batch.record_count(), delivered
