"""Secured Kafka connections: the worker and the CLI over SASL_SSL (SCRAM) and over TLS with client
certificates, and a clear error in bounded time when the password, the CA or the broker is wrong."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time

import pytest

from tests.kafka_broker import REPO
from tests.scenario import app_event, apply_integrations, click
from tests.support import Kafka, WorkerProcess
from tests.test_security.acls import grant, readme_acls
from worker.kafka_security import check_reachable, client_options, faust_credentials
from worker.settings import Settings

TOKEN = "tok_secure_kafka_0123456789"


async def run_scenario(harness: Kafka, env: dict[str, str], tmp) -> list[dict]:
    """Integrations applied with the CLI, a worker, clicks and app events in: the delivery results out."""
    apply_integrations(env, [{"app_id": "app1", "pixel_id": "PIX1", "access_token": TOKEN}], tmp)
    worker = WorkerProcess({**env, "TIKTOK_DRY_RUN": "true"}, tmp / "worker.log").start()
    try:
        await worker.wait_ready()
        await harness.produce("clicks", [(None, click("T-1")), (None, click("T-2", ad="Video-4"))])
        await harness.produce("app-events", [(None, app_event("e-1", "T-1")),
                                             (None, app_event("e-2", "T-2", name="subscription_renewed"))])
        results = await harness.consume("delivery-results", 2, timeout=60)
    finally:
        worker.kill()
    return [r["value"] for r in results]


@pytest.mark.parametrize("listener, principal", [("sasl_ssl", "worker"), ("ssl", "worker-tls")])
async def test_the_worker_and_the_cli_work_through_a_secured_listener(secure_kafka, harness, base_env, tmp_path,
                                                                      listener, principal):
    await grant(secure_kafka.harness, f"User:{principal}", readme_acls(harness.prefix))
    env = {**base_env, **(secure_kafka.sasl_env() if listener == "sasl_ssl" else secure_kafka.ssl_env())}
    results = await run_scenario(harness, env, tmp_path)
    assert sorted((r["event_id"], r["status"], r["tiktok_event"], r["ad_name"]) for r in results) == [
        ("e-1", "dry_run", "StartTrial", "Video-3"), ("e-2", "dry_run", "Purchase", "Video-4")]


def start_worker_expecting_failure(env: dict[str, str], bound: float) -> tuple[str, float]:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "worker", "worker"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=bound + 30)
    elapsed = time.monotonic() - started
    assert done.returncode != 0, done.stdout[-2000:]
    return done.stdout + done.stderr, elapsed


def test_a_wrong_password_stops_the_worker_with_the_reason(secure_kafka, base_env):
    output, elapsed = start_worker_expecting_failure(
        {**base_env, **secure_kafka.sasl_env(password="not-the-password")}, bound=30)
    assert "the worker did not start: cannot connect to Kafka with SASL_SSL (SCRAM-SHA-512 as 'worker')" in output
    assert "SASL authentication failed" in output and "check KAFKA_SASL_MECHANISM" in output
    assert "not-the-password" not in output and secure_kafka.passwords["worker"] not in output
    assert "Traceback" not in output
    assert elapsed < 30


def test_an_unknown_ca_stops_the_worker_with_the_reason(secure_kafka, base_env):
    output, elapsed = start_worker_expecting_failure(
        {**base_env, **secure_kafka.sasl_env(ca=secure_kafka.stranger_ca)}, bound=30)
    assert "the broker's certificate is not trusted" in output and "set KAFKA_SSL_CAFILE" in output
    assert secure_kafka.passwords["worker"] not in output and "Traceback" not in output
    assert elapsed < 30


def test_a_missing_client_certificate_stops_the_worker_with_the_reason(secure_kafka, base_env):
    env = {**base_env, **secure_kafka.ssl_env()}
    del env["KAFKA_SSL_CERTFILE"], env["KAFKA_SSL_KEYFILE"]
    output, elapsed = start_worker_expecting_failure(env, bound=30)
    assert "the broker closed the connection" in output and "KAFKA_SSL_CERTFILE" in output
    assert elapsed < 30


def test_an_unreachable_broker_stops_the_worker_and_the_cli_with_the_reason(secure_kafka, base_env, tmp_path):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        nothing_there = f"127.0.0.1:{closed.getsockname()[1]}"
    env = {**base_env, **secure_kafka.sasl_env(), "KAFKA_BOOTSTRAP_SERVERS": nothing_there}
    output, elapsed = start_worker_expecting_failure(env, bound=30)
    assert f"{nothing_there}: unreachable" in output and elapsed < 30
    listed = subprocess.run([sys.executable, "-m", "worker", "integrations", "list"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode != 0 and "Error: cannot connect to Kafka" in listed.stderr
    assert "Traceback" not in listed.stderr


def test_a_broker_that_does_not_answer_stops_the_worker_within_the_connect_timeout(secure_kafka, base_env):
    with socket.socket() as silent:  # accepts connections (the kernel does) and never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        env = {**base_env, **secure_kafka.sasl_env(), "KAFKA_CONNECT_TIMEOUT_SECONDS": "4",
               "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{silent.getsockname()[1]}"}
        output, elapsed = start_worker_expecting_failure(env, bound=4)
    assert "no answer in time" in output
    assert elapsed < 4 + 10  # the timeout, and the interpreter's start


def test_every_client_gets_the_same_secured_connection(secure_kafka):
    settings = Settings.from_env(secure_kafka.sasl_env())
    options = client_options(settings)
    assert {k: v for k, v in options.items() if k != "ssl_context"} == {
        "bootstrap_servers": secure_kafka.sasl_ssl, "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "worker", "sasl_plain_password": secure_kafka.passwords["worker"]}
    credentials = faust_credentials(settings)
    assert (credentials.protocol.value, credentials.mechanism.value, credentials.username) == (
        "SASL_SSL", "SCRAM-SHA-512", "worker")
    assert credentials.ssl_context is not None
    assert secure_kafka.passwords["worker"] not in repr(settings) + repr(credentials)
    assert faust_credentials(Settings.from_env(secure_kafka.ssl_env())).protocol.value == "SSL"
    assert faust_credentials(Settings()) is None and client_options(Settings())["security_protocol"] == "PLAINTEXT"
    asyncio.run(check_reachable(settings))


@pytest.mark.parametrize("env, says", [
    ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "KAFKA_SECURITY_PROTOCOL='TLS' is not one of PLAINTEXT, SSL"),
    ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "GSSAPI", "KAFKA_SASL_USERNAME": "u",
      "KAFKA_SASL_PASSWORD": "p"}, "KAFKA_SASL_MECHANISM='GSSAPI' is not one of PLAIN, SCRAM-SHA-256"),
    ({"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_USERNAME": "u"}, "KAFKA_SASL_PASSWORD or"),
    ({"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "secret-1",
      "KAFKA_SASL_PASSWORD_FILE": "/etc/pw"}, "not both"),
    ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CERTFILE": "/etc/cert.pem"}, "go together"),
    ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CAFILE": "/nowhere/ca.pem"}, "cannot be loaded"),
])
def test_a_wrong_setting_is_named(env, says):
    with pytest.raises(SystemExit) as stopped:
        client_options(Settings.from_env(env))
    assert says in str(stopped.value) and "secret-1" not in str(stopped.value)
