"""What the benchmark phases share: processes, the broker, reading topics, CPU and memory figures."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import aiohttp
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from tests.kafka_broker import free_port
from worker.local_kafka import KAFKA_VERSION, LocalKafka

REPO = Path(__file__).resolve().parents[1]
# Where the measured processes run from (`python -m ...` imports from the working directory first):
# the repo, or a snapshot of it that commits landing during a run cannot change (see bench.run).
CODE_DIR = REPO
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- processes

@dataclass
class Proc:
    """A Python process of ours (`python -m MODULE ARGS...`), its output in a log file."""

    argv: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen | None = None
    _offset: int = 0

    def start(self) -> "Proc":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")
        self._offset = self.log_path.stat().st_size
        self.process = subprocess.Popen([sys.executable, *self.argv], cwd=CODE_DIR, env={**os.environ, **self.env},
                                        stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        return self

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return self.log_path.read_bytes()[self._offset:].decode(errors="replace")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    async def wait_ready(self, timeout: float = 120.0) -> "Proc":
        """Until the worker's /readyz answers 200 (assigned, recovered, integrations read), or, for a
        process without it, until Faust logs "Ready"."""
        deadline = time.monotonic() + timeout
        while not await self._ready():
            if not self.alive():
                raise RuntimeError(f"{self.argv} exited:\n{self.output()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.argv} not ready in {timeout} s:\n{self.output()[-3000:]}")
            await asyncio.sleep(0.2)
        return self

    async def _ready(self) -> bool:
        logged = "Ready" in self.output()
        port = self.env.get("WEB_PORT")
        if not port or not logged:
            return logged
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as session:
                async with session.get(f"http://127.0.0.1:{port}/readyz") as response:
                    return response.status == 200 or response.status == 404  # 404: a worker without /readyz
        except (aiohttp.ClientError, asyncio.TimeoutError):
            return False

    async def wait(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.alive():
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"{self.argv} did not finish in {timeout} s:\n{self.output()[-3000:]}")
            await asyncio.sleep(0.1)
        return self.process.returncode

    def stop(self, timeout: float = 30.0) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()

    def kill(self) -> None:
        if self.alive():
            self.process.kill()
            self.process.wait()


def faust_process(module: str, env: dict[str, str], log_path: Path) -> Proc:
    return Proc(["-m", module, "worker", "-l", "info"], env, log_path)


# ---------------------------------------------------------------- the broker

@dataclass
class Broker:
    bootstrap: str
    pid: int | None
    version: str


@contextlib.contextmanager
def broker(workdir: Path) -> Iterator[Broker]:
    """KAFKA_BOOTSTRAP_SERVERS when set, else a local Apache Kafka on free ports, stopped at the end."""
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield Broker(os.environ["KAFKA_BOOTSTRAP_SERVERS"], None, "external broker (KAFKA_BOOTSTRAP_SERVERS)")
        return
    kafka = LocalKafka(workdir / "kafka", free_port(), free_port(), heap="1g")
    try:
        bootstrap = kafka.start()
        yield Broker(bootstrap, kafka.running_pid(), f"Apache Kafka {KAFKA_VERSION} (KRaft, one node, local)")
    finally:
        kafka.stop()


# ---------------------------------------------------------------- topics

class Probe:
    """One consumer outside any group, to count and sample records of any topic."""

    def __init__(self, bootstrap: str, partitions: int):
        self.bootstrap = bootstrap
        self.partitions = partitions
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                         max_partition_fetch_bytes=4 * 2**20)

    async def __aenter__(self) -> "Probe":
        await self.consumer.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.consumer.stop()

    def tps(self, topic: str) -> list[TopicPartition]:
        return [TopicPartition(topic, p) for p in range(self.partitions)]

    async def count(self, topic: str) -> int:
        tps = self.tps(topic)
        ends = await self.consumer.end_offsets(tps)
        begins = await self.consumer.beginning_offsets(tps)
        return sum(ends[tp] - begins[tp] for tp in tps)

    async def edge_timestamp(self, topics: list[str], last: bool) -> float:
        """The earliest first record's (or the latest last record's) timestamp, in seconds."""
        tps = [tp for topic in topics for tp in self.tps(topic)]
        ends = await self.consumer.end_offsets(tps)
        begins = await self.consumer.beginning_offsets(tps)
        stamps = []
        for tp in tps:
            if ends[tp] <= begins[tp]:
                continue
            self.consumer.assign([tp])
            self.consumer.seek(tp, ends[tp] - 1 if last else begins[tp])
            record = await asyncio.wait_for(self.consumer.getone(tp), 10)
            stamps.append(record.timestamp / 1000)
        self.consumer.assign([])
        return max(stamps) if last else min(stamps)

    async def read_all(self, topic: str, timeout: float = 60.0) -> list:
        """Every record of the topic as it is now."""
        tps = self.tps(topic)
        ends = await self.consumer.end_offsets(tps)
        self.consumer.assign(tps)
        await self.consumer.seek_to_beginning(*tps)
        records = []
        deadline = time.monotonic() + timeout
        remaining = {tp for tp in tps if ends[tp] > 0}
        while remaining and time.monotonic() < deadline:
            for tp, messages in (await self.consumer.getmany(*remaining, timeout_ms=500)).items():
                records += messages
                if messages and messages[-1].offset >= ends[tp] - 1:
                    remaining.discard(tp)
        self.consumer.assign([])
        return records

    async def wait_count(self, topic: str, n: int, procs: list[Proc], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while (have := await self.count(topic)) < n:
            for proc in procs:
                if not proc.alive():
                    raise RuntimeError(f"{proc.argv} exited:\n{proc.output()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{topic}: {have} of {n} records after {timeout} s")
            await asyncio.sleep(0.1)


async def wait_group_stable(bootstrap: str, group: str, members: int, timeout: float = 90.0) -> None:
    """Until the consumer group and its stages' groups (`<group>-<stage>`, e.g. the worker's
    `-ingest`, `-delivery`) are all Stable with `members` members that all have partitions, on two
    polls in a row (a stage's group can appear a moment after the app's)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        deadline = time.monotonic() + timeout
        stable_polls = 0
        while True:
            listed = [g[0] for g in await admin.list_consumer_groups()]
            groups = [group, *sorted(g for g in listed if g.startswith(f"{group}-"))]
            states = await describe(admin, groups)
            settled = all(state == "Stable" and len(found) == members and all(len(m[-1]) > 0 for m in found)
                          for state, found in states.values())
            stable_polls = stable_polls + 1 if settled else 0
            if stable_polls == 2:
                return
            if time.monotonic() > deadline:
                seen = ", ".join(f"{g} {state} with {len(m)} members" for g, (state, m) in states.items())
                raise RuntimeError(f"groups not stable after {timeout} s: {seen}")
            await asyncio.sleep(0.25)
    finally:
        await admin.close()


async def describe(admin: AIOKafkaAdminClient, groups: list[str]) -> dict[str, tuple[str, list]]:
    """group -> (state, members)."""
    # One group a request: aiokafka 0.14 fails to decode a DescribeGroups response of several groups.
    # DescribeGroups v0: (error_code, group_id, state, protocol_type, protocol, members)
    described = [(await admin.describe_consumer_groups([group]))[0].groups[0] for group in groups]
    return {d[1]: (d[2], d[5]) for d in described}


# ---------------------------------------------------------------- CPU and memory

def process_cpu_seconds(pid: int | None) -> float:
    if pid is None:
        return 0.0
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return 0.0
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all cores."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return (total - idle) / CLK_TCK, total / CLK_TCK


@dataclass
class CpuMeter:
    """CPU used between start() and stop() by the machine and by given processes."""

    pids: dict[str, int | None]
    start_at: float = 0.0
    before: dict[str, float] = field(default_factory=dict)
    result: dict[str, float] = field(default_factory=dict)

    def start(self) -> "CpuMeter":
        self.start_at = time.monotonic()
        self.before = {name: process_cpu_seconds(pid) for name, pid in self.pids.items()}
        self.before["_self"] = time.process_time()
        self.before["_machine_busy"], self.before["_machine_total"] = machine_cpu()
        return self

    def stop(self) -> dict[str, float]:
        wall = time.monotonic() - self.start_at
        used = {name: process_cpu_seconds(pid) - self.before[name] for name, pid in self.pids.items()}
        used["bench (sandbox, orchestration)"] = time.process_time() - self.before["_self"]
        busy, total = machine_cpu()
        cores = os.cpu_count() or 1
        self.result = {"wall_s": wall,
                       "machine_busy_share": (busy - self.before["_machine_busy"])
                       / max(1e-9, total - self.before["_machine_total"]),
                       "cores": cores,
                       **{f"cpu_share:{name}": seconds / wall for name, seconds in used.items()}}
        return self.result
