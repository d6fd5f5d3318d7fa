"""Writes that a batch of input must see acknowledged by Kafka before its offsets may be committed."""

from __future__ import annotations

import asyncio
from typing import Any

import faust
import orjson
from aiokafka import ConsumerRecord
from faust.types import Message

from worker.analytics.stats import row_key
from worker.dead_letters import dead_letter
from worker.metrics import DEAD_LETTERS, RESULTS, STAGE_SECONDS
from worker.results import utc_now_iso
from worker.topics import TopicNames


def encode_key(key: str | bytes | None) -> bytes | None:
    return key.encode() if isinstance(key, str) else key


class Sends:
    """Collects the delivery futures of one batch's records; `flush()` waits for all of them.

    Going to the transport producer directly, instead of one `topic.send()` per record,
    keeps per-record Faust work off the hot path; awaiting `flush()` before the batch is
    acked keeps at-least-once: a crash before it replays the batch, never skips it.
    """

    def __init__(self, app: faust.App):
        self._app = app
        self._pending: list[asyncio.Future] = []

    async def send(self, topic: str, key: str | bytes | None, value: bytes | None,
                   partition: int | None = None) -> None:
        self._pending.append(
            await self._app.producer.send(topic, encode_key(key), value, partition, None, None))

    async def send_json(self, topic: str, key: str | bytes | None, value: Any,
                        partition: int | None = None) -> None:
        await self.send(topic, key, None if value is None else orjson.dumps(value), partition)

    async def send_result(self, topics: TopicNames, result: dict[str, Any]) -> None:
        """The result, and the same result keyed by its campaign row for the analytics table (re-keyed
        here rather than by a stage that reads the results topic again)."""
        RESULTS.labels(result["status"], result["reason"] or "").inc()
        STAGE_SECONDS.labels("read_to_final").observe(result["latency_ms"] / 1000)
        raw = orjson.dumps(result)
        await self.send(topics.delivery_results, result["event_id"], raw)
        await self.send(topics.by_campaign, row_key(result), raw)

    async def send_dead_letter(self, topic: str, message: ConsumerRecord | Message, reason: str,
                               detail: str) -> None:
        """The record as it was read, with why it cannot be processed."""
        DEAD_LETTERS.labels(reason).inc()
        await self.send_json(topic, message.key, dead_letter(
            reason, detail, message.topic, message.partition, message.offset, message.key, message.value,
            utc_now_iso()))

    async def flush(self) -> None:
        if self._pending:
            pending, self._pending = self._pending, []
            await asyncio.gather(*pending)
