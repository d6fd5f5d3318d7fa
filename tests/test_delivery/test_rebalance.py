"""Rebalances hand work over cleanly: the replica giving up a pixel stops sending for it before the
new owner starts (real broker, two real worker processes, the sandbox)."""

from __future__ import annotations

import asyncio
from collections import Counter

from tests.scenario import apply_integrations
from tests.test_delivery.test_agents import delivery_env, finals_by_id, funnel, integration, sandbox  # noqa: F401

PIXELS = 8


async def test_a_pixel_given_up_on_a_rebalance_is_never_sent_to_by_two_replicas(
        kafka, delivery_env, sandbox, start_worker, tmp_path):
    apply_integrations(delivery_env, [integration(f"app{i}") for i in range(PIXELS)], tmp_path)
    env = {**delivery_env, "TIKTOK_BATCH_LINGER_SECONDS": "0.1", "TIKTOK_RETRY_CAP_SECONDS": "1",
           "TIKTOK_RETRY_MAX_ATTEMPTS": "1000"}
    sandbox.state.fail("http500")  # every pixel keeps failing: the first replica retries all of them
    await start_worker(**{**env, "TIKTOK_API_URL": f"{sandbox.url}?replica=a"})
    ids = [i for n in range(PIXELS) for i in await funnel(kafka, f"app{n}", 20, prefix=f"p{n}")]
    await asyncio.sleep(8)
    await start_worker(**{**env, "TIKTOK_API_URL": f"{sandbox.url}?replica=b"})  # takes over half the partitions
    await asyncio.sleep(10)
    sandbox.state.fail("ok")
    await kafka.consume("delivery-results", len(ids), timeout=90,
                        until=lambda rs: {r["value"]["event_id"] for r in rs} >= set(ids))

    moved = 0
    for pixel in {a["pixel_id"] for a in sandbox.state.attempts}:
        sends = [(a["monotonic"], a["sender"]) for a in sandbox.state.attempts if a["pixel_id"] == pixel]
        taken_over = next((t for t, sender in sends if sender == "replica=b"), None)
        if taken_over is not None:
            moved += 1
            late = [t - taken_over for t, sender in sends if sender == "replica=a" and t > taken_over]
            assert late == [], f"{pixel}: the old owner sent {len(late)} requests after the new owner started"
    assert moved > 0, "no pixel changed hands: the test proves nothing"
    by_id = finals_by_id(await kafka.read("delivery-results", timeout=2))
    assert Counter(by_id[i][-1]["status"] for i in ids) == {"delivered": len(ids)}


async def test_an_upgrade_continues_the_outbox_where_the_faust_agent_committed_it(
        kafka, delivery_env, sandbox, start_worker, tmp_path):
    apply_integrations(delivery_env, [integration("app1")], tmp_path)  # creates the topics
    # What the Faust delivery agent of the previous version had read and committed (group `<prefix>worker`):
    await kafka.produce("outbox", [(f"PIX-{n}".encode(), b"{delivered long ago") for n in range(20)])
    await kafka.commit_to_end("worker", "outbox")
    await start_worker(**delivery_env, TIKTOK_BATCH_LINGER_SECONDS="0.2")
    ids = await funnel(kafka, "app1", 20)
    by_id = finals_by_id(await kafka.consume("delivery-results", 20, timeout=60))
    assert Counter(by_id[i][0]["status"] for i in ids) == {"delivered": 20}
    assert await kafka.read("dead-letter", timeout=2) == [], "the records committed before were read again"
