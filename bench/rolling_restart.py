"""A rolling restart of two replicas under 20,000 events (issue 12, section 4).

    .venv/bin/python -m bench.rolling_restart            # about 3 minutes, its own Kafka and sandbox
    .venv/bin/python -m bench.rolling_restart --events 4000

Two worker replicas, four pixels; events arrive in waves of 200 every 0.5 s. A few seconds in, replica 1
gets SIGTERM; once it has exited it starts again, and when it is ready replica 2 goes the same way.
Prints each replica's exit time, the events lost (no result), the share that got a second result, and
the events TikTok (the sandbox) received twice.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

from bench.partial_outage import Results, produce_events
from tests.kafka_broker import kafka_for_tests
from tests.scenario import apply_integrations
from tests.support import Kafka, WorkerProcess
from worker.tiktok.sandbox import Sandbox

WAVE = 200


async def measure(kafka: Kafka, workdir: Path, events: int) -> None:
    async with Sandbox() as sandbox:
        env = {"KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap, "TOPIC_PREFIX": kafka.prefix, "TOPIC_PARTITIONS": "4",
               "DATA_DIR": str(workdir / "data"), "TIKTOK_API_URL": sandbox.url, "LOG_LEVEL": "warn",
               "TIKTOK_BATCH_SIZE": "100", "TIKTOK_BATCH_LINGER_SECONDS": "0.2",
               "TIKTOK_PIXEL_REQUESTS_PER_SECOND": "20"}
        apply_integrations(env, [{"app_id": f"app{i}", "pixel_id": f"PIX{i}", "access_token": f"tok_{i}_0123456789"}
                                 for i in range(4)], workdir)
        starts = 0

        async def start() -> WorkerProcess:
            nonlocal starts
            starts += 1
            replica = WorkerProcess(dict(env), workdir / f"worker-{starts}.log").start()
            await replica.wait_ready()
            return replica

        replicas = [await start(), await start()]
        await replicas[0].wait_ready()
        results = Results(kafka)
        following = asyncio.create_task(results.follow())
        ids = [f"e{i}" for i in range(events)]

        async def load() -> None:
            for first in range(0, events, WAVE):
                for app in range(4):
                    await produce_events(kafka, f"app{app}", ids[first + app:first + WAVE:4])
                await asyncio.sleep(0.5)

        producing = asyncio.create_task(load())
        stop_seconds = []
        for index in range(2):
            await asyncio.sleep(8)
            started = time.monotonic()
            code = await asyncio.to_thread(replicas[index].terminate, 60)
            stop_seconds.append((time.monotonic() - started, code))
            replicas[index] = await start()
        await producing
        deadline = time.monotonic() + 300
        while results.count("e") < events and time.monotonic() < deadline:
            await asyncio.sleep(1)
        await asyncio.sleep(10)  # late second results
        following.cancel()
        for replica in replicas:
            replica.terminate()
        sent = Counter(e["event_id"] for e in sandbox.state.events())

    lost = [i for i in ids if i not in results.by_id]
    repeated = sum(len(results.by_id[i]) - 1 for i in ids if i in results.by_id)
    statuses = Counter(r[-1][1] for r in results.by_id.values())
    print(f"rolling restart of 2 replicas under {events:,} events ({events / (events / WAVE * 0.5):.0f} events/s "
          f"offered): exits took {', '.join(f'{s:.1f} s (code {c})' for s, c in stop_seconds)}")
    print(f"{len(lost)} events lost; {repeated} of {events:,} got a second result ({100 * repeated / events:.2f}%); "
          f"TikTok received {sum(n - 1 for n in sent.values())} events twice; final statuses {dict(statuses)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args()
    with kafka_for_tests() as bootstrap, tempfile.TemporaryDirectory(prefix="rolling-restart-") as workdir:
        asyncio.run(measure(Kafka(bootstrap, f"rr{uuid.uuid4().hex[:8]}."), Path(workdir), args.events))


if __name__ == "__main__":
    main()
