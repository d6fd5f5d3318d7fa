"""What one Events API answer means for the events it carried.

TikTok reports errors as HTTP 200 with a non-zero `code` in the body, so the code
decides; the HTTP status speaks only when TikTok's API logic did not answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import orjson

Outcome = Literal["delivered", "throttled", "retry", "rejected"]

# 20001 is a partial success; TikTok does not say which events failed, so nothing can be retried.
DELIVERED_CODES = frozenset({0, 20001})
THROTTLED_CODES = frozenset({40100, 40132, 40133})
TRANSIENT_CODES = frozenset({40202, 50000, 50002, 51012, 60001})
TRANSIENT_HTTP_STATUSES = frozenset({408, 429})
PARAMETER_ERROR = 40002
MAX_MESSAGE = 300
# TikTok names the offending event as "Batch.3.properties..." or "data.3.user...".
BAD_ITEM = re.compile(r"\b(?:Batch|data)\.(\d+)\b")


@dataclass(frozen=True)
class Answer:
    outcome: Outcome
    http_status: int | None
    code: int | None
    message: str | None
    request_id: str | None
    bad_item: int | None = None


def classify(http_status: int | None, body: bytes | None, *, access_token: str | None = None) -> Answer:
    """Judge one answer; `access_token`, when given, is blanked out of the message should TikTok echo it."""
    if http_status is None:
        return Answer("retry", None, None, "no answer from TikTok (timeout or connection error)", None)
    envelope = tiktok_envelope(body)
    if envelope is None:
        code, request_id = None, None
        message = f"HTTP {http_status} with a body that is not TikTok's JSON answer: {preview(body)}"
    else:
        code = envelope["code"]
        message, request_id = text_or_none(envelope, "message"), text_or_none(envelope, "request_id")
    outcome = outcome_of(http_status, code)
    bad_item = None
    if outcome == "rejected" and code == PARAMETER_ERROR and (named := BAD_ITEM.search(message or "")):
        bad_item = int(named.group(1))
    return Answer(outcome, http_status, code, redacted(message, access_token), request_id, bad_item)


def classify_exception(exc: BaseException, *, access_token: str | None = None) -> Answer:
    """A request that got no answer (timeout, refused or reset connection): worth another try."""
    detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return Answer("retry", None, None, redacted(f"no answer from TikTok: {detail}", access_token), None)


def outcome_of(http_status: int, code: int | None) -> Outcome:
    if code in THROTTLED_CODES:
        return "throttled"
    if http_status >= 500 or http_status in TRANSIENT_HTTP_STATUSES:
        return "retry"
    if code is None:
        # A 2xx without TikTok's envelope is garbage from a sick server; any other status means a wrong URL or method.
        return "retry" if 200 <= http_status < 300 else "rejected"
    if code in DELIVERED_CODES:
        return "delivered"
    if code in TRANSIENT_CODES:
        return "retry"
    return "rejected"


def tiktok_envelope(body: bytes | None) -> dict[str, Any] | None:
    """The body as TikTok's `{"code": ..., "message": ...}` object, or None when it is not one."""
    try:
        value = orjson.loads(body or b"")
    except orjson.JSONDecodeError:
        return None
    if isinstance(value, dict) and type(value.get("code")) is int:
        return value
    return None


def text_or_none(envelope: dict[str, Any], key: str) -> str | None:
    value = envelope.get(key)
    return None if value is None else str(value)


def preview(body: bytes | None) -> str:
    text = " ".join((body or b"").decode(errors="replace").split())
    return repr(text[:100]) if text else "(empty)"


def redacted(message: str | None, access_token: str | None) -> str | None:
    if message is None:
        return None
    if access_token:
        message = message.replace(access_token, "[access token]")
    return message[:MAX_MESSAGE]
