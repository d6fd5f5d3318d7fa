"""One broker for the security tests, with every kind of listener the worker may meet:

PLAINTEXT  the test harness (produces inputs, reads outputs, grants ACLs): a super user
SASL_SSL   SCRAM-SHA-512 users over TLS
SSL        TLS with client certificates (the certificate's CN is the principal)

The standard authorizer is on, so the worker's principals can do only what their ACLs allow.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.kafka_broker import free_port
from tests.support import NO_TIKTOK, Kafka
from tests.test_security.certificates import Authority, Issued
from worker.local_kafka import LocalKafka

SCRAM_USERS = ("worker", "limited")


@dataclass(frozen=True)
class SecureKafka:
    harness: str
    sasl_ssl: str
    ssl: str
    folder: Path
    ca: Path
    stranger_ca: Path  # a CA the broker's certificate was not signed by
    passwords: dict[str, str]
    client_certificate: Issued  # CN=worker-tls

    def password_file(self, user: str, password: str | None = None) -> Path:
        path = self.folder / f"{user}-{uuid.uuid4().hex[:6]}.password"
        path.write_text((password or self.passwords[user]) + "\n")
        path.chmod(0o600)
        return path

    def sasl_env(self, user: str = "worker", password: str | None = None, ca: Path | None = None) -> dict[str, str]:
        return {"KAFKA_BOOTSTRAP_SERVERS": self.sasl_ssl, "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "KAFKA_SASL_USERNAME": user,
                "KAFKA_SASL_PASSWORD_FILE": str(self.password_file(user, password)),
                "KAFKA_SSL_CAFILE": str(ca or self.ca)}

    def ssl_env(self) -> dict[str, str]:
        return {"KAFKA_BOOTSTRAP_SERVERS": self.ssl, "KAFKA_SECURITY_PROTOCOL": "SSL",
                "KAFKA_SSL_CAFILE": str(self.ca), "KAFKA_SSL_CERTFILE": str(self.client_certificate.cert),
                "KAFKA_SSL_KEYFILE": str(self.client_certificate.key)}


@pytest.fixture(scope="session")
def secure_kafka() -> SecureKafka:
    with tempfile.TemporaryDirectory(prefix="test-secure-kafka-") as home:
        folder = Path(home)
        ca = Authority.create(folder, "test-ca")
        stranger = Authority.create(folder, "stranger-ca")
        broker_cert = ca.issue(folder, "broker", server=True)
        keystore = folder / "broker-keystore.pem"  # Kafka's PEM keystore: the key, then the certificate
        keystore.write_bytes(broker_cert.key.read_bytes() + broker_cert.cert.read_bytes())
        passwords = {user: secrets.token_urlsafe(16) for user in SCRAM_USERS}
        ports = {"SASL_SSL": free_port(), "SSL": free_port()}
        broker = LocalKafka(
            folder / "broker", free_port(), free_port(), heap="768m", extra_listeners=ports,
            extra_properties={
                "ssl.keystore.type": "PEM", "ssl.keystore.location": str(keystore),
                "ssl.truststore.type": "PEM", "ssl.truststore.location": str(ca.cert),
                "listener.name.ssl.ssl.client.auth": "required",
                "sasl.enabled.mechanisms": "SCRAM-SHA-512",
                "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config":
                    "org.apache.kafka.common.security.scram.ScramLoginModule required;",
                # User:worker-tls rather than User:CN=worker-tls, as operators write ACLs for it.
                "ssl.principal.mapping.rules": "RULE:^CN=([^,]+)$/$1/,DEFAULT",
                "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                # The PLAINTEXT listeners (harness, controller) are this broker's own.
                "super.users": "User:ANONYMOUS",
            },
            format_args=tuple(arg for user, password in passwords.items()
                              for arg in ("--add-scram", f"SCRAM-SHA-512=[name={user},password={password}]")),
        )
        try:
            harness = broker.start()
            yield SecureKafka(harness, f"127.0.0.1:{ports['SASL_SSL']}", f"127.0.0.1:{ports['SSL']}", folder,
                              ca.cert, stranger.cert, passwords, ca.issue(folder, "worker-tls"))
        finally:
            broker.stop()


@pytest.fixture
def harness(secure_kafka: SecureKafka) -> Kafka:
    """The harness's view of the secure broker, with topic names of this test's own."""
    return Kafka(secure_kafka.harness, f"s{uuid.uuid4().hex[:10]}.")


@pytest.fixture
def base_env(harness: Kafka, tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "TOPIC_PREFIX": harness.prefix, "TOPIC_PARTITIONS": "2",
            "DATA_DIR": str(tmp_path / "data"), "JOIN_BATCH_LINGER_SECONDS": "0.02", "CLICK_GRACE_SECONDS": "3",
            "TIKTOK_API_URL": NO_TIKTOK}
