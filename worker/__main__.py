"""`python -m worker ...`: the Faust worker (`worker`) and the operator commands."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from worker.demo import demo_cli
from worker.integrations.cli import integrations_cli
from worker.settings import Settings, markdown_table

LOCAL_KAFKA_HOME = Path(".local/kafka")


@click.group()
def cli() -> None:
    """Web-to-app worker: TikTok clicks joined with app events, delivered to the Events API."""


cli.add_command(integrations_cli)
cli.add_command(demo_cli)


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

        asyncio.run(ensure_topics(Settings.from_env()))
        from worker.app import app

        app.main()
    else:
        cli()


if __name__ == "__main__":
    main()
