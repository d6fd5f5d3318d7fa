"""Stage 1, Kafka edge: read clicks and app events in batches, dead-letter what is unusable, re-key the
rest by ttclid, one `by-ttclid` record a batch and partition (`worker/rekeyed.py`). A consumer group of
its own (`worker/consumer_group.py`), not a Faust agent: the stage keeps no table, so its records need
not pay for Faust's consumer loop."""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
from aiokafka import ConsumerRecord

from worker import rekeyed
from worker.app import app, settings, writes
from worker.consumer_group import Batch, BatchStage
from worker.ingest.records import InvalidRecord, parse_app_event, parse_click
from worker.metrics import RECORDS_READ
from worker.produce import Sends, partition_of
from worker.results import final_result
from worker.topics import TopicNames

log = logging.getLogger(__name__)
topics = TopicNames.of(settings)


class Ingest(BatchStage):
    def __init__(self, **kwargs) -> None:
        super().__init__(settings, "ingest", [topics.clicks, topics.app_events], **kwargs)

    async def process(self, batch: Batch) -> None:
        sends = Sends(writes)
        partitions = await writes.partitions(topics.by_ttclid)
        by_partition: dict[int, list[bytes]] = {}
        for tp, records in batch.items():
            for record in records:
                if (routed := route(record, sends)) is not None:
                    ttclid, item = routed
                    by_partition.setdefault(partition_of(ttclid, partitions), []).append(orjson.dumps(item))
        for partition, items in by_partition.items():
            for value in rekeyed.records(items):
                sends.send(topics.by_ttclid, None, value, partition)
        await sends.flush()
        for tp, records in batch.items():
            RECORDS_READ.labels(tp.topic.removeprefix(settings.topic_prefix)).inc(len(records))


def route(message: ConsumerRecord, sends: Sends) -> tuple[bytes, dict[str, Any]] | None:
    """The click or app event to re-key, with its ttclid; or None, what the record became written."""
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
