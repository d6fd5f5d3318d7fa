"""A visit from a TikTok ad, as a person makes it: headless Chromium opens a landing page that loads the
worker's landing script; the click reaches the topic, the app event joins it, TikTok gets it enriched."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time

import orjson
import pytest
from aiohttp import web

from tests.kafka_broker import REPO, free_port
from tests.scenario import app_event, apply_integrations
from tests.support import Kafka
from worker.collect.clicks import AD_URL_PARAMETERS
from worker.tiktok.sandbox import Sandbox

TTP = "2F7h37YkS1j57AYSKTI7IHhJPYH"
TTCLID = "E.C.P.chromium-visit-1"
# As TikTok fills in the ad URL parameters: names with spaces, #, &, %, emoji and non-Latin scripts, unencoded.
AD_QUERY = f"campaign_name=Spring Sale #1 🚀&adset_name=東京 25-34&ad_name=50% off & more&ttclid={TTCLID}"


def landing_page(worker_port: int) -> str:
    return f"""<!doctype html><html><head><meta charset="utf-8">
<script async src="http://127.0.0.1:{worker_port}/landing.js" data-app-id="app1"></script>
<script>
  // The TikTok pixel sets _ttp once it has loaded: a moment after the page.
  setTimeout(function () {{ document.cookie = "_ttp={TTP}; path=/"; }}, 300);
  document.addEventListener("web2app:click", function (event) {{
    document.getElementById("status").textContent = "collector answered " + event.detail.status;
  }});
</script></head>
<body><p id="status">not sent</p><p id="ua"></p>
<script>document.getElementById("ua").textContent = navigator.userAgent;</script></body></html>"""


async def serve_landing_page(port: int, worker_port: int) -> web.AppRunner:
    page = landing_page(worker_port)

    async def get(request: web.Request) -> web.Response:
        return web.Response(text=page, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", get)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        message = "chromium is not installed (scripts/test installs it with apt-get)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


async def test_a_visit_from_a_tiktok_ad_reaches_tiktok_enriched_with_the_page_ip_browser_and_ttp(
        kafka: Kafka, worker_env, start_worker, tmp_path):
    browser = chromium()
    async with Sandbox() as sandbox:
        env = {**worker_env, "TIKTOK_API_URL": sandbox.url, "TIKTOK_BATCH_LINGER_SECONDS": "0.1"}
        applied = apply_integrations(env, [{"app_id": "app1", "pixel_id": "PIX1", "access_token": "tok_landing_0123"}],
                                     tmp_path)
        assert AD_URL_PARAMETERS in applied and f"https://yourapp.example/landing?{AD_URL_PARAMETERS}" in applied
        listed = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "worker", "integrations", "list"],
                                         cwd=REPO, env={**os.environ, **env}, capture_output=True, timeout=60)
        assert orjson.loads(listed.stdout)[0]["ad_url_parameters"] == AD_URL_PARAMETERS

        landing_port = free_port()  # the landing page is on a site of its own: the collector must allow it
        worker = await start_worker(**env, COLLECTOR_ENABLED="on",
                                    COLLECTOR_ALLOWED_ORIGINS=f"http://127.0.0.1:{landing_port}")
        runner = await serve_landing_page(landing_port, worker.web_port)
        try:
            ad_url = f"http://127.0.0.1:{landing_port}/?{AD_QUERY}"
            dom = await asyncio.to_thread(
                subprocess.run, [browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
                                 "--dump-dom", ad_url], capture_output=True, text=True, timeout=120)
        finally:
            await runner.cleanup()
        assert "collector answered 202" in dom.stdout, dom.stdout + dom.stderr[-2000:]
        user_agent = dom.stdout.split('<p id="ua">')[1].split("</p>")[0].replace("&amp;", "&")

        [record] = await kafka.consume("clicks", 1)
        assert record["key"] == TTCLID
        click = record["value"]
        assert (click["app_id"], click["ttp"], click["ip"], click["user_agent"]) == ("app1", TTP, "127.0.0.1",
                                                                                    user_agent)
        await kafka.produce("app-events", [(None, app_event("e-landing-1", TTCLID, name="trial_started"))])
        result = (await kafka.consume("delivery-results", 1))[0]["value"]
        deadline = time.monotonic() + 10
        while not sandbox.state.events() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)

    assert (result["status"], result["enriched"]) == ("delivered", True)
    assert (result["campaign_name"], result["adset_name"], result["ad_name"]) == (
        "Spring Sale #1 🚀", "東京 25-34", "50% off & more")
    [sent] = sandbox.state.events()
    assert sent["user"]["ttclid"] == TTCLID and sent["user"]["ttp"] == TTP
    assert sent["user"]["ip"] == "127.0.0.1" and sent["user"]["user_agent"] == user_agent
    assert sent["page"]["url"] == click["url"] and click["url"].endswith(f"&ttclid={TTCLID}")
