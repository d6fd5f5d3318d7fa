"""The delivery side survives its own faults: an unusable outbox record, a result write Kafka refuses,
a pixel that keeps failing (real broker, real worker processes, the sandbox)."""

from __future__ import annotations

import asyncio
from collections import Counter

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from tests.scenario import apply_integrations
from tests.test_delivery.test_agents import delivery_env, finals_by_id, funnel, integration, sandbox  # noqa: F401


async def set_topic_config(kafka, name: str, **configs: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    await admin.start()
    try:
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, kafka.topic(name),
                                                  configs={k.replace("_", "."): v for k, v in configs.items()})])
    finally:
        await admin.close()


async def test_an_unusable_outbox_record_costs_that_record_alone(kafka, delivery_env, sandbox, start_worker,
                                                               tmp_path):
    apply_integrations(delivery_env, [integration("app1")], tmp_path)
    await start_worker(**delivery_env, TIKTOK_BATCH_LINGER_SECONDS="0.2")
    await kafka.produce("outbox", [(b"PIX-app1", b"{not json")])  # e.g. a hand-made replay gone wrong
    ids = await funnel(kafka, "app1", 50)
    by_id = finals_by_id(await kafka.consume("delivery-results", 50, timeout=60))
    assert Counter(by_id[i][0]["status"] for i in ids) == {"delivered": 50}
    dead = await kafka.consume("dead-letter", 1, timeout=10)
    assert dead[0]["value"]["reason"] == "internal_error" and dead[0]["value"]["topic"] == kafka.topic("outbox")


async def test_a_result_write_kafka_refuses_is_written_again_and_never_contradicted(
        kafka, delivery_env, sandbox, start_worker, tmp_path):
    apply_integrations(delivery_env, [integration("app1")], tmp_path)
    await start_worker(**delivery_env, TIKTOK_BATCH_LINGER_SECONDS="0.2")
    await set_topic_config(kafka, "delivery-results", max_message_bytes="100")  # every result is refused
    ids = await funnel(kafka, "app1", 30)
    for _ in range(120):
        if len(sandbox.state.events()) >= 30:
            break
        await asyncio.sleep(0.5)
    await asyncio.sleep(3)
    assert await kafka.read("delivery-results", timeout=1) == []
    await set_topic_config(kafka, "delivery-results", max_message_bytes="1048588")
    await kafka.consume("delivery-results", 30, timeout=60)
    await asyncio.sleep(3)
    results = await kafka.read("delivery-results", timeout=2)
    by_id = finals_by_id(results)
    assert {i: [r["status"] for r in by_id[i]] for i in ids} == {i: ["delivered"] for i in ids}
    assert Counter(e["event_id"] for e in sandbox.state.events()) == Counter(ids)


async def test_a_pixel_failing_for_long_is_parked_and_holds_back_no_other_pixel(
        kafka, delivery_env, sandbox, start_worker, tmp_path):
    # One partition: both pixels share it, so the failing one would hold back the other's commits.
    env = {**delivery_env, "TOPIC_PARTITIONS": "1", "TIKTOK_PARK_AFTER_SECONDS": "2", "TIKTOK_MAX_PENDING_EVENTS": "300",
           "TIKTOK_BATCH_SIZE": "100", "TIKTOK_BATCH_LINGER_SECONDS": "0.1", "TIKTOK_RETRY_MAX_ATTEMPTS": "100"}
    apply_integrations(env, [integration("good"), integration("bad")], tmp_path)
    worker = await start_worker(**env)
    sandbox.state.fail("http500", pixel_id="PIX-bad")
    bad = await funnel(kafka, "bad", 100, prefix="bad")
    good = await funnel(kafka, "good", 2000, prefix="good")
    await kafka.consume("delivery-results", 2000, timeout=120)  # the good pixel's, while the bad one fails
    await asyncio.sleep(5)  # its offsets are committed by now: nothing holds them back
    worker.kill()
    await start_worker(**env)
    await asyncio.sleep(5)
    sandbox.state.fail("ok")
    await kafka.consume("delivery-results", 2100, timeout=120,
                                  until=lambda rs: len({r["value"]["event_id"] for r in rs}) >= 2100)
    await asyncio.sleep(2)
    by_id = finals_by_id(await kafka.read("delivery-results", timeout=2))
    assert Counter(by_id[i][0]["status"] for i in bad + good) == {"delivered": 2100}
    assert [i for i in good if len(by_id[i]) > 1] == [], "delivered events were read again after the restart"
    assert Counter(e["event_id"] for e in sandbox.state.events() if e["event_id"].startswith("good")) == Counter(good)
    assert min(by_id[i][0]["attempts"] for i in bad) > 1
