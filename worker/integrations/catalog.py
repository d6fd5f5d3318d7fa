"""Integrations at the edge: every replica follows the whole compacted integrations topic.

Read from the start before the join runs, then followed for as long as the worker
lives, so a new record or a tombstone takes effect without a restart. (A Faust
GlobalTable would be the obvious tool, but faust-streaming 0.15.3 neither assigns
one whose changelog is a topic of our own nor applies updates after recovery.)
"""

from __future__ import annotations

import asyncio
import logging

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from mode import Service

from worker.app import app, settings
from worker.integrations.config import Integration, InvalidIntegration, parse_integration
from worker.topics import TopicNames, partitions_of

log = logging.getLogger(__name__)


class IntegrationCatalog(Service):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.topic = TopicNames.of(settings).integrations
        self.integrations: dict[str, Integration | None] = {}  # None: present but unusable
        self.caught_up = asyncio.Event()

    def get(self, app_id: str) -> tuple[Integration | None, str | None]:
        """The app's integration, or None with the reason there is none usable."""
        if app_id not in self.integrations:
            return None, "no_integration"
        integration = self.integrations[app_id]
        return (integration, None) if integration is not None else (None, "integration_invalid")

    def apply(self, key: bytes, value: bytes | None) -> None:
        app_id = key.decode(errors="replace")
        if value is None:
            self.integrations.pop(app_id, None)
            return
        try:
            self.integrations[app_id] = parse_integration(orjson.loads(value))
        except (orjson.JSONDecodeError, InvalidIntegration) as exc:
            log.error("integration of app %s is unusable, its events are skipped: %s", app_id, exc)
            self.integrations[app_id] = None

    @Service.task
    async def follow(self) -> None:
        partitions = [TopicPartition(self.topic, p) for p in await partitions_of(settings, self.topic)]
        consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, enable_auto_commit=False)
        await consumer.start()
        try:
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            ends = await consumer.end_offsets(partitions)
            while not self.should_stop:
                for messages in (await consumer.getmany(timeout_ms=500)).values():
                    for message in messages:
                        self.apply(message.key, message.value)
                if not self.caught_up.is_set() and all(
                        [await consumer.position(tp) >= ends[tp] for tp in partitions]):
                    log.info("integrations read: %d apps", len(self.integrations))
                    self.caught_up.set()
        finally:
            await consumer.stop()


catalog = app.service(IntegrationCatalog())
