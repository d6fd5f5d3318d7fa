"""The RocksDB store (`STATE_STORE=rocksdb`): a replica that starts again on its data directory.

A real worker joins clicks and stops; another starts on the same directory and must hold every state
without Faust's recovery reading the changelog again (Faust decides that from the changelog offset
each partition's database holds, which the join writes itself: `worker/attribution/storage.py`), and
join app events with those clicks. A replica on an empty directory rebuilds from the changelog instead.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import aiohttp

from tests.scenario import app_event, apply_integrations, click
from tests.support import Kafka
from tests.test_attribution.test_resilience import campaign_of, cli_env, integration, random_key
from tests.test_operations.test_web import get, samples

N = 300


async def metric(worker, name: str) -> float:
    async with aiohttp.ClientSession() as session:
        _, text = await get(session, f"http://127.0.0.1:{worker.web_port}/metrics")
    return samples(text)[(name, ())]


async def test_a_worker_restarted_on_its_data_directory_keeps_every_state_and_replays_no_changelog(
        kafka: Kafka, start_worker, worker_env: dict[str, str], tmp_path: Path):
    apply_integrations(cli_env(worker_env), [integration()], tmp_path)
    rocksdb = {"STATE_STORE": "rocksdb", "DATA_DIR": str(tmp_path / "kept")}
    run = uuid.uuid4().hex[:6]
    ttclids = [f"S{run}-{i}" for i in range(N)]

    first = await start_worker(**rocksdb)
    await kafka.produce("clicks", [(random_key(), click(t, campaign=campaign_of(t))) for t in ttclids])
    await kafka.consume("worker-ttclids-changelog", N, timeout=60)
    assert first.terminate() == 0

    again = await start_worker(**rocksdb)
    assert await metric(again, "web2app_states_restored_total") == 0
    await kafka.produce("app-events", [(random_key(), app_event(f"{t}-e", t)) for t in ttclids])
    outbox = [r["value"] for r in await kafka.consume("outbox", N, timeout=60)]
    assert sorted(r["event_id"] for r in outbox) == sorted(f"{t}-e" for t in ttclids)
    assert all(r["enriched"] and r["campaign_name"] == campaign_of(r["ttclid"]) for r in outbox)
    assert again.terminate() == 0

    # The same changelog, an empty directory: a full rebuild reads every state again.
    fresh = await start_worker(STATE_STORE="rocksdb", DATA_DIR=str(tmp_path / "fresh"))
    assert await metric(fresh, "web2app_states_restored_total") >= N
