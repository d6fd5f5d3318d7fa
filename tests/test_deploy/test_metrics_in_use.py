"""Every metric the chart's alerts and dashboard use is one a running worker exports."""

from __future__ import annotations

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.scenario import app_event, apply_integrations, click
from tests.support import Kafka
from tests.test_deploy.chart import metrics_the_chart_uses
from worker.tiktok.sandbox import Sandbox


async def test_every_metric_of_the_alerts_and_the_dashboard_is_exported(kafka: Kafka, worker_env, start_worker,
                                                                       tmp_path):
    used = metrics_the_chart_uses()  # rendered first: without Helm there is nothing to compare
    async with Sandbox() as sandbox, aiohttp.ClientSession() as session:
        env = {**worker_env, "TIKTOK_API_URL": sandbox.url, "TIKTOK_BATCH_LINGER_SECONDS": "0.1"}
        apply_integrations(env, [{"app_id": "app1", "pixel_id": "PIX1", "access_token": "tok_chart_0123456789"}],
                           tmp_path)
        worker = await start_worker(**env)
        sandbox.state.fail("throttle", count=1)  # the pixel's pause appears, then clears
        await kafka.produce("clicks", [(None, click(f"T{i}")) for i in range(5)])
        await kafka.produce("app-events", [(None, app_event(f"e{i}", f"T{i}")) for i in range(5)]
                            + [(None, b"not json")])
        await kafka.consume("delivery-results", 5, timeout=60)
        async with session.get(f"http://127.0.0.1:{worker.web_port}/metrics") as response:
            exposition = await response.text()
    samples = {s.name: s.value for family in text_string_to_metric_families(exposition) for s in family.samples}
    assert used - set(samples) == set(), "the chart uses metrics no worker exports"
    assert samples["web2app_ready"] == 1
