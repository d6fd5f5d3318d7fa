"""Replay: events that ended `failed`, or `rejected` for a reason a fixed integration cures, are
kept on the dead-letter topic with their whole outbox record; `python -m worker replay` sends
them through the outbox again, and each gets a new final result (the old one stays as history)."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

import click
import orjson
from aiokafka import AIOKafkaProducer

from worker.attribution.join import DEDUP_WINDOW_S
from worker.kafka_security import client_options
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


def refusal(record: dict[str, Any], now: float, max_age_s: float) -> str | None:
    """Why an event should not be sent again, or None."""
    age = now - record["occurred_ts"]
    if age > max_age_s:
        return f"older than the maximum event age ({age / 86400:.1f} days)"
    if age > DEDUP_WINDOW_S:
        return "past TikTok's 48-hour dedup window: a copy TikTok already has would count twice"
    return None


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


async def resend(settings: Settings, records: list[dict[str, Any]]) -> None:
    producer = AIOKafkaProducer(**client_options(settings), acks="all")
    await producer.start()
    try:
        outbox = TopicNames.of(settings).outbox
        with click.progressbar(records, label="replaying") as bar:
            for record in bar:
                now_ms = time.time() * 1000
                replayed = {**record, "read_ms": now_ms, "joined_ms": now_ms}
                await producer.send_and_wait(outbox, orjson.dumps(replayed), key=record["pixel_id"].encode())
    finally:
        await producer.stop()


@click.command("replay")
@click.option("--app", "apps", multiple=True, help="Only this app (repeatable).")
@click.option("--reason", "reasons", multiple=True, help="Only this reason, e.g. retries_exhausted (repeatable).")
@click.option("--since", type=click.DateTime(), help="Only events that ended at or after this UTC time.")
@click.option("--until", type=click.DateTime(), help="Only events that ended at or before this UTC time.")
@click.option("--dry-run", is_flag=True, help="Show what would be sent again, send nothing.")
@click.option("--force", is_flag=True, help="Also send events past the dedup window or the maximum age.")
def replay_cli(apps, reasons, since, until, dry_run, force) -> None:
    """Send failed events (and rejections a fixed integration cures) through the outbox again."""
    settings = Settings.from_env()
    utc = datetime.now().astimezone().tzinfo
    since, until = (None if t is None else t.replace(tzinfo=t.tzinfo or utc) for t in (since, until))
    chosen = [k for k in asyncio.run(read_kept(settings)) if selected(k, apps, reasons, since, until)]
    now = time.time()
    to_send = []
    for kept in chosen:
        why_not = None if force else refusal(kept["outbox_record"], now, settings.max_event_age_s)
        mark = "refused: " + why_not if why_not else ("would send" if dry_run else "send")
        click.echo(f"{kept['event_id']}  {kept['app_id']}  {kept['reason']}  ended {kept['finished_at']}  {mark}")
        if why_not is None:
            to_send.append(kept["outbox_record"])
    click.echo(f"{len(to_send)} of {len(chosen)} selected events {'would be ' if dry_run else ''}sent again")
    if to_send and not dry_run:
        asyncio.run(resend(settings, to_send))
