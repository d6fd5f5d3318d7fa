"""`python -m worker demo`: a realistic web-to-app funnel through a running worker, results shown as they come.

Applies a demo integration (unless the app has one), posts the landing-page visits from three ads to
the worker's click collector as the landing script does, produces the app events of the visitors who
installed (some before their click arrives), then prints every delivery result and a summary by
campaign, ad set and ad.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from datetime import datetime, timezone

import aiohttp
import click
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from worker.collect.clicks import AD_URL_PARAMETERS

from worker.integrations.cli import publish, read_all
from worker.kafka_security import client_options
from worker.settings import Settings
from worker.topics import TopicNames

DEMO_APP = "demo-app"
ADS = [("Spring Sale", "US-18-24", "Video-1"), ("Spring Sale", "US-25-34", "Video-2"), ("Retargeting", "CA-All", "UGC-7")]
# Each visitor who installs walks some way down this funnel.
FUNNEL = ["user_created", "paywall_shown", "paywall_checkout_initiated", "trial_started", "trial_converted",
          "subscription_renewed"]


def demo_integration() -> dict:
    return {"app_id": DEMO_APP, "pixel_id": "DEMO_PIXEL", "access_token": "demo-access-token-not-a-secret",
            "test_event_code": "TEST_DEMO", "events": {"paywall_shown": {"enabled": True}}}


def funnel(visitors: int, seed: int | None) -> tuple[list[dict], list[dict]]:
    rng = random.Random(seed)
    clicks, events = [], []
    now = time.time()
    for visitor in range(visitors):
        ttclid = f"E.C.P.demo{uuid.UUID(int=rng.getrandbits(128)).hex[:16]}"
        campaign, adset, ad = rng.choice(ADS)
        url = (f"https://demo-app.example/?campaign_name={campaign.replace(' ', '%20')}&adset_name={adset}"
               f"&ad_name={ad}&ttclid={ttclid}")
        # What the landing script posts; the collector adds the visitor's address and browser.
        clicks.append({"app_id": DEMO_APP, "url": url, "ttp": f"demo{rng.getrandbits(64):016x}",
                       "referrer": "https://www.tiktok.com/", "locale": "en-US"})
        for step, name in enumerate(FUNNEL[:rng.choice([0, 1, 2, 4, 5, 6])]):
            event = {"event_id": f"{ttclid}-{name}", "app_id": DEMO_APP, "name": name, "ttclid": ttclid,
                     "occurred_at": _iso(now - 300 + step * 10), "user": {"id": f"user-{visitor}",
                                                                           "email": f"visitor{visitor}@example.com"}}
            if name in ("trial_converted", "subscription_renewed"):
                event |= {"value": 9.99, "currency": "USD", "product_id": "pro_monthly"}
            events.append(event)
    return clicks, events


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


async def check_collector(settings: Settings) -> None:
    """Before anything is produced: the worker's collector must be on to take the demo's clicks."""
    script = worker_url(settings, "/landing.js")
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            async with session.get(script) as response:
                if response.status != 200:
                    raise click.ClickException(f"the worker's collector is off ({script} answered {response.status}): "
                                               "start the worker with COLLECTOR_ENABLED=on (scripts/run does)")
    except aiohttp.ClientError as exc:
        raise click.ClickException(f"no worker answers at {script} ({exc}): is it running (WEB_PORT)?") from None


async def post_clicks(collector: str, clicks: list[dict]) -> None:
    """Each visit as a phone's browser on the landing page would post it."""
    headers = {"User-Agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X)", "Content-Type": "text/plain"}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        for record in clicks:
            try:
                async with session.post(collector, data=orjson.dumps(record), headers=headers) as response:
                    if response.status != 202:
                        raise click.ClickException(
                            f"the collector at {collector} answered {response.status} {await response.text()}")
            except aiohttp.ClientError as exc:
                raise click.ClickException(f"no worker answers at {collector} ({exc}): is it running?") from None


async def run(settings: Settings, visitors: int, seed: int | None, timeout: float) -> None:
    names = TopicNames.of(settings)
    await check_collector(settings)
    if DEMO_APP not in await read_all(settings):
        await publish(settings, [(DEMO_APP, orjson.dumps(demo_integration()))])
        click.echo(f"applied the demo integration for {DEMO_APP} (pixel DEMO_PIXEL, test events)")
    clicks, events = funnel(visitors, seed)
    consumer = AIOKafkaConsumer(names.delivery_results, **client_options(settings),
                                auto_offset_reset="latest", enable_auto_commit=False)
    await consumer.start()
    await consumer.getmany(timeout_ms=1000)  # take position at the end before producing
    producer = AIOKafkaProducer(**client_options(settings), linger_ms=5)
    await producer.start()
    try:
        # A fifth of the app events are produced before their click: the join waits for it.
        early = set(range(0, len(events), 5))
        for i in early:
            await producer.send(names.app_events, orjson.dumps(events[i]))
        await producer.flush()
        await post_clicks(worker_url(settings, "/collect"), clicks)
        for i, record in enumerate(events):
            if i not in early:
                await producer.send(names.app_events, orjson.dumps(record))
        await producer.flush()
    finally:
        await producer.stop()
    click.echo(f"posted {len(clicks)} landing-page visits to the collector and produced {len(events)} app events; "
               "results as they come:\n")
    expected = {e["event_id"] for e in events}
    seen: dict[str, dict] = {}
    deadline = time.monotonic() + timeout
    try:
        while expected - seen.keys() and time.monotonic() < deadline:
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                for message in messages:
                    result = orjson.loads(message.value)
                    if result["event_id"] in expected and result["event_id"] not in seen:
                        seen[result["event_id"]] = result
                        click.echo(_line(result))
    finally:
        await consumer.stop()
    _summary(list(seen.values()), len(expected))
    landing = worker_url(settings, "/landing/demo?") + AD_URL_PARAMETERS.replace(
        "__CAMPAIGN_NAME__", "Spring%20Sale").replace("__AID_NAME__", "US-18-24").replace(
        "__CID_NAME__", "Video-1").replace("__CLICKID__", f"E.C.P.browser{uuid.uuid4().hex[:12]}")
    click.echo(f"\nA visit from a browser: open {landing}")


def worker_url(settings: Settings, path: str) -> str:
    """A path on the web port of the worker the demo runs against (on this machine)."""
    return f"http://127.0.0.1:{settings.web_port}{path}"


def _line(r: dict) -> str:
    sent = f"-> {r['tiktok_event']}" if r.get("tiktok_event") else ""
    ad = " / ".join(str(r.get(k) or "?") for k in ("campaign_name", "adset_name", "ad_name"))
    return f"{r['status']:>9} {r.get('reason') or '':<15} {r['name']:<27} {sent:<24} {ad}  ({r['latency_ms']} ms)"


def _summary(results: list[dict], expected: int) -> None:
    click.echo(f"\n{len(results)} of {expected} app events have their final result")
    by_ad = Counter((r.get("campaign_name"), r.get("adset_name"), r.get("ad_name"), r["status"]) for r in results)
    for (campaign, adset, ad, status), count in sorted(by_ad.items(), key=str):
        click.echo(f"  {campaign} / {adset} / {ad}: {count} {status}")


@click.command("demo")
@click.option("--visitors", default=30, show_default=True, help="Landing-page visitors to simulate.")
@click.option("--seed", type=int, help="Repeat a funnel; by default each run is new (the same event ids "
              "again would be skipped as duplicates).")
@click.option("--timeout", default=120.0, show_default=True, help="Seconds to wait for the results.")
def demo_cli(visitors: int, seed: int | None, timeout: float) -> None:
    """Send a sample funnel through the running worker and show the delivery results."""
    asyncio.run(run(Settings.from_env(), visitors, seed, timeout))
