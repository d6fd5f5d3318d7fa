"""Property tests of the pure functions: whatever the input, they answer in their own terms and never crash."""

from __future__ import annotations

import hashlib
import re
import string
from urllib.parse import urlencode

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.ingest.records import InvalidRecord, parse_app_event, parse_click, url_attribution
from worker.tiktok.payload import hashed_email, hashed_external_id, hashed_phone, request_body, sha256_hex
from worker.tiktok.responses import classify
from worker.tiktok.validation import request_problem

json_values = st.recursive(st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats(allow_nan=False) | st.text(),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
                           max_leaves=20)
query_text = st.text(alphabet=string.ascii_letters + string.digits + " .-_%&=+?/", max_size=40)


@given(st.binary(max_size=300) | json_values.map(orjson.dumps))
def test_any_bytes_are_a_click_or_an_invalid_record(raw):
    for parse in (parse_click, parse_app_event):
        try:
            parsed = parse(raw)
        except InvalidRecord as exc:
            assert exc.reason in {"invalid_json", "schema_violation", "missing_ttclid"} and exc.detail
        else:
            assert isinstance(parsed, dict)


@given(st.dictionaries(st.sampled_from(["ttclid", "campaign_name", "adset_name", "ad_name", "other"]),
                       query_text, max_size=5))
def test_url_attribution_reads_back_what_the_query_carries(fields):
    found = url_attribution("https://app.example/landing?" + urlencode(fields))
    assert found == {name: value for name, value in fields.items()
                     if name != "other" and value != "" and not re.fullmatch(r"__[A-Z0-9_]+__", value)}


@given(st.text(max_size=80))
def test_hashing_is_sha256_of_the_normalised_value_and_never_hashes_twice(value):
    digest = sha256_hex(value)
    assert len(digest) == 64 and sha256_hex(digest) == digest
    email = hashed_email(value)
    if value.strip():
        assert email == sha256_hex(value.strip().lower())
        assert hashed_email(email) == email
        assert hashed_external_id(value) == sha256_hex(value.strip())
    else:
        assert email is None
    phone = hashed_phone(value)
    assert phone is None or len(phone) == 64


@given(st.lists(st.fixed_dictionaries({
    "event_id": st.text(min_size=1, max_size=20), "tiktok_event": st.sampled_from(["Purchase", "StartTrial", "Lead"]),
    "occurred_ts": st.floats(min_value=0, max_value=4e9), "ttclid": st.text(max_size=20),
    "value": st.none() | st.floats(allow_nan=False, allow_infinity=False), "currency": st.sampled_from(["USD", None]),
    "user": st.fixed_dictionaries({"email": st.text(max_size=30), "phone": st.text(max_size=20),
                                   "id": st.text(max_size=20)}),
}), min_size=1, max_size=30), st.none() | st.text(min_size=1, max_size=10))
@settings(max_examples=60)
def test_every_body_built_follows_tiktoks_rules(records, test_event_code):
    body = request_body("PIXEL", test_event_code, records)
    assert request_problem(body) is None
    assert [item["event_id"] for item in body["data"]] == [r["event_id"] for r in records]
    assert ("test_event_code" in body) == bool(test_event_code)


@given(st.none() | st.integers(min_value=100, max_value=599), st.none() | st.binary(max_size=200)
       | st.builds(lambda code, msg: orjson.dumps({"code": code, "message": msg}),
                   st.integers(min_value=0, max_value=70000), st.text(max_size=60)))
def test_every_answer_is_classified(status, body):
    answer = classify(status, body, access_token="tok_secret_value_123")
    assert answer.outcome in {"delivered", "throttled", "retry", "rejected"}
    assert "tok_secret_value_123" not in (answer.message or "")
    if status is None:
        assert answer.outcome == "retry"


def test_known_hash_examples_hold():
    assert hashed_email(" ALICE_abc@gmail.com ") == hashlib.sha256(b"alice_abc@gmail.com").hexdigest()
