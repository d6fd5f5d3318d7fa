"""Campaign analytics, pure: fold delivery results into one row per app, UTC day, campaign, ad set and ad."""

from __future__ import annotations

from typing import Any

ROW_KEY = ("app_id", "day", "campaign_name", "adset_name", "ad_name")


def row_key(result: dict[str, Any]) -> str:
    day = (result.get("finished_at") or "")[:10]
    return "|".join(str(part or "") for part in (result["app_id"], day, result.get("campaign_name"),
                                                 result.get("adset_name"), result.get("ad_name")))


def empty_row(key: str) -> dict[str, Any]:
    row: dict[str, Any] = dict(zip(ROW_KEY, key.split("|")))
    row.update(results=0, enriched=0, statuses={}, tiktok_events={}, value={})
    return row


def add_result(row: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    row["results"] += 1
    row["enriched"] += bool(result.get("enriched"))
    row["statuses"][result["status"]] = row["statuses"].get(result["status"], 0) + 1
    if result["status"] in ("delivered", "dry_run") and result.get("tiktok_event"):
        row["tiktok_events"][result["tiktok_event"]] = row["tiktok_events"].get(result["tiktok_event"], 0) + 1
    if result["status"] == "delivered" and result.get("value") is not None:
        currency = result.get("currency") or "?"
        row["value"][currency] = round(row["value"].get(currency, 0) + result["value"], 2)
    return row


def matching(rows: list[dict[str, Any]], app_id: str | None, day_from: str | None,
             day_to: str | None) -> list[dict[str, Any]]:
    """Rows of one app (or all) between two UTC days (YYYY-MM-DD, inclusive), with the enriched share."""
    chosen = [r for r in rows if (not app_id or r["app_id"] == app_id)
              and (not day_from or r["day"] >= day_from) and (not day_to or r["day"] <= day_to)]
    return sorted(({**r, "enriched_share": round(r["enriched"] / r["results"], 3) if r["results"] else 0.0}
                   for r in chosen), key=lambda r: (r["day"], r["app_id"], r["campaign_name"], r["adset_name"],
                                                     r["ad_name"]))
