"""Campaign analytics, pure: fold delivery results into one row per app, UTC day, campaign, ad set and ad.

An event counts once per row, whatever its latest result: a row remembers the outcome of its most
recent events (at most RECENT_EVENTS, by a short fingerprint of the event id), so a repeated result
(an at-least-once repeat, a replay) replaces the earlier one instead of adding to the counts.
The memory lives in the row itself, so it moves with the row's partition on a rebalance.
"""

from __future__ import annotations

import hashlib
from typing import Any

ROW_KEY = ("app_id", "day", "campaign_name", "adset_name", "ad_name")
# Repeats come within minutes; 1,000 results of one row span far more than that at any real rate.
RECENT_EVENTS = 1000
# `recent` is one string of entries, oldest first: 12 lower-case hex of the event's fingerprint, then
# its status as one upper-case letter (never hex, so a fingerprint is only ever found where it starts
# an entry). A string, not a mapping, because the row is read and written whole for every result.
FINGERPRINT = 12
ENTRY = FINGERPRINT + 1
STATUS_LETTERS = {"delivered": "D", "rejected": "R", "failed": "F", "skipped": "S", "dry_run": "N"}
LETTER_STATUSES = {letter: status for status, letter in STATUS_LETTERS.items()}


def row_key(result: dict[str, Any]) -> str:
    day = (result.get("finished_at") or "")[:10]
    return "|".join(str(part or "") for part in (result["app_id"], day, result.get("campaign_name"),
                                                 result.get("adset_name"), result.get("ad_name")))


def empty_row(key: str) -> dict[str, Any]:
    row: dict[str, Any] = dict(zip(ROW_KEY, key.split("|")))
    row.update(results=0, enriched=0, statuses={}, tiktok_events={}, value={}, recent="")
    return row


def fingerprint(event_id: Any) -> str:
    """48 bits of the event id: short enough that a row holds a thousand, long enough that two of a
    thousand collide about once in 500 million full rows."""
    return hashlib.blake2b(str(event_id).encode(), digest_size=FINGERPRINT // 2).hexdigest()


def add_result(row: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """Count `result` in `row`; a result for an event the row has just counted replaces that one."""
    recent = row.get("recent", "")
    event = fingerprint(result["event_id"])
    at = recent.find(event)
    if at == -1:
        row["results"] += 1
        row["enriched"] += bool(result.get("enriched"))
    else:
        count(row, result, LETTER_STATUSES[recent[at + FINGERPRINT]], -1)
        recent = recent[:at] + recent[at + ENTRY:]
    count(row, result, result["status"], +1)
    row["recent"] = (recent + event + STATUS_LETTERS[result["status"]])[-RECENT_EVENTS * ENTRY:]
    return row


def count(row: dict[str, Any], result: dict[str, Any], status: str, sign: int) -> None:
    """Add (sign +1) or take back (-1) what `result` contributes to `row` when it ends in `status`."""
    add(row["statuses"], status, sign)
    if status in ("delivered", "dry_run") and result.get("tiktok_event"):
        add(row["tiktok_events"], result["tiktok_event"], sign)
    if status == "delivered" and result.get("value") is not None:
        currency = result.get("currency") or "?"
        row["value"][currency] = round(row["value"].get(currency, 0) + sign * result["value"], 2)


def add(counts: dict[str, int], name: str, sign: int) -> None:
    counts[name] = counts.get(name, 0) + sign
    if not counts[name]:
        del counts[name]


def matching(rows: list[dict[str, Any]], app_id: str | None, day_from: str | None,
             day_to: str | None) -> list[dict[str, Any]]:
    """Rows of one app (or all) between two UTC days (YYYY-MM-DD, inclusive), with the enriched share."""
    chosen = [r for r in rows if (not app_id or r["app_id"] == app_id)
              and (not day_from or r["day"] >= day_from) and (not day_to or r["day"] <= day_to)]
    return sorted(({**r, "enriched_share": round(r["enriched"] / r["results"], 3) if r["results"] else 0.0}
                   for r in chosen), key=lambda r: (r["day"], r["app_id"], r["campaign_name"], r["adset_name"],
                                                     r["ad_name"]))


def without_recent(row: dict[str, Any]) -> dict[str, Any]:
    """The row as analysts see it: its counts, not what it remembers to count each event once."""
    return {key: value for key, value in row.items() if key != "recent"}
