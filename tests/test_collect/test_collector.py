"""The collector in a real worker: what it writes to the clicks topic, and what it refuses and why."""

from __future__ import annotations

import aiohttp
import orjson

from tests.support import Kafka, rekeyed_items

URL = "https://yourapp.example/?campaign_name=Spring Sale #1&adset_name=US&ad_name=V1&ttclid=E.C.P.collected"
LANDING_ORIGIN = "https://yourapp.example"


async def post(session: aiohttp.ClientSession, url: str, body: bytes, **headers: str) -> tuple[int, dict, dict]:
    async with session.post(url, data=body, headers={"Content-Type": "text/plain", **headers}) as response:
        return response.status, await response.json(), dict(response.headers)


async def test_a_click_is_answered_202_once_it_is_on_the_clicks_topic_keyed_by_ttclid(kafka: Kafka, start_worker,
                                                                                        worker_env):
    worker = await start_worker(**worker_env, COLLECTOR_ENABLED="on", COLLECTOR_ALLOWED_ORIGINS=LANDING_ORIGIN,
                                COLLECTOR_TRUSTED_PROXY_HEADER="X-Forwarded-For")
    collect = f"http://127.0.0.1:{worker.web_port}/collect"
    async with aiohttp.ClientSession() as session:
        status, body, headers = await post(
            session, collect, orjson.dumps({"app_id": "app1", "url": URL, "ttp": "ttp-1"}),
            Origin=LANDING_ORIGIN, **{"User-Agent": "Mozilla/5.0 (iPhone)", "X-Forwarded-For": "198.51.100.7"})
        assert (status, body) == (202, {"status": "accepted"})
        assert headers["Access-Control-Allow-Origin"] == LANDING_ORIGIN
        [record] = await kafka.read("clicks", 1, timeout=5)  # already there: 202 came after Kafka's ack
    assert record["key"] == "E.C.P.collected"
    click = record["value"]
    assert {k: click[k] for k in ("app_id", "url", "ttp", "ip", "user_agent")} == {
        "app_id": "app1", "url": URL, "ttp": "ttp-1", "ip": "198.51.100.7", "user_agent": "Mozilla/5.0 (iPhone)"}
    [rekeyed] = rekeyed_items(await kafka.consume("by-ttclid", 1))
    assert rekeyed["click"]["campaign_name"] == "Spring Sale #1"


async def test_what_the_collector_refuses_gets_the_reason_and_never_reaches_the_topic(kafka: Kafka, start_worker,
                                                                                      worker_env):
    worker = await start_worker(**worker_env, COLLECTOR_ENABLED="on", COLLECTOR_ALLOWED_ORIGINS=LANDING_ORIGIN,
                                COLLECTOR_MAX_BODY_BYTES="1000", COLLECTOR_REQUESTS_PER_MINUTE_PER_IP="8")
    base = f"http://127.0.0.1:{worker.web_port}"
    good = orjson.dumps({"app_id": "app1", "url": URL})
    async with aiohttp.ClientSession() as session:
        status, body, _ = await post(session, base + "/collect", b"{oops")
        assert status == 400 and body["error"] == "invalid_json" and "line 1 column 2" in body["detail"]
        status, body, _ = await post(session, base + "/collect", orjson.dumps({"app_id": "app1", "url": "https://x/"}))
        assert status == 422 and body["error"] == "missing_ttclid"
        status, body, _ = await post(session, base + "/collect", orjson.dumps({"url": URL}))
        assert status == 400 and body["error"] == "schema_violation" and "app_id" in body["detail"]
        status, body, _ = await post(session, base + "/collect", orjson.dumps({"app_id": "a" * 2000, "url": URL}))
        assert status == 413 and "COLLECTOR_MAX_BODY_BYTES" in body["error"]
        status, body, headers = await post(session, base + "/collect", good, Origin="https://evil.example")
        assert status == 403 and "Access-Control-Allow-Origin" not in headers
        async with session.options(base + "/collect", headers={"Origin": LANDING_ORIGIN,
                                                               "Access-Control-Request-Method": "POST"}) as preflight:
            assert preflight.status == 204
            assert preflight.headers["Access-Control-Allow-Origin"] == LANDING_ORIGIN
        statuses = [(await post(session, base + "/collect", good))[0] for _ in range(6)]
        assert statuses == [202, 202, 202, 202, 429, 429]  # 8 a minute from this address, 4 used above
        async with session.post(base + "/collect", data=good) as limited:
            assert int(limited.headers["Retry-After"]) >= 1
        async with session.get(base + "/metrics") as metrics:
            text = await metrics.text()
        assert 'web2app_clicks_collected_total{status="202"} 4.0' in text
        assert 'web2app_clicks_collected_total{status="429"} 3.0' in text
        assert 'web2app_clicks_collected_total{status="403"} 1.0' in text
    assert len(await kafka.read("clicks", timeout=3)) == 4


async def test_the_collector_and_script_are_off_unless_enabled(start_worker, worker_env):
    worker = await start_worker(**worker_env)
    base = f"http://127.0.0.1:{worker.web_port}"
    async with aiohttp.ClientSession() as session:
        for path in ("/landing.js", "/landing/demo"):
            async with session.get(base + path) as response:
                assert response.status == 404
        status, body, _ = await post(session, base + "/collect", orjson.dumps({"app_id": "app1", "url": URL}))
        assert status == 404 and "COLLECTOR_ENABLED" in body["error"]
