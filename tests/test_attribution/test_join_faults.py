"""The join on the real broker when one record cannot be handled: it costs that record alone."""

import asyncio
import base64
import os

import orjson

from tests.scenario import apply_integrations
from tests.support import Kafka


async def test_a_record_the_join_cannot_handle_is_dead_lettered_and_its_batch_goes_on(
        kafka: Kafka, start_worker, worker_env, tmp_path):
    apply_integrations({**os.environ, **worker_env},
                       [{"app_id": "app1", "pixel_id": "PIX1", "access_token": "tok_join_errors_0123"}], tmp_path)
    await start_worker(TIKTOK_DRY_RUN="on")
    deep: dict = {}
    for _ in range(250):
        deep = {"d": deep}
    waiting = {"event_id": "e-deep", "app_id": "app1", "name": "trial_started",
               "occurred_at": "2026-11-24T17:00:00Z", "ttclid": "T-join", "user": {"id": "u1", "extra": deep}}
    await kafka.produce("app-events", [(None, waiting)])
    # Records on the join's own topic that no stage wrote, neither naming an app event's source: one as
    # the version before wrote them (one item, keyed by its ttclid), and an item of a record as written
    # now, followed in it by the click the waiting event needs (the key only picks T-join's partition).
    click = {"ttclid": "T-join", "app_id": "app1", "url": "https://app.example/?campaign_name=Spring&ttclid=T-join",
             "campaign_name": "Spring", "occurred_at": "2026-11-24T16:00:00Z", "occurred_ts": 1795968000.0,
             "read_ms": 1795968000000.0}
    broken = {"app_event": {"event_id": "e-broken-2", "ttclid": "T-join"}}
    await kafka.produce("by-ttclid", [("T-join", {"app_event": {"event_id": "e-broken"}}),
                                      ("T-join", {"items": [broken, {"click": click}]})])

    letters = await kafka.consume("dead-letter", 2)
    assert all(letter["value"]["reason"] == "internal_error" and letter["value"]["topic"].endswith("by-ttclid")
               and "KeyError" in letter["value"]["error"] for letter in letters)
    assert {orjson.loads(base64.b64decode(letter["value"]["value_b64"]))["app_event"]["event_id"]
            for letter in letters} == {"e-broken", "e-broken-2"}, "each letter holds its item alone"
    await kafka.consume("outbox", 1)
    await asyncio.sleep(20)  # a batch that failed would be read again within ~15 s
    outbox = await kafka.read("outbox", timeout=2)
    assert [(r["value"]["event_id"], r["value"]["enriched"]) for r in outbox] == [("e-deep", True)]
