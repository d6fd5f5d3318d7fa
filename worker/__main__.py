"""`python -m worker ...`: the Faust worker (`worker`) and the operator commands."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from worker.delivery.replay import replay_cli
from worker.demo import demo_cli
from worker.integrations.cli import integrations_cli
from worker.kafka_security import NOT_AUTHORIZED, KafkaUnreachable, check_group_access, refusal
from worker.settings import Settings, markdown_table

LOCAL_KAFKA_HOME = Path(".local/kafka")


@click.group()
def cli() -> None:
    """Web-to-app worker: TikTok clicks joined with app events, delivered to the Events API."""


cli.add_command(integrations_cli)
cli.add_command(demo_cli)
cli.add_command(replay_cli)


@cli.group("local-kafka")
def local_kafka() -> None:
    """A single-node Apache Kafka from Maven Central jars, for laptops and CI."""


@local_kafka.command("start")
@click.option("--port", default=9092, show_default=True)
@click.option("--home", type=click.Path(path_type=Path), default=LOCAL_KAFKA_HOME, show_default=True)
def local_kafka_start(port: int, home: Path) -> None:
    from worker.local_kafka import LocalKafka, LocalKafkaError

    try:
        click.echo(LocalKafka(home.resolve(), port, port + 1).start())
    except LocalKafkaError as exc:
        raise click.ClickException(str(exc)) from None


@local_kafka.command("stop")
@click.option("--port", default=9092, show_default=True)
@click.option("--home", type=click.Path(path_type=Path), default=LOCAL_KAFKA_HOME, show_default=True)
def local_kafka_stop(port: int, home: Path) -> None:
    from worker.local_kafka import LocalKafka

    LocalKafka(home.resolve(), port, port + 1).stop()


@cli.command("settings")
def show_settings() -> None:
    """Print the settings table (as in the README)."""
    click.echo(markdown_table())


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        from worker.topics import ensure_topics

        settings = Settings.from_env()
        try:
            asyncio.run(ensure_topics(settings))
            asyncio.run(check_group_access(settings))
        except (KafkaUnreachable, *NOT_AUTHORIZED) as exc:  # Faust would retry for ever; say why and stop
            raise SystemExit(f"the worker did not start: {refusal(exc)}") from None
        from worker.app import app

        if settings.log_format == "json":
            sys.argv.insert(1, "--quiet")  # Faust's banner is no JSON
        app.main()
    else:
        try:
            cli()
        except (KafkaUnreachable, *NOT_AUTHORIZED) as exc:
            raise SystemExit(f"Error: {refusal(exc)}") from None


if __name__ == "__main__":
    main()
