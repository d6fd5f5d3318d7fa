"""One pixel answers HTTP 503 for 10 minutes while another receives 50,000 events (issue 12, section 3).

    .venv/bin/python -m bench.partial_outage              # about 12 minutes, its own Kafka and sandbox
    .venv/bin/python -m bench.partial_outage --minutes 2 --events 10000

One worker process with default settings, one outbox partition shared by both pixels (the worst
case: the failing pixel sits in front of the healthy one's commits). Prints the healthy pixel's
deliveries during the outage, the worker's RSS over it, and, once the failing pixel recovers,
what became of every event: delivered, lost (no result) or given a second result.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer

from tests.kafka_broker import kafka_for_tests
from tests.scenario import app_event, apply_integrations, click
from tests.support import Kafka, WorkerProcess
from worker.tiktok.sandbox import Sandbox


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


class Results:
    """Tails the delivery-results topic: every result, by event id, with when it was read."""

    def __init__(self, kafka: Kafka):
        self.kafka = kafka
        self.by_id: dict[str, list[tuple[float, str]]] = {}

    async def follow(self) -> None:
        consumer = AIOKafkaConsumer(self.kafka.topic("delivery-results"), bootstrap_servers=self.kafka.bootstrap,
                                    auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        try:
            async for record in consumer:
                result = orjson.loads(record.value)
                self.by_id.setdefault(result["event_id"], []).append((time.monotonic(), result["status"]))
        finally:
            await consumer.stop()

    def count(self, prefix: str, before: float = float("inf")) -> int:
        return sum(1 for event_id, results in self.by_id.items()
                   if event_id.startswith(prefix) and results[0][0] <= before)


async def produce_events(kafka: Kafka, app_id: str, ids: list[str]) -> None:
    await kafka.produce("clicks", [(None, click(f"T-{e}", app_id=app_id)) for e in ids])
    await kafka.produce("app-events", [(None, app_event(e, f"T-{e}", app_id=app_id)) for e in ids])


async def measure(kafka: Kafka, workdir: Path, minutes: float, events: int, bad_events: int) -> None:
    async with Sandbox() as sandbox:
        env = {"KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap, "TOPIC_PREFIX": kafka.prefix, "TOPIC_PARTITIONS": "1",
               "DATA_DIR": str(workdir / "data"), "TIKTOK_API_URL": sandbox.url, "LOG_LEVEL": "warn"}
        apply_integrations(env, [{"app_id": app, "pixel_id": f"PIX-{app}", "access_token": f"tok_{app}_0123456789"}
                                 for app in ("good", "bad")], workdir)
        worker = WorkerProcess(env, workdir / "worker.log").start()
        await worker.wait_ready()
        results = Results(kafka)
        following = asyncio.create_task(results.follow())
        await produce_events(kafka, "good", [f"warm-{i}" for i in range(2000)])
        while results.count("warm") < 2000:
            await asyncio.sleep(1)

        sandbox.state.fail("http503", pixel_id="PIX-bad")
        outage_start = time.monotonic()
        rss = [rss_mb(worker.process.pid)]
        duration = minutes * 60
        waves = int(duration)  # one wave a second, both pixels
        for wave in range(waves):
            good_ids = [f"good-{i}" for i in range(wave * events // waves, (wave + 1) * events // waves)]
            bad_ids = [f"bad-{i}" for i in range(wave * bad_events // waves, (wave + 1) * bad_events // waves)]
            await produce_events(kafka, "good", good_ids)
            await produce_events(kafka, "bad", bad_ids)
            if wave % 10 == 0:
                rss.append(rss_mb(worker.process.pid))
            await asyncio.sleep(max(0.0, outage_start + wave + 1 - time.monotonic()))
        outage_end = time.monotonic()
        rss.append(rss_mb(worker.process.pid))
        good_in_outage = results.count("good-", before=outage_end)
        bad_in_outage = results.count("bad-", before=outage_end)
        sent_during = Counter(a["pixel_id"] for a in sandbox.state.attempts if a["monotonic"] <= outage_end)
        good_requests = [len(r["events"]) for r in sandbox.state.received
                         if r["pixel_id"] == "PIX-good" and outage_start <= r["monotonic"] <= outage_end]

        sandbox.state.fail("ok")
        deadline = time.monotonic() + 900
        while (results.count("good-") < events or results.count("bad-") < bad_events) and time.monotonic() < deadline:
            await asyncio.sleep(2)
        recovered = time.monotonic() - outage_end
        await asyncio.sleep(5)
        following.cancel()
        worker.terminate()

    ids = [f"good-{i}" for i in range(events)] + [f"bad-{i}" for i in range(bad_events)]
    lost = [i for i in ids if i not in results.by_id]
    repeated = sum(len(results.by_id[i]) - 1 for i in ids if i in results.by_id)
    statuses = Counter(results.by_id[i][-1][1] for i in ids if i in results.by_id)
    print(f"outage: PIX-bad answered HTTP 503 for {duration / 60:.1f} min ({outage_end - outage_start:.0f} s); "
          f"{events:,} events for PIX-good and {bad_events:,} for PIX-bad produced meanwhile, one outbox partition")
    print(f"healthy pixel during the outage: {good_in_outage:,} of {events:,} delivered "
          f"({good_in_outage / (outage_end - outage_start):.0f} events/s; produced at {events / duration:.0f}/s) in "
          f"{len(good_requests)} requests of {sum(good_requests) / max(1, len(good_requests)):.0f} events on average")
    print(f"failing pixel during the outage: {bad_in_outage} final results, {sent_during['PIX-bad']} requests "
          f"(retries, parked between them)")
    print(f"worker RSS: {rss[0]:.0f} MB at the start of the outage, peak {max(rss):.0f} MB "
          f"(+{max(rss) - rss[0]:.0f} MB), {rss[-1]:.0f} MB at its end")
    print(f"after recovery ({recovered:.0f} s to the last result): {statuses.get('delivered', 0):,} of {len(ids):,} "
          f"delivered, statuses {dict(statuses)}, {len(lost)} lost, {repeated} second results")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--events", type=int, default=50_000, help="for the healthy pixel")
    parser.add_argument("--bad-events", type=int, default=5_000, help="for the failing pixel")
    args = parser.parse_args()
    with kafka_for_tests() as bootstrap, tempfile.TemporaryDirectory(prefix="partial-outage-") as workdir:
        asyncio.run(measure(Kafka(bootstrap, f"po{uuid.uuid4().hex[:8]}."), Path(workdir),
                            args.minutes, args.events, args.bad_events))


if __name__ == "__main__":
    main()
