"""The join stage under the conditions a deployment meets: replicas sharing the work, a crash, time passing.

Each test runs real worker processes against the real broker and checks exact sets of event ids:
- two replicas in one group split the partitions and still join every app event with its own click,
  across the rebalance the second one causes, exactly once;
- a worker SIGKILLed mid-stream loses nothing (duplicates allowed) and its successor rebuilds the
  click table from the changelog;
- past the attribution window a click no longer enriches, and the sweep tombstones its state.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

from tests.scenario import app_event, apply_integrations, click
from tests.support import Kafka, rekeyed_items
from worker.attribution import encoding

TOKEN = "tok_resilience_0123456789"
PARTITIONS = 4


def integration(app_id: str = "app1") -> dict:
    return {"app_id": app_id, "pixel_id": f"PIX-{app_id}", "access_token": TOKEN}


def campaign_of(ttclid: str) -> str:
    return f"C-{ttclid}"


def random_key() -> str:
    return uuid.uuid4().hex


class Tail:
    """Reads topics from their start, incrementally, keeping every record (tombstones have value None)."""

    def __init__(self, kafka: Kafka, *names: str):
        self.kafka = kafka
        self.records: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
        self._name_of = {kafka.topic(name): name for name in names}

    async def __aenter__(self) -> "Tail":
        producer = AIOKafkaProducer(bootstrap_servers=self.kafka.bootstrap)
        await producer.start()
        try:  # the producer's metadata call waits for the topics' partitions
            self.tps = [TopicPartition(topic, p) for topic in self._name_of
                        for p in sorted(await producer.partitions_for(topic))]
        finally:
            await producer.stop()
        self.consumer = AIOKafkaConsumer(bootstrap_servers=self.kafka.bootstrap, enable_auto_commit=False,
                                         auto_offset_reset="earliest", max_partition_fetch_bytes=4 << 20)
        await self.consumer.start()
        self.consumer.assign(self.tps)
        await self.consumer.seek_to_beginning(*self.tps)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.consumer.stop()

    async def end_total(self, name: str) -> int:
        topic = self.kafka.topic(name)
        ends = await self.consumer.end_offsets([tp for tp in self.tps if tp.topic == topic])
        return sum(ends.values())

    async def catch_up(self) -> None:
        """Read everything the topics hold now."""
        ends = await self.consumer.end_offsets(self.tps)
        while True:
            behind = [tp for tp in self.tps if await self.consumer.position(tp) < ends[tp]]
            if not behind:
                return
            batch = await self.consumer.getmany(*behind, timeout_ms=500)
            for tp, messages in batch.items():
                name = self._name_of[tp.topic]
                decode = encoding.decode if name == "worker-ttclids-changelog" else orjson.loads
                into = self.records[name]
                for m in messages:
                    into.append({"key": m.key.decode() if m.key is not None else None,
                                 "value": decode(m.value) if m.value is not None else None,
                                 "partition": m.partition, "offset": m.offset, "ts": m.timestamp / 1000})

    async def wait_for(self, done: Callable[[], bool], timeout: float) -> bool:
        """Whether `done()` holds within `timeout` seconds, reading on meanwhile."""
        deadline = time.monotonic() + timeout
        while True:
            await self.catch_up()
            if done():
                return True
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.25)

    def values(self, name: str) -> list[dict[str, Any]]:
        return [r["value"] for r in self.records[name]]


def event_ids(records: list[dict[str, Any]]) -> list[str]:
    return [r["event_id"] for r in records]


async def by_ttclid_assignment(kafka: Kafka) -> dict[str, set[int]]:
    """member id -> the by-ttclid partitions the group coordinator has assigned to it."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    await admin.start()
    try:
        [response] = await admin.describe_consumer_groups([f"{kafka.prefix}worker"])
    finally:
        await admin.close()
    [group] = response.groups
    error_code, _, state, _, _, members = group[:6]
    assert error_code == 0 and state == "Stable", group[:5]
    assignment = {}
    for member in members:  # (member_id, ..., member_assignment)
        decoded = ConsumerProtocolMemberAssignment.decode(member[-1])
        assignment[member[0]] = {p for topic, partitions in decoded.assignment
                                 if topic == kafka.topic("by-ttclid") for p in partitions}
    return assignment


@pytest.fixture
def worker_env(worker_env: dict[str, str]) -> dict[str, str]:
    """The delivery stage only validates what it would send: no request leaves the machine."""
    return {**worker_env, "TIKTOK_DRY_RUN": "on"}


def cli_env(worker_env: dict[str, str]) -> dict[str, str]:
    return {**os.environ, **worker_env}


# --- 1. two replicas ------------------------------------------------------------------------------

# Per ttclid, in turn: which of its app events are produced before ("B") and after ("A") its click.
PATTERNS = (("B",), ("A",), ("B", "A"), ("B", "B"), ("A", "A"))
WAVE = 5  # ttclids per produce round while the second replica starts


async def test_two_replicas_split_the_partitions_and_join_every_event_with_its_own_click_exactly_once(
        kafka: Kafka, start_worker, worker_env: dict[str, str], tmp_path: Path):
    apply_integrations(cli_env(worker_env), [integration()], tmp_path)
    run = uuid.uuid4().hex[:6]
    ttclids = [f"T{run}-{i:03d}" for i in range(400)]
    before: list[list[tuple[str, dict]]] = [[] for _ in ttclids]  # app events produced before the click
    after: list[list[tuple[str, dict]]] = [[] for _ in ttclids]
    ttclid_of: dict[str, str] = {}
    for i, ttclid in enumerate(ttclids):
        for j, when in enumerate(PATTERNS[i % len(PATTERNS)]):
            event_id = f"{ttclid}-e{j}"
            ttclid_of[event_id] = ttclid
            (before if when == "B" else after)[i].append((random_key(), app_event(event_id, ttclid)))
    clicks = [(random_key(), click(t, campaign=campaign_of(t), adset=f"S-{t}", ad=f"A-{t}")) for t in ttclids]
    assert sum(map(len, before)) == sum(map(len, after)) == 320

    def wave(records: list, k: int) -> list:  # the records of the k-th wave of the second half
        return [r for i in range(200 + k * WAVE, min(200 + (k + 1) * WAVE, 400)) for r in records[i]]

    waves = 200 // WAVE
    await start_worker(CLICK_GRACE_SECONDS="120")
    async with Tail(kafka, "outbox", "delivery-results") as tail:
        # The first half joins on the first worker alone.
        await kafka.produce("app-events", [r for i in range(200) for r in before[i]] + wave(before, 0))
        await kafka.produce("clicks", clicks[:200])
        await kafka.produce("app-events", [r for i in range(200) for r in after[i]])
        first_half = sum(len(before[i]) + len(after[i]) for i in range(200))
        assert await tail.wait_for(lambda: len(tail.records["outbox"]) >= first_half, 30), \
            "the first worker joins the first half"

        # A second replica joins while the second half flows, in waves: app events before their
        # click, clicks, app events after it. The group rebalances mid-run; app events waiting for
        # their click follow their partition to its new owner.
        second = asyncio.create_task(start_worker(CLICK_GRACE_SECONDS="120"))
        ready_at = None  # the wave during which the second replica was ready
        for k in range(waves + 1):
            await kafka.produce("app-events", wave(before, k + 1))
            await kafka.produce("clicks", wave([[c] for c in clicks], k))
            await kafka.produce("app-events", wave(after, k - 1) if k else [])
            if ready_at is None and second.done():
                ready_at = k
            if ready_at is None and k >= waves - 4:
                await second  # a slow start: the last waves wait for it, so it joins mid-run
            await asyncio.sleep(0.25 if ready_at is None or k < ready_at + 4 else 0)
        await second

        done = await tail.wait_for(lambda: set(event_ids(tail.values("outbox"))) >= set(ttclid_of), 30)
        await asyncio.sleep(0 if not done else 3)  # time for a duplicate to show
        await tail.catch_up()

    outbox = tail.values("outbox")
    ids = event_ids(outbox)
    missing = sorted(set(ttclid_of) - set(ids))
    assert not missing, f"{len(missing)} app events never reached the outbox: {await where(kafka, missing)}"
    repeated = sorted(i for i, n in Counter(ids).items() if n > 1)
    assert not repeated, f"{len(repeated)} app events in the outbox more than once: {repeated[:10]}"
    assert sorted(ids) == sorted(ttclid_of)
    wrong = [(r["event_id"], r.get("campaign_name")) for r in outbox
             if not (r["enriched"] is True and r["ttclid"] == ttclid_of[r["event_id"]]
                     and (r.get("campaign_name"), r.get("adset_name"), r.get("ad_name"))
                     == (campaign_of(r["ttclid"]), f"S-{r['ttclid']}", f"A-{r['ttclid']}"))]
    assert not wrong, f"{len(wrong)} outbox records not enriched with their own click: {wrong[:5]}"

    assignment = await by_ttclid_assignment(kafka)
    assert len(assignment) == 2, assignment
    owned = list(assignment.values())
    assert all(owned), f"each replica owns some by-ttclid partitions: {assignment}"
    assert owned[0] | owned[1] == set(range(PARTITIONS)) and not owned[0] & owned[1], assignment

    # One final result per app event: none skipped, not even as a `duplicate` of itself, which is
    # what an input record forwarded twice by the ingest stage becomes.
    skipped = [(r["event_id"], r["reason"]) for r in tail.values("delivery-results") if r["status"] == "skipped"]
    assert skipped == [], f"{len(skipped)} app events skipped: {skipped[:10]}"


async def where(kafka: Kafka, event_ids: list[str]) -> str:
    """Where missing app events were lost: before by-ttclid (ingest) or after it (attribution)."""
    async with Tail(kafka, "by-ttclid") as tail:
        await tail.catch_up()
    rekeyed = {r["app_event"]["event_id"]: (r["partition"], r["offset"])
               for r in rekeyed_items(tail.records["by-ttclid"]) if "app_event" in r}
    return "; ".join(f"{i} " + (f"at by-ttclid[{rekeyed[i][0]}]@{rekeyed[i][1]}" if i in rekeyed
                                else "not in by-ttclid") for i in event_ids[:10])


# --- 2. SIGKILL mid-stream -------------------------------------------------------------------------

N_TTCLIDS = 4000
GROUPS = 10  # produce calls; group g's clicks go in call g
EVENTS_PER_TTCLID = 5
N_STREAM = N_TTCLIDS * EVENTS_PER_TTCLID  # 20,000 app events before and around the kill
N_AFTER_RESTART = 1000  # app events produced once the new worker is ready, for group 0's ttclids


def stream_plan(run: str) -> tuple[list[list[tuple[str, dict]]], list[list[tuple[str, dict]]],
                                   list[tuple[str, dict]], dict[str, str]]:
    """(clicks per call, app events per call, app events after the restart, event id -> ttclid).

    A ttclid of group g has its click in call g; of its five app events the first is in call g-1
    (before its click) when g > 0, two are in call g after the click, one in g+1 and one in g+2.
    """
    per_group = N_TTCLIDS // GROUPS
    clicks: list[list] = [[] for _ in range(GROUPS)]
    events: list[list] = [[] for _ in range(GROUPS)]
    ttclid_of: dict[str, str] = {}
    for i in range(N_TTCLIDS):
        g = i // per_group
        ttclid = f"K{run}-{i:04d}"
        clicks[g].append((random_key(), click(ttclid, campaign=campaign_of(ttclid))))
        for j, call in enumerate((max(g - 1, 0), g, g, min(g + 1, GROUPS - 1), min(g + 2, GROUPS - 1))):
            event_id = f"{ttclid}-e{j}"
            ttclid_of[event_id] = ttclid
            events[call].append((random_key(), app_event(event_id, ttclid)))
    later = []
    for k in range(N_AFTER_RESTART):
        ttclid = f"K{run}-{k % per_group:04d}"
        event_id = f"{ttclid}-late{k // per_group}"
        ttclid_of[event_id] = ttclid
        later.append((random_key(), app_event(event_id, ttclid, name="subscription_started")))
    return clicks, events, later, ttclid_of


@pytest.mark.parametrize("kill_at", [0.2, 0.5, 0.8])
async def test_a_worker_killed_mid_stream_loses_no_app_event_and_its_successor_keeps_the_clicks(
        kafka: Kafka, start_worker, worker_env: dict[str, str], tmp_path: Path, kill_at: float):
    apply_integrations(cli_env(worker_env), [integration()], tmp_path)
    clicks, events, later, ttclid_of = stream_plan(uuid.uuid4().hex[:6])
    # A killed member stays in the group until its session times out; a short one keeps the test short.
    env = {"BROKER_SESSION_TIMEOUT": "6", "BROKER_HEARTBEAT_INTERVAL": "1"}
    worker = await start_worker(**env)

    async def produce_stream() -> None:
        for g in range(GROUPS):
            await kafka.produce("clicks", clicks[g])
            await kafka.produce("app-events", events[g])
            await asyncio.sleep(0.3)

    async with Tail(kafka, "outbox", "delivery-results", "worker-ttclids-changelog") as tail:
        producing = asyncio.create_task(produce_stream())
        deadline = time.monotonic() + 60
        while (count := await tail.end_total("outbox")) < kill_at * N_STREAM:
            assert time.monotonic() < deadline, f"the worker wrote {count} outbox records in 60 s"
            assert worker.process.poll() is None, worker.output()[-3000:]
            await asyncio.sleep(0.05)
        worker.kill()
        count = await tail.end_total("outbox")
        assert 0 < count < N_STREAM, f"killed at {count} outbox records: not mid-stream"
        print(f"\nkilled at {count} outbox records ({kill_at:.0%} wanted)")
        await producing

        # What the killed worker had stored: ttclids whose click is in its changelog.
        await tail.catch_up()
        stored: dict[str, Any] = {}
        for r in tail.records["worker-ttclids-changelog"]:
            stored[r["key"]] = r["value"]
        clicks_stored = {k for k, v in stored.items() if v is not None and v["click"] is not None}

        await start_worker(**env)
        await kafka.produce("app-events", later)
        everything = set(ttclid_of)

        def reached() -> set[str]:
            return set(event_ids(tail.values("outbox"))) | set(event_ids(tail.values("delivery-results")))

        if await tail.wait_for(lambda: reached() >= everything, 45):
            await asyncio.sleep(2)  # time for a duplicate to show
            await tail.catch_up()

    outbox = tail.values("outbox")
    results = tail.values("delivery-results")
    lost = sorted(everything - reached())
    assert not lost, f"{len(lost)} app events lost: {await where(kafka, lost)}"
    assert reached() == everything, f"unknown event ids: {sorted(reached() - everything)[:5]}"
    duplicates = len(outbox) - len(set(event_ids(outbox)))
    # Results other than the delivery stage's dry runs: only the skipped repeats of an input record
    # the ingest stage forwarded again after the crash.
    skipped = [(r["event_id"], r["status"], r["reason"]) for r in results if r["status"] != "dry_run"]
    print(f"outbox: {len(outbox)} records for {len(set(event_ids(outbox)))} events, {duplicates} duplicates; "
          f"{len(skipped)} skipped results {sorted({s[1:] for s in skipped})}; "
          f"{len(clicks_stored)} clicks in the changelog at the kill")
    not_sent = sorted(everything - set(event_ids(outbox)))
    assert not not_sent, f"{len(not_sent)} app events only skipped, never in the outbox: {not_sent[:5]}"
    assert {s[1:] for s in skipped} <= {("skipped", "duplicate")}, skipped[:5]
    # With a grace of 10 minutes, enrichment can only come from the join, before or after the crash.
    wrong = [r["event_id"] for r in outbox
             if not (r["enriched"] is True and r.get("campaign_name") == campaign_of(ttclid_of[r["event_id"]]))]
    assert not wrong, f"{len(wrong)} outbox records not enriched with their own click: {wrong[:5]}"
    # Events produced after the restart for clicks produced before the kill are enriched (checked just
    # above), and for most of them from the table the new worker rebuilt from the changelog: the
    # killed worker had stored their click.
    late_ids = {event["event_id"] for _, event in later}
    assert late_ids <= {r["event_id"] for r in outbox if r["enriched"] is True}
    late_ttclids = {event["ttclid"] for _, event in later}
    recovered = late_ttclids & clicks_stored
    assert len(recovered) >= len(late_ttclids) // 2, (
        f"only {len(recovered)} of group 0's {len(late_ttclids)} clicks were stored before the kill")


# --- 3. the attribution window -----------------------------------------------------------------------

WINDOW, GRACE = 4, 2


async def test_a_click_past_the_attribution_window_no_longer_enriches_and_its_state_is_tombstoned(
        kafka: Kafka, start_worker, worker_env: dict[str, str], tmp_path: Path):
    apply_integrations(cli_env(worker_env), [integration()], tmp_path)
    await start_worker(ATTRIBUTION_WINDOW_SECONDS=str(WINDOW), CLICK_GRACE_SECONDS=str(GRACE))
    run = uuid.uuid4().hex[:6]
    gone, late, fresh = f"G{run}", f"L{run}", f"F{run}"
    clicked_at = time.time()
    await kafka.produce("clicks", [(random_key(), click(t, campaign=campaign_of(t))) for t in (gone, late)])

    async with Tail(kafka, "outbox", "delivery-results", "worker-ttclids-changelog") as tail:
        def changelog(ttclid: str) -> list[dict]:
            return [r for r in tail.records["worker-ttclids-changelog"] if r["key"] == ttclid]

        def tombstoned(ttclid: str) -> bool:
            records = changelog(ttclid)
            return bool(records) and records[-1]["value"] is None

        assert await tail.wait_for(lambda: tombstoned(gone) and tombstoned(late), WINDOW + 10), \
            f"the sweep tombstones the clicks past the window: {changelog(gone)} {changelog(late)}"
        for ttclid in (gone, late):
            *kept, tombstone = changelog(ttclid)
            assert kept and all(r["value"]["click"]["campaign_name"] == campaign_of(ttclid) for r in kept)
            assert tombstone["ts"] >= clicked_at + WINDOW, "forgotten before the window was over"

        # Past the window: an app event for the forgotten click waits its grace and leaves unenriched;
        # a fresh click still enriches its event.
        assert time.time() > clicked_at + WINDOW
        await kafka.produce("clicks", [(random_key(), click(fresh, campaign=campaign_of(fresh)))])
        sent_at = time.time()
        await kafka.produce("app-events", [(random_key(), app_event("e-late", late)),
                                           (random_key(), app_event("e-fresh", fresh))])
        assert await tail.wait_for(lambda: len(tail.records["outbox"]) >= 2, GRACE + 15), "both events leave"
        await asyncio.sleep(WINDOW / 4 + 1)  # another sweep
        await tail.catch_up()

    by_id = {r["value"]["event_id"]: r for r in tail.records["outbox"]}
    assert sorted(event_ids(tail.values("outbox"))) == ["e-fresh", "e-late"]
    assert [r for r in tail.values("delivery-results") if r["status"] != "dry_run"] == []
    unenriched = by_id["e-late"]
    assert unenriched["value"]["enriched"] is False and unenriched["value"]["ttclid"] == late
    assert "campaign_name" not in unenriched["value"] and "ip" not in unenriched["value"]
    assert unenriched["ts"] >= sent_at + GRACE - 0.05, "sent without enrichment before its grace was over"
    enriched = by_id["e-fresh"]["value"]
    assert enriched["enriched"] is True and enriched["campaign_name"] == campaign_of(fresh)
    # The click only state stays forgotten; the late ttclid's new state remembers only the event id.
    assert tombstoned(gone)
    last = changelog(late)[-1]["value"]
    assert last is not None and last["click"] is None and last["waiting"] == []
    assert list(last["seen"]) == ["app1/e-late"]
