"""Stage 1, Faust edge: read clicks and app events, dead-letter what is unusable, re-key the rest by ttclid."""

from __future__ import annotations

import logging
import time
from collections import Counter

import faust

from worker.app import app, settings
from worker.ingest.records import InvalidRecord, parse_app_event, parse_click
from worker.metrics import RECORDS_READ
from worker.offsets import uncommitted_on_failure
from worker.produce import Sends
from worker.results import final_result
from worker.topics import TopicNames

log = logging.getLogger(__name__)
topics = TopicNames.of(settings)

inputs = app.topic(topics.clicks, topics.app_events, key_type=bytes, value_type=bytes,
                   key_serializer="raw", value_serializer="raw")
# (topic, partition) -> the last offset read, for the consumer-lag gauge.
read_offsets: dict[tuple[str, int], int] = {}


@app.agent(inputs)
async def ingest(stream: faust.StreamT) -> None:
    sends = Sends(app)
    async for batch in stream.take_events(settings.join_batch_size, within=settings.join_batch_linger_s):
        with uncommitted_on_failure(batch):
            for event in batch:
                await route(event.message, sends)
                read_offsets[event.message.topic, event.message.partition] = event.message.offset
            await sends.flush()
        for topic, count in Counter(event.message.topic for event in batch).items():
            RECORDS_READ.labels(topic.removeprefix(settings.topic_prefix)).inc(count)


async def route(message: faust.types.Message, sends: Sends) -> None:
    read_ms = time.time() * 1000
    try:
        if message.topic == topics.clicks:
            click = parse_click(message.value)
            click["read_ms"] = read_ms
            await sends.send_json(topics.by_ttclid, click["ttclid"], {"click": click})
            return
        event = parse_app_event(message.value)
        event["read_ms"] = read_ms
        event["source"] = [message.partition, message.offset]
        if "ttclid" in event:
            await sends.send_json(topics.by_ttclid, event["ttclid"], {"app_event": event})
        else:
            await sends.send_result(topics.delivery_results, final_result(event, "skipped", "unattributed"))
    except InvalidRecord as exc:
        reason, detail = exc.reason, exc.detail
    except Exception as exc:  # a bug must not skip the record silently: it goes to the dead letters too
        log.exception("unexpected error reading %s[%s]@%s", message.topic, message.partition, message.offset)
        reason, detail = "internal_error", f"{type(exc).__name__}: {exc}"
    else:
        return
    await sends.send_dead_letter(topics.dead_letter, message, reason, detail)
