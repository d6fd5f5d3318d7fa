"""Stage 2, Faust edge: the join agent over the ttclid table, and the timers that expire its state.

Per batch of records from `by-ttclid`: apply each click and app event they hold (`rekeyed`) to
its ttclid's state (pure, in `join`), map released app events through their app's integration,
then write (1) outbox records and skipped results, and only after those are acknowledged (2) the
changed states to the table's changelog, and once those are acknowledged (3) to the local store
(`storage`). A crash anywhere replays the batch against the state of before or after it: an event
may reach the outbox twice, never zero times.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, AsyncIterator, Iterable

import faust
import orjson
from aiokafka.errors import KafkaError

from worker import rekeyed
from worker.app import app, settings, survives, writes
from worker.attribution import encoding, join
from worker.attribution.storage import rocksdb_options, states_for
from worker.attribution.stream_time import StreamTime
from worker.integrations.config import outbox_record
from worker.metrics import STAGE_SECONDS, STATES_RESTORED
from worker.offsets import never_commit, uncommitted_on_failure
from worker.integrations.catalog import catalog
from worker.produce import Sends
from worker.results import final_result
from worker.topics import TopicNames

log = logging.getLogger(__name__)
topics = TopicNames.of(settings)

# The join buffers this many by-ttclid records: up to 64 KiB each (`rekeyed`), 16 MiB at most.
by_ttclid = app.topic(topics.by_ttclid, key_type=bytes, value_type=bytes,
                      key_serializer="raw", value_serializer="raw", maxsize=256)


async def restored(event: faust.types.EventT) -> None:
    """Faust read a changelog record to rebuild the table (at a start, a rebalance, or for a standby)."""
    STATES_RESTORED.inc()
    message = event.message
    states.on_restored(message.partition, message.key, message.value, settings.attribution_window_s)


# ttclid -> its join state (`encoding`), kept as it is written to the changelog.
ttclids = app.Table("ttclids", partitions=settings.topic_partitions, key_type=bytes, value_type=bytes,
                    store=f"{settings.state_store}:ttclids",  # "rocksdb://" alone would be an empty URL, the app default
                    on_changelog_event=restored,
                    options=rocksdb_options(settings.state_store))
states = states_for(ttclids, settings.state_store)

# The agent and the timers take turns on the table, and write it only while it is settled: from the
# end of its rebuild after an assignment until the next revoke. Faust rebuilds it from the changelog
# at every rebalance and does not wait for batches read before (stream_wait_empty is off for the
# outbox's sake); a batch writing during the rebuild would be overwritten by older states.
state_lock = asyncio.Lock()
table_settled = asyncio.Event()
# ttclid -> (earliest grace deadline of its waiting events, partition), so the grace timer need not
# scan the table.
waiting_deadlines: dict[bytes, tuple[float, int]] = {}
# How far in time each partition has been read: a grace period ends by it, not by the wall clock.
stream_time = StreamTime()
# A by-ttclid record holds what one input batch re-keyed to its partition (`rekeyed`): a few make a batch
# of about JOIN_BATCH_SIZE clicks and app events.
RECORDS_PER_BATCH = 8
# Most states one timer tick loads at a time, between which the agent gets its turn.
SWEEP_BATCH = 10_000


def table_writable() -> bool:
    """Whether this replica may read and write the table now: it is settled, and no rebalance (which
    Faust flags the moment it begins, before any of our handlers runs) or shutdown has begun since.
    Faust calls our settle handler before it checks that its rebuild is still current, so a rebuild
    that another rebalance overtook can settle the table in the middle of the next one's rebuild."""
    return table_settled.is_set() and not app.rebalancing and not app.should_stop


@contextlib.asynccontextmanager
async def table_turn() -> AsyncIterator[None]:
    """The timers' turn: they wait for the table to be writable, and, as the join agent does, for the
    integrations (a replica that starts with events already due would skip them all as
    `no_integration`)."""
    await catalog.caught_up.wait()
    while True:
        await table_settled.wait()
        async with state_lock:
            if table_writable():
                yield
                return
        await asyncio.sleep(0.1)


@app.on_partitions_revoked.connect
async def unsettle_on_revoke(app: faust.App, revoked: set, **kwargs) -> None:
    await unsettle_table()


@app.on_before_shutdown.connect
async def unsettle_on_shutdown(app: faust.App, **kwargs) -> None:
    # Before the consumer leaves the group: once it has, the partitions' next owner may rebuild them.
    await unsettle_table()


async def unsettle_table() -> None:
    table_settled.clear()
    stream_time.clear()
    async with state_lock:  # the batch under way finishes its writes before anyone rebuilds the table
        pass


@app.agent(by_ttclid)
async def attribute(stream: faust.StreamT) -> None:
    await catalog.caught_up.wait()  # no app event is judged against a half-read integrations topic
    async for batch in stream.take_events(RECORDS_PER_BATCH, within=settings.join_batch_linger_s):
        with uncommitted_on_failure(batch):
            async with state_lock:
                # A stream that waited here for the rebuild would stall Faust's fetch loop, which the
                # rebuild reads the changelog through. Events read before or during a rebalance are
                # left to their partition's next reader instead: another replica, or this one after
                # the rebuild, from the committed offset.
                owned = owned_partitions() if table_writable() else set()
                left = [event for event in batch if event.message.partition not in owned]
                if left:
                    log.info("join: %d records of partitions %s left to their next reader (table %s)", len(left),
                             sorted({event.message.partition for event in left}),
                             "writable" if owned else "not writable: a rebalance or a rebuild is under way")
                never_commit(left)
                await join_batch([event for event in batch if event.message.partition in owned])


async def join_batch(batch: list[faust.types.EventT]) -> None:
    now = time.time()
    sends = Sends(writes)
    changed: dict[bytes, dict] = {}
    released: list[dict] = []
    duplicates: list[dict] = []
    for event in batch:
        message = event.message
        try:
            items = rekeyed.items(message.key, message.value)
        except Exception as exc:  # a record no stage wrote
            fail(sends, message, exc)
            continue
        for key, item in items:
            try:
                key = key or rekeyed.ttclid_of(item)
                state = join.copy(changed.get(key) or states.get(message.partition, key)
                                  or join.new_state(message.partition))
                if "click" in item:
                    released += join.on_click(state, item["click"])
                else:
                    out, duplicate = join.on_app_event(state, item["app_event"], now,
                                                       settings.click_grace_s, settings.attribution_window_s)
                    released += out
                    if duplicate:
                        duplicates.append(item["app_event"])
                changed[key] = state
            except Exception as exc:  # an item this code cannot handle costs that item alone
                fail(sends, message, exc, (key, orjson.dumps(item)))
    await emit(released, duplicates, sends)
    await store(changed.items())
    for event in batch:
        stream_time.processed(event.message.partition, event.message.offset)


def fail(sends: Sends, message: faust.types.Message, exc: Exception,
         item: tuple[bytes | None, bytes] | None = None) -> None:
    log.exception("unexpected error joining %s[%s]@%s", message.topic, message.partition, message.offset)
    sends.send_dead_letter(topics.dead_letter, message, "internal_error", f"{type(exc).__name__}: {exc}", item)


async def emit(released: list[dict[str, Any]], duplicates: list[dict[str, Any]], sends: Sends) -> None:
    """Map released events through their integration: to the outbox, or to a final `skipped` result."""
    now_ms = time.time() * 1000
    for event in released:
        STAGE_SECONDS.labels("waiting_for_click").observe((now_ms - event["read_ms"]) / 1000)
        integration, reason = catalog.get(event["app_id"])
        record = event
        if integration is not None:
            record, reason = outbox_record(event, integration)
        if reason is None:
            sends.send_json(topics.outbox, record["pixel_id"], {**record, "joined_ms": now_ms})
        else:
            sends.send_result(topics, final_result(record, "skipped", reason))
    for event in duplicates:
        sends.send_result(topics, final_result({**event, "enriched": False}, "skipped", "duplicate"))
    await sends.flush()


async def store(changed: Iterable[tuple[bytes, join.State]]) -> None:
    """Write states to the changelog, then, once Kafka has them, to the local store with the changelog
    offsets they are written up to; an empty state becomes a tombstone."""
    changelog = ttclids.changelog_topic.get_topic_name()
    sends = Sends(writes)
    written = []
    for key, state in changed:
        raw = None if join.is_empty(state) else encoding.encode(state)
        written.append((key, state, raw))
        sends.send(changelog, key, raw, state["p"])
    offsets = await sends.flush()
    for key, state, raw in written:
        partition = state["p"]
        states.write(partition, key, raw)
        if (when := join.next_change(state, settings.attribution_window_s)) is not None:
            states.file_due(partition, key, when)
        if (deadline := join.next_deadline(state)) is None:
            waiting_deadlines.pop(key, None)
        else:
            waiting_deadlines[key] = (deadline, partition)
    states.persisted(offsets)


def owned_partitions() -> set[int]:
    return {tp.partition for tp in app.consumer.assignment() if tp.topic == topics.by_ttclid}


@app.timer(interval=1.0)
@survives
async def release_after_grace() -> None:
    """App events whose click did not come within the grace period leave without enrichment."""
    async with table_turn():
        await observe_stream_ends()
        due = [(partition, key) for key, (deadline, partition) in waiting_deadlines.items()
               if deadline <= stream_time.of(partition)]
        await sweep(due[:SWEEP_BATCH], time.time())


async def observe_stream_ends() -> None:
    tps = [tp for tp in app.consumer.assignment() if tp.topic == topics.by_ttclid]
    at = time.time()
    try:
        ends = await app.consumer.highwaters(*tps)
    except (KafkaError, asyncio.TimeoutError) as exc:  # Kafka away: no grace period ends until it is back
        log.warning("join: partition ends unknown (%s); grace periods wait", type(exc).__name__)
        return
    for tp, end in ends.items():
        stream_time.observe(tp.partition, at, end, app.safe_commits.committed(tp))


@app.timer(interval=min(60.0, settings.attribution_window_s / 4))
@survives
async def expire_state() -> None:
    """Forget clicks past the attribution window and event ids past TikTok's dedup window: the states
    the expiry index holds as due, not the whole table."""
    now = time.time()
    more = True
    while more:
        async with table_turn():
            more = False
            for partition in owned_partitions():
                entries = states.due(partition, now, SWEEP_BATCH)
                await sweep([(partition, key) for _, key in entries], now)
                states.forget_due(partition, entries)
                more = more or len(entries) >= SWEEP_BATCH


async def sweep(keys: list[tuple[int, bytes]], now: float) -> None:
    """Expire these states (their partition and ttclid); the caller holds the table's turn."""
    changed = []
    released = []
    for partition, key in keys:
        state = states.get(partition, key)
        if state is None:
            waiting_deadlines.pop(key, None)
            continue
        before = encoding.encode(state)
        released += join.expire(state, now, min(now, stream_time.of(partition)), settings.attribution_window_s)
        if encoding.encode(state) != before:
            changed.append((key, state))
    await emit(released, [], Sends(writes))
    await store(changed)


@ttclids.on_recover
async def settle_table() -> None:
    """After the rebuild: drop states of partitions now owned elsewhere (memory store), and find the
    waiting events."""
    waiting_deadlines.clear()
    stream_time.clear()
    soon = time.time() + settings.click_grace_s
    owned = owned_partitions()
    for partition, key, state in states.settle(owned, settings.attribution_window_s, soon):
        if (deadline := join.next_deadline(state)) is not None:
            waiting_deadlines[key] = (deadline, partition)
    table_settled.set()
    log.info("join: table settled for partitions %s, %d ttclids held", sorted(owned), states.held(owned))
