"""The first-run experience: the demo sends a funnel through a real worker to the sandbox and shows results."""

import asyncio
import os
import subprocess
import sys

from tests.kafka_broker import REPO
from worker.tiktok.sandbox import Sandbox


async def test_the_demo_shows_every_app_event_reaching_its_final_result(worker_env, start_worker):
    async with Sandbox() as sandbox:
        env = {**worker_env, "TIKTOK_API_URL": sandbox.url}
        await start_worker(**env)
        demo = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "worker", "demo", "--visitors", "8", "--timeout", "60"],
            cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True, timeout=120)
        assert demo.returncode == 0, demo.stderr
        produced = int(demo.stdout.split(" app events;")[0].split()[-1])
        assert f"{produced} of {produced} app events have their final result" in demo.stdout
        assert "delivered" in demo.stdout and "Spring Sale" in demo.stdout
        assert len(sandbox.state.events()) > 0
        assert all(r["test_event_code"] == "TEST_DEMO" for r in sandbox.state.received)
