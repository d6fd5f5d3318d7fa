"""Access tokens never leave the worker: not in its output, results, dead letters or the outbox."""

from __future__ import annotations

import subprocess
import sys

import orjson

from tests.kafka_broker import REPO
from tests.scenario import app_event, apply_integrations, click
from tests.support import Kafka
from worker.tiktok.sandbox import Sandbox

TOKEN = "tok_SECRET_5f1e2d3c4b5a69788796a5b4"
REVOKED = "tok_REVOKED_aa11bb22cc33dd44ee55"


async def test_a_known_token_appears_in_no_byte_the_worker_writes(kafka: Kafka, worker_env, start_worker, tmp_path):
    async with Sandbox(revoked_tokens=[REVOKED]) as sandbox:
        env = {**worker_env, "TIKTOK_API_URL": sandbox.url, "TIKTOK_BATCH_LINGER_SECONDS": "0.1",
               "LOG_LEVEL": "debug"}
        cli_output = apply_integrations(env, [
            {"app_id": "app1", "pixel_id": "PIX1", "access_token": TOKEN},
            {"app_id": "app_revoked", "pixel_id": "PIX2", "access_token": REVOKED}], tmp_path)
        # An integration that bypassed the CLI's validation, with its token in it.
        await kafka.produce("integrations", [("app_bad", {"app_id": "app_bad", "pixel_id": "PIX3",
                                                          "access_token": TOKEN, "enabled": "yes"})])
        worker = await start_worker(**env)
        await kafka.produce("clicks", [(None, click(f"T{i}", app_id=app)) for i, app in
                                       enumerate(["app1", "app_revoked", "app_bad"])])
        await kafka.produce("app-events", [(None, app_event(f"e{i}", f"T{i}", app_id=app)) for i, app in
                                           enumerate(["app1", "app_revoked", "app_bad"])]
                            + [(None, b"{broken")])
        results = await kafka.consume("delivery-results", 3, timeout=60)
        by_app = {r["value"]["app_id"]: r["value"] for r in results}
        assert by_app["app1"]["status"] == "delivered"
        assert (by_app["app_revoked"]["status"], by_app["app_revoked"]["tiktok_code"]) == ("rejected", 40105)
        assert (by_app["app_bad"]["status"], by_app["app_bad"]["reason"]) == ("skipped", "integration_invalid")
        listed = subprocess.run([sys.executable, "-m", "worker", "integrations", "list"], cwd=REPO, env=env,
                                capture_output=True, text=True, timeout=60)
        assert "app_bad" in listed.stdout
        records = [r for name in ("delivery-results", "outbox", "dead-letter") for r in await kafka.read(name, timeout=2)]
        written = b"".join(orjson.dumps(r) for r in records)
        worker.kill()
    assert sandbox.state.received[0]["access_token"] == TOKEN, "the token did reach TikTok"
    assert b"invalid_json" in written, "the broken record is dead-lettered"
    for place, text in {"worker output": worker.output(), "apply output": cli_output,
                        "list output": listed.stdout + listed.stderr,
                        "results, outbox and dead letters": written.decode()}.items():
        for secret in (TOKEN, REVOKED):
            assert secret not in text, f"{secret} found in the {place}"
