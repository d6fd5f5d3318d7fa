"""The join on the real broker: one worker run plays every scenario, each test checks its own records."""

from __future__ import annotations

import asyncio
import os
import uuid
from dataclasses import dataclass

import pytest

from tests.scenario import app_event, apply_integrations, click, iso
from tests.support import NO_TIKTOK, Kafka, WorkerProcess

GRACE = 5
TOKEN = "tok_attribution_0123456789"


def integration(app_id: str, **fields) -> dict:
    return {"app_id": app_id, "pixel_id": f"PIX-{app_id}", "access_token": TOKEN, **fields}


@dataclass
class Outcome:
    outbox: dict[str, list[dict]]
    results: dict[str, list[dict]]
    dead: list[dict]


async def play(kafka: Kafka, env: dict[str, str], tmp) -> Outcome:
    apply_integrations(env, [integration("app1"), integration("app_off", enabled=False),
                             integration("app_ren", events={"trial_started": {"name": "TrialBegun"},
                                                            "paywall_shown": {"enabled": True}}),
                             integration("app_chg", enabled=False)], tmp)
    worker = WorkerProcess(env, tmp / "worker.log").start()
    try:
        await worker.wait_ready()
        now = __import__("time").time()
        await kafka.produce("clicks", [
            (None, click("T-before")),
            (None, click("T-two", campaign="Old", occurred_at=iso(now - 60))),
            (None, click("T-two", campaign="New", occurred_at=iso(now - 10))),
            (None, click("T-two", campaign="Stale", occurred_at=iso(now - 30))),
            (None, click("T-unknown", app_id="app_unknown")),
            (None, click("T-off", app_id="app_off")),
            (None, click("T-ren", app_id="app_ren")),
            (None, click("T-dup")),
            ("some-key", {"app_id": "app1", "url": "https://app.example/?x=1", "occurred_at": iso()}),
        ])
        await kafka.produce("app-events", [
            (None, app_event("e-before", "T-before")),
            (None, app_event("e-within", "T-within")),
            (None, app_event("e-past", "T-past")),
            (None, app_event("e-two", "T-two")),
            (None, app_event("e-nottclid", None)),
            (None, app_event("e-unknown", "T-unknown", app_id="app_unknown")),
            (None, app_event("e-off", "T-off", app_id="app_off")),
            (None, app_event("e-disabled", "T-before", name="paywall_shown")),
            (None, app_event("e-cancel", "T-before", name="subscription_cancelled")),
            (None, app_event("e-ren", "T-ren", app_id="app_ren")),
            (None, app_event("e-ren-pw", "T-ren", name="paywall_shown", app_id="app_ren")),
            (None, app_event("e-dup", "T-dup")),
            (None, app_event("e-dup", "T-dup")),
            (None, app_event("e-chg-1", "T-chg", app_id="app_chg")),
            ("k", b"\xff\xfe not json"),
            (None, {"event_id": "e-schema", "app_id": "app1", "name": "trial_started", "occurred_at": iso(),
                    "value": "a lot"}),
        ])
        await asyncio.sleep(1)
        await kafka.produce("clicks", [(None, click("T-within", campaign="Late"))])
        await kafka.consume("delivery-results", 7, timeout=30)
        apply_integrations(env, [integration("app_chg")], tmp)
        await asyncio.sleep(2)  # the global table picks the change up without a restart
        await kafka.produce("app-events", [(None, app_event("e-chg-2", "T-chg", app_id="app_chg"))])
        await kafka.consume("outbox", 8, timeout=GRACE + 30)
        await kafka.produce("clicks", [(None, click("T-past", campaign="TooLate"))])
        await asyncio.sleep(3)
        outbox = await kafka.read("outbox", timeout=3)
        results = await kafka.read("delivery-results", timeout=3)
        dead = await kafka.read("dead-letter", timeout=3)
    finally:
        worker.kill()
    by_id = lambda records: {r["value"]["event_id"]: [x["value"] for x in records
                                                     if x["value"]["event_id"] == r["value"]["event_id"]]
                             for r in records}
    return Outcome(by_id(outbox), by_id(results), [r["value"] for r in dead])


@pytest.fixture(scope="module")
def outcome(kafka_bootstrap, tmp_path_factory) -> Outcome:
    kafka = Kafka(kafka_bootstrap, f"t{uuid.uuid4().hex[:10]}.")
    tmp = tmp_path_factory.mktemp("attribution")
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "TOPIC_PREFIX": kafka.prefix,
           "TOPIC_PARTITIONS": "4", "DATA_DIR": str(tmp / "data"), "CLICK_GRACE_SECONDS": str(GRACE),
           "JOIN_BATCH_LINGER_SECONDS": "0.02", "TIKTOK_API_URL": NO_TIKTOK}
    return asyncio.run(play(kafka, env, tmp))


def test_click_before_app_event_enriches_it(outcome):
    [record] = outcome.outbox["e-before"]
    assert record["enriched"] is True
    assert (record["campaign_name"], record["adset_name"], record["ad_name"]) == ("Spring", "US-25", "Video-3")
    assert (record["ttp"], record["ip"], record["user_agent"]) == (
        "2F7h37YkS1j57AYSKTI7IHhJPYH", "203.0.113.5", "Mozilla/5.0 (iPhone)")
    assert record["url"].startswith("https://app.example/") and record["referrer"] == "https://www.tiktok.com/"
    assert (record["pixel_id"], record["tiktok_event"]) == ("PIX-app1", "StartTrial")


def test_app_event_before_its_click_waits_for_it(outcome):
    [record] = outcome.outbox["e-within"]
    assert record["enriched"] is True and record["campaign_name"] == "Late"


def test_app_event_whose_click_comes_after_the_grace_period_is_sent_once_without_enrichment(outcome):
    [record] = outcome.outbox["e-past"]
    assert record["enriched"] is False and "campaign_name" not in record
    assert record["ttclid"] == "T-past"


def test_latest_click_wins(outcome):
    [record] = outcome.outbox["e-two"]
    assert record["campaign_name"] == "New"


@pytest.mark.parametrize("event_id, reason", [
    ("e-nottclid", "unattributed"), ("e-unknown", "no_integration"), ("e-off", "integration_disabled"),
    ("e-disabled", "event_disabled"), ("e-cancel", "event_disabled"), ("e-chg-1", "integration_disabled"),
])
def test_events_not_sent_get_a_skipped_result_with_the_reason(outcome, event_id, reason):
    [result] = outcome.results[event_id]
    assert (result["status"], result["reason"]) == ("skipped", reason)
    assert event_id not in outcome.outbox


def test_skipped_results_carry_the_attribution(outcome):
    [result] = outcome.results["e-off"]
    assert (result["campaign_name"], result["adset_name"], result["ad_name"]) == ("Spring", "US-25", "Video-3")
    assert result["enriched"] is True and result["pixel_id"] == "PIX-app_off"


def test_renamed_and_enabled_events_follow_the_integration(outcome):
    assert [r["tiktok_event"] for r in outcome.outbox["e-ren"]] == ["TrialBegun"]
    assert [r["tiktok_event"] for r in outcome.outbox["e-ren-pw"]] == ["ViewContent"]


def test_a_repeated_event_id_is_sent_once_and_the_repeat_is_skipped_as_duplicate(outcome):
    assert len(outcome.outbox["e-dup"]) == 1
    [result] = outcome.results["e-dup"]
    assert (result["status"], result["reason"]) == ("skipped", "duplicate")


def test_an_integration_change_takes_effect_without_a_restart(outcome):
    [record] = outcome.outbox["e-chg-2"]
    assert record["pixel_id"] == "PIX-app_chg"


def test_bad_records_go_to_the_dead_letter_topic_and_the_rest_flows(outcome):
    assert sorted(d["reason"] for d in outcome.dead) == ["invalid_json", "missing_ttclid", "schema_violation"]


def test_no_access_token_in_outbox_or_results(outcome):
    everything = repr(outcome.outbox) + repr(outcome.results) + repr(outcome.dead)
    assert TOKEN not in everything
