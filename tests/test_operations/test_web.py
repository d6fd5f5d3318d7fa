"""Probes and metrics on a real worker's web port."""

from __future__ import annotations

import asyncio
import time

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.scenario import app_event, apply_integrations, click
from tests.support import Kafka, WorkerProcess
from worker.tiktok.sandbox import Sandbox


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with session.get(url) as response:
        return response.status, await response.text()


async def test_readyz_turns_ready_only_after_assignment_and_healthz_answers_throughout(worker_env, tmp_path):
    worker = WorkerProcess(worker_env, tmp_path / "worker.log").start()
    base = f"http://127.0.0.1:{worker.web_port}"
    statuses = []
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            deadline = time.monotonic() + 90
            while (not statuses or statuses[-1] != 200) and time.monotonic() < deadline:
                try:
                    statuses.append((await get(session, base + "/readyz"))[0])
                    assert (await get(session, base + "/healthz"))[0] == 200
                except aiohttp.ClientConnectionError:
                    pass  # the web server is not up yet
                await asyncio.sleep(0.05)
            assert "Ready" in worker.output() or statuses[-1] == 200
    finally:
        worker.kill()
    assert statuses[-1] == 200
    assert 503 in statuses, f"readiness was never refused before assignment: {statuses[:5]}"
    assert set(statuses) <= {200, 503} and statuses.index(200) > statuses.index(503)


async def test_metrics_move_with_a_scenario(kafka: Kafka, worker_env, start_worker, tmp_path):
    async with Sandbox() as sandbox, aiohttp.ClientSession() as session:
        env = {**worker_env, "TIKTOK_API_URL": sandbox.url, "TIKTOK_BATCH_LINGER_SECONDS": "0.1"}
        apply_integrations(env, [{"app_id": "app1", "pixel_id": "PIX1", "access_token": "tok_metrics_0123456789"}],
                           tmp_path)
        worker = await start_worker(**env)
        url = f"http://127.0.0.1:{worker.web_port}/metrics"
        before = samples((await get(session, url))[1])
        await kafka.produce("clicks", [(None, click(f"T{i}")) for i in range(10)])
        await kafka.produce("app-events", [(None, app_event(f"e{i}", f"T{i}")) for i in range(5)]
                            + [(None, app_event("e-none", None)), (None, b"not json")])
        await kafka.consume("delivery-results", 6, timeout=60)
        await asyncio.sleep(0.5)
        after = samples((await get(session, url))[1])

    def grew(name: str, **labels) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    assert grew("web2app_records_read_total", topic="clicks") == 10
    assert grew("web2app_records_read_total", topic="app-events") == 7
    assert grew("web2app_dead_letters_total", reason="invalid_json") == 1
    assert grew("web2app_results_total", status="delivered", reason="") == 5
    assert grew("web2app_results_total", status="skipped", reason="unattributed") == 1
    assert grew("web2app_tiktok_requests_total", http_status="200", code="0") >= 1
    assert grew("web2app_tiktok_events_per_request_sum") == 5
    assert after[("web2app_ttclids_held", ())] == 10
    assert grew("web2app_stage_seconds_count", stage="tiktok_request") >= 1
    assert grew("web2app_stage_seconds_count", stage="waiting_for_click") == 5
    labels = {label for (_, pairs) in after for label in pairs}
    assert not any("T1" in str(value) or "e1" == value for _, value in labels), "no ttclid or event_id in labels"
