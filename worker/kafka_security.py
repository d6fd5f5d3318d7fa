"""How every Kafka client of the worker connects: plain, TLS, SASL or both, from the settings.

`client_options()` is what each aiokafka client the code creates is given, and
`faust_credentials()` the same for the Faust app, so the worker, the CLI and the demo
connect alike. `check_reachable()` connects once at start, and `check_group_access()`
looks up the worker's consumer group: aiokafka reports a wrong password or an untrusted
certificate only as "Unable to bootstrap", and Faust retries for ever, so without them
the worker would hang instead of saying what is wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from pathlib import Path
from typing import Any, AsyncIterator

import faust
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.conn import create_conn
from aiokafka.errors import (AuthenticationFailedError, ClusterAuthorizationFailedError,
                             GroupAuthorizationFailedError, GroupCoordinatorNotAvailableError, IllegalSaslStateError,
                             KafkaConnectionError, KafkaError, SaslAuthenticationFailed,
                             TopicAuthorizationFailedError, UnsupportedSaslMechanismError)
from aiokafka.helpers import create_ssl_context
from faust.types.auth import CredentialsT

from worker.settings import Settings

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
AUTHENTICATION_ERRORS = (SaslAuthenticationFailed, AuthenticationFailedError, UnsupportedSaslMechanismError,
                         IllegalSaslStateError)
NOT_AUTHORIZED = (TopicAuthorizationFailedError, GroupAuthorizationFailedError, ClusterAuthorizationFailedError)


class KafkaUnreachable(RuntimeError):
    """No bootstrap server could be reached and authenticated with; the message says why, never the password."""


def client_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for an aiokafka producer, consumer or admin client: where and how to connect."""
    protocol = _one_of("KAFKA_SECURITY_PROTOCOL", settings.kafka_security_protocol, PROTOCOLS)
    options: dict[str, Any] = {"bootstrap_servers": settings.kafka_bootstrap_servers, "security_protocol": protocol}
    if protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = tls_context(settings)
    if protocol.startswith("SASL_"):
        options |= {"sasl_mechanism": _one_of("KAFKA_SASL_MECHANISM", settings.kafka_sasl_mechanism, SASL_MECHANISMS),
                    "sasl_plain_username": _required("KAFKA_SASL_USERNAME", settings.kafka_sasl_username),
                    "sasl_plain_password": sasl_password(settings)}
    return options


def faust_credentials(settings: Settings) -> CredentialsT | None:
    """The Faust app's `broker_credentials`: the same connection as `client_options`."""
    options = client_options(settings)
    if options["security_protocol"].startswith("SASL_"):
        return faust.SASLCredentials(username=options["sasl_plain_username"],
                                     password=options["sasl_plain_password"],
                                     ssl_context=options.get("ssl_context"), mechanism=options["sasl_mechanism"])
    if options["security_protocol"] == "SSL":
        return faust.SSLCredentials(options["ssl_context"])
    return None


def tls_context(settings: Settings) -> ssl.SSLContext:
    if bool(settings.kafka_ssl_certfile) != bool(settings.kafka_ssl_keyfile):
        raise SystemExit("KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE go together: set both or neither")
    try:
        return create_ssl_context(cafile=settings.kafka_ssl_cafile or None,
                                  certfile=settings.kafka_ssl_certfile or None,
                                  keyfile=settings.kafka_ssl_keyfile or None)
    except (OSError, ssl.SSLError) as exc:
        raise SystemExit(f"KAFKA_SSL_CAFILE, KAFKA_SSL_CERTFILE or KAFKA_SSL_KEYFILE cannot be loaded: {exc}") from None


def sasl_password(settings: Settings) -> str:
    if settings.kafka_sasl_password and settings.kafka_sasl_password_file:
        raise SystemExit("set KAFKA_SASL_PASSWORD or KAFKA_SASL_PASSWORD_FILE, not both")
    if settings.kafka_sasl_password_file:
        try:
            # Secret files made with `echo` end with a newline that is not part of the password.
            return Path(settings.kafka_sasl_password_file).read_text().rstrip("\r\n")
        except OSError as exc:
            raise SystemExit(f"KAFKA_SASL_PASSWORD_FILE cannot be read: {exc.strerror}") from None
    return _required("KAFKA_SASL_PASSWORD or KAFKA_SASL_PASSWORD_FILE", settings.kafka_sasl_password)


async def check_reachable(settings: Settings) -> None:
    """Return once one bootstrap server accepts a connection, TLS and SASL included; else raise
    KafkaUnreachable with each server's reason, within `kafka_connect_timeout_s`."""
    options = client_options(settings)
    servers = [s.strip() for s in settings.kafka_bootstrap_servers.split(",") if s.strip()]
    budget_ms = int(settings.kafka_connect_timeout_s * 1000 / len(servers))
    reasons = []
    for server in servers:
        host, _, port = server.rpartition(":")
        try:
            connection = await asyncio.wait_for(
                create_conn(host.strip("[]"), int(port), request_timeout_ms=budget_ms,
                            **{k: v for k, v in options.items() if k != "bootstrap_servers"}),
                budget_ms / 1000)
        except (OSError, KafkaError, asyncio.TimeoutError, ValueError) as exc:
            reasons.append(f"{server}: {explain(exc, settings)}")
            continue
        connection.close()
        return
    raise KafkaUnreachable(f"cannot connect to Kafka with {describe(settings)}:\n  " + "\n  ".join(reasons))


@contextlib.asynccontextmanager
async def admin_client(settings: Settings) -> AsyncIterator[AIOKafkaAdminClient]:
    """An admin client connected as the worker is, closed when the block ends."""
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


async def check_group_access(settings: Settings) -> None:
    """Raise GroupAuthorizationFailedError unless the worker's consumer group may be used: without
    an ACL for it, Faust would wait for a partition assignment for ever without a word."""
    async with admin_client(settings) as admin:
        deadline = asyncio.get_running_loop().time() + settings.kafka_connect_timeout_s
        while True:
            try:
                await admin.find_coordinator(settings.app_id)
                return
            except GroupCoordinatorNotAvailableError:  # a new cluster is still creating its offsets topic
                if asyncio.get_running_loop().time() > deadline:
                    raise KafkaUnreachable(f"Kafka named no coordinator for the group {settings.app_id!r}") from None
                await asyncio.sleep(0.5)


def refusal(exc: Exception) -> str:
    """Why Kafka would not serve the worker or the CLI, in the one line it ends with."""
    if isinstance(exc, NOT_AUTHORIZED):
        return f"Kafka refused it ({exc}): the principal lacks one of the ACLs the README lists under Security"
    return str(exc)


def describe(settings: Settings) -> str:
    """How the worker connects, for error messages: protocol, mechanism and user, never the password."""
    protocol = settings.kafka_security_protocol
    if protocol.startswith("SASL_"):
        return f"{protocol} ({settings.kafka_sasl_mechanism} as {settings.kafka_sasl_username!r})"
    return protocol


def explain(exc: BaseException, settings: Settings) -> str:
    """A connection failure in words an operator can act on."""
    protocol = settings.kafka_security_protocol
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (f"the broker's certificate is not trusted ({exc.verify_message}): "
                "set KAFKA_SSL_CAFILE to the CA that signed it")
    if isinstance(exc, ssl.SSLError):
        return f"the TLS handshake failed ({exc.reason or exc}): is this a TLS listener?"
    if isinstance(exc, AUTHENTICATION_ERRORS):
        return f"SASL authentication failed ({exc}): check KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME and the password"
    if isinstance(exc, asyncio.TimeoutError):
        return f"no answer in time: is the broker up, and does this listener speak {protocol}?"
    if isinstance(exc, (ConnectionRefusedError, socket.gaierror)):
        return f"unreachable ({exc.strerror or exc}): is the address right and the broker up?"
    if isinstance(exc, (KafkaConnectionError, ConnectionError)):
        # What a broker does to a client that speaks the wrong protocol or shows no certificate it wants.
        return (f"the broker closed the connection: does this listener speak {protocol}, and does it want "
                "a client certificate (KAFKA_SSL_CERTFILE, KAFKA_SSL_KEYFILE)?")
    return f"{type(exc).__name__}: {exc}"


def _one_of(env: str, value: str, allowed: tuple[str, ...]) -> str:
    if value.upper() not in allowed:
        raise SystemExit(f"{env}={value!r} is not one of {', '.join(allowed)}")
    return value.upper()


def _required(env: str, value: str) -> str:
    if not value:
        raise SystemExit(f"{env} must be set with a SASL security protocol")
    return value
