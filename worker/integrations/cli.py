"""`python -m worker integrations ...`: validate and publish integration files, list what is active."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import click
import orjson
import yaml
from aiokafka import AIOKafkaProducer

from worker.integrations.config import InvalidIntegration, parse_integration, public_view
from worker.integrations.tokens import decrypt_token, encrypt_token, token_keys
from worker.kafka_security import client_options
from worker.settings import Settings
from worker.topics import TopicNames, ensure_topics, records_to_end


@click.group("integrations")
def integrations_cli() -> None:
    """Per-app TikTok integrations on the compacted integrations topic."""


@integrations_cli.command("apply")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def apply(file: Path) -> None:
    """Validate FILE (YAML or JSON: one integration or a list) and publish every integration in it."""
    try:
        loaded = yaml.safe_load(file.read_text())  # YAML is a superset of JSON
    except yaml.YAMLError as exc:
        raise click.ClickException(f"{file}: not YAML or JSON{syntax_error_position(exc)}") from None
    records = loaded if isinstance(loaded, list) else [loaded]
    problems = []
    for index, record in enumerate(records):
        try:
            parse_integration(record)
        except InvalidIntegration as exc:
            problems.append(f"item {index}: {exc}")
    if problems:
        raise click.ClickException(f"{file} was not published:\n  " + "\n  ".join(problems))
    settings = Settings.from_env()
    keys = token_keys(settings)
    if keys is None:
        click.echo("warning: TOKEN_ENCRYPTION_KEYS is not set: the access tokens are published in plain text", err=True)
    else:
        records = [encrypt_token(r, keys) for r in records]
    asyncio.run(publish(settings, [(r["app_id"], orjson.dumps(r)) for r in records]))
    for record in records:
        click.echo(f"applied {record['app_id']} (pixel {record['pixel_id']})")


def syntax_error_position(exc: yaml.YAMLError) -> str:
    """Where the file is broken, never the text there: the offending line may hold an access token."""
    marks = [mark for mark in (getattr(exc, "problem_mark", None), getattr(exc, "context_mark", None)) if mark]
    where = [f"line {mark.line + 1}, column {mark.column + 1}" for mark in marks]
    if not where:
        return ""
    return f" (syntax error at {where[0]}" + (f", in what begins at {where[1]})" if len(where) > 1 else ")")


@integrations_cli.command("remove")
@click.argument("app_id")
def remove(app_id: str) -> None:
    """Publish a tombstone: APP_ID's events are skipped as `no_integration` from now on."""
    asyncio.run(publish(Settings.from_env(), [(app_id, None)]))
    click.echo(f"removed {app_id}")


@integrations_cli.command("list")
def list_integrations() -> None:
    """Show the active integrations, tokens masked."""
    settings = Settings.from_env()
    keys = token_keys(settings)
    active = asyncio.run(read_all(settings))
    views = []
    for app_id, raw in sorted(active.items()):
        try:
            views.append(public_view(parse_integration(decrypt_token(orjson.loads(raw), keys))))
        except (orjson.JSONDecodeError, InvalidIntegration) as exc:
            views.append({"app_id": app_id, "invalid": str(exc)})
    click.echo(json.dumps(views, indent=2, ensure_ascii=False))


@integrations_cli.command("rotate")
def rotate() -> None:
    """Re-encrypt every integration's token with the first of TOKEN_ENCRYPTION_KEYS (plain-text tokens too)."""
    settings = Settings.from_env()
    keys = token_keys(settings)
    if keys is None:
        raise click.ClickException("set TOKEN_ENCRYPTION_KEYS to the new key, then the old ones, to rotate")
    rotated, problems = [], []
    for app_id, raw in sorted(asyncio.run(read_all(settings)).items()):
        try:
            record = orjson.loads(raw)
            parse_integration(decrypt_token(record, keys))
        except (orjson.JSONDecodeError, InvalidIntegration) as exc:
            problems.append(str(exc) if isinstance(exc, InvalidIntegration) else f"{app_id}: not JSON")
            continue
        rotated.append((app_id, orjson.dumps(encrypt_token(record, keys))))
    asyncio.run(publish(settings, rotated))
    for app_id, _ in rotated:
        click.echo(f"re-encrypted {app_id}")
    if problems:
        raise click.ClickException("left as they were:\n  " + "\n  ".join(problems))


async def publish(settings: Settings, records: list[tuple[str, bytes | None]]) -> None:
    await ensure_topics(settings)
    producer = AIOKafkaProducer(**client_options(settings), acks="all")
    await producer.start()
    try:
        topic = TopicNames.of(settings).integrations
        await asyncio.gather(*[await producer.send(topic, key=app_id.encode(), value=value)
                               for app_id, value in records])
    finally:
        await producer.stop()


async def read_all(settings: Settings) -> dict[str, Any]:
    """The integrations topic folded by key: app_id -> its current record."""
    await ensure_topics(settings)
    active: dict[str, Any] = {}
    async for message in records_to_end(settings, TopicNames.of(settings).integrations):
        app_id = message.key.decode()
        if message.value is None:
            active.pop(app_id, None)
        else:
            active[app_id] = message.value
    return active
