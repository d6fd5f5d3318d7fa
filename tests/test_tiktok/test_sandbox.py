import asyncio
import subprocess
import sys
import time

import aiohttp
import orjson
import pytest

from tests.test_tiktok.test_payload import EMAIL_HASH, outbox_record
from worker.tiktok.payload import request_body
from worker.tiktok.responses import classify
from worker.tiktok.sandbox import Sandbox

TOKEN = "token-1"


@pytest.fixture
async def sandbox():
    async with Sandbox(revoked_tokens={"revoked-token"}) as running:
        yield running


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


def body_of(*event_ids, pixel="PIXEL1", test_event_code=None):
    return request_body(pixel, test_event_code, [outbox_record(event_id=event_id) for event_id in event_ids])


async def post(http, url, body, token=TOKEN):
    """Send as the worker does; the answer comes back classified."""
    headers = {"Content-Type": "application/json"} | ({"Access-Token": token} if token else {})
    async with http.post(url, data=orjson.dumps(body), headers=headers) as response:
        return classify(response.status, await response.read())


async def test_a_request_built_by_the_payload_module_is_accepted_and_recorded(sandbox, http):
    body = body_of("e1", "e2", test_event_code="TEST123")
    answer = await post(http, sandbox.url, body)
    assert (answer.outcome, answer.http_status, answer.code, answer.message) == ("delivered", 200, 0, "OK")
    assert answer.request_id
    [received] = sandbox.state.received
    assert (received["pixel_id"], received["test_event_code"], received["access_token"]) == (
        "PIXEL1", "TEST123", TOKEN)
    assert received["request_id"] == answer.request_id
    assert received["events"] == body["data"]
    assert [event["event_id"] for event in sandbox.state.events()] == ["e1", "e2"]


async def test_every_answer_has_a_request_id_of_its_own(sandbox, http):
    answers = [await post(http, sandbox.url, body_of("e1")) for _ in range(3)]
    assert len({answer.request_id for answer in answers}) == 3


async def test_the_path_without_its_trailing_slash_is_not_found(sandbox, http):
    async with http.post(sandbox.url.rstrip("/"), data=orjson.dumps(body_of("e1")),
                         headers={"Access-Token": TOKEN, "Content-Type": "application/json"}) as response:
        assert response.status == 404
        assert await response.text() == "404 page not found"
    assert sandbox.state.received == []


async def test_a_missing_or_revoked_token_is_refused(sandbox, http):
    assert (await post(http, sandbox.url, body_of("e1"), token=None)).code == 40104
    assert (await post(http, sandbox.url, body_of("e1"), token="revoked-token")).code == 40105
    sandbox.state.revoke(TOKEN)
    answer = await post(http, sandbox.url, body_of("e1"))
    assert (answer.outcome, answer.code) == ("rejected", 40105)
    assert sandbox.state.received == []


async def test_a_numeric_event_id_gets_tiktoks_exact_message(sandbox, http):
    body = body_of("e1")
    body["data"][0]["event_id"] = 123
    answer = await post(http, sandbox.url, body)
    assert (answer.outcome, answer.code) == ("rejected", 40002)
    assert answer.message == "Invalid value for event_id: not a valid string."
    assert sandbox.state.received == []


@pytest.mark.parametrize(("field", "value", "message"), [
    ("user.email", "alice@example.com", "data.1.user.email: Not a valid SHA-256 hash"),
    ("user.email", None, "data.1.user.email: Not a valid SHA-256 hash"),
    ("user.phone", "+12133734253", "data.1.user.phone: Not a valid SHA-256 hash"),
    ("user.ttclid", 5, "data.1.user.ttclid: Not a valid string."),
    ("event", "purchase", "data.1.event: 'purchase' differs from the standard event 'Purchase'"),
    ("event_time", "1795539600", "data.1.event_time: Not a valid integer."),
    ("event_time", True, "data.1.event_time: Not a valid integer."),
    ("properties.value", "9.99", "data.1.properties.value: Not a valid number."),
    ("properties.currency", "usd", "data.1.properties.currency: Not a valid ISO 4217"),
    ("limited_data_use", "false", "data.1.limited_data_use: Not a valid boolean."),
    ("page", "https://app.example/", "data.1.page: Not a valid object."),
])
async def test_an_invalid_event_is_named_by_its_index(sandbox, http, field, value, message):
    body = body_of("e0", "e1", "e2")
    *parents, name = field.split(".")
    target = body["data"][1]
    for parent in parents:
        target = target[parent]
    target[name] = value
    answer = await post(http, sandbox.url, body)
    assert (answer.outcome, answer.code, answer.bad_item) == ("rejected", 40002, 1)
    assert answer.message.startswith(message)
    assert sandbox.state.received == []


async def test_a_hashed_email_list_is_accepted(sandbox, http):
    body = body_of("e1")
    body["data"][0]["user"]["email"] = [EMAIL_HASH, EMAIL_HASH]
    assert (await post(http, sandbox.url, body)).outcome == "delivered"


async def test_more_than_1000_events_refuse_the_whole_request(sandbox, http):
    body = body_of("e1")
    body["data"] *= 1001
    answer = await post(http, sandbox.url, body)
    assert (answer.outcome, answer.code, answer.bad_item) == ("rejected", 40002, None)
    assert "1000" in answer.message
    assert sandbox.state.received == []


async def test_a_body_that_is_not_json_is_refused(sandbox, http):
    async with http.post(sandbox.url, data=b"{oops", headers={"Access-Token": TOKEN,
                                                              "Content-Type": "application/json"}) as response:
        answer = classify(response.status, await response.read())
    assert (answer.http_status, answer.code) == (200, 40002)


async def test_throttling_for_a_count_of_requests_then_ok(sandbox, http):
    sandbox.state.fail("throttle", count=2, code=40132)
    answers = [await post(http, sandbox.url, body_of(f"e{n}")) for n in range(3)]
    assert [(answer.outcome, answer.code) for answer in answers] == [
        ("throttled", 40132), ("throttled", 40132), ("delivered", 0)]
    assert [event["event_id"] for event in sandbox.state.events()] == ["e2"]


async def test_it_answers_as_a_proxy_would_with_a_429_and_its_retry_after_or_an_html_page(sandbox, http):
    sandbox.state.fail("http429", count=1, retry_after=7)
    async with http.post(sandbox.url, data=orjson.dumps(body_of("e1")),
                         headers={"Access-Token": TOKEN, "Content-Type": "application/json"}) as response:
        answer = classify(response.status, await response.read(), retry_after=response.headers.get("Retry-After"))
    assert (answer.outcome, answer.http_status, answer.retry_after) == ("retry", 429, 7.0)
    sandbox.state.fail("not_json", count=1)
    answer = await post(http, sandbox.url, body_of("e2"))
    assert (answer.outcome, answer.http_status, answer.code) == ("retry", 200, None)
    assert "Service Unavailable" in answer.message
    assert sandbox.state.received == []


async def test_reject_item_names_the_index_of_that_event_id_wherever_it_is(sandbox, http):
    sandbox.state.fail("reject_item", event_id="bad")
    answer = await post(http, sandbox.url, body_of("e0", "e1", "e2", "bad", "e4"))
    assert (answer.outcome, answer.code, answer.bad_item) == ("rejected", 40002, 3)
    assert (await post(http, sandbox.url, body_of("e0", "e1", "e2", "e4"))).outcome == "delivered"
    assert (await post(http, sandbox.url, body_of("bad"))).bad_item == 0
    assert [event["event_id"] for event in sandbox.state.events()] == ["e0", "e1", "e2", "e4"]


async def test_a_qps_limit_throttles_each_pixel_apart(sandbox, http):
    sandbox.state.limit_qps(2)
    answers = [await post(http, sandbox.url, body_of("e1", pixel=pixel)) for pixel in ["P1", "P1", "P1", "P2"]]
    assert [answer.code for answer in answers] == [0, 0, 40100, 0]
    assert sandbox.state.max_requests_per_second("P1") == 2
    assert sandbox.state.max_requests_per_second("P2") == 1


async def test_it_is_steered_over_http_for_tests_in_another_process(sandbox, http):
    async def order(path, orders=None):
        async with http.post(sandbox.base_url + path, json=orders) as response:
            return response.status, await response.text()

    assert (await order("/_sandbox/fail", {"mode": "error", "error_code": 50002, "count": 1}))[0] == 200
    assert (await post(http, sandbox.url, body_of("e1"))).code == 50002
    assert (await order("/_sandbox/fail", {"mode": "http500", "count": 1}))[0] == 200
    answer = await post(http, sandbox.url, body_of("e2"))
    assert (answer.outcome, answer.http_status) == ("retry", 500)
    assert (await post(http, sandbox.url, body_of("e3"))).outcome == "delivered"

    async with http.get(sandbox.base_url + "/_sandbox/received") as response:
        received = await response.json()
    assert [[event["event_id"] for event in request["events"]] for request in received] == [["e3"]]

    assert (await order("/_sandbox/fail", {"qps": 1, "revoke": "other"}))[0] == 200
    assert (await order("/_sandbox/reset"))[0] == 200
    assert sandbox.state.received == []
    assert (sandbox.state.qps, sandbox.state.revoked_tokens) == (None, {"revoked-token"})
    status, text = await order("/_sandbox/fail", {"mode": "explode"})
    assert status == 400 and "mode must be one of" in text
    assert (await order("/_sandbox/fail", {"mode": "throttle", "code": 40016, "count": 1}))[0] == 200
    assert (await post(http, sandbox.url, body_of("e4"))).code == 40016
    status, text = await order("/_sandbox/fail", {"mode": "http500", "retry_after": 3})
    assert status == 400 and "retry_after" in text


async def test_a_hanging_request_outlasts_the_client_and_stopping_releases_it(http):
    sandbox = await Sandbox().start()
    sandbox.state.fail("hang")
    with pytest.raises(asyncio.TimeoutError):
        async with http.post(sandbox.url, data=orjson.dumps(body_of("e1")), timeout=aiohttp.ClientTimeout(total=0.3),
                             headers={"Access-Token": TOKEN, "Content-Type": "application/json"}):
            pass
    started = time.monotonic()
    await sandbox.stop()
    assert time.monotonic() - started < 2


async def test_it_runs_as_a_command_and_prints_the_url_to_use(http):
    command = subprocess.Popen([sys.executable, "-m", "worker.tiktok.sandbox", "--port", "0"],
                               stdout=subprocess.PIPE, text=True)
    try:
        line = await asyncio.wait_for(asyncio.to_thread(command.stdout.readline), 10)
        name, url = line.strip().split("=", 1)
        assert name == "TIKTOK_API_URL" and url.endswith("/open_api/v1.3/event/track/")
        assert (await post(http, url, body_of("e1"))).outcome == "delivered"
    finally:
        command.terminate()
        command.wait(5)
