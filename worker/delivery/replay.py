"""Replay: events that ended `failed`, or `rejected` for a reason a fixed integration cures, are
kept on the dead-letter topic with their whole outbox record; `python -m worker replay` sends
them through the outbox again, and each gets a new final result (the old one stays as history).

A run sends each event at most once (its latest dead letter), under the integration as it is now
(pixel, enabled, event names, test code), marked with `replayed_at` in the outbox record and
`replayed: true` in its new result."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone
from typing import Any

import click
import orjson
from aiokafka import AIOKafkaProducer

from worker.attribution.join import DEDUP_WINDOW_S
from worker.integrations.cli import read_all
from worker.integrations.config import Integration, InvalidIntegration, outbox_record, parse_integration
from worker.integrations.tokens import decrypt_token, token_keys
from worker.kafka_security import client_options
from worker.results import utc_now_iso
from worker.settings import Settings
from worker.topics import TopicNames, records_to_end

# Rejections an operator can cure by fixing the integration: permission, token expired, empty or invalid, allowlist.
CURABLE_CODES = frozenset({40001, 40102, 40104, 40105, 40118})


def replayable(result: dict[str, Any]) -> bool:
    return result["status"] == "failed" or (result["status"] == "rejected"
                                            and result.get("tiktok_code") in CURABLE_CODES)


def kept_for_replay(ticket: Any, result: dict[str, Any]) -> dict[str, Any]:
    return {"reason": result["reason"], "error": result.get("tiktok_message") or result["reason"],
            "status": result["status"], "tiktok_code": result.get("tiktok_code"), "event_id": result["event_id"],
            "app_id": result["app_id"], "pixel_id": result.get("pixel_id"), "finished_at": result["finished_at"],
            "outbox_record": ticket.record}


def refusal(record: dict[str, Any], now: float, max_age_s: float, force: bool) -> str | None:
    """Why an event should not be sent again, or None. `force` passes the dedup window, never the maximum
    age: the worker fails such an event as `expired` without sending it."""
    age = now - record["occurred_ts"]
    if age > max_age_s:
        return (f"older than the maximum event age ({age / 86400:.1f} > {max_age_s / 86400:g} days): "
                "the worker would expire it unsent, --force or not")
    if age > DEDUP_WINDOW_S and not force:
        return "past TikTok's 48-hour dedup window: a copy TikTok already has would count twice (--force sends it)"
    return None


def as_now(record: dict[str, Any], integrations: dict[str, Integration | None]) -> tuple[dict | None, str | None]:
    """The outbox record under the app's integration as it is now, or None and why it is not sent."""
    if record["app_id"] not in integrations:
        return None, "no integration for the app now (no_integration)"
    integration = integrations[record["app_id"]]
    if integration is None:
        return None, "the app's integration is unusable now (integration_invalid)"
    joined = {name: value for name, value in record.items() if name != "tiktok_event"}
    now_record, skip_reason = outbox_record(joined, integration)
    if skip_reason:
        return None, f"not sent under the integration as it is now ({skip_reason})"
    return now_record, None


def latest_per_event(kept: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each event once, by its latest dead letter (a replay that failed again leaves another), oldest first."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for dead in kept:
        event = (dead["app_id"], dead["event_id"])
        if event not in latest or dead["finished_at"] > latest[event]["finished_at"]:
            latest[event] = dead
    return sorted(latest.values(), key=lambda dead: dead["finished_at"])


def selected(kept: dict[str, Any], apps: tuple[str, ...], reasons: tuple[str, ...],
             since: datetime | None, until: datetime | None) -> bool:
    finished = datetime.fromisoformat(kept["finished_at"])
    return ((not apps or kept["app_id"] in apps) and (not reasons or kept["reason"] in reasons)
            and (since is None or finished >= since) and (until is None or finished <= until))


async def read_kept(settings: Settings) -> list[dict[str, Any]]:
    """Every dead letter kept for replay."""
    kept = []
    async for message in records_to_end(settings, TopicNames.of(settings).dead_letter):
        dead = orjson.loads(message.value)
        if "outbox_record" in dead:
            kept.append(dead)
    return kept


async def integrations_now(settings: Settings) -> dict[str, Integration | None]:
    """app_id -> its integration as the worker sees it now (None: present but unusable)."""
    keys = token_keys(settings)
    integrations: dict[str, Integration | None] = {}
    for app_id, raw in (await read_all(settings)).items():
        try:
            integrations[app_id] = parse_integration(decrypt_token(orjson.loads(raw), keys))
        except (orjson.JSONDecodeError, InvalidIntegration):
            integrations[app_id] = None
    return integrations


async def resend(settings: Settings, records: list[dict[str, Any]]) -> None:
    producer = AIOKafkaProducer(**client_options(settings), acks="all")
    await producer.start()
    try:
        outbox = TopicNames.of(settings).outbox
        with click.progressbar(records, label="replaying") as bar:
            for record in bar:
                now_ms = time.time() * 1000
                replayed = {**record, "read_ms": now_ms, "joined_ms": now_ms, "replayed_at": utc_now_iso()}
                await producer.send_and_wait(outbox, orjson.dumps(replayed), key=record["pixel_id"].encode())
    finally:
        await producer.stop()


@click.command("replay")
@click.option("--app", "apps", multiple=True, help="Only this app (repeatable).")
@click.option("--reason", "reasons", multiple=True, help="Only this reason, e.g. retries_exhausted (repeatable).")
@click.option("--since", type=click.DateTime(), help="Only events that ended at or after this UTC time.")
@click.option("--until", type=click.DateTime(), help="Only events that ended at or before this UTC time.")
@click.option("--dry-run", is_flag=True, help="Show what would be sent again, send nothing.")
@click.option("--force", is_flag=True,
              help="Also send events past TikTok's 48-hour dedup window (never past the maximum event age).")
def replay_cli(apps, reasons, since, until, dry_run, force) -> None:
    """Send failed events (and rejections a fixed integration cures) through the outbox again."""
    settings = Settings.from_env()
    since, until = (None if t is None else t.replace(tzinfo=timezone.utc) for t in (since, until))
    kept = asyncio.run(read_kept(settings))
    integrations = asyncio.run(integrations_now(settings))
    chosen = latest_per_event([k for k in kept if selected(k, apps, reasons, since, until)])
    now = time.time()
    to_send = []
    for dead in chosen:
        record, why_not = as_now(dead["outbox_record"], integrations)
        why_not = why_not or refusal(dead["outbox_record"], now, settings.max_event_age_s, force)
        mark = "refused: " + why_not if why_not else ("would send" if dry_run else "send")
        click.echo(f"{dead['event_id']}  {dead['app_id']}  {dead['reason']}  ended {dead['finished_at']}  {mark}")
        if why_not is None:
            to_send.append(record)
    click.echo(f"{len(to_send)} of {len(chosen)} selected events {'would be ' if dry_run else ''}sent again")
    if to_send and not dry_run:
        asyncio.run(resend(settings, to_send))
