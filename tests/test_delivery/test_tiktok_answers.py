"""TikTok's answers as TikTok documents them, end to end: a real worker process against the sandbox."""

from __future__ import annotations

import time

import aiohttp

from tests.scenario import app_event, apply_integrations, click
from tests.support import Kafka
from tests.test_tiktok.test_payload import EXTERNAL_ID_HASH, PHONE_HASH
from worker.tiktok.sandbox import Sandbox

TOKEN = "tok_answers_0123456789abcdef"


async def send_events(kafka: Kafka, prefix: str, n: int, **extra) -> list[str]:
    ids = [f"{prefix}-{i}" for i in range(n)]
    await kafka.produce("clicks", [(None, click(f"T-{event_id}")) for event_id in ids])
    await kafka.produce("app-events", [(None, app_event(event_id, f"T-{event_id}", **extra)) for event_id in ids])
    return ids


async def finals(kafka: Kafka, ids: list[str]) -> dict[str, dict]:
    wanted = set(ids)
    results = await kafka.consume("delivery-results", len(ids), timeout=90,
                                  until=lambda rs: wanted <= {r["value"]["event_id"] for r in rs})
    return {r["value"]["event_id"]: r["value"] for r in results if r["value"]["event_id"] in wanted}


async def test_throttling_5xxxx_codes_a_proxy_page_and_retry_after_end_delivered(kafka, worker_env, start_worker,
                                                                                 tmp_path):
    async with Sandbox() as sandbox:
        env = {**worker_env, "TIKTOK_API_URL": sandbox.url, "TIKTOK_BATCH_LINGER_SECONDS": "0.1",
               "TIKTOK_RETRY_BASE_SECONDS": "0.2", "TIKTOK_RETRY_CAP_SECONDS": "2"}
        apply_integrations(env, [{"app_id": "app1", "pixel_id": "PIX1", "access_token": TOKEN}], tmp_path)
        worker = await start_worker(**env)

        sandbox.state.fail("throttle", count=3, code=40016)  # "requests made too frequently"
        throttled = await finals(kafka, await send_events(
            kafka, "thr", 3, user={"id": EXTERNAL_ID_HASH.upper(), "phone": PHONE_HASH.upper()}))
        sandbox.state.fail("error", count=2, error_code=51010)  # a 5xxxx code no list names
        service_error = await finals(kafka, await send_events(kafka, "svc", 3))
        sandbox.state.fail("not_json", count=2)  # HTTP 200 with a proxy's HTML page
        proxy_page = await finals(kafka, await send_events(kafka, "html", 3))

        sandbox.state.fail("http429", count=1, retry_after=4)
        sent_at = time.time()
        told_to_wait = await finals(kafka, await send_events(kafka, "wait", 1))
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{worker.web_port}/metrics") as response:
                metrics = await response.text()
    for answered in (throttled, service_error, proxy_page, told_to_wait):
        assert {r["status"] for r in answered.values()} == {"delivered"}, answered
        assert all(r["attempts"] > 1 for r in answered.values())
    accepted = {e["event_id"]: e for e in sandbox.state.events()}
    assert set(accepted) == {*throttled, *service_error, *proxy_page, *told_to_wait}
    user = accepted["thr-0"]["user"]
    assert (user["external_id"], user["phone"]) == (EXTERNAL_ID_HASH, PHONE_HASH)
    waited = next(r["received_at"] for r in sandbox.state.received if r["events"][0]["event_id"] == "wait-0") - sent_at
    assert waited >= 4, f"sent again {waited:.1f} s after a 429 that said Retry-After: 4"
    requests = [line for line in metrics.splitlines() if line.startswith("web2app_tiktok_requests_total{")]
    assert any('code="other"' in line for line in requests) and not any("51010" in line for line in requests)
    assert any('code="40016"' in line for line in requests)
