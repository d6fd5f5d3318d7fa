"""The broker goes away mid-stream (killed and back 15 s later, or frozen for 30 s): the same worker
process carries on by itself once it is back, and every app event gets its result.

Each test runs a broker of its own, since it kills it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from pathlib import Path

import pytest

from tests.kafka_broker import free_port
from tests.scenario import app_event, apply_integrations, click
from tests.support import Kafka, WorkerProcess
from worker.local_kafka import LocalKafka
from worker.tiktok.sandbox import Sandbox

EVENTS = 3000


@pytest.mark.parametrize("outage", ["killed for 15 s", "frozen for 30 s"])
async def test_the_worker_rides_out_a_broker_outage_and_loses_nothing(tmp_path: Path, outage: str):
    broker = LocalKafka(tmp_path / "kafka", free_port(), free_port(), heap="512m")
    kafka = Kafka(await asyncio.to_thread(broker.start), f"o{uuid.uuid4().hex[:8]}.")
    worker = None
    try:
        async with Sandbox() as sandbox:
            env = {"KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap, "TOPIC_PREFIX": kafka.prefix,
                   "TOPIC_PARTITIONS": "4", "DATA_DIR": str(tmp_path / "data"), "TIKTOK_API_URL": sandbox.url,
                   "JOIN_BATCH_LINGER_SECONDS": "0.02", "TIKTOK_BATCH_LINGER_SECONDS": "0.2"}
            apply_integrations({**os.environ, **env},
                               [{"app_id": "app1", "pixel_id": "PIX1", "access_token": "tok_outage_0123456789"}],
                               tmp_path)
            worker = WorkerProcess(env, tmp_path / "worker.log").start()
            await worker.wait_ready()
            ids = [f"o-{i}" for i in range(EVENTS)]
            half = EVENTS // 2
            await kafka.produce("clicks", [(None, click(f"T-{e}")) for e in ids])
            await kafka.produce("app-events", [(None, app_event(e, f"T-{e}")) for e in ids[:half]])
            await kafka.consume("delivery-results", 1)  # mid-stream

            pid = broker.running_pid()
            if outage.startswith("killed"):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)  # the broker is this process's child: reap it, or it looks alive
                await asyncio.sleep(15)
                assert worker.process.poll() is None, f"the worker exited:\n{worker.output()[-3000:]}"
                await asyncio.to_thread(broker.start)
            else:
                os.kill(pid, signal.SIGSTOP)
                await asyncio.sleep(30)
                assert worker.process.poll() is None, f"the worker exited:\n{worker.output()[-3000:]}"
                os.kill(pid, signal.SIGCONT)
            back = time.monotonic()
            await kafka.produce("app-events", [(None, app_event(e, f"T-{e}")) for e in ids[half:]])
            results = await kafka.consume("delivery-results", EVENTS, timeout=150,
                                          until=lambda rs: {r["value"]["event_id"] for r in rs} >= set(ids))
            recovered_in = time.monotonic() - back
            assert worker.process.poll() is None, "the same process carried on"
        statuses = {}
        for r in results:
            statuses.setdefault(r["value"]["event_id"], set()).add(r["value"]["status"])
        assert set(statuses) == set(ids)
        assert all(s == {"delivered"} for s in statuses.values()), [s for s in statuses.items() if s[1] != {"delivered"}][:5]
        print(f"\nbroker {outage}: every result within {recovered_in:.1f} s of its return; "
              f"{len(results) - EVENTS} results written twice")
    finally:
        if worker is not None:
            worker.kill()
        broker.stop()
