"""Least privilege: the worker's principal needs every ACL the README lists, and nothing more
(the secured-listener scenarios run with exactly those). Without any one of them the worker or
the CLI stops and says that Kafka refused it, rather than waiting."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import pytest
import yaml

from tests.kafka_broker import REPO
from tests.support import Kafka
from tests.test_security.acls import grant, readme_acls

ACLS = readme_acls("web2app.")


def run(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "worker", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.parametrize("missing", ACLS, ids=[f"{a.resource}-{a.operation}" for a in ACLS])
async def test_without_any_one_of_the_readme_acls_the_worker_stops_and_says_why(
        secure_kafka, harness: Kafka, base_env, tmp_path, missing):
    await grant(secure_kafka.harness, "User:limited", [a for a in readme_acls(harness.prefix)
                                                       if (a.resource, a.operation) != (missing.resource, missing.operation)])
    env = {**base_env, **secure_kafka.sasl_env("limited"), "TIKTOK_DRY_RUN": "true"}
    path = tmp_path / "integrations.yaml"
    path.write_text(yaml.safe_dump([{"app_id": "app1", "pixel_id": "PIX1", "access_token": "tok_acl_0123456789"}]))
    started = time.monotonic()
    applied = await asyncio.to_thread(run, env, "integrations", "apply", str(path))
    if applied.returncode == 0:  # the CLI needed no more: the worker must stop
        done = await asyncio.to_thread(run, env, "worker", timeout=90)
        output = done.stdout + done.stderr
        assert done.returncode != 0
    else:
        output = applied.stderr
    assert "AuthorizationFailed" in output, output[-3000:]
    if (missing.resource, missing.operation) != ("topic", "Read"):  # that one Faust finds only when it fetches
        assert "Kafka refused it" in output and "the ACLs the README lists" in output and "Traceback" not in output
    assert time.monotonic() - started < 60

