"""The textbook baseline: the same click / app-event join written the obvious Faust way.

faust.Record models, `group_by` ttclid (Faust's repartition topics), one `table[ttclid] = click`
per click, app events that come before their click kept in a second table until it comes,
and one `topic.send()` per conversion to an outbox. Faust's defaults otherwise. It does less
than the worker: no JSON Schema validation, no dead letters, no dedup, no delivery to TikTok
(it stops at the outbox), so the worker / textbook ratio is on the textbook's side.

    BENCH_BOOTSTRAP=... BENCH_PREFIX=... BENCH_INTEGRATIONS=file.yaml \
        python -m bench.textbook_app worker -l info
"""

from __future__ import annotations

import os
from typing import Optional
from urllib.parse import parse_qs, urlsplit

import faust

from bench.faust_app import PREFIX, bench_app
import yaml


app = bench_app("textbook", 6067)

# app event -> TikTok event, as in the contract's default table (the events the mix uses).
DEFAULT_NAMES = {"user_created": "CompleteRegistration", "trial_started": "StartTrial",
                 "subscription_started": "Subscribe", "trial_converted": "Subscribe",
                 "subscription_renewed": "Purchase"}


def load_integrations() -> dict[str, dict]:
    path = os.environ.get("BENCH_INTEGRATIONS")
    if not path:
        return {}
    with open(path) as file:
        return {i["app_id"]: i for i in yaml.safe_load(file)}


INTEGRATIONS = load_integrations()


class Click(faust.Record, serializer="json"):
    app_id: str
    url: str
    occurred_at: str
    ttclid: Optional[str] = None
    campaign_name: Optional[str] = None
    adset_name: Optional[str] = None
    ad_name: Optional[str] = None
    ttp: Optional[str] = None
    ip: Optional[str] = None
    user_agent: Optional[str] = None
    referrer: Optional[str] = None
    locale: Optional[str] = None


class AppEvent(faust.Record, serializer="json"):
    event_id: str
    app_id: str
    name: str
    occurred_at: str
    ttclid: Optional[str] = None
    user: Optional[dict] = None
    value: Optional[float] = None
    currency: Optional[str] = None
    product_id: Optional[str] = None


class Conversion(faust.Record, serializer="json"):
    event_id: str
    app_id: str
    pixel_id: str
    tiktok_event: str
    occurred_at: str
    ttclid: str
    campaign_name: Optional[str]
    adset_name: Optional[str]
    ad_name: Optional[str]
    url: str
    ttp: Optional[str]
    ip: Optional[str]
    user_agent: Optional[str]
    user: Optional[dict]
    value: Optional[float]
    currency: Optional[str]
    product_id: Optional[str]


clicks_topic = app.topic(f"{PREFIX}clicks", value_type=Click)
events_topic = app.topic(f"{PREFIX}app-events", value_type=AppEvent)
outbox = app.topic(f"{PREFIX}textbook-outbox", value_type=Conversion)

clicks = app.Table("clicks", default=None, value_type=Click)
waiting = app.Table("waiting", default=list)


def click_ttclid(click: Click) -> str:
    if click.ttclid:
        return click.ttclid
    return parse_qs(urlsplit(click.url).query)["ttclid"][0]


def conversion(event: AppEvent, click: Click) -> Optional[Conversion]:
    integration = INTEGRATIONS.get(event.app_id)
    if integration is None:
        return None
    renamed = integration.get("events", {}).get(event.name, {}).get("name")
    query = {k: v[0] for k, v in parse_qs(urlsplit(click.url).query).items()}
    return Conversion(
        event_id=event.event_id, app_id=event.app_id, pixel_id=integration["pixel_id"],
        tiktok_event=renamed or DEFAULT_NAMES[event.name], occurred_at=event.occurred_at, ttclid=event.ttclid,
        campaign_name=click.campaign_name or query.get("campaign_name"),
        adset_name=click.adset_name or query.get("adset_name"), ad_name=click.ad_name or query.get("ad_name"),
        url=click.url, ttp=click.ttp, ip=click.ip, user_agent=click.user_agent, user=event.user,
        value=event.value, currency=event.currency, product_id=event.product_id)


async def send(event: AppEvent, click: Click) -> None:
    converted = conversion(event, click)
    if converted is not None:
        await outbox.send(key=converted.pixel_id, value=converted)


@app.agent(clicks_topic)
async def join_clicks(stream):
    async for click in stream.group_by(click_ttclid, name="click-ttclid"):
        ttclid = click_ttclid(click)
        clicks[ttclid] = click
        early = waiting.get(ttclid)
        if early:
            for event in early:
                await send(AppEvent.from_data(event) if isinstance(event, dict) else event, click)
            del waiting[ttclid]


@app.agent(events_topic)
async def join_events(stream):
    async for event in stream.group_by(AppEvent.ttclid, name="event-ttclid"):
        click = clicks.get(event.ttclid)
        if click is None:
            waiting[event.ttclid] = [*waiting[event.ttclid], event]
        else:
            await send(event, click)


if __name__ == "__main__":
    app.main()
