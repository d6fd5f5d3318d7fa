"""What the ingest stage keeps of a record, and what a dead letter keeps of one it cannot use."""

import base64
import hashlib

import orjson
import pytest

from worker.dead_letters import DEAD_LETTER_MAX_BYTES, dead_letter
from worker.ingest.records import MAX_EVENT_BYTES, InvalidRecord, parse_app_event, parse_click

EVENT = {"event_id": "e1", "app_id": "app1", "name": "trial_started", "occurred_at": "2026-11-24T17:00:00Z",
         "ttclid": "T1"}


def test_a_dead_letter_keeps_a_small_record_whole_with_its_size_and_digest():
    raw = b'{"not": "an event"}'
    letter = dead_letter("schema_violation", "why", "t", 0, 5, b"k", raw, "2026-11-24T17:00:00Z")
    assert base64.b64decode(letter["value_b64"]) == raw and letter["value_truncated"] is False
    assert letter["value_size"] == len(raw) and letter["value_sha256"] == hashlib.sha256(raw).hexdigest()
    assert base64.b64decode(letter["key_b64"]) == b"k"


def test_a_dead_letter_of_a_record_near_kafkas_limit_keeps_a_prefix_and_fits():
    raw = orjson.dumps({**EVENT, "event_id": None, "pad": "x" * 990_000})
    letter = dead_letter("schema_violation", "why", "t", 0, 5, None, raw, "2026-11-24T17:00:00Z")
    assert letter["value_truncated"] is True and letter["value_size"] == len(raw)
    assert base64.b64decode(letter["value_b64"]) == raw[:DEAD_LETTER_MAX_BYTES]
    assert letter["value_sha256"] == hashlib.sha256(raw).hexdigest()
    assert len(orjson.dumps(letter)) < 500_000


def test_only_the_users_known_fields_are_kept_so_no_nesting_reaches_the_join_state():
    deep: dict = {}
    for _ in range(250):
        deep = {"d": deep}
    event = parse_app_event(orjson.dumps({**EVENT, "user": {"id": "u1", "email": "a@b.c", "extra": deep}}))
    assert event["user"] == {"id": "u1", "email": "a@b.c"}
    assert "user" not in parse_app_event(orjson.dumps({**EVENT, "user": {"extra": deep}}))


@pytest.mark.parametrize("kind", ["app_event", "click"])
def test_a_record_too_large_to_keep_in_the_join_state_is_too_large(kind):
    if kind == "app_event":
        raw, parse = orjson.dumps({**EVENT, "product_id": "p" * MAX_EVENT_BYTES}), parse_app_event
    else:
        raw, parse = orjson.dumps({"app_id": "app1", "url": "https://a.example/?ttclid=T1",
                                   "occurred_at": "2026-11-24T17:00:00Z", "user_agent": "u" * MAX_EVENT_BYTES}), parse_click
    with pytest.raises(InvalidRecord) as raised:
        parse(raw)
    assert raised.value.reason == "too_large"


def test_unknown_fields_do_not_count_against_the_size_limit():
    raw = orjson.dumps({**EVENT, "ignored": "x" * (4 * MAX_EVENT_BYTES)})
    assert parse_app_event(raw)["event_id"] == "e1"
