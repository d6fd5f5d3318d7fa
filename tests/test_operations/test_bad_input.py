"""10,000 malformed records through the real worker: each one dead-lettered with its reason and
original bytes, no crash, no stall, and the good records around them still delivered."""

from __future__ import annotations

import base64
import random
from collections import Counter

import orjson

from tests.scenario import app_event, apply_integrations, click, iso
from tests.support import Kafka
from worker.tiktok.sandbox import Sandbox


def malformed(rng: random.Random, i: int) -> bytes:
    kind = i % 8
    if kind == 0:  # broken UTF-8
        return b'{"app_id": "\xff\xfe\xfa", "n": ' + str(i).encode() + b"}"
    if kind == 1:  # huge value of the wrong type
        return orjson.dumps({"event_id": f"h{i}", "app_id": "a", "name": "x", "occurred_at": iso(),
                             "value": "9" * rng.randint(10_000, 100_000)})
    if kind == 2:  # deep nesting
        return b"[" * 3000 + str(i).encode() + b"]" * 3000
    if kind == 3:  # wrong types
        return orjson.dumps({"event_id": i, "app_id": ["a"], "name": None, "occurred_at": 5, "url": {}})
    if kind == 4:  # missing fields
        return orjson.dumps({"n": i, "app_id": "a"})
    if kind == 5:  # valid JSON of the wrong shape
        return orjson.dumps(rng.choice([[1, 2, i], f"text {i}", i, None, True]))
    if kind == 6:  # truncated
        return orjson.dumps({"event_id": f"t{i}", "app_id": "a"})[:-3]
    return b"\x00" * rng.randint(1, 50) + str(i).encode()  # binary noise


async def test_ten_thousand_malformed_records_are_dead_lettered_and_good_ones_delivered(
        kafka: Kafka, worker_env, start_worker, tmp_path):
    rng = random.Random(2026)
    bad = [malformed(rng, i) for i in range(10_000)]
    async with Sandbox() as sandbox:
        env = {**worker_env, "TIKTOK_API_URL": sandbox.url, "TIKTOK_BATCH_LINGER_SECONDS": "0.2"}
        apply_integrations(env, [{"app_id": "app1", "pixel_id": "PIX1", "access_token": "tok_bad_input_0123456"}],
                           tmp_path)
        await start_worker(**env)
        good_ids = []
        for chunk in range(10):
            part = bad[chunk * 1000:(chunk + 1) * 1000]
            ids = [f"good-{chunk}-{i}" for i in range(10)]
            good_ids += ids
            await kafka.produce("clicks", [(None, raw) for raw in part[:500]]
                                + [(None, click(f"T-{e}")) for e in ids])
            await kafka.produce("app-events", [(None, raw) for raw in part[500:]]
                                + [(None, app_event(e, f"T-{e}")) for e in ids])
        dead = await kafka.consume("dead-letter", 10_000, timeout=180)
        results = await kafka.consume("delivery-results", len(good_ids), timeout=120)
    assert len(dead) == 10_000
    assert Counter(base64.b64decode(d["value"]["value_b64"]) for d in dead) == Counter(bad)
    reasons = Counter(d["value"]["reason"] for d in dead)
    assert set(reasons) <= {"invalid_json", "schema_violation", "missing_ttclid"}, reasons
    assert all(d["value"]["error"] for d in dead)
    assert {r["value"]["event_id"]: r["value"]["status"] for r in results} == {e: "delivered" for e in good_ids}
    assert len(sandbox.state.events()) == len(good_ids)
