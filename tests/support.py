"""Test helpers that talk to the real broker and run the real worker as a process."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

import aiohttp
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from tests.kafka_broker import REPO, free_port
from worker.settings import TIKTOK_EVENTS_URL

# Where a worker sends when a test gives no sandbox: a closed loopback port, so nothing leaves the machine.
NO_TIKTOK = "http://127.0.0.1:9/open_api/v1.3/event/track/"


def is_loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name: it could resolve anywhere
        return False


def required_tool(name: str, why: str) -> str:
    """The path of a command a test needs; without it the test is skipped, but on CI (CI=true) it fails."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed ({why})"
        if os.environ.get("CI") == "true":
            pytest.fail(message + ": CI must have it")
        pytest.skip(message)
    return path


@dataclass
class Kafka:
    bootstrap: str
    prefix: str

    def topic(self, name: str) -> str:
        return f"{self.prefix}{name}"

    async def produce(self, name: str, records: list[tuple[Any, Any]]) -> None:
        """Produce (key, value) pairs; dict values become JSON, bytes go as they are."""
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=5)
        await producer.start()
        try:
            futures = [await producer.send(self.topic(name), key=_bytes(k), value=_bytes(v)) for k, v in records]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()

    async def consume(self, name: str, count: int, timeout: float = 60.0,
                      until: Callable[[list[dict]], bool] | None = None) -> list[dict]:
        """Read a topic from its start until `count` records (or `until` holds), or fail after `timeout`."""
        records = await self.read(name, count, timeout, until)
        done = until(records) if until else len(records) >= count
        assert done, f"{name}: got {len(records)} records within {timeout} s, wanted {count}: {records[-5:]}"
        return records

    async def partitions(self, name: str) -> list[int]:
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap)
        await producer.start()
        try:  # the producer's metadata call waits for the topic's partitions
            return sorted(await producer.partitions_for(self.topic(name)))
        finally:
            await producer.stop()

    async def commit_to_end(self, group: str, name: str) -> None:
        """Commit `group`'s offsets at the end of every partition of a topic, as a consumer that read it all."""
        partitions = [TopicPartition(self.topic(name), p) for p in await self.partitions(name)]
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=self.topic(group),
                                    enable_auto_commit=False)
        await consumer.start()
        try:
            consumer.assign(partitions)
            await consumer.commit(await consumer.end_offsets(partitions))
        finally:
            await consumer.stop()

    async def read(self, name: str, count: int | None = None, timeout: float = 10.0,
                   until: Callable[[list[dict]], bool] | None = None) -> list[dict]:
        """Whatever the topic holds after `timeout` (or once `count`/`until` is reached)."""
        topic = self.topic(name)
        partitions = await self.partitions(name)
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                                    auto_offset_reset="earliest")
        await consumer.start()
        records: list[dict] = []
        try:
            deadline = time.monotonic() + timeout
            consumer.assign([TopicPartition(topic, p) for p in partitions])
            await consumer.seek_to_beginning()
            while time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=200)
                for messages in batch.values():
                    for m in messages:
                        records.append({"key": m.key.decode() if m.key else None,
                                        "value": orjson.loads(m.value) if m.value is not None else None,
                                        "partition": m.partition, "offset": m.offset})
                if count is not None and len(records) >= count and until is None:
                    break
                if until is not None and until(records):
                    break
        finally:
            await consumer.stop()
        return records


def rekeyed_items(records: list[dict]) -> list[dict]:
    """The clicks and app events that `by-ttclid` records hold (`worker/rekeyed.py`: several a record, or
    one as for a replica before 0.2.0), one per item, with their record's partition and offset."""
    return [{**item, "partition": r["partition"], "offset": r["offset"]}
            for r in records for item in r["value"].get("items", [r["value"]])]


def _bytes(value: Any) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    return orjson.dumps(value)


@dataclass
class WorkerProcess:
    """`python -m worker worker` as a real process, with its output kept in a log file."""

    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen | None = None
    web_port: int = field(default_factory=free_port)

    def start(self) -> "WorkerProcess":
        env = {**os.environ, **self.env, "WEB_PORT": str(self.web_port), "WEB_HOST": "127.0.0.1"}
        url = env.get("TIKTOK_API_URL", TIKTOK_EVENTS_URL)
        if not is_loopback_url(url):  # no test may ever reach the real TikTok
            raise ValueError(f"a test worker sends only to a loopback address, not {url}")
        self._log = open(self.log_path, "ab")
        self._log_offset = self.log_path.stat().st_size
        self.process = subprocess.Popen(
            [sys.executable, "-m", "worker", "worker", "-l", "info"],
            cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        return self

    def output(self) -> str:
        return self.log_path.read_bytes()[self._log_offset:].decode(errors="replace")

    async def wait_ready(self, timeout: float = 90.0) -> "WorkerProcess":
        """Until /readyz says ready: assigned, integrations read, no rebalance under way."""
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            while not await self._ready(session):
                assert self.process.poll() is None, f"worker exited:\n{self.output()[-4000:]}"
                assert time.monotonic() < deadline, f"worker not ready in {timeout} s:\n{self.output()[-4000:]}"
                await asyncio.sleep(0.25)
        return self

    async def _ready(self, session: aiohttp.ClientSession) -> bool:
        try:
            async with session.get(f"http://127.0.0.1:{self.web_port}/readyz") as response:
                return response.status == 200
        except (aiohttp.ClientError, asyncio.TimeoutError):
            return False

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def terminate(self, timeout: float = 60.0) -> int:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(f"worker did not stop within {timeout} s after SIGTERM")
        return self.process.returncode if self.process else 0
