"""The collector's pure parts: a posted body becomes a click v1, the visitor's address, origins, the rate limit."""

from __future__ import annotations

from datetime import datetime, timezone

import orjson
import pytest

from worker.collect.clicks import AD_URL_PARAMETERS, ad_url, allowed_origin, client_ip, collected_click
from worker.collect.limits import RateLimit
from worker.ingest.records import InvalidRecord

NOW = datetime(2026, 11, 30, 2, 0, tzinfo=timezone.utc)
URL = "https://yourapp.example/?campaign_name=Spring%20Sale&adset_name=US&ad_name=V1&ttclid=E.C.P.abc"


def test_a_posted_click_gets_the_requests_address_and_browser_and_a_time():
    body = orjson.dumps({"app_id": "app1", "url": URL, "ttp": "ttp-1", "ip": "6.6.6.6", "user_agent": "forged"})
    ttclid, raw = collected_click(body, "203.0.113.9", "Mozilla/5.0 (iPhone)", NOW)
    assert ttclid == "E.C.P.abc"
    assert orjson.loads(raw) == {"app_id": "app1", "url": URL, "ttp": "ttp-1", "ip": "203.0.113.9",
                                 "user_agent": "Mozilla/5.0 (iPhone)", "occurred_at": "2026-11-30T02:00:00.000Z"}


def test_the_ttclid_field_wins_over_the_url_and_a_given_time_is_kept():
    body = orjson.dumps({"app_id": "app1", "url": URL, "ttclid": "E.C.P.field", "occurred_at": "2026-11-30T01:59:00Z"})
    ttclid, raw = collected_click(body, None, None, NOW)
    assert ttclid == "E.C.P.field" and orjson.loads(raw)["occurred_at"] == "2026-11-30T01:59:00Z"


@pytest.mark.parametrize("body, reason", [
    (b"not json", "invalid_json"),
    (b"[1, 2]", "schema_violation"),
    (orjson.dumps({"url": URL}), "schema_violation"),
    (orjson.dumps({"app_id": "app1", "url": URL, "occurred_at": "yesterday"}), "schema_violation"),
    (orjson.dumps({"app_id": "app1", "url": "https://yourapp.example/?ttclid=__CLICKID__"}), "missing_ttclid"),
    (orjson.dumps({"app_id": "app1", "url": URL, "referrer": "r" * 20_000}), "too_large"),
])
def test_an_unusable_click_is_refused_with_the_reason_the_worker_would_dead_letter_it_for(body, reason):
    with pytest.raises(InvalidRecord) as caught:
        collected_click(body, "203.0.113.9", "ua", NOW)
    assert caught.value.reason == reason and caught.value.detail


def test_the_visitors_address_comes_from_the_trusted_proxy_header_only():
    headers = {"X-Forwarded-For": "6.6.6.6, 198.51.100.7", "X-Real-IP": "6.6.6.6"}
    assert client_ip("10.0.0.2", headers, "X-Forwarded-For") == "198.51.100.7"  # the address the proxy saw
    assert client_ip("10.0.0.2", headers, "") == "10.0.0.2"
    assert client_ip("10.0.0.2", {}, "X-Forwarded-For") == "10.0.0.2"


def test_origins():
    allowed = frozenset({"https://yourapp.example"})
    assert allowed_origin("https://yourapp.example", "worker:6066", allowed)
    assert not allowed_origin("https://evil.example", "worker:6066", allowed)
    assert allowed_origin("http://worker:6066", "worker:6066", allowed)  # the worker's own pages
    assert allowed_origin(None, "worker:6066", allowed)
    assert allowed_origin("https://any.example", "worker:6066", frozenset({"*"}))


def test_the_ad_url_adds_the_parameters_to_the_landing_pages_query():
    assert ad_url("https://yourapp.example/landing") == f"https://yourapp.example/landing?{AD_URL_PARAMETERS}"
    assert ad_url("https://yourapp.example/?lang=en") == f"https://yourapp.example/?lang=en&{AD_URL_PARAMETERS}"


def test_the_rate_limit_allows_a_minutes_worth_per_address_then_refills():
    limit = RateLimit(per_minute=3)
    assert [limit.allow("a", 0.0) for _ in range(4)] == [True, True, True, False]
    assert limit.allow("b", 0.0) and limit.retry_after_s("a") == 20
    assert not limit.allow("a", 19.0) and limit.allow("a", 20.5)


def test_the_rate_limit_holds_a_bounded_number_of_addresses():
    limit = RateLimit(per_minute=3, max_addresses=100)
    for i in range(1000):
        limit.allow(f"10.0.{i // 256}.{i % 256}", i / 1000)
    assert len(limit) <= 100
    for i in range(100):
        limit.allow(f"10.1.0.{i}", 100.0)
    assert len(limit) <= 100
