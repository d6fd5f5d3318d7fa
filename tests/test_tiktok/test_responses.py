import asyncio
from datetime import datetime, timezone

import orjson
import pytest

from worker.tiktok.responses import Answer, classify, classify_exception


def tiktok(code, message="", request_id="202611241700000ABC"):
    return orjson.dumps({"code": code, "message": message, "request_id": request_id, "data": {}})


@pytest.mark.parametrize(("code", "outcome"), [
    (0, "delivered"), (20001, "delivered"),
    (40016, "throttled"), (40100, "throttled"), (40132, "throttled"), (40133, "throttled"),
    (50000, "retry"), (50002, "retry"), (60001, "retry"), (40202, "retry"), (51012, "retry"),
    (51010, "retry"), (52103, "retry"), (59999, "retry"),
    (40000, "rejected"), (40001, "rejected"), (40002, "rejected"), (40102, "rejected"),
    (40104, "rejected"), (40105, "rejected"), (40118, "rejected"), (40062, "rejected"), (61000, "rejected"),
])
def test_the_body_code_decides_even_when_http_says_200(code, outcome):
    answer = classify(200, tiktok(code, "some words"))
    assert answer == Answer(outcome, 200, code, "some words", "202611241700000ABC", None)


@pytest.mark.parametrize(("message", "index"), [
    ("Batch.3.properties.contents.0.content_id: Not a valid string", 3),
    ("data.12.user.email: Not a valid SHA-256 hash", 12),
    ("data.0: Not a valid object.", 0),
    ("Invalid value for event_id: not a valid string.", None),
    ("data: Longer than maximum length 1000.", None),
])
def test_a_parameter_error_names_the_bad_event_when_tiktok_does(message, index):
    answer = classify(200, tiktok(40002, message))
    assert (answer.outcome, answer.bad_item) == ("rejected", index)


def test_only_a_parameter_error_names_a_bad_event():
    assert classify(200, tiktok(40001, "data.3.user: no permission")).bad_item is None


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429, 408])
def test_server_faults_and_http_throttling_are_retried(status):
    answer = classify(status, b"<html><body>Bad Gateway</body></html>")
    assert (answer.outcome, answer.http_status, answer.code) == ("retry", status, None)
    assert f"HTTP {status}" in answer.message and "Bad Gateway" in answer.message


def test_a_gateway_json_error_on_a_5xx_is_retried_not_judged_by_its_code():
    assert classify(502, orjson.dumps({"code": 502, "message": "Bad Gateway"})).outcome == "retry"


def test_a_throttle_code_wins_over_an_http_error_status():
    assert classify(429, tiktok(40100)).outcome == "throttled"


@pytest.mark.parametrize("body", [b"<html>oops</html>", b"", None, b"[1, 2]", b'{"message": "no code"}'])
def test_a_200_without_tiktoks_json_answer_is_garbage_worth_retrying(body):
    answer = classify(200, body)
    assert (answer.outcome, answer.code) == ("retry", None)
    assert "not TikTok's JSON answer" in answer.message


def test_a_wrong_url_is_rejected_not_retried_forever():
    answer = classify(404, b"404 page not found")
    assert answer.outcome == "rejected"
    assert "404 page not found" in answer.message


def test_no_answer_at_all_is_retried():
    assert classify(None, None).outcome == "retry"


@pytest.mark.parametrize("exc", [asyncio.TimeoutError(), ConnectionResetError("Connection reset by peer")])
def test_exceptions_are_retried_and_named(exc):
    answer = classify_exception(exc)
    assert (answer.outcome, answer.http_status, answer.code) == ("retry", None, None)
    assert type(exc).__name__ in answer.message


def test_messages_are_cut_to_300_characters_and_never_show_the_access_token():
    token = "a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2"
    answer = classify(200, tiktok(40105, f"Access token {token} is invalid. " + "x" * 500), access_token=token)
    assert token not in answer.message
    assert answer.message.startswith("Access token [access token] is invalid.")
    assert len(answer.message) == 300
    failure = classify_exception(OSError(f"cannot reach host with {token}"), access_token=token)
    assert token not in failure.message


@pytest.mark.parametrize(("header", "seconds"), [
    ("3", 3.0), (" 120 ", 120.0), ("Mon, 30 Nov 2026 02:00:10 GMT", 10.0), ("Mon, 30 Nov 2026 01:59:00 GMT", 0.0),
    ("soon", None), ("-5", None), ("", None), (None, None),
])
def test_retry_after_is_read_in_seconds_or_as_an_http_date(header, seconds):
    now = datetime(2026, 11, 30, 2, 0, 0, tzinfo=timezone.utc)
    answer = classify(429, b"Too Many Requests", retry_after=header, now=now)
    assert (answer.outcome, answer.retry_after) == ("retry", seconds)
    assert classify(503, b"", retry_after=header, now=now).retry_after == seconds


def test_a_delivered_answer_asks_for_no_wait():
    assert classify(200, tiktok(0), retry_after="30").retry_after is None


@pytest.mark.parametrize(("code", "label"), [(0, "0"), (40016, "40016"), (51012, "51012"), (51010, "other"),
                                             (123456789, "other"), (None, "none")])
def test_the_code_as_a_metric_label_is_bounded_to_documented_codes(code, label):
    body = tiktok(code) if code is not None else b"<html>proxy</html>"
    assert classify(200, body).code_label == label
