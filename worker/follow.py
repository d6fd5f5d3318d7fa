"""A topic every replica reads whole: from its start, then for as long as the worker lives."""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from mode import Service

from worker.kafka_security import client_options
from worker.metrics import INTERNAL_ERRORS
from worker.settings import Settings
from worker.topics import partitions_of

log = logging.getLogger(__name__)


class TopicFollower(Service):
    """Subclasses say what a record means in `apply`; `caught_up` is set once the topic's end
    (as it was at start) has been read."""

    def __init__(self, settings: Settings, topic: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.topic = topic
        self.caught_up = asyncio.Event()

    def apply(self, message: ConsumerRecord) -> None:
        raise NotImplementedError

    def apply_one(self, message: ConsumerRecord) -> None:
        try:
            self.apply(message)
        except Exception:  # one record this code cannot read must not stop the worker
            INTERNAL_ERRORS.labels(f"follow {self.topic}").inc()
            log.exception("%s[%s]@%s could not be applied; skipped", message.topic, message.partition,
                          message.offset)

    async def partitions(self) -> list[TopicPartition]:
        while True:  # a topic Faust creates (a changelog) may not exist yet
            try:
                return [TopicPartition(self.topic, p) for p in await partitions_of(self.settings, self.topic)]
            except Exception:
                await asyncio.sleep(1)

    @Service.task
    async def follow(self) -> None:
        partitions = await self.partitions()
        consumer = AIOKafkaConsumer(**client_options(self.settings), enable_auto_commit=False)
        await consumer.start()
        try:
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            ends = await consumer.end_offsets(partitions)
            applied = 0
            while not self.should_stop:
                for messages in (await consumer.getmany(timeout_ms=500)).values():
                    for message in messages:
                        self.apply_one(message)
                    applied += len(messages)
                if not self.caught_up.is_set() and all(
                        [await consumer.position(tp) >= ends[tp] for tp in partitions]):
                    log.info("%s read to its end: %d records in %d partitions", self.topic, applied, len(partitions))
                    self.caught_up.set()
        finally:
            await consumer.stop()
