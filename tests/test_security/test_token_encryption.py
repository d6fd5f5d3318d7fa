"""Access tokens encrypted at rest: the CLI encrypts, the worker decrypts in memory, a record no key
opens is refused on its own, and rotation re-encrypts while the worker keeps delivering."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from cryptography.fernet import Fernet, MultiFernet

from tests.kafka_broker import REPO
from tests.scenario import app_event, apply_integrations, click
from tests.support import Kafka, WorkerProcess
from worker.integrations.config import parse_integration
from worker.integrations.tokens import (ENCRYPTED_PREFIX, UndecryptableToken, decrypt_token, encrypt_token,
                                        token_keys)
from worker.settings import Settings
from worker.tiktok.sandbox import Sandbox

OLD_KEY, NEW_KEY, STRANGER_KEY = (Fernet.generate_key().decode() for _ in range(3))
TOKENS = {"app1": "tok_app1_0123456789abcdef", "app2": "tok_app2_0123456789abcdef",
          "app3": "tok_app3_0123456789abcdef"}
RECORD = {"app_id": "app1", "pixel_id": "PIX1", "access_token": TOKENS["app1"]}


def keys(*raw: str) -> MultiFernet:
    return token_keys(Settings(token_encryption_keys=",".join(raw)))


def test_an_encrypted_record_is_still_an_integration_v1_and_holds_no_token():
    sealed = encrypt_token(RECORD, keys(NEW_KEY))
    assert sealed["access_token"].startswith(ENCRYPTED_PREFIX) and TOKENS["app1"] not in repr(sealed)
    assert parse_integration(sealed).pixel_id == "PIX1"
    assert decrypt_token(sealed, keys(NEW_KEY)) == RECORD


def test_a_plain_text_record_is_taken_as_it_is():
    assert decrypt_token(RECORD, None) == RECORD and decrypt_token(RECORD, keys(NEW_KEY)) == RECORD


@pytest.mark.parametrize("worker_keys, says", [
    (None, "access_token is encrypted and TOKEN_ENCRYPTION_KEYS is not set"),
    (keys(STRANGER_KEY), "access_token is encrypted with none of the TOKEN_ENCRYPTION_KEYS"),
])
def test_a_record_no_key_opens_is_refused_without_the_token(worker_keys, says):
    with pytest.raises(UndecryptableToken) as refused:
        decrypt_token(encrypt_token(RECORD, keys(OLD_KEY)), worker_keys)
    assert str(refused.value) == f"app1: {says}"


def test_rotation_re_encrypts_with_the_first_key():
    rotated = encrypt_token(encrypt_token(RECORD, keys(OLD_KEY)), keys(NEW_KEY, OLD_KEY))
    assert decrypt_token(rotated, keys(NEW_KEY)) == RECORD


def test_keys_come_from_the_environment_or_a_file(tmp_path):
    path = tmp_path / "keys"
    path.write_text(f"{NEW_KEY}\n{OLD_KEY}\n")
    from_file = token_keys(Settings(token_encryption_keys_file=str(path)))
    assert decrypt_token(encrypt_token(RECORD, from_file), keys(NEW_KEY)) == RECORD
    assert token_keys(Settings()) is None
    with pytest.raises(SystemExit) as refused:
        token_keys(Settings(token_encryption_keys=f"{NEW_KEY},not-a-key-secret"))
    assert str(refused.value) == "TOKEN_ENCRYPTION_KEYS: key 2 is not a Fernet key (32 url-safe base64-encoded bytes)"
    assert NEW_KEY not in repr(Settings(token_encryption_keys=NEW_KEY))


async def raw_topic(bootstrap: str, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    """Every record of a topic, as the bytes Kafka holds."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in await producer.partitions_for(topic)]
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records = []
        while any([await consumer.position(tp) < ends[tp] for tp in partitions]):
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                records += [(m.key, m.value) for m in messages]
        return records
    finally:
        await consumer.stop()


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "worker", "integrations", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)


async def delivered(harness: Kafka, event_ids: set[str]) -> dict[str, dict]:
    records = await harness.consume("delivery-results", 0, timeout=60, until=lambda rs: event_ids <= {
        r["value"]["event_id"] for r in rs})
    return {r["value"]["event_id"]: r["value"] for r in records if r["value"]["event_id"] in event_ids}


async def test_tokens_stay_encrypted_on_every_topic_and_rotation_keeps_delivery_going(
        secure_kafka, harness: Kafka, base_env, tmp_path: Path):
    env = {**base_env, "KAFKA_BOOTSTRAP_SERVERS": secure_kafka.harness, "TIKTOK_BATCH_LINGER_SECONDS": "0.05"}
    integrations = [{"app_id": app, "pixel_id": f"PIX-{app}", "access_token": token} for app, token in TOKENS.items()]
    await asyncio.to_thread(apply_integrations, {**env, "TOKEN_ENCRYPTION_KEYS": OLD_KEY}, integrations[:2], tmp_path)
    # app3's key is not given to the worker: its integration is refused, the others are served.
    await asyncio.to_thread(apply_integrations, {**env, "TOKEN_ENCRYPTION_KEYS": STRANGER_KEY}, integrations[2:],
                            tmp_path)
    async with Sandbox() as sandbox:
        worker_env = {**env, "TIKTOK_API_URL": sandbox.url, "TOKEN_ENCRYPTION_KEYS": f"{NEW_KEY},{OLD_KEY}"}
        worker = await WorkerProcess(worker_env, tmp_path / "worker.log").start().wait_ready()
        try:
            await harness.produce("clicks", [(None, click(f"T-{app}", app_id=app)) for app in TOKENS])
            await harness.produce("app-events", [(None, app_event(f"before-{app}", f"T-{app}", app_id=app))
                                                 for app in TOKENS])
            results = await delivered(harness, {f"before-{app}" for app in TOKENS})
            assert [results[f"before-{app}"]["status"] for app in TOKENS] == ["delivered", "delivered", "skipped"]
            assert results["before-app3"]["reason"] == "integration_invalid"
            dead = await harness.consume("dead-letter", 1, timeout=10)
            assert [(d["key"], d["value"]["reason"], d["value"]["error"]) for d in dead] == [
                ("app3", "integration_undecryptable",
                 "app3: access_token is encrypted with none of the TOKEN_ENCRYPTION_KEYS")]

            rotated = await asyncio.to_thread(cli, {**env, "TOKEN_ENCRYPTION_KEYS": f"{NEW_KEY},{OLD_KEY}"}, "rotate")
            assert rotated.returncode == 1  # app3 cannot be opened, so it is left as it is, and said so
            assert rotated.stdout.splitlines() == ["re-encrypted app1", "re-encrypted app2"]
            assert "app3: access_token is encrypted with none of the TOKEN_ENCRYPTION_KEYS" in rotated.stderr
            listed = await asyncio.to_thread(cli, {**env, "TOKEN_ENCRYPTION_KEYS": NEW_KEY}, "list")
            assert [(view["app_id"], view.get("access_token")) for view in orjson.loads(listed.stdout)] == [
                ("app1", "…cdef"), ("app2", "…cdef"), ("app3", None)]
            await asyncio.sleep(1.5)  # the worker follows the integrations topic
            await harness.produce("app-events", [(None, app_event("after-app1", "T-app1", app_id="app1"))])
            assert (await delivered(harness, {"after-app1"}))["after-app1"]["status"] == "delivered"
        finally:
            worker.kill()
        log = worker.output()
        # The old key can go once every record is re-encrypted: a worker with the new key alone delivers.
        worker = await WorkerProcess({**worker_env, "TOKEN_ENCRYPTION_KEYS": NEW_KEY},
                                     tmp_path / "worker-2.log").start().wait_ready()
        try:
            await harness.produce("app-events", [(None, app_event("new-key-app2", "T-app2", app_id="app2"))])
            assert (await delivered(harness, {"new-key-app2"}))["new-key-app2"]["status"] == "delivered"
        finally:
            worker.kill()
        log += worker.output()
        sent = {(request["pixel_id"], request["access_token"]) for request in sandbox.state.received}
        assert sent == {("PIX-app1", TOKENS["app1"]), ("PIX-app2", TOKENS["app2"])}

    raw = {topic: await raw_topic(secure_kafka.harness, harness.topic(topic)) for topic in (
        "integrations", "worker-ttclids-changelog", "outbox", "delivery-results", "dead-letter")}
    assert all(raw.values())
    latest = {key.decode(): orjson.loads(value) for key, value in raw["integrations"]}
    for app in ("app1", "app2"):
        assert decrypt_token(latest[app], keys(NEW_KEY))["access_token"] == TOKENS[app]
    for token in TOKENS.values():
        assert token.encode() not in b"".join(k or b"" for records in raw.values() for pair in records for k in pair)
        assert token not in log
    assert "integration of app app3 is unusable" in log

