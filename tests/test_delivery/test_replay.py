"""Replay: events that failed during an outage are listed with --dry-run, then sent and finished anew."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

from tests.kafka_broker import REPO
from tests.scenario import app_event, apply_integrations, click, iso
from tests.support import Kafka
from worker.tiktok.sandbox import Sandbox


def replay(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "worker", "replay", *args], cwd=REPO, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_failed_events_are_listed_then_replayed_to_a_new_final_result(kafka: Kafka, worker_env, start_worker,
                                                                           tmp_path):
    async with Sandbox() as sandbox:
        env = {**worker_env, "TIKTOK_API_URL": sandbox.url, "TIKTOK_BATCH_LINGER_SECONDS": "0.1",
               "TIKTOK_RETRY_MAX_ATTEMPTS": "2", "TIKTOK_RETRY_BASE_SECONDS": "0.1"}
        apply_integrations(env, [{"app_id": "app1", "pixel_id": "PIX1", "access_token": "tok_replay_0123456789"},
                                 {"app_id": "app2", "pixel_id": "PIX2", "access_token": "tok_replay_other_0123"}],
                           tmp_path)
        await start_worker(**env)
        sandbox.state.fail("http500")  # an outage longer than the retry budget
        old = iso(time.time() - 3 * 86400)
        await kafka.produce("clicks", [(None, click(f"T{i}", app_id="app1")) for i in range(6)]
                            + [(None, click("T-app2", app_id="app2"))])
        await kafka.produce("app-events", [(None, app_event(f"e{i}", f"T{i}", app_id="app1")) for i in range(5)]
                            + [(None, app_event("e-old", "T5", app_id="app1", occurred_at=old)),
                               (None, app_event("e-app2", "T-app2", app_id="app2"))])
        first = await kafka.consume("delivery-results", 7, timeout=60)
        assert {r["value"]["status"] for r in first} == {"failed"}
        sandbox.state.fail("ok")

        listed = await asyncio.to_thread(replay, env, "--dry-run", "--app", "app1", "--reason", "retries_exhausted")
        assert all(f"e{i}  app1  retries_exhausted" in listed for i in range(5))
        assert "e-old" in listed and "refused: past TikTok's 48-hour dedup window" in listed
        assert "e-app2" not in listed
        assert "5 of 6 selected events would be sent again" in listed
        assert sandbox.state.received == []

        await asyncio.to_thread(replay, env, "--app", "app1")
        results = await kafka.consume("delivery-results", 12, timeout=60)
    latest = {r["value"]["event_id"]: r["value"]["status"] for r in results}
    assert {e: latest[e] for e in [f"e{i}" for i in range(5)]} == {f"e{i}": "delivered" for i in range(5)}
    assert latest["e-old"] == "failed" and latest["e-app2"] == "failed"
    assert sorted(e["event_id"] for e in sandbox.state.events()) == [f"e{i}" for i in range(5)]
