"""The real worker reads the input topics, re-keys by ttclid and dead-letters what it cannot use."""

import asyncio
import base64
import hashlib
import time

import orjson

from tests.support import Kafka, rekeyed_items

CLICK_URL = "https://app.example/?campaign_name=Spring%20Sale&adset_name=US-25&ad_name=Video-3&ttclid=E.C.P.abc"


async def test_records_are_rekeyed_by_ttclid_or_dead_lettered(kafka: Kafka, start_worker):
    await start_worker()
    await kafka.produce("clicks", [
        (None, {"app_id": "app1", "url": CLICK_URL, "occurred_at": "2026-11-24T16:00:00Z"}),
        ("k1", b"{not json"),
        ("k2", {"app_id": "app1", "url": "https://app.example/?campaign_name=x", "occurred_at": "2026-11-24T16:00:00Z"}),
    ])
    await kafka.produce("app-events", [
        ("any-key", {"event_id": "e1", "app_id": "app1", "name": "trial_started",
                     "occurred_at": "2026-11-24T17:00:00Z", "ttclid": "E.C.P.abc"}),
        (None, {"event_id": "e2", "app_id": "app1", "name": "trial_started", "occurred_at": 5}),
    ])

    rekeyed = rekeyed_items(await kafka.consume("by-ttclid", 1, until=lambda rs: len(rekeyed_items(rs)) >= 2))
    assert {(r["click"] if "click" in r else r["app_event"])["ttclid"] for r in rekeyed} == {"E.C.P.abc"}
    assert len({r["partition"] for r in rekeyed}) == 1, "a click and its app event must meet in one partition"
    click = next(r["click"] for r in rekeyed if "click" in r)
    assert (click["campaign_name"], click["adset_name"], click["ad_name"]) == ("Spring Sale", "US-25", "Video-3")

    dead = await kafka.consume("dead-letter", 3)
    by_reason = {r["value"]["reason"]: r["value"] for r in dead}
    assert set(by_reason) == {"invalid_json", "missing_ttclid", "schema_violation"}
    assert base64.b64decode(by_reason["invalid_json"]["value_b64"]) == b"{not json"
    assert "occurred_at" in by_reason["schema_violation"]["error"]


async def test_app_event_without_ttclid_is_skipped_as_unattributed(kafka: Kafka, start_worker):
    await start_worker()
    await kafka.produce("app-events", [(None, {"event_id": "e9", "app_id": "app1", "name": "trial_started",
                                               "occurred_at": "2026-11-24T17:00:00Z", "value": 4.99})])
    [result] = await kafka.consume("delivery-results", 1)
    assert result["key"] == "e9"
    assert result["value"]["status"] == "skipped"
    assert result["value"]["reason"] == "unattributed"
    assert result["value"]["value"] == 4.99


async def test_a_record_too_large_to_dead_letter_whole_costs_that_record_alone(kafka: Kafka, start_worker):
    await start_worker()
    huge = orjson.dumps({"app_id": "app1", "name": "trial_started", "occurred_at": "2026-11-24T17:00:00Z",
                         "pad": "x" * 900_000})  # no event_id: a schema violation of ~900 KB
    after = {"event_id": "e-after", "app_id": "app1", "name": "trial_started", "occurred_at": "2026-11-24T17:00:00Z"}
    await kafka.produce("app-events", [("same-partition", huge), ("same-partition", after)])

    [letter] = await kafka.consume("dead-letter", 1)
    assert letter["value"]["reason"] == "schema_violation"
    assert letter["value"]["value_truncated"] is True and letter["value"]["value_size"] == len(huge)
    assert letter["value"]["value_sha256"] == hashlib.sha256(huge).hexdigest()
    assert huge.startswith(base64.b64decode(letter["value"]["value_b64"]))
    [result] = await kafka.consume("delivery-results", 1)
    assert result["value"]["event_id"] == "e-after", "the partition goes on after the huge record"



async def test_an_upgrade_continues_the_inputs_where_the_faust_agent_committed_them(kafka: Kafka, worker_env,
                                                                                    start_worker):
    # The previous version read the inputs with a Faust agent (group `<prefix>worker`) and committed this far:
    await kafka.produce("app-events", [("one-partition", b"{read and committed long ago") for _ in range(20)])
    await kafka.commit_to_end("worker", "app-events")
    await start_worker()
    await kafka.produce("app-events", [("one-partition", {"event_id": "e-new", "app_id": "app1", "name": "x",
                                                          "occurred_at": "2026-11-24T17:00:00Z"})])
    [result] = await kafka.consume("delivery-results", 1)
    assert result["value"]["event_id"] == "e-new"
    assert await kafka.read("dead-letter", timeout=2) == [], "the records committed before were read again"


async def test_while_a_replica_before_0_2_0_is_in_the_join_group_by_ttclid_records_hold_one_item(
        kafka: Kafka, start_worker):
    # A replica of 0.1.0 reads by-ttclid records of one item keyed by its ttclid, and dead-letters records
    # of several. It runs under Faust's default client id, as this replica does (Faust's own variable):
    old = await start_worker(BROKER_CLIENT_ID="faust-0.15.3")
    await start_worker()

    def clicks(first: int) -> list:
        return [(None, {"app_id": "app1", "url": f"https://app.example/?ttclid=T{n}",
                        "occurred_at": "2026-11-24T16:00:00Z"}) for n in range(first, first + 50)]

    await kafka.produce("clicks", clicks(0))
    during = await kafka.consume("by-ttclid", 50)
    assert all(r["key"] == r["value"]["click"]["ttclid"] for r in during), [r for r in during if "items" in r["value"]][:1]

    old.terminate()
    batched: list = []
    first = 50
    deadline = time.monotonic() + 30  # the input stage looks at the join's group every 5 s
    while not batched and time.monotonic() < deadline:
        await kafka.produce("clicks", clicks(first))
        first += 50
        read = await kafka.consume("by-ttclid", 1, until=lambda rs: len(rekeyed_items(rs)) >= first)
        batched = [r for r in read if "items" in r["value"] and len(r["value"]["items"]) > 1]
        await asyncio.sleep(1)
    assert batched, "once the last replica before 0.2.0 has left, a record holds several items"
    assert await kafka.read("dead-letter", timeout=2) == []
