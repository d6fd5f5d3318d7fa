"""The first-run experience: the demo sends a funnel through a real worker (its clicks through the collector)
to the sandbox and shows results."""

import asyncio
import os
import subprocess
import sys

from tests.kafka_broker import REPO
from worker.tiktok.sandbox import Sandbox


async def test_the_demo_shows_every_app_event_reaching_its_final_result(kafka, worker_env, start_worker):
    async with Sandbox() as sandbox:
        env = {**worker_env, "TIKTOK_API_URL": sandbox.url, "COLLECTOR_ENABLED": "on"}
        worker = await start_worker(**env)
        demo = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "worker", "demo", "--visitors", "8", "--timeout", "60"],
            cwd=REPO, env={**os.environ, **env, "WEB_PORT": str(worker.web_port)}, capture_output=True, text=True,
            timeout=120)
        assert demo.returncode == 0, demo.stderr
        produced = int(demo.stdout.split(" app events;")[0].split()[-1])
        assert f"{produced} of {produced} app events have their final result" in demo.stdout
        assert "delivered" in demo.stdout and "Spring Sale" in demo.stdout
        assert len(sandbox.state.events()) > 0
        assert all(r["test_event_code"] == "TEST_DEMO" for r in sandbox.state.received)
    clicks = await kafka.read("clicks", 8)  # posted to the collector, as the landing script does
    assert len(clicks) == 8 and all(c["value"]["ip"] == "127.0.0.1" and c["value"]["ttp"] for c in clicks)
    assert f"http://127.0.0.1:{worker.web_port}/landing/demo?campaign_name=" in demo.stdout


async def test_the_demo_says_when_the_collector_is_off(worker_env, start_worker):
    worker = await start_worker(**worker_env)
    demo = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "worker", "demo", "--visitors", "2", "--timeout", "5"],
        cwd=REPO, env={**os.environ, **worker_env, "WEB_PORT": str(worker.web_port)}, capture_output=True, text=True,
        timeout=120)
    assert demo.returncode != 0 and "COLLECTOR_ENABLED=on" in demo.stderr and "Traceback" not in demo.stderr
