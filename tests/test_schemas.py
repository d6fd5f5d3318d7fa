"""The JSON Schemas in schemas/ accept the contract's examples and refuse broken ones."""

import json
from pathlib import Path

import jsonschema
import pytest

from worker.ingest.records import InvalidRecord, validate_app_event, validate_click

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"

CLICK = {"app_id": "app1", "occurred_at": "2026-11-24T16:00:00Z",
         "url": "https://yourapp.example/?campaign_name=Spring&adset_name=US-25&ad_name=Video-3&ttclid=E.C.P.abc",
         "ttp": "2F7h37YkS1j57AYSKTI7IHhJPYH", "ip": "203.0.113.5", "user_agent": "Mozilla/5.0",
         "referrer": "https://www.tiktok.com/", "locale": "en-US", "some_future_field": 1}
APP_EVENT = {"event_id": "evt-1", "app_id": "app1", "name": "trial_started", "occurred_at": "2026-11-24T16:05:00+01:00",
             "ttclid": "E.C.P.abc", "user": {"id": "u1", "email": "A@B.example", "phone": "+12133734253"},
             "value": 9.99, "currency": "USD", "product_id": "pro_monthly"}
INTEGRATION = {"app_id": "app1", "pixel_id": "C4PIXEL", "access_token": "secret", "enabled": True,
               "test_event_code": "TEST123", "limited_data_use": False,
               "events": {"trial_started": {"enabled": True, "name": "StartTrial"}, "paywall_shown": {"enabled": True}}}
RESULT = {"event_id": "evt-1", "app_id": "app1", "name": "trial_started", "status": "delivered", "reason": None,
          "tiktok_event": "StartTrial", "pixel_id": "C4PIXEL", "ttclid": "E.C.P.abc", "campaign_name": "Spring",
          "adset_name": "US-25", "ad_name": "Video-3", "enriched": True, "value": 9.99, "currency": "USD",
          "test": False, "attempts": 1, "http_status": 200, "tiktok_code": 0, "tiktok_message": "OK",
          "request_id": "2026112416", "occurred_at": "2026-11-24T16:05:00Z", "finished_at": "2026-11-24T16:05:01Z",
          "latency_ms": 812}


def validator(name: str) -> jsonschema.protocols.Validator:
    schema = json.loads((SCHEMAS / name).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("name, example", [
    ("click.v1.json", CLICK), ("app_event.v1.json", APP_EVENT),
    ("integration.v1.json", INTEGRATION), ("delivery_result.v1.json", RESULT),
    ("delivery_result.v1.json", {**RESULT, "status": "skipped", "reason": "unattributed"}),
])
def test_contract_examples_are_valid(name, example):
    assert list(validator(name).iter_errors(example)) == []


@pytest.mark.parametrize("name, broken", [
    ("click.v1.json", {k: v for k, v in CLICK.items() if k != "url"}),
    ("click.v1.json", {**CLICK, "occurred_at": "2026-11-24 16:00"}),  # no zone
    ("click.v1.json", {**CLICK, "ttclid": 42}),
    ("app_event.v1.json", {k: v for k, v in APP_EVENT.items() if k != "event_id"}),
    ("app_event.v1.json", {**APP_EVENT, "event_id": 123}),  # TikTok wants a string
    ("app_event.v1.json", {**APP_EVENT, "value": "9.99"}),
    ("app_event.v1.json", {**APP_EVENT, "user": "u1"}),
    ("app_event.v1.json", {**APP_EVENT, "currency": "dollars"}),
    ("integration.v1.json", {k: v for k, v in INTEGRATION.items() if k != "access_token"}),
    ("integration.v1.json", {**INTEGRATION, "enabled": "yes"}),
    ("integration.v1.json", {**INTEGRATION, "events": {"trial_started": {"enabled": "no"}}}),
    ("delivery_result.v1.json", {**RESULT, "status": "lost"}),
    ("delivery_result.v1.json", {**RESULT, "status": "failed"}),  # failed needs its reason
])
def test_broken_records_are_refused(name, broken):
    assert list(validator(name).iter_errors(broken)) != []


@pytest.mark.parametrize("validate, good, bad", [
    (validate_click, CLICK, {**CLICK, "ttclid": 42}),
    (validate_app_event, APP_EVENT, {**APP_EVENT, "value": "9.99"}),
])
def test_the_workers_fast_validator_agrees_with_the_schema(validate, good, bad):
    validate(good)
    with pytest.raises(InvalidRecord) as refused:
        validate(bad)
    assert refused.value.reason == "schema_violation"
