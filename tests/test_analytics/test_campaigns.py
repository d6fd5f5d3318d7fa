"""Campaign analytics: the JSON view, the same picture on every replica, and the page in headless Chromium."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest

from tests.kafka_broker import REPO
from tests.scenario import app_event, apply_integrations, click
from tests.support import Kafka, required_tool
from worker.analytics.stats import add_result, empty_row, matching, row_key
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
    for r in (result, {**result, "value": 5.0}, {**result, "status": "skipped", "enriched": False}):
        add_result(row, r)
    assert (row["day"], row["campaign_name"], row["results"]) == ("2026-11-24", "Spring", 3)
    assert row["statuses"] == {"delivered": 2, "skipped": 1} and row["tiktok_events"] == {"Purchase": 2}
    assert row["value"] == {"USD": 14.99}
    [shown] = matching([row], "a", "2026-11-24", "2026-11-24")
    assert shown["enriched_share"] == 0.667
    assert matching([row], "b", None, None) == [] and matching([row], None, "2026-11-25", None) == []


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
