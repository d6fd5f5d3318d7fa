"""Where the tests' real Kafka comes from: KAFKA_BOOTSTRAP_SERVERS, else Docker, else a local broker."""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
from pathlib import Path
from typing import Iterator

from worker.local_kafka import LocalKafka

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:
        return False


@contextlib.contextmanager
def kafka_for_tests() -> Iterator[str]:
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    elif docker_answers():
        from testcontainers.community.kafka import KafkaContainer

        with KafkaContainer("confluentinc/cp-kafka:7.6.0").with_kraft() as container:
            yield container.get_bootstrap_server()
    else:
        # A folder of this session's own: test runs side by side never touch each other's broker.
        with tempfile.TemporaryDirectory(prefix="test-kafka-") as home:
            broker = LocalKafka(Path(home), free_port(), free_port(), heap="768m")
            try:
                yield broker.start()
            finally:
                broker.stop()
