"""The benchmark's input: apps, pixels, integrations, and a realistic order of clicks and app events.

Every measured variant gets the same mix, built from a seed:
- `clicks_per_event` clicks (default 10) for each app event: most visitors never convert;
- a share of app events (default 20%) is produced *before* its click (the landing-page backend
  lagging behind the app backend), the others some records after it;
- APPS apps on PIXELS pixels (an iOS and an Android app share a pixel), each with an integration;
- every app event is of a kind the default event table sends, so each one ends `delivered`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterator

from aiokafka.partitioner import murmur2

N_PIXELS = 4
APPS_PER_PIXEL = 2
EVENT_NAMES = ("user_created", "trial_started", "subscription_started", "trial_converted", "subscription_renewed")
CAMPAIGNS = ("Spring", "Summer", "Autumn", "Winter", "Evergreen")
# How far (in records of the stream) an app event lands after, or before, its click.
LATE_GAP_RECORDS = 5000
EARLY_GAP_RECORDS = 1000


def pixel_ids(partitions: int, count: int = N_PIXELS) -> list[str]:
    """Pixel ids whose outbox partitions (the producer's murmur2 of the key) are all different."""
    chosen: list[str] = []
    taken: set[int] = set()
    i = 0
    while len(chosen) < count:
        candidate = f"PIXBENCH{i:04d}"
        partition = (murmur2(candidate.encode()) & 0x7FFFFFFF) % partitions
        if partition not in taken or len(taken) >= partitions:
            chosen.append(candidate)
            taken.add(partition)
        i += 1
    return chosen


def apps(partitions: int) -> list[tuple[str, str]]:
    """(app_id, pixel_id) of every benchmark app."""
    return [(f"bench-app-{p}-{'ios' if k == 0 else 'android'}", pixel)
            for p, pixel in enumerate(pixel_ids(partitions)) for k in range(APPS_PER_PIXEL)]


def integrations(partitions: int) -> list[dict]:
    out = []
    for i, (app_id, pixel) in enumerate(apps(partitions)):
        record = {"app_id": app_id, "pixel_id": pixel, "access_token": f"tok_bench_{i}_0123456789abcdef"}
        if i % 3 == 1:  # some operators spell out the default mapping, or rename an event
            record["events"] = {"trial_started": {"name": "StartTrial"}, "user_created": {"enabled": True}}
        out.append(record)
    return out


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def click(ttclid: str, app_id: str, n: int, ts: float) -> dict:
    campaign = CAMPAIGNS[n % len(CAMPAIGNS)]
    url = (f"https://get.example-app.com/{app_id}/?utm_source=tiktok&campaign_name={campaign}"
           f"&adset_name=US-{18 + n % 40}&ad_name=Video-{n % 17}&ttclid={ttclid}")
    return {"app_id": app_id, "url": url, "occurred_at": iso(ts), "ttp": f"2F7h37YkS1j57AYSKT{n:010d}",
            "ip": f"203.0.{n % 250}.{n % 199 + 1}",
            "user_agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
                          "(KHTML, like Gecko) Mobile/15E148 musical_ly_34.1.0",
            "referrer": "https://www.tiktok.com/", "locale": "en-US"}


def app_event(event_id: str, ttclid: str, app_id: str, n: int, ts: float) -> dict:
    return {"event_id": event_id, "app_id": app_id, "name": EVENT_NAMES[n % len(EVENT_NAMES)],
            "occurred_at": iso(ts), "ttclid": ttclid,
            "user": {"id": f"user-{event_id}", "email": f" User.{n}@Example.com "},
            "value": 9.99, "currency": "USD", "product_id": "pro_monthly"}


@dataclass(frozen=True)
class Item:
    """One input record to produce: `kind` is "click" or "event"; `ttclid` joins them."""

    position: float
    kind: str
    n: int  # the click's number, or the app event's
    ttclid: str
    app_id: str
    converting: bool = False  # a click that has an app event


def plan(n_clicks: int, clicks_per_event: int = 10, early_share: float = 0.2, seed: int = 7,
         partitions: int = 4, tag: str = "", n_apps: int | None = None) -> list[Item]:
    """The records in the order they are produced. `tag` keeps ids unique across variants;
    `n_apps` limits the mix to the first apps (two apps a pixel)."""
    rng = random.Random(seed)
    app_ids = [a for a, _ in apps(partitions)][:n_apps]
    items: list[Item] = []
    n_event = 0
    for n in range(n_clicks):
        app_id = app_ids[n % len(app_ids)]
        ttclid = f"E.CP{tag}{n:09d}{rng.getrandbits(40):010x}"
        converting = clicks_per_event > 0 and n % clicks_per_event == clicks_per_event // 2
        items.append(Item(float(n), "click", n, ttclid, app_id, converting))
        if converting:
            if rng.random() < early_share:
                position = n - rng.uniform(1, EARLY_GAP_RECORDS) - 0.5
            else:
                position = n + rng.uniform(1, LATE_GAP_RECORDS) + 0.5
            items.append(Item(max(position, -0.5), "event", n_event, ttclid, app_id))
            n_event += 1
    items.sort(key=lambda item: item.position)
    return items


def event_id(item: Item, tag: str = "") -> str:
    return f"ev{tag}-{item.n:08d}"


def record(item: Item, ts: float, tag: str = "") -> tuple[bytes, dict]:
    """(key, value) of an item as a landing page or app backend would produce it."""
    if item.kind == "click":
        return item.ttclid.encode(), click(item.ttclid, item.app_id, item.n, ts)
    eid = event_id(item, tag)
    return f"user-{eid}".encode(), app_event(eid, item.ttclid, item.app_id, item.n, ts)


def counts(items: list[Item]) -> tuple[int, int]:
    events = sum(1 for i in items if i.kind == "event")
    return len(items) - events, events


def clicks_only(start: int, tag: str = "", partitions: int = 4) -> Iterator[Item]:
    """An endless stream of clicks (no app events), for the state-expiry run."""
    app_ids = [a for a, _ in apps(partitions)]
    n = start
    while True:
        yield Item(float(n), "click", n, f"E.CO{tag}{n:012d}", app_ids[n % len(app_ids)])
        n += 1
