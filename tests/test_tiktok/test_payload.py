import hashlib

import pytest

from worker.tiktok.payload import (
    event_item, hashed_email, hashed_external_id, hashed_phone, request_body, sha256_hex,
)

EMAIL_HASH = "848a771458438fc2ec420560d769fb9b9b86851ee338ec56517baabd79d3bb4f"
PHONE_HASH = "9f7ec22d72092cd3c0b58726ed9c2d91b92e51a3f29837508fb2948bb22dd2fd"
EXTERNAL_ID_HASH = "80fba0ae1c48e3978e43e4efc365e14e12ea0c830ba8ba5b9a2dafc7e3f2ab8b"


def outbox_record(**changes):
    """An outbox record as the delivery stage receives it, with every optional field known."""
    record = {
        "event_id": "evt-1", "app_id": "app1", "name": "subscription_started",
        "occurred_at": "2026-11-24T17:00:00.900Z", "occurred_ts": 1795539600.9, "read_ms": 1795539601000.0,
        "tiktok_event": "Subscribe", "pixel_id": "PIXEL1", "test_event_code": None, "limited_data_use": False,
        "ttclid": "E.C.P.abc", "enriched": True,
        "ttp": "2F7h37YkS1j57AYSKTI7IHhJPYH", "ip": "203.0.113.5", "user_agent": "Mozilla/5.0", "locale": "en-US",
        "url": "https://app.example/?ttclid=E.C.P.abc", "referrer": "https://www.tiktok.com/",
        "campaign_name": "Spring", "adset_name": "US-25", "ad_name": "Video-3",
        "user": {"id": "user_123", "email": " ALICE_abc@gmail.com ", "phone": "(+1)2133734253"},
        "value": 9.99, "currency": "USD", "product_id": "pro_monthly",
    }
    return record | changes


def test_golden_hashes_from_tiktoks_documentation():
    assert hashed_email(" ALICE_abc@gmail.com ") == EMAIL_HASH
    assert hashed_phone("(+1)2133734253") == PHONE_HASH
    assert hashed_external_id("user_123") == EXTERNAL_ID_HASH


def test_values_already_hashed_are_not_hashed_again():
    for hash_it, digest in [(hashed_email, EMAIL_HASH), (hashed_phone, PHONE_HASH),
                            (hashed_external_id, EXTERNAL_ID_HASH), (sha256_hex, EMAIL_HASH)]:
        assert hash_it(digest) == digest
    item = event_item(outbox_record(user={"id": EXTERNAL_ID_HASH, "email": EMAIL_HASH, "phone": PHONE_HASH}))
    assert (item["user"]["external_id"], item["user"]["email"], item["user"]["phone"]) == (
        EXTERNAL_ID_HASH, EMAIL_HASH, PHONE_HASH)


def test_an_upper_case_digest_is_lower_cased_never_hashed_again():
    for hash_it, digest in [(hashed_email, EMAIL_HASH), (hashed_phone, PHONE_HASH),
                            (hashed_external_id, EXTERNAL_ID_HASH), (sha256_hex, EMAIL_HASH)]:
        assert hash_it(digest.upper()) == digest
    item = event_item(outbox_record(user={"id": EXTERNAL_ID_HASH.upper(), "phone": PHONE_HASH.upper()}))
    assert (item["user"]["external_id"], item["user"]["phone"]) == (EXTERNAL_ID_HASH, PHONE_HASH)


def test_external_id_keeps_its_case_and_email_does_not():
    assert hashed_external_id(" User_123 ") == sha256_hex("User_123") != EXTERNAL_ID_HASH
    assert hashed_email("Alice_ABC@Gmail.com") == EMAIL_HASH


@pytest.mark.parametrize("written", ["+12133734253", "+1 (213) 373-4253", " +1 213 373 4253 "])
def test_phone_numbers_are_hashed_in_e164(written):
    assert hashed_phone(written) == hashlib.sha256(b"+12133734253").hexdigest() == PHONE_HASH


@pytest.mark.parametrize("unusable", ["2133734253", "0044 20 7946 0958", "+1 555", "call me", "", "   ", None])
def test_phone_numbers_without_a_country_code_or_invalid_are_left_out(unusable):
    assert hashed_phone(unusable) is None
    assert "phone" not in event_item(outbox_record(user={"phone": unusable}))["user"]


def test_empty_identifiers_are_left_out_rather_than_hashed():
    assert hashed_email("  ") is None
    assert hashed_external_id("") is None
    assert hashed_email(None) is None


def test_a_full_record_becomes_one_data_item():
    assert event_item(outbox_record()) == {
        "event": "Subscribe",
        "event_time": 1795539600,
        "event_id": "evt-1",
        "user": {"ttclid": "E.C.P.abc", "ttp": "2F7h37YkS1j57AYSKTI7IHhJPYH", "ip": "203.0.113.5",
                 "user_agent": "Mozilla/5.0", "locale": "en-US",
                 "email": EMAIL_HASH, "phone": PHONE_HASH, "external_id": EXTERNAL_ID_HASH},
        "page": {"url": "https://app.example/?ttclid=E.C.P.abc", "referrer": "https://www.tiktok.com/"},
        "properties": {"value": 9.99, "currency": "USD", "content_type": "product",
                       "contents": [{"content_id": "pro_monthly"}], "content_ids": ["pro_monthly"]},
        "limited_data_use": False,
    }


def test_unknown_fields_are_left_out_never_sent_as_null():
    minimal = {"event_id": "evt-2", "occurred_ts": 1795539600.0, "tiktok_event": "StartTrial",
               "ttclid": "E.C.P.abc", "limited_data_use": True}
    explicit_nones = minimal | {name: None for name in (
        "ttp", "ip", "user_agent", "locale", "url", "referrer", "user", "value", "currency", "product_id")}
    expected = {"event": "StartTrial", "event_time": 1795539600, "event_id": "evt-2",
                "user": {"ttclid": "E.C.P.abc"}, "limited_data_use": True}
    assert event_item(minimal) == expected
    assert event_item(explicit_nones) == expected
    assert event_item(minimal | {"user": {"id": "", "email": None}}) == expected


def test_a_zero_value_is_kept():
    assert event_item(outbox_record(value=0, product_id=None))["properties"] == {"value": 0, "currency": "USD"}


def test_event_id_is_always_a_string():
    assert event_item(outbox_record(event_id=123))["event_id"] == "123"


def test_test_event_code_is_sent_at_the_top_level_only():
    body = request_body("PIXEL1", "TEST123", [outbox_record(), outbox_record(event_id="evt-2")])
    assert body["event_source"] == "web"
    assert body["event_source_id"] == "PIXEL1"
    assert body["test_event_code"] == "TEST123"
    assert [item["event_id"] for item in body["data"]] == ["evt-1", "evt-2"]
    assert all("test_event_code" not in item for item in body["data"])
    assert "test_event_code" not in request_body("PIXEL1", None, [outbox_record()])


def test_a_request_carries_one_to_a_thousand_events():
    assert len(request_body("PIXEL1", None, [outbox_record()] * 1000)["data"]) == 1000
    for count in (0, 1001):
        with pytest.raises(ValueError, match="1 to 1000 events"):
            request_body("PIXEL1", None, [outbox_record()] * count)
