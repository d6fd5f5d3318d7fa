"""Replay: events that failed during an outage are listed with --dry-run, then sent and finished anew."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

from tests.kafka_broker import REPO
from datetime import datetime, timedelta, timezone

import pytest

from tests.scenario import app_event, apply_integrations, click, iso
from tests.support import Kafka
from worker.delivery.replay import as_now, latest_per_event, refusal, selected
from worker.integrations.config import parse_integration
from worker.tiktok.sandbox import Sandbox

DAY = 86400
NOW = 1_800_000_000.0


@pytest.mark.parametrize(("age_days", "force", "says"), [
    (1, False, None), (3, False, "past TikTok's 48-hour dedup window"), (3, True, None),
    (8, False, "older than the maximum event age (8.0 > 7 days)"),
    (8, True, "the worker would expire it unsent, --force or not"),
])
def test_force_passes_the_dedup_window_but_never_the_maximum_age(age_days, force, says):
    why_not = refusal({"occurred_ts": NOW - age_days * DAY}, NOW, 7 * DAY, force)
    assert why_not == says if says is None else says in why_not


def kept(event_id: str, finished_at: str, **outbox) -> dict:
    record = {"event_id": event_id, "app_id": "app1", "name": "trial_started", "tiktok_event": "StartTrial",
              "pixel_id": "PIX-old", "test_event_code": None, "limited_data_use": False, **outbox}
    return {"event_id": event_id, "app_id": "app1", "reason": "retries_exhausted", "finished_at": finished_at,
            "outbox_record": record}


def test_each_event_is_replayed_once_by_its_latest_dead_letter():
    letters = [kept("e1", "2026-11-24T10:00:00.000Z"), kept("e2", "2026-11-24T09:00:00.000Z"),
               kept("e1", "2026-11-24T12:00:00.000Z", tiktok_event="Later")]
    assert [(d["event_id"], d["finished_at"][11:13]) for d in latest_per_event(letters)] == [("e2", "09"),
                                                                                              ("e1", "12")]


def test_since_and_until_are_utc_times():
    letter = kept("e1", "2026-11-24T10:00:00.000Z")
    utc = lambda *t: datetime(*t, tzinfo=timezone.utc)  # noqa: E731  (what the command makes of --since)
    assert selected(letter, (), (), utc(2026, 11, 24, 10, 0), utc(2026, 11, 24, 10, 0, 1))
    assert not selected(letter, (), (), utc(2026, 11, 24, 10, 0, 1), None)
    assert not selected(letter, (), (), None, utc(2026, 11, 24, 9, 59, 59))


def test_a_replay_applies_the_integration_as_it_is_now():
    record = kept("e1", "2026-11-24T10:00:00.000Z")["outbox_record"]
    now = parse_integration({"app_id": "app1", "pixel_id": "PIX-new", "access_token": "tok_replay_now_0123456789",
                             "test_event_code": "TEST7", "limited_data_use": True,
                             "events": {"trial_started": {"name": "TrialBegun"}}})
    resent, why_not = as_now(record, {"app1": now})
    assert why_not is None
    assert (resent["pixel_id"], resent["tiktok_event"], resent["test_event_code"], resent["limited_data_use"]) == (
        "PIX-new", "TrialBegun", "TEST7", True)
    off = parse_integration({"app_id": "app1", "pixel_id": "PIX-new", "access_token": "tok_replay_now_0123456789",
                             "enabled": False})
    assert as_now(record, {"app1": off}) == (None, "not sent under the integration as it is now "
                                                   "(integration_disabled)")
    assert as_now(record, {}) == (None, "no integration for the app now (no_integration)")
    assert as_now(record, {"app1": None})[1] == "the app's integration is unusable now (integration_invalid)"


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


async def test_a_replay_sends_each_event_once_under_the_integration_as_it_is_now(kafka: Kafka, worker_env,
                                                                               start_worker, tmp_path):
    async with Sandbox() as sandbox:
        env = {**worker_env, "TIKTOK_API_URL": sandbox.url, "TIKTOK_BATCH_LINGER_SECONDS": "0.1",
               "TIKTOK_RETRY_MAX_ATTEMPTS": "2", "TIKTOK_RETRY_BASE_SECONDS": "0.1"}
        token = "tok_replay_now_0123456789"
        apply_integrations(env, [{"app_id": "app1", "pixel_id": "PIX1", "access_token": token},
                                 {"app_id": "app2", "pixel_id": "PIX2", "access_token": token}], tmp_path)
        await start_worker(**env)
        sandbox.state.fail("http500")
        ages = {"e1": 0, "e2": 0, "e-old": 3, "e-ancient": 8}
        await kafka.produce("clicks", [(None, click(f"T-{e}")) for e in ages] + [(None, click("T-a2", app_id="app2"))])
        await kafka.produce("app-events", [(None, app_event(e, f"T-{e}", occurred_at=iso(time.time() - d * 86400)))
                                           for e, d in ages.items()]
                            + [(None, app_event("e-a2", "T-a2", app_id="app2"))])
        first = await kafka.consume("delivery-results", 5, timeout=60)
        assert {r["value"]["status"] for r in first} == {"failed"}
        [e1_letter] = [d for d in await kafka.read("dead-letter", 5, timeout=30) if d["value"]["event_id"] == "e1"]
        await kafka.produce("dead-letter", [(e1_letter["key"], e1_letter["value"])])  # kept twice: sent once
        sandbox.state.fail("ok")
        apply_integrations(env, [{"app_id": "app1", "pixel_id": "PIX9", "access_token": token,
                                  "test_event_code": "TEST7", "events": {"trial_started": {"name": "TrialBegun"}}},
                                 {"app_id": "app2", "pixel_id": "PIX2", "access_token": token, "enabled": False}],
                           tmp_path)

        since = (datetime.now(timezone.utc) - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%S")
        west_of_utc = {**env, "TZ": "Etc/GMT+5"}  # a local clock 5 h behind UTC must not shift --since
        listed = await asyncio.to_thread(replay, west_of_utc, "--dry-run", "--since", since)
        assert "2 of 5 selected events would be sent again" in listed
        assert "e-old  app1  retries_exhausted" in listed and "(--force sends it)" in listed
        assert "e-ancient  app1  expired" in listed and "the worker would expire it unsent, --force or not" in listed
        assert "e-a2  app2  retries_exhausted" in listed and "(integration_disabled)" in listed
        assert listed.count("e1  app1") == 1

        output = await asyncio.to_thread(replay, west_of_utc, "--force", "--since", since)
        assert "3 of 5 selected events sent again" in output
        results = await kafka.consume("delivery-results", 8, timeout=60)
    by_event: dict[str, list[tuple[str, bool]]] = {}
    for r in sorted(results, key=lambda r: r["value"]["finished_at"]):
        by_event.setdefault(r["value"]["event_id"], []).append((r["value"]["status"], r["value"]["replayed"]))
    assert by_event == {**{e: [("failed", False), ("delivered", True)] for e in ("e1", "e2", "e-old")},
                        "e-ancient": [("failed", False)], "e-a2": [("failed", False)]}
    sent = sandbox.state.received
    assert sorted(e["event_id"] for r in sent for e in r["events"]) == ["e-old", "e1", "e2"]
    assert {(r["pixel_id"], r["test_event_code"]) for r in sent} == {("PIX9", "TEST7")}
    assert {e["event"] for r in sent for e in r["events"]} == {"TrialBegun"}
