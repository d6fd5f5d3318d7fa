"""What one Events API answer means for the events it carried.

TikTok reports errors as HTTP 200 with a non-zero `code` in the body, so the code
decides; the HTTP status speaks only when TikTok's API logic did not answer.

Sources for the codes (see /work/shared/reference/tiktok-events-api.md, section 5):
- TikTok's Business API error-code page, https://business-api.tiktok.com/portal/docs?id=1737172488964097:
  4xxxx are client errors, 5xxxx service errors; 40016 and 40100 "requests made too frequently",
  40132 and 40133 QPS limits (back off), 40202 "retry may resolve this issue", 50000 system error,
  50002 processing error (retry), 60001 maintenance (wait and retry), HTTP 5xx "wait and retry".
- TikTok's SDK code list, tiktok/tiktok-business-api-sdk `python_sdk/business_api_client/tiktok_business/
  tiktok_code.py` (`NumericErrorCodes`): the constant names of the codes in DOCUMENTED_CODES.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import orjson

Outcome = Literal["delivered", "throttled", "retry", "rejected"]

# 20001 is a partial success; TikTok does not say which events failed, so nothing can be retried.
DELIVERED_CODES = frozenset({0, 20001})
THROTTLED_CODES = frozenset({40016, 40100, 40132, 40133})
# Every 5xxxx is a fault on TikTok's side; besides those, a write conflict and maintenance pass.
TRANSIENT_CODES = frozenset({40202, 60001})
SERVICE_ERRORS = range(50000, 60000)
TRANSIENT_HTTP_STATUSES = frozenset({408, 429})
PARAMETER_ERROR = 40002
MAX_MESSAGE = 300
# Codes TikTok's error page or SDK name; any other is counted as "other" in metrics, so labels stay bounded.
DOCUMENTED_CODES = frozenset({
    0, 20001, 40000, 40001, 40002, 40006, 40016, 40050, 40051, 40061, 40062, 40063, 40100, 40102, 40104, 40105,
    40118, 40132, 40133, 40202, 40700, 41000, 50000, 50002, 51012, 60001, 61000})
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
    retry_after: float | None = None  # seconds the server asked us to wait (its `Retry-After`), if it did

    @property
    def code_label(self) -> str:
        """The code as a metric label: bounded to the codes TikTok documents."""
        if self.code is None:
            return "none"
        return str(self.code) if self.code in DOCUMENTED_CODES else "other"


def classify(http_status: int | None, body: bytes | None, *, access_token: str | None = None,
             retry_after: str | None = None, now: datetime | None = None) -> Answer:
    """Judge one answer; `access_token`, when given, is blanked out of the message should TikTok echo it.

    `retry_after` is the answer's `Retry-After` header (seconds or an HTTP date, relative to `now`).
    """
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
    wait = seconds_to_wait(retry_after, now or datetime.now(timezone.utc)) if outcome != "delivered" else None
    return Answer(outcome, http_status, code, redacted(message, access_token), request_id, bad_item, wait)


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
    if code in TRANSIENT_CODES or code in SERVICE_ERRORS:
        return "retry"
    return "rejected"


def seconds_to_wait(retry_after: str | None, now: datetime) -> float | None:
    """A `Retry-After` header (RFC 9110: delay-seconds or an HTTP date) as seconds from `now`; None if unreadable."""
    value = (retry_after or "").strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:  # an HTTP date is always GMT
        moment = moment.replace(tzinfo=timezone.utc)
    return max(0.0, (moment - now).total_seconds())


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
