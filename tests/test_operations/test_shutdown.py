"""SIGTERM: a replica stops within its bound and hands back what is unfinished; a rolling restart loses nothing."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from tests.scenario import app_event, apply_integrations, click
from tests.support import Kafka, rekeyed_items
from worker.tiktok.sandbox import Sandbox


async def test_a_rolling_restart_of_two_replicas_under_load_loses_nothing(kafka: Kafka, worker_env, start_worker,
                                                                          tmp_path):
    async with Sandbox() as sandbox:
        env = {**worker_env, "TIKTOK_API_URL": sandbox.url, "TIKTOK_BATCH_SIZE": "100",
               "TIKTOK_BATCH_LINGER_SECONDS": "0.2", "TIKTOK_PIXEL_REQUESTS_PER_SECOND": "20"}
        apply_integrations(env, [{"app_id": f"app{i}", "pixel_id": f"PIX{i}", "access_token": f"tok_{i}_0123456789"}
                                 for i in range(4)], tmp_path)
        replicas = [await start_worker(**env), await start_worker(**env)]
        ids: list[str] = []

        async def load() -> None:
            for wave in range(20):
                batch = [f"w{wave}-{i}" for i in range(200)]
                await kafka.produce("clicks", [(None, click(f"T-{e}", app_id=f"app{i % 4}"))
                                               for i, e in enumerate(batch)])
                await kafka.produce("app-events", [(None, app_event(e, f"T-{e}", app_id=f"app{i % 4}"))
                                                   for i, e in enumerate(batch)])
                ids.extend(batch)
                await asyncio.sleep(0.5)

        producing = asyncio.create_task(load())
        stop_times = []
        for index in range(2):
            await asyncio.sleep(2)
            started = time.monotonic()
            assert replicas[index].terminate(timeout=45) == 0
            stop_times.append(time.monotonic() - started)
            replicas[index] = await start_worker(**env)
        await producing
        results = await kafka.read(
            "delivery-results", len(ids), timeout=120,
            until=lambda rs: {r["value"]["event_id"] for r in rs} >= set(ids))
        missing = set(ids) - {r["value"]["event_id"] for r in results}
        if missing:
            outbox = {r["value"]["event_id"] for r in await kafka.read("outbox", timeout=5)}
            byt = [r for r in rekeyed_items(await kafka.read("by-ttclid", timeout=5)) if "app_event" in r]
            byt_ids = {r["app_event"]["event_id"] for r in byt}
            print("MISSING", len(missing), sorted(missing)[:10], "in outbox:", len(missing & outbox),
                  "in by-ttclid:", len(missing & byt_ids))
        sent = sandbox.state.events()
    finals = {r["value"]["event_id"]: r["value"]["status"] for r in results}
    assert set(finals) == set(ids)
    assert set(finals.values()) == {"delivered"}
    assert max(stop_times) < 40, f"SIGTERM took {max(stop_times):.1f} s"
    repeated = len(results) - len(ids)
    sent_twice = sum(n - 1 for n in Counter(e["event_id"] for e in sent).values())
    print(f"rolling restart: stops took {stop_times}, {repeated} results written twice, "
          f"{sent_twice} events sent to TikTok twice")
