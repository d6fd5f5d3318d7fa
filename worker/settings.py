"""Every knob of the worker, read once from the environment.

The README's settings table is generated from this file (`python -m worker settings`)
and a test keeps the two in step.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

TIKTOK_EVENTS_URL = "https://business-api.tiktok.com/open_api/v1.3/event/track/"


def setting(env: str, default: Any, doc: str, secret: bool = False) -> Any:
    # A secret stays out of the Settings' repr, so logging the settings never shows it.
    return field(default=default, repr=not secret, metadata={"env": env, "doc": doc})


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap_servers: str = setting(
        "KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092",
        "Kafka to use. The run command starts a local broker here when it is unset.")
    kafka_security_protocol: str = setting(
        "KAFKA_SECURITY_PROTOCOL", "PLAINTEXT", "`PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`.")
    kafka_sasl_mechanism: str = setting(
        "KAFKA_SASL_MECHANISM", "PLAIN", "`PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512` (with a `SASL_` protocol).")
    kafka_sasl_username: str = setting("KAFKA_SASL_USERNAME", "", "The SASL user.")
    kafka_sasl_password: str = setting("KAFKA_SASL_PASSWORD", "", "The SASL password.", secret=True)
    kafka_sasl_password_file: str = setting(
        "KAFKA_SASL_PASSWORD_FILE", "", "A file holding the SASL password (instead of `KAFKA_SASL_PASSWORD`).")
    kafka_ssl_cafile: str = setting(
        "KAFKA_SSL_CAFILE", "", "PEM file of the CA that signed the brokers' certificates; the system's CAs when unset.")
    kafka_ssl_certfile: str = setting(
        "KAFKA_SSL_CERTFILE", "", "PEM file of this client's certificate, for brokers that require one.")
    kafka_ssl_keyfile: str = setting("KAFKA_SSL_KEYFILE", "", "PEM file of the private key of `KAFKA_SSL_CERTFILE`.")
    kafka_connect_timeout_s: float = setting(
        "KAFKA_CONNECT_TIMEOUT_SECONDS", 30.0,
        "How long the worker and the CLI try to reach Kafka when they start before they give up with the reason.")
    topic_prefix: str = setting("TOPIC_PREFIX", "web2app.", "Prefix of every topic, internal ones included.")
    topic_partitions: int = setting(
        "TOPIC_PARTITIONS", 8,
        "Partitions of the topics the worker creates (inputs when missing, internal topics). "
        "More partitions, more replicas that can share the work.")
    tiktok_api_url: str = setting("TIKTOK_API_URL", TIKTOK_EVENTS_URL, "The Events API endpoint.")
    tiktok_dry_run: bool = setting(
        "TIKTOK_DRY_RUN", False, "Build and validate every request, send nothing, record `dry_run`.")
    attribution_window_s: float = setting(
        "ATTRIBUTION_WINDOW_SECONDS", 7 * 86400,
        "How long a click is kept for joining app events; then it is forgotten.")
    click_grace_s: float = setting(
        "CLICK_GRACE_SECONDS", 600,
        "How long an app event whose click has not arrived waits for it before it is sent without enrichment.")
    join_batch_size: int = setting(
        "JOIN_BATCH_SIZE", 2000, "Most records the input and join stages take from Kafka at once.")
    join_batch_linger_s: float = setting(
        "JOIN_BATCH_LINGER_SECONDS", 0.05, "Longest wait for a batch of input records to fill.")
    batch_size: int = setting(
        "TIKTOK_BATCH_SIZE", 1000, "Most events in one Events API request (TikTok's limit is 1,000).")
    batch_linger_s: float = setting(
        "TIKTOK_BATCH_LINGER_SECONDS", 0.5, "Longest wait for a request to fill before it is sent anyway.")
    pixel_rate_limit: int = setting(
        "TIKTOK_PIXEL_REQUESTS_PER_SECOND", 50, "Requests per second per pixel (TikTok allows 1,000 per endpoint).")
    max_in_flight: int = setting("TIKTOK_MAX_IN_FLIGHT", 16, "Most requests to TikTok open at once, all pixels together.")
    max_pending_events: int = setting(
        "TIKTOK_MAX_PENDING_EVENTS", 20000,
        "Most outbox events held in memory until their offset is committed (finished ones included); past it "
        "the worker stops reading the outbox.")
    request_timeout_s: float = setting("TIKTOK_REQUEST_TIMEOUT_SECONDS", 10.0, "Time allowed for one request.")
    retry_max_attempts: int = setting(
        "TIKTOK_RETRY_MAX_ATTEMPTS", 40, "Attempts per event before it is `failed` / `retries_exhausted`.")
    retry_max_s: float = setting(
        "TIKTOK_RETRY_MAX_SECONDS", 1800, "Time from the first attempt after which no retry is made.")
    park_after_s: float = setting(
        "TIKTOK_PARK_AFTER_SECONDS", 30,
        "An event still failing this long after its first attempt is parked on the `delivery-retry` topic and "
        "retried from there when due: a pixel that keeps failing holds no memory and no other pixel's commits.")
    retry_base_s: float = setting("TIKTOK_RETRY_BASE_SECONDS", 1.0, "First backoff; doubles on each retry, with jitter.")
    retry_cap_s: float = setting("TIKTOK_RETRY_CAP_SECONDS", 60.0, "Longest backoff between two attempts.")
    max_event_age_s: float = setting(
        "TIKTOK_MAX_EVENT_AGE_SECONDS", 7 * 86400, "An event older than this is `failed` / `expired`, not sent.")
    web_host: str = setting("WEB_HOST", "0.0.0.0", "Address of the web server (health, metrics).")
    web_port: int = setting("WEB_PORT", 6066, "Port of the web server.")
    analytics_token: str = setting(
        "ANALYTICS_TOKEN", "", "Token that `/campaigns` and its page require (`Authorization: Bearer`, or basic "
        "auth with it as the password); unset, they are off. Probes and metrics stay open.", secret=True)
    collector_enabled: bool = setting(
        "COLLECTOR_ENABLED", False, "Serve the click collector (`POST /collect`), the landing script (`/landing.js`) "
        "and a demo landing page (`/landing/demo`) on the web port.")
    collector_allowed_origins: str = setting(
        "COLLECTOR_ALLOWED_ORIGINS", "", "Landing-page origins, comma-separated (`https://yourapp.example`), whose "
        "pages may post clicks; `*` for any. Requests without an `Origin` and from the web port's own origin pass.")
    collector_trusted_proxy_header: str = setting(
        "COLLECTOR_TRUSTED_PROXY_HEADER", "", "Header in which the proxy in front of the worker passes the "
        "visitor's address (e.g. `X-Forwarded-For`; its last entry is taken); unset, the connection's address.")
    collector_max_body_bytes: int = setting(
        "COLLECTOR_MAX_BODY_BYTES", 16384, "Largest click the collector takes; larger ones get 413.")
    collector_requests_per_minute_per_ip: int = setting(
        "COLLECTOR_REQUESTS_PER_MINUTE_PER_IP", 600, "Clicks a minute one address may post (mobile carriers "
        "put many visitors behind one address); past it 429.")
    shutdown_timeout_s: float = setting(
        "SHUTDOWN_TIMEOUT_SECONDS", 30, "After SIGTERM the process exits within this, whatever is still pending "
        "(uncommitted events are read again by the next owner).")
    log_level: str = setting("LOG_LEVEL", "info", "crit, error, warn, info or debug.")
    log_format: str = setting(
        "LOG_FORMAT", "json", "`json`: one object per line (time, level, logger, message, app_id, pixel_id, "
        "event_id); `text` for reading in a terminal.")
    data_dir: str = setting(
        "DATA_DIR", ".local/worker-data",
        "Where the worker keeps local files: the join state with `STATE_STORE=rocksdb` (one directory per replica).")
    state_store: str = setting(
        "STATE_STORE", "memory",
        "Where the join state lives: `memory` (rebuilt from Kafka at every start) or `rocksdb` (on disk in "
        "`DATA_DIR`, kept across restarts; memory stays flat as the state grows).")
    state_standby_replicas: int = setting(
        "STATE_STANDBY_REPLICAS", 0,
        "Other replicas that keep a warm copy of each partition's join state, so a failover need not rebuild "
        "it (`STATE_STORE=rocksdb` only).")
    token_encryption_keys: str = setting(
        "TOKEN_ENCRYPTION_KEYS", "",
        "Fernet keys, comma-separated, that encrypt the integrations' access tokens; the first encrypts.",
        secret=True)
    token_encryption_keys_file: str = setting(
        "TOKEN_ENCRYPTION_KEYS_FILE", "", "A file holding the keys (instead of `TOKEN_ENCRYPTION_KEYS`).")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "Settings":
        values = {}
        for f in fields(cls):
            raw = environ.get(f.metadata["env"])
            if raw is None or raw == "":
                continue
            values[f.name] = _parse(f.type, raw, f.metadata["env"])
        settings = cls(**values)
        settings.check()
        return settings

    def check(self) -> None:
        if self.state_store not in ("memory", "rocksdb"):
            raise SystemExit(f"STATE_STORE={self.state_store!r}: use memory or rocksdb")
        if self.state_standby_replicas and self.state_store != "rocksdb":
            # The memory store drops a standby copy at every rebalance, and rebuilds actives whole anyway.
            raise SystemExit("STATE_STANDBY_REPLICAS needs STATE_STORE=rocksdb")

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    @property
    def app_id(self) -> str:
        """The Faust app's id, which is also the consumer group of the worker's replicas."""
        return self.topic("worker")

    def group_of(self, stage: str) -> str:
        """The consumer group of a stage that reads Kafka with a group of its own, beside the Faust app's."""
        return f"{self.app_id}-{stage}"


def _parse(kind: Any, raw: str, env: str) -> Any:
    try:
        if kind in ("bool", bool):
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if kind in ("int", int):
            return int(raw)
        if kind in ("float", float):
            return float(raw)
        return raw
    except ValueError:
        raise SystemExit(f"{env}={raw!r} is not a valid {kind}") from None


def markdown_table() -> str:
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for f in fields(Settings):
        default = f.default
        if isinstance(default, bool):
            default = "on" if default else "off"
        default = f"`{default}`" if default != "" else ""  # unset: an empty cell, not an empty code span
        rows.append(f"| `{f.metadata['env']}` | {default} | {f.metadata['doc']} |")
    return "\n".join(rows)
