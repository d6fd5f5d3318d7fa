"""Stage 1, Kafka edge: read clicks and app events in batches, dead-letter what is unusable, re-key the
rest by ttclid. A consumer group of its own (`worker/consumer_group.py`), not a Faust agent: the
stage keeps no table, so its records need not pay for Faust's consumer loop."""

from __future__ import annotations

import logging
import time

from aiokafka import ConsumerRecord

from worker.app import app, settings, writes
from worker.consumer_group import Batch, BatchStage
from worker.ingest.records import InvalidRecord, parse_app_event, parse_click
from worker.metrics import RECORDS_READ
from worker.produce import Sends
from worker.results import final_result
from worker.topics import TopicNames

log = logging.getLogger(__name__)
topics = TopicNames.of(settings)


class Ingest(BatchStage):
    def __init__(self, **kwargs) -> None:
        super().__init__(settings, "ingest", [topics.clicks, topics.app_events], **kwargs)

    async def process(self, batch: Batch) -> None:
        sends = Sends(writes)
        for tp, records in batch.items():
            for record in records:
                route(record, sends)
        await sends.flush()
        for tp, records in batch.items():
            RECORDS_READ.labels(tp.topic.removeprefix(settings.topic_prefix)).inc(len(records))


def route(message: ConsumerRecord, sends: Sends) -> None:
    read_ms = time.time() * 1000
    try:
        if message.topic == topics.clicks:
            click = parse_click(message.value)
            click["read_ms"] = read_ms
            sends.send_json(topics.by_ttclid, click["ttclid"], {"click": click})
            return
        event = parse_app_event(message.value)
        event["read_ms"] = read_ms
        event["source"] = [message.partition, message.offset]
        if "ttclid" in event:
            sends.send_json(topics.by_ttclid, event["ttclid"], {"app_event": event})
        else:
            sends.send_result(topics, final_result(event, "skipped", "unattributed"))
    except InvalidRecord as exc:
        reason, detail = exc.reason, exc.detail
    except Exception as exc:  # a bug must not skip the record silently: it goes to the dead letters too
        log.exception("unexpected error reading %s[%s]@%s", message.topic, message.partition, message.offset)
        reason, detail = "internal_error", f"{type(exc).__name__}: {exc}"
    else:
        return
    sends.send_dead_letter(topics.dead_letter, message, reason, detail)


ingest = app.service(Ingest())
