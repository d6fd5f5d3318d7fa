"""Campaign analytics: the JSON view, the same picture on every replica, and the page in headless Chromium."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import aiohttp
import orjson

from tests.kafka_broker import REPO
from tests.scenario import app_event, apply_integrations, click
from tests.support import Kafka, required_tool
from worker.analytics.stats import RECENT_EVENTS, add_result, empty_row, matching, row_key, without_recent
from worker.tiktok.sandbox import Sandbox

ARTIFACTS = REPO / "tests" / "artifacts"
ANALYTICS_TOKEN = "analytics-5ecret-token"
BEARER = {"Authorization": f"Bearer {ANALYTICS_TOKEN}"}


def test_rows_count_statuses_events_value_and_enrichment():
    result = {"app_id": "a", "finished_at": "2026-11-24T10:00:00Z", "campaign_name": "Spring", "adset_name": "US",
              "ad_name": "V1", "status": "delivered", "tiktok_event": "Purchase", "value": 9.99, "currency": "USD",
              "enriched": True}
    key = row_key(result)
    row = empty_row(key)
    for n, r in enumerate((result, {**result, "value": 5.0}, {**result, "status": "skipped", "enriched": False})):
        add_result(row, {**r, "event_id": f"e{n}"})
    assert (row["day"], row["campaign_name"], row["results"]) == ("2026-11-24", "Spring", 3)
    assert row["statuses"] == {"delivered": 2, "skipped": 1} and row["tiktok_events"] == {"Purchase": 2}
    assert row["value"] == {"USD": 14.99}
    [shown] = matching([row], "a", "2026-11-24", "2026-11-24")
    assert shown["enriched_share"] == 0.667
    assert matching([row], "b", None, None) == [] and matching([row], None, "2026-11-25", None) == []


def counted(results: list[dict]) -> dict:
    row = empty_row("a|2026-11-24|Spring|US|V1")
    for result in results:
        row = orjson.loads(orjson.dumps(add_result(row, result)))  # through the table, as the agent does
    return without_recent(row)


def result_of(event_id: str, status: str = "delivered", **fields) -> dict:
    return {"event_id": event_id, "app_id": "a", "finished_at": "2026-11-24T10:00:00Z", "campaign_name": "Spring",
            "adset_name": "US", "ad_name": "V1", "status": status, "tiktok_event": "Purchase", "value": 9.99,
            "currency": "USD", "enriched": True, **fields}


def test_a_repeated_result_of_an_event_does_not_count_it_again():
    once = counted([result_of("e1"), result_of("e2", enriched=False)])
    assert counted([result_of("e1"), result_of("e2", enriched=False), result_of("e1"), result_of("e2")]) == once
    assert (once["results"], once["enriched"], once["statuses"], once["tiktok_events"], once["value"]) == (
        2, 1, {"delivered": 2}, {"Purchase": 2}, {"USD": 19.98})


def test_a_replayed_event_counts_once_under_its_latest_result():
    row = counted([result_of("e1", "failed"), result_of("e2"), result_of("e1")])
    assert (row["results"], row["statuses"], row["tiktok_events"], row["value"]) == (
        2, {"delivered": 2}, {"Purchase": 2}, {"USD": 19.98})
    row = counted([result_of("e1", "dry_run"), result_of("e1", "rejected")])
    assert (row["results"], row["statuses"], row["tiktok_events"]) == (1, {"rejected": 1}, {})


def test_a_row_remembers_a_bounded_window_of_recent_events():
    row = empty_row("a|2026-11-24|Spring|US|V1")
    for n in range(RECENT_EVENTS + 10):
        add_result(row, result_of(f"e{n}"))
    assert len(orjson.dumps(row)) < 14 * RECENT_EVENTS + 300
    add_result(row, result_of(f"e{RECENT_EVENTS + 9}"))  # still remembered: not counted again
    add_result(row, result_of("e0"))  # forgotten: counted again, the limit the README names
    assert row["results"] == RECENT_EVENTS + 11


async def fetch_json(session: aiohttp.ClientSession, url: str):
    async with session.get(url, headers=BEARER) as response:
        assert response.status == 200
        return await response.json()


async def test_every_replica_serves_the_whole_picture_and_the_page_shows_it(kafka: Kafka, worker_env,
                                                                          start_worker, tmp_path):
    async with Sandbox() as sandbox, aiohttp.ClientSession() as session:
        env = {**worker_env, "TIKTOK_API_URL": sandbox.url, "TIKTOK_BATCH_LINGER_SECONDS": "0.1",
               "ANALYTICS_TOKEN": ANALYTICS_TOKEN}
        apply_integrations(env, [{"app_id": "app1", "pixel_id": "PIX1", "access_token": "tok_campaigns_012345"}],
                           tmp_path)
        replicas = [await start_worker(**env), await start_worker(**env)]
        plan = {("Spring", "US-25", "Video-3"): 7, ("Spring", "US-25", "Video-4"): 3, ("Retarget", "CA", "UGC-1"): 5}
        clicks, events = [], []
        for (campaign, adset, ad), n in plan.items():
            for i in range(n):
                ttclid = f"T-{ad}-{i}"
                clicks.append((None, click(ttclid, campaign=campaign, adset=adset, ad=ad)))
                events.append((None, app_event(f"e-{ad}-{i}", ttclid, name="trial_converted")))
        events.append((None, app_event("e-cancel", "T-Video-3-0", name="subscription_cancelled")))
        await kafka.produce("clicks", clicks)
        await kafka.produce("app-events", events)
        await kafka.consume("delivery-results", 16, timeout=60)

        urls = [f"http://127.0.0.1:{w.web_port}/campaigns?app=app1" for w in replicas]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            views = [await fetch_json(session, url) for url in urls]
            if all(sum(r["results"] for r in view) == 16 for view in views):
                break
            await asyncio.sleep(0.5)
        assert views[0] == views[1], "both replicas serve the same, whole picture"
        by_ad = {r["ad_name"]: r for r in views[0]}
        assert by_ad["Video-3"]["statuses"] == {"delivered": 7, "skipped": 1}
        assert by_ad["Video-3"]["tiktok_events"] == {"Subscribe": 7} and by_ad["Video-3"]["value"] == {"USD": 69.93}
        assert by_ad["UGC-1"]["statuses"] == {"delivered": 5} and by_ad["UGC-1"]["enriched_share"] == 1.0
        assert await fetch_json(session, urls[0].replace("app1", "other")) == []

        chromium = required_tool("chromium", "scripts/test installs it where it can")
        page = f"http://analyst:{ANALYTICS_TOKEN}@127.0.0.1:{replicas[1].web_port}/campaigns/page"
        ARTIFACTS.mkdir(exist_ok=True)
        common = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000"]
        dom = await asyncio.to_thread(subprocess.run, [*common, "--dump-dom", page], capture_output=True, text=True,
                                      timeout=120)
        await asyncio.to_thread(subprocess.run, [*common, f"--screenshot={ARTIFACTS / 'campaigns.png'}",
                                                 "--window-size=1200,700", page], capture_output=True, timeout=120)
    html = dom.stdout
    assert 'data-ad="Video-3"' in html and "Subscribe 7" in html and "69.93 USD" in html
    assert 'data-ad="UGC-1"' in html and "100%" in html
    assert html.count('class="bar"') == 3
    assert Path(ARTIFACTS / "campaigns.png").stat().st_size > 10_000


async def test_analytics_need_the_token_and_are_off_without_one(worker_env, start_worker):
    async with aiohttp.ClientSession() as session:
        on = await start_worker(**worker_env, ANALYTICS_TOKEN=ANALYTICS_TOKEN)
        off = await start_worker(**worker_env)
        base = f"http://127.0.0.1:{on.web_port}"
        for path in ("/campaigns", "/campaigns/page"):
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic " + "eDp3cm9uZw=="},
                            {"Authorization": "Basic !!!"}, {"Authorization": "Basic eDp3cm9uZw"},
                            {"Authorization": "Basic"}, {"Authorization": "Bearer"}):
                async with session.get(base + path, headers=headers) as response:
                    assert response.status == 401, headers
                    assert ANALYTICS_TOKEN not in await response.text() + str(response.headers)
            async with session.get(base + path, headers=BEARER) as response:
                assert response.status == 200
                assert response.headers["Cache-Control"] == "no-store"
                assert response.headers["X-Content-Type-Options"] == "nosniff"
            async with session.get(f"http://127.0.0.1:{off.web_port}{path}", headers=BEARER) as response:
                assert response.status == 404
        for path in ("/healthz", "/metrics"):
            async with session.get(base + path) as response:
                assert response.status == 200
        for faust_view in ("/router/", "/table/", "/table/campaign_stats/"):  # Faust's own views are off
            async with session.get(base + faust_view) as response:
                assert response.status == 404, faust_view
    assert ANALYTICS_TOKEN not in on.output()


async def test_repeated_results_count_once_even_after_the_row_changes_hands(kafka: Kafka, worker_env, start_worker):
    async def campaigns_once(worker, results: int) -> dict:
        async with aiohttp.ClientSession() as session:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                rows = await fetch_json(session, f"http://127.0.0.1:{worker.web_port}/campaigns?app=a")
                if rows and sum(r["statuses"].get("delivered", 0) for r in rows) >= results:
                    return rows
                await asyncio.sleep(0.5)
        raise AssertionError(f"not {results} delivered in time: {rows}")

    first = await start_worker(**worker_env, ANALYTICS_TOKEN=ANALYTICS_TOKEN)
    today = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    repeat = result_of("e1", finished_at=today)
    # Results as the stages write them for the analytics: keyed by their campaign row.
    await kafka.produce("by-campaign", [(row_key(r), r) for r in (
        repeat, result_of("e2", "failed", finished_at=today), repeat)])
    await kafka.produce("by-campaign", [(row_key(r), r) for r in [result_of("e3", finished_at=today)]])
    [row] = await campaigns_once(first, 2)
    first.kill()  # the row's partition moves to a new replica, which reads the row from its changelog
    second = await start_worker(**worker_env, ANALYTICS_TOKEN=ANALYTICS_TOKEN)
    await kafka.produce("by-campaign", [(row_key(r), r) for r in (
        repeat, result_of("e2", finished_at=today))])  # one more repeat, and e2 replayed
    [row] = await campaigns_once(second, 3)
    assert (row["results"], row["statuses"], row["value"]) == (3, {"delivered": 3}, {"USD": 29.97})
    assert "recent" not in row
