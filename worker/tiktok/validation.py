"""The Events API's rules for a request body, as code: what TikTok would refuse with 40002, and why.

The sandbox answers with it, and the worker's dry run checks every body it builds against it.
"""

from __future__ import annotations

import re
from typing import Any

from worker.tiktok.events import event_name_problem
from worker.tiktok.payload import MAX_EVENTS_PER_REQUEST, SHA256_HEX


def is_string(value: Any) -> bool:
    return isinstance(value, str)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_digest(value: Any) -> bool:
    if isinstance(value, list):
        return bool(value) and all(is_digest(one) for one in value)
    return isinstance(value, str) and SHA256_HEX.fullmatch(value) is not None


def is_currency(value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch(r"[A-Z]{3}", value) is not None


def is_string_list(value: Any) -> bool:
    return isinstance(value, list) and all(is_string(one) for one in value)


def is_contents(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(one, dict) and is_string(one.get("content_id", "")) for one in value)


NOT_A_STRING = (is_string, "Not a valid string.")
NOT_HASHED = (is_digest, "Not a valid SHA-256 hash (64 lowercase hex characters, or a list of them).")
SECTION_RULES = {
    "user": {"ttclid": NOT_A_STRING, "ttp": NOT_A_STRING, "ip": NOT_A_STRING, "user_agent": NOT_A_STRING,
             "locale": NOT_A_STRING, "email": NOT_HASHED, "phone": NOT_HASHED, "external_id": NOT_HASHED},
    "page": {"url": NOT_A_STRING, "referrer": NOT_A_STRING},
    "properties": {"value": (is_number, "Not a valid number."),
                   "currency": (is_currency, "Not a valid ISO 4217 currency code."),
                   "content_type": NOT_A_STRING,
                   "content_ids": (is_string_list, "Not a valid list of strings."),
                   "contents": (is_contents, "Not a valid list of contents.")},
}


def item_problem(index: int, item: Any) -> str | None:
    """TikTok's 40002 message for one `data[]` item, naming it as `data.<index>.<field>`, or None."""
    where = f"data.{index}"
    if not isinstance(item, dict):
        return f"{where}: Not a valid object."
    if "event_id" in item and not isinstance(item["event_id"], str):
        return "Invalid value for event_id: not a valid string."  # TikTok's words, which name no item
    for required in ("event", "event_time"):
        if required not in item:
            return f"{where}.{required}: Missing data for required field."
    if problem := event_name_problem(item["event"]):
        return f"{where}.event: {problem}"
    if type(item["event_time"]) is not int:
        return f"{where}.event_time: Not a valid integer."
    for section, rules in SECTION_RULES.items():
        if section not in item:
            continue
        fields = item[section]
        if not isinstance(fields, dict):
            return f"{where}.{section}: Not a valid object."
        for name, (valid, problem) in rules.items():
            if name in fields and not valid(fields[name]):
                return f"{where}.{section}.{name}: {problem}"
    if "limited_data_use" in item and not isinstance(item["limited_data_use"], bool):
        return f"{where}.limited_data_use: Not a valid boolean."
    return None


def request_problem(body: Any) -> str | None:
    """TikTok's 40002 message for a request body, or None when the body is acceptable."""
    if not isinstance(body, dict):
        return "The request body must be a JSON object."
    if body.get("event_source") != "web":
        return 'event_source: Must be "web" (the sandbox stands in for web events only).'
    if not isinstance(body.get("event_source_id"), str) or not body["event_source_id"]:
        return "event_source_id: Not a valid string."
    if "test_event_code" in body and not isinstance(body["test_event_code"], str):
        return "test_event_code: Not a valid string."
    data = body.get("data")
    if not isinstance(data, list) or not data:
        return "data: Must be a non-empty list of events."
    if len(data) > MAX_EVENTS_PER_REQUEST:
        return f"data: Longer than maximum length {MAX_EVENTS_PER_REQUEST}."
    return next(filter(None, (item_problem(index, item) for index, item in enumerate(data))), None)
