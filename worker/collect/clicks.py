"""The collector, pure: a landing page's request becomes a click v1 for the clicks topic, or a refusal.

The landing script posts what only the browser knows (the landing URL, the `_ttp` cookie, the
referrer, the language); the visitor's address and browser come from the request itself.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Mapping

import orjson

from worker.ingest.records import InvalidRecord, decode_json, parse_click

# What to paste into TikTok Ads Manager (ad → Destination → URL parameters): TikTok replaces each macro.
AD_URL_PARAMETERS = "campaign_name=__CAMPAIGN_NAME__&adset_name=__AID_NAME__&ad_name=__CID_NAME__&ttclid=__CLICKID__"


def ad_url(landing_page: str) -> str:
    """The landing page's URL with the ad URL parameters added to its query."""
    separator = "&" if "?" in landing_page else "?"
    return f"{landing_page}{separator}{AD_URL_PARAMETERS}"


def client_ip(peer: str | None, headers: Mapping[str, str], trusted_header: str) -> str | None:
    """The visitor's address: the last entry of the trusted proxy's header (the address the proxy saw)
    when one is configured and present, else the connection's peer."""
    if trusted_header and (forwarded := headers.get(trusted_header, "").split(",")[-1].strip()):
        return forwarded
    return peer


def allowed_origin(origin: str | None, host: str | None, allowed: frozenset[str]) -> bool:
    """Requests without an Origin (servers, curl) and from the collector's own origin always pass."""
    if origin is None or "*" in allowed or origin in allowed:
        return True
    return origin.partition("://")[2] == host


def collected_click(body: bytes, ip: str | None, user_agent: str | None, now: datetime) -> tuple[str, bytes]:
    """(ttclid, click v1 bytes) from a posted body, with the request's ip and user agent;
    raises `InvalidRecord` with the reason the worker would dead-letter it for."""
    value: Any = decode_json(body)
    if not isinstance(value, dict):
        raise InvalidRecord("schema_violation", "click v1: the body must be a JSON object")
    value = {name: field for name, field in value.items() if name not in ("ip", "user_agent")}
    value.setdefault("occurred_at", now.astimezone(timezone.utc).isoformat(timespec="milliseconds")
                     .replace("+00:00", "Z"))
    if ip:
        value["ip"] = ip
    if user_agent:
        value["user_agent"] = user_agent
    raw = orjson.dumps(value)
    return parse_click(raw)["ttclid"], raw
