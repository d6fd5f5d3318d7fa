"""One app event, one outcome, while replicas join and leave the group every few seconds.

App events flow steadily and their clicks come a few seconds after them (inside the grace period),
so most events wait in the join's state when their partition changes hands. Whatever the churn,
the join releases each app event once: joined with its click, or after the grace without it, never
both. An at-least-once replay may repeat a release, but only as an identical copy.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import defaultdict
from pathlib import Path

import pytest

from tests.scenario import app_event, apply_integrations, click
from tests.support import Kafka, WorkerProcess
from tests.test_attribution.test_resilience import Tail, campaign_of, cli_env, integration, random_key, where

GRACE_S = 10
CLICK_DELAY_S = 3
PRODUCE_FOR_S = 45
ROUND_S = 0.25
PER_ROUND = 40  # app events (and so ttclids) per round


def outcome(record: dict) -> tuple:
    """What a release says about its event: whether and with which click it was joined."""
    return record["enriched"], record.get("campaign_name"), record.get("ip")


# Replicas leave by SIGTERM, or 30% of them by SIGKILL: one killed between writing a batch's outbox
# records and its states leaves the changelog a step behind, and its successor must not release an
# event from that older state by the wall clock before it has re-read the click.
@pytest.mark.parametrize("killed_share", [0.0, 0.3])
async def test_each_app_event_is_released_once_joined_or_not_while_replicas_come_and_go(
        kafka: Kafka, worker_env: dict[str, str], tmp_path: Path, killed_share: float):
    env = {**worker_env, "TIKTOK_DRY_RUN": "on", "CLICK_GRACE_SECONDS": str(GRACE_S), "TOPIC_PARTITIONS": "8"}
    apply_integrations(cli_env(env), [integration()], tmp_path)
    replicas: list[WorkerProcess] = []
    stopped: list[WorkerProcess] = []

    def start() -> WorkerProcess:
        replica = WorkerProcess(env, tmp_path / f"worker-{len(replicas)}.log").start()
        replicas.append(replica)
        return replica

    run = uuid.uuid4().hex[:6]
    produced: dict[str, str] = {}  # event id -> ttclid

    async def produce() -> None:
        late_clicks: list[tuple[float, list]] = []
        deadline = time.monotonic() + PRODUCE_FOR_S
        n = 0
        while time.monotonic() < deadline or late_clicks:
            now = time.monotonic()
            if now < deadline:
                events, clicks = [], []
                for _ in range(PER_ROUND):
                    ttclid = f"R{run}-{n:05d}"
                    produced[f"{ttclid}-e"] = ttclid
                    events.append((random_key(), app_event(f"{ttclid}-e", ttclid, name="subscription_started")))
                    clicks.append((random_key(), click(ttclid, campaign=campaign_of(ttclid))))
                    n += 1
                await kafka.produce("app-events", events)
                late_clicks.append((now + CLICK_DELAY_S, clicks))
            while late_clicks and late_clicks[0][0] <= now:
                await kafka.produce("clicks", late_clicks.pop(0)[1])
            await asyncio.sleep(ROUND_S)

    async def churn() -> None:
        """Two replicas at most; every few seconds one leaves (stopped, or killed: `killed_share`) and another
        joins."""
        rng = random.Random(run)
        start(), start()  # two replicas start together, as a deployment does
        deadline = time.monotonic() + PRODUCE_FOR_S + CLICK_DELAY_S
        while time.monotonic() < deadline:
            await asyncio.sleep(rng.uniform(3, 6))
            leaving = next(r for r in replicas if r not in stopped)
            stopped.append(leaving)
            if rng.random() < killed_share:
                leaving.kill()
            else:
                leaving.process.terminate()  # SIGTERM, without waiting: the group rebalances meanwhile
            start()
        for replica in replicas:  # the survivors finish the work
            if replica not in stopped:
                await replica.wait_ready()

    try:
        async with Tail(kafka, "outbox") as tail:
            await asyncio.gather(produce(), churn())
            if not await tail.wait_for(lambda: {r["event_id"] for r in tail.values("outbox")} >= set(produced),
                                       GRACE_S + 60):
                missing = sorted(set(produced) - {r["event_id"] for r in tail.values("outbox")})
                raise AssertionError(f"{len(missing)} app events never reached the outbox: {await where(kafka, missing)}; "
                                     f"their join states: {await last_states(kafka, [produced[e] for e in missing[:3]])}; "
                                     f"their results: {await results_of(kafka, missing)}")
            await asyncio.sleep(GRACE_S + 2)  # time for a late, contradicting release to show
            await tail.catch_up()
    finally:
        for replica in replicas:
            replica.kill()

    releases: dict[str, list[dict]] = defaultdict(list)
    for record in tail.values("outbox"):
        releases[record["event_id"]].append(record)
    assert set(releases) == set(produced)
    contradicting = {event_id: [outcome(r) for r in copies] for event_id, copies in releases.items()
                     if len({outcome(r) for r in copies}) > 1}
    assert not contradicting, (
        f"{len(contradicting)} of {len(produced)} app events released both joined and not: "
        f"{list(contradicting.items())[:5]}")
    wrong = [r["event_id"] for copies in releases.values() for r in copies
             if r["enriched"] and r["campaign_name"] != campaign_of(produced[r["event_id"]])]
    assert not wrong, f"joined with another ttclid's click: {wrong[:5]}"
    repeated = sum(len(copies) > 1 for copies in releases.values())
    enriched = sum(copies[0]["enriched"] for copies in releases.values())
    print(f"\n{len(produced)} app events, {len(replicas)} replicas started; {enriched} released joined, "
          f"{len(produced) - enriched} after the grace; {repeated} repeated as identical copies")


async def last_states(kafka: Kafka, ttclids: list[str]) -> dict[str, object]:
    """The last join state the changelog holds for each ttclid (what the join made of its records)."""
    async with Tail(kafka, "worker-ttclids-changelog") as changelog:
        await changelog.catch_up()
    last: dict[str, object] = {}
    for record in changelog.records["worker-ttclids-changelog"]:
        if record["key"] in ttclids:
            last[record["key"]] = record["value"]
    return last


async def results_of(kafka: Kafka, event_ids: list[str]) -> dict[str, list[tuple]]:
    async with Tail(kafka, "delivery-results") as results:
        await results.catch_up()
    found: dict[str, list[tuple]] = {}
    for result in results.values("delivery-results"):
        if result["event_id"] in event_ids:
            found.setdefault(result["event_id"], []).append((result["status"], result["reason"]))
    return dict(list(found.items())[:5])

