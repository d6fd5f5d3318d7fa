from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.kafka_broker import kafka_for_tests
from tests.support import NO_TIKTOK, Kafka, WorkerProcess


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    with kafka_for_tests() as bootstrap:
        yield bootstrap


@pytest.fixture
def kafka(kafka_bootstrap: str) -> Kafka:
    """The real broker, with topic names of this test's own."""
    return Kafka(kafka_bootstrap, f"t{uuid.uuid4().hex[:10]}.")


@pytest.fixture
def worker_env(kafka: Kafka, tmp_path: Path) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap,
        "TOPIC_PREFIX": kafka.prefix,
        "TOPIC_PARTITIONS": "4",
        "DATA_DIR": str(tmp_path / "data"),
        "JOIN_BATCH_LINGER_SECONDS": "0.02",
        "TIKTOK_API_URL": NO_TIKTOK,
    }


@pytest.fixture
def start_worker(worker_env: dict[str, str], tmp_path: Path):
    """Start real worker processes; all are stopped when the test ends."""
    started: list[WorkerProcess] = []

    async def start(**env: str) -> WorkerProcess:
        # Each replica its own data directory, as each pod its own volume (a RocksDB store locks it).
        data = {"DATA_DIR": str(tmp_path / f"data-{len(started)}")}
        worker = WorkerProcess({**worker_env, **data, **env}, tmp_path / f"worker-{len(started)}.log").start()
        started.append(worker)
        await worker.wait_ready()
        for other in started:  # a new replica makes the others rebalance: wait until they settled too
            if other.process.poll() is None:
                await other.wait_ready()
        return worker

    yield start
    for worker in started:
        worker.kill()
