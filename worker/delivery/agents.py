"""Stage 3, Faust edge: read the outbox, hand events to the TikTok sink, write each final
result, and only then let the event's offset be committed (in order, see `acks`)."""

from __future__ import annotations

import faust
import orjson

from worker.app import app, settings
from worker.delivery.acks import InOrderAcks
from worker.delivery.replay import kept_for_replay, replayable
from worker.delivery.sink import Ticket, TikTokSink
from worker.integrations.catalog import catalog
from worker.produce import Sends
from worker.topics import TopicNames

topics = TopicNames.of(settings)
outbox = app.topic(topics.outbox, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
acks = InOrderAcks()


async def write_results(finals: list[tuple[Ticket, dict]]) -> None:
    sends = Sends(app)
    for ticket, result in finals:
        await sends.send_result(topics, result)
        if replayable(result):
            await sends.send_json(topics.dead_letter, result["event_id"], kept_for_replay(ticket, result))
    await sends.flush()
    for ticket, _ in finals:
        stream, partition, entry = ticket.handle
        for event in acks.finished(partition, entry):
            await stream.ack(event)


sink = TikTokSink(settings, catalog.get, write_results)


@app.agent(outbox)
async def deliver(stream: faust.StreamT) -> None:
    await catalog.caught_up.wait()
    await sink.start()
    unacked = stream.noack()
    try:
        async for event in unacked.events():
            partition = event.message.partition
            await sink.submit(orjson.loads(event.message.value), (unacked, partition, acks.track(partition, event)))
    finally:
        await sink.stop()


@app.on_partitions_revoked.connect
async def read_again_after_rebalance(app: faust.App, revoked: set, **kwargs) -> None:
    acks.forget_all()
