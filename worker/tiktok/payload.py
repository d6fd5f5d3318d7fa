"""The Events API request body, built from outbox records: normalising, hashing, leaving out what is unknown."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import phonenumbers

MAX_EVENTS_PER_REQUEST = 1000
# Any case: an upper-case hex digest is still a digest (TikTok wants it lower-case, never hashed again).
SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
CLICK_CONTEXT = ("ttclid", "ttp", "ip", "user_agent", "locale")


def sha256_hex(value: str) -> str:
    """SHA-256 as lowercase hex; a value that already is a hex digest is taken as hashed and lower-cased."""
    if SHA256_HEX.fullmatch(value):
        return value.lower()
    return hashlib.sha256(value.encode()).hexdigest()


def hashed_email(raw: str | None) -> str | None:
    email = (raw or "").strip().lower()
    return sha256_hex(email) if email else None


def hashed_phone(raw: str | None) -> str | None:
    """SHA-256 of the number in E.164, or None when it has no country code or is no valid number."""
    phone = (raw or "").strip()
    if not phone:
        return None
    if SHA256_HEX.fullmatch(phone):
        return phone.lower()
    try:
        number = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return None
    # The hash of a malformed number can never match a TikTok user: leaving it out is honest.
    if not phonenumbers.is_valid_number(number):
        return None
    return sha256_hex(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def hashed_external_id(raw: str | None) -> str | None:
    """Trimmed, not lowercased: ids such as "User_123" are case-sensitive (TikTok's example keeps the case)."""
    external_id = (raw or "").strip()
    return sha256_hex(external_id) if external_id else None


def without_empty(fields: dict[str, Any]) -> dict[str, Any]:
    """TikTok takes a missing key as unknown, but a null or empty one as a (wrong) value."""
    return {name: value for name, value in fields.items() if value not in (None, "", [], {})}


def event_item(record: dict[str, Any]) -> dict[str, Any]:
    """One `data[]` item of the request from an outbox record."""
    person = record.get("user") or {}
    user = {name: record.get(name) for name in CLICK_CONTEXT}
    user["email"] = hashed_email(person.get("email"))
    user["phone"] = hashed_phone(person.get("phone"))
    user["external_id"] = hashed_external_id(person.get("id"))
    product_id = record.get("product_id")
    properties = {"value": record.get("value"), "currency": record.get("currency")}
    if product_id:
        properties |= {"content_type": "product", "contents": [{"content_id": product_id}],
                       "content_ids": [product_id]}
    return without_empty({
        "event": record["tiktok_event"],
        "event_time": int(record["occurred_ts"]),
        "event_id": str(record["event_id"]),
        "user": without_empty(user),
        "page": without_empty({"url": record.get("url"), "referrer": record.get("referrer")}),
        "properties": without_empty(properties),
        "limited_data_use": bool(record.get("limited_data_use")),
    })


def request_body(pixel_id: str, test_event_code: str | None, records: list[dict[str, Any]]) -> dict[str, Any]:
    """The whole request for one pixel; TikTok refuses an entire request of more than 1000 events."""
    if not 1 <= len(records) <= MAX_EVENTS_PER_REQUEST:
        raise ValueError(f"a request carries 1 to {MAX_EVENTS_PER_REQUEST} events, not {len(records)}")
    body: dict[str, Any] = {"event_source": "web", "event_source_id": pixel_id}
    if test_event_code:
        body["test_event_code"] = test_event_code
    body["data"] = [event_item(record) for record in records]
    return body
