"""Stage 1, Kafka edge: read clicks and app events in batches, dead-letter what is unusable, re-key the
rest by ttclid, one `by-ttclid` record a batch and partition (`worker/rekeyed.py`). A consumer group of
its own (`worker/consumer_group.py`), not a Faust agent: the stage keeps no table, so its records need
not pay for Faust's consumer loop."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import mode
import orjson
from aiokafka import ConsumerRecord
from aiokafka.errors import KafkaError

from worker import rekeyed
from worker.app import app, settings, writes
from worker.consumer_group import Batch, BatchStage, member_client_ids
from worker.ingest.records import InvalidRecord, parse_app_event, parse_click
from worker.metrics import RECORDS_READ
from worker.produce import Sends, partition_of
from worker.results import final_result
from worker.topics import TopicNames

log = logging.getLogger(__name__)
topics = TopicNames.of(settings)
# How often the input stage looks at who is in the join's group (worker/rekeyed.py).
JOIN_GROUP_CHECK_S = 5.0


class Ingest(BatchStage):
    def __init__(self, **kwargs) -> None:
        super().__init__(settings, "ingest", [topics.clicks, topics.app_events], **kwargs)
        # One item a by-ttclid record until every member of the join's group is known to read several.
        self.join_reads_batches = False

    @mode.Service.task
    async def follow_join_group(self) -> None:
        while not self.should_stop:
            try:
                client_ids = await member_client_ids(settings, settings.app_id)
            except (KafkaError, asyncio.TimeoutError) as exc:
                log.warning("ingest: the join's group is not known (%s); by-ttclid records stay as they are",
                            type(exc).__name__)
            else:
                reads_batches = rekeyed.all_read_batches(client_ids)
                if reads_batches != self.join_reads_batches:
                    log.info("ingest: by-ttclid records now hold %s (the join's group: %s)",
                             "a batch's items each" if reads_batches else "one item each, as a replica before 0.2.0 reads",
                             sorted(set(client_ids)))
                self.join_reads_batches = reads_batches
            await self.sleep(JOIN_GROUP_CHECK_S)

    async def process(self, batch: Batch) -> None:
        sends = Sends(writes)
        partitions = await writes.partitions(topics.by_ttclid)
        by_partition: dict[int, list[tuple[bytes, bytes]]] = {}
        for tp, records in batch.items():
            for record in records:
                if (routed := route(record, sends)) is not None:
                    ttclid, item = routed
                    by_partition.setdefault(partition_of(ttclid, partitions), []).append((ttclid, orjson.dumps(item)))
        for partition, items in by_partition.items():
            if self.join_reads_batches:
                for value in rekeyed.records([item for _, item in items]):
                    sends.send(topics.by_ttclid, None, value, partition)
            else:  # as the version before wrote them
                for ttclid, item in items:
                    sends.send(topics.by_ttclid, ttclid, item, partition)
        await sends.flush()
        for tp, records in batch.items():
            RECORDS_READ.labels(tp.topic.removeprefix(settings.topic_prefix)).inc(len(records))


def route(message: ConsumerRecord, sends: Sends) -> tuple[bytes, dict[str, Any]] | None:
    """The click or app event to re-key, with its ttclid; None when the record became a result or a
    dead letter instead."""
    read_ms = time.time() * 1000
    try:
        if message.topic == topics.clicks:
            click = parse_click(message.value)
            click["read_ms"] = read_ms
            return click["ttclid"].encode(), {"click": click}
        event = parse_app_event(message.value)
        event["read_ms"] = read_ms
        event["source"] = [message.partition, message.offset]
        if "ttclid" in event:
            return event["ttclid"].encode(), {"app_event": event}
        sends.send_result(topics, final_result(event, "skipped", "unattributed"))
        return None
    except InvalidRecord as exc:
        reason, detail = exc.reason, exc.detail
    except Exception as exc:  # a bug must not skip the record silently: it goes to the dead letters too
        log.exception("unexpected error reading %s[%s]@%s", message.topic, message.partition, message.offset)
        reason, detail = "internal_error", f"{type(exc).__name__}: {exc}"
    sends.send_dead_letter(topics.dead_letter, message, reason, detail)
    return None


ingest = app.service(Ingest())
