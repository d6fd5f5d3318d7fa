"""Delivery result v1: the one final record every app event gets, whatever became of it."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

# Fields copied from the app event or outbox record as they are (None when unknown).
CARRIED = ("event_id", "app_id", "name", "tiktok_event", "pixel_id", "ttclid", "campaign_name",
           "adset_name", "ad_name", "value", "currency", "occurred_at")


def utc_now_iso(now: float | None = None) -> str:
    moment = datetime.fromtimestamp(time.time() if now is None else now, timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def final_result(record: dict[str, Any], status: str, reason: str | None = None, *,
                 attempts: int = 0, http_status: int | None = None, tiktok_code: int | None = None,
                 tiktok_message: str | None = None, request_id: str | None = None,
                 now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    result = {name: record.get(name) for name in CARRIED}
    result.update(
        status=status,
        reason=reason,
        enriched=bool(record.get("enriched", False)),
        test=bool(record.get("test_event_code")),
        attempts=attempts,
        http_status=http_status,
        tiktok_code=tiktok_code,
        tiktok_message=tiktok_message,
        request_id=request_id,
        replayed="replayed_at" in record,
        finished_at=utc_now_iso(now),
        latency_ms=max(0, int(now * 1000 - record["read_ms"])),
    )
    return result
