"""Integration validation and the mapping of app events to TikTok events."""

import pytest

from worker.integrations.config import InvalidIntegration, outbox_record, parse_integration, public_view

TOKEN = "tok_live_0123456789abcdef"
BASE = {"app_id": "app1", "pixel_id": "PIX1", "access_token": TOKEN}


def test_the_default_table_decides_what_is_sent_and_under_which_name():
    integration = parse_integration(BASE)
    assert integration.tiktok_event("trial_started") == ("StartTrial", None)
    assert integration.tiktok_event("subscription_renewed") == ("Purchase", None)
    assert integration.tiktok_event("paywall_shown") == (None, "event_disabled")
    assert integration.tiktok_event("subscription_cancelled") == (None, "event_disabled")


def test_an_integration_overrides_rows_renames_and_can_be_switched_off():
    integration = parse_integration({**BASE, "events": {
        "paywall_shown": {"enabled": True}, "trial_started": {"name": "TrialBegun"},
        "user_created": {"enabled": False}, "refund_issued": {"name": "Refund"}}})
    assert integration.tiktok_event("paywall_shown") == ("ViewContent", None)
    assert integration.tiktok_event("trial_started") == ("TrialBegun", None)
    assert integration.tiktok_event("user_created") == (None, "event_disabled")
    assert integration.tiktok_event("refund_issued") == ("Refund", None)
    assert parse_integration({**BASE, "enabled": False}).tiktok_event("trial_started") == (None, "integration_disabled")


def test_outbox_records_carry_everything_but_the_token():
    integration = parse_integration({**BASE, "test_event_code": "TEST1", "limited_data_use": True})
    record, reason = outbox_record({"event_id": "e1", "app_id": "app1", "name": "trial_started"}, integration)
    assert reason is None
    assert (record["pixel_id"], record["tiktok_event"], record["test_event_code"], record["limited_data_use"]) == (
        "PIX1", "StartTrial", "TEST1", True)
    assert TOKEN not in repr(record) and TOKEN not in repr(integration)


@pytest.mark.parametrize("bad, says", [
    ({**BASE, "events": {"trial_started": {"name": "Start Trial"}}}, "events.trial_started.name"),
    ({**BASE, "events": {"trial_started": {"name": "x" * 51}}}, "50"),
    ({**BASE, "events": {"trial_started": {"name": "1Trial"}}}, "letter"),
    ({**BASE, "events": {"refund_issued": {"enabled": True}}}, "no TikTok name"),
    ({k: v for k, v in BASE.items() if k != "pixel_id"}, "pixel_id"),
    ({**BASE, "access_token": 12345678901234567}, "access_token"),
])
def test_invalid_integrations_are_refused_with_a_reason_that_never_shows_the_token(bad, says):
    with pytest.raises(InvalidIntegration) as refused:
        parse_integration(bad)
    assert says in str(refused.value)
    assert TOKEN not in str(refused.value) and "12345678901234567" not in str(refused.value)


def test_the_list_view_masks_the_token():
    view = public_view(parse_integration(BASE))
    assert view["access_token"] == "…cdef"
    assert TOKEN not in repr(view)
