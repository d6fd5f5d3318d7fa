"""Delivery on the real broker against the TikTok sandbox: batching, rate limits, retries, results."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

from tests.scenario import app_event, apply_integrations, click
from tests.support import Kafka
from worker.tiktok.sandbox import Sandbox

TOKEN = "tok_delivery_0123456789abcdef"


def integration(app_id: str, **fields) -> dict:
    return {"app_id": app_id, "pixel_id": f"PIX-{app_id}", "access_token": TOKEN, **fields}


@pytest.fixture
async def sandbox():
    async with Sandbox() as running:
        yield running


@pytest.fixture
def delivery_env(worker_env, sandbox):
    return {**worker_env, "TIKTOK_API_URL": sandbox.url, "TIKTOK_RETRY_BASE_SECONDS": "0.2",
            "TIKTOK_RETRY_CAP_SECONDS": "2"}


async def funnel(kafka: Kafka, app_id: str, n: int, prefix: str = "e", with_clicks: bool = True) -> list[str]:
    ids = [f"{prefix}-{i}" for i in range(n)]
    if with_clicks:
        await kafka.produce("clicks", [(None, click(f"T-{event_id}", app_id=app_id, campaign=f"C{i % 3}"))
                                       for i, event_id in enumerate(ids)])
    await kafka.produce("app-events", [(None, app_event(event_id, f"T-{event_id}", app_id=app_id)) for event_id in ids])
    return ids


def finals_by_id(results: list[dict]) -> dict[str, list[dict]]:
    by_id: dict[str, list[dict]] = {}
    for r in results:
        by_id.setdefault(r["value"]["event_id"], []).append(r["value"])
    return by_id


async def test_2500_events_for_one_pixel_go_out_in_3_requests_and_test_events_apart(
        kafka, delivery_env, sandbox, start_worker, tmp_path):
    apply_integrations(delivery_env, [integration("app1"), integration("app_test", pixel_id="PIX-app1",
                                                                       test_event_code="TEST42")], tmp_path)
    # A linger long enough that all 2,500 reach the sink before it runs out, even on a busy machine.
    await start_worker(**delivery_env, TIKTOK_BATCH_LINGER_SECONDS="10")
    ids = await funnel(kafka, "app1", 2500)
    test_ids = await funnel(kafka, "app_test", 10, prefix="t")
    results = await kafka.consume("delivery-results", 2510, timeout=90)
    by_id = finals_by_id(results)
    assert all(by_id[i][0]["status"] == "delivered" for i in ids + test_ids)
    real = [r for r in sandbox.state.received if not r["test_event_code"]]
    test = [r for r in sandbox.state.received if r["test_event_code"]]
    assert sorted(len(r["events"]) for r in real) == [500, 1000, 1000]
    assert [len(r["events"]) for r in test] == [10] and test[0]["test_event_code"] == "TEST42"
    assert all(e["event_id"].startswith("t-") for e in test[0]["events"])
    delivered = by_id[ids[0]][0]
    assert delivered["campaign_name"] == "C0" and delivered["enriched"] and delivered["tiktok_code"] == 0
    assert delivered["request_id"] and delivered["attempts"] == 1 and delivered["http_status"] == 200
    sent = next(e for r in real for e in r["events"] if e["event_id"] == ids[0])
    assert sent["event"] == "StartTrial" and sent["user"]["ttclid"] == "T-e-0"
    assert len(sent["user"]["email"]) == 64 and sent["page"]["url"].startswith("https://app.example/")


async def test_a_rejected_item_is_rejected_alone_and_its_batch_is_delivered(
        kafka, delivery_env, sandbox, start_worker, tmp_path):
    apply_integrations(delivery_env, [integration("app1")], tmp_path)
    sandbox.state.fail("reject_item", event_id="e-7")
    await start_worker(**delivery_env, TIKTOK_BATCH_LINGER_SECONDS="2")
    ids = await funnel(kafka, "app1", 50)
    by_id = finals_by_id(await kafka.consume("delivery-results", 50, timeout=60))
    assert by_id["e-7"][0]["status"] == "rejected" and by_id["e-7"][0]["tiktok_code"] == 40002
    assert "data." in by_id["e-7"][0]["tiktok_message"]
    assert Counter(by_id[i][0]["status"] for i in ids if i != "e-7") == {"delivered": 49}


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


async def test_throttling_and_a_60_second_outage_end_with_everything_delivered_within_the_rate_limit(
        kafka, delivery_env, sandbox, start_worker, tmp_path):
    apply_integrations(delivery_env, [integration("app1")], tmp_path)
    worker = await start_worker(**{**delivery_env, "TIKTOK_RETRY_CAP_SECONDS": "10"}, TIKTOK_RETRY_MAX_ATTEMPTS="40",
                                TIKTOK_BATCH_SIZE="50",
                                TIKTOK_BATCH_LINGER_SECONDS="0.1", TIKTOK_PIXEL_REQUESTS_PER_SECOND="5",
                                TIKTOK_MAX_PENDING_EVENTS="200")
    sandbox.state.fail("throttle", count=5)
    ids = await funnel(kafka, "app1", 300)
    await kafka.consume("delivery-results", 100, timeout=60)
    sandbox.state.fail("http500")  # TikTok goes down for a minute while events keep coming
    outage_start = time.monotonic()
    ids += await funnel(kafka, "app1", 2700, prefix="late")
    await asyncio.sleep(10)
    rss_early, results_early = rss_mb(worker.process.pid), len(await kafka.read("delivery-results", timeout=1))
    await asyncio.sleep(60 - (time.monotonic() - outage_start))
    rss_late, results_late = rss_mb(worker.process.pid), len(await kafka.read("delivery-results", timeout=1))
    sandbox.state.fail("ok")
    by_id = finals_by_id(await kafka.consume("delivery-results", 3000, timeout=120))
    assert Counter(by_id[i][0]["status"] for i in ids) == {"delivered": 3000}
    assert results_late == results_early, "nothing is final while TikTok is down: it is retried"
    assert rss_late - rss_early < 25, f"memory grew from {rss_early:.0f} MB to {rss_late:.0f} MB during the outage"
    assert sandbox.state.max_requests_per_second("PIX-app1") <= 5
    assert any(by_id[i][0]["attempts"] > 1 for i in ids)


async def test_sigkill_during_delivery_loses_no_event(kafka, delivery_env, sandbox, start_worker, tmp_path):
    apply_integrations(delivery_env, [integration("app1")], tmp_path)
    env = {**delivery_env, "TIKTOK_BATCH_SIZE": "100", "TIKTOK_BATCH_LINGER_SECONDS": "0.1",
           "TIKTOK_PIXEL_REQUESTS_PER_SECOND": "10"}
    worker = await start_worker(**env)
    ids = await funnel(kafka, "app1", 5000)
    await kafka.consume("delivery-results", 1000, timeout=60)
    worker.kill()
    await start_worker(**env)
    by_id = finals_by_id(await kafka.consume(
        "delivery-results", 5000, timeout=180, until=lambda rs: len({r["value"]["event_id"] for r in rs}) >= 5000))
    assert set(by_id) == set(ids)
    assert {r["status"] for results in by_id.values() for r in results} == {"delivered"}
    sent = Counter(e["event_id"] for e in sandbox.state.events())
    assert set(sent) == set(ids)
    print(f"after SIGKILL: {sum(n - 1 for n in sent.values())} of 5000 events sent twice, "
          f"{sum(len(r) - 1 for r in by_id.values())} results written twice")


async def test_dry_run_builds_and_validates_but_sends_nothing(kafka, worker_env, sandbox, start_worker, tmp_path):
    env = {**worker_env, "TIKTOK_API_URL": sandbox.url, "TIKTOK_DRY_RUN": "true"}
    apply_integrations(env, [integration("app1")], tmp_path)
    await start_worker(**env, TIKTOK_BATCH_LINGER_SECONDS="0.2")
    ids = await funnel(kafka, "app1", 20)
    by_id = finals_by_id(await kafka.consume("delivery-results", 20, timeout=60))
    assert {by_id[i][0]["status"] for i in ids} == {"dry_run"}
    assert sandbox.state.received == []


async def test_an_event_older_than_the_maximum_age_fails_as_expired(kafka, delivery_env, sandbox, start_worker,
                                                                    tmp_path):
    apply_integrations(delivery_env, [integration("app1")], tmp_path)
    await start_worker(**delivery_env, TIKTOK_MAX_EVENT_AGE_SECONDS="3600", TIKTOK_BATCH_LINGER_SECONDS="0.2")
    old = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 7200))
    await kafka.produce("clicks", [(None, click("T-old"))])
    await kafka.produce("app-events", [(None, app_event("e-old", "T-old", occurred_at=old))])
    [result] = await kafka.consume("delivery-results", 1, timeout=60)
    assert (result["value"]["status"], result["value"]["reason"]) == ("failed", "expired")
    assert sandbox.state.received == []
