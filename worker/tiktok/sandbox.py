"""A local stand-in for the TikTok Events API, for tests and local runs.

It checks each request as the reference says TikTok does, answers in TikTok's
envelope (HTTP 200 with a `code`), records what it accepted, and can be told to
misbehave, from Python (`Sandbox.state`) or over HTTP for tests in another process:

    python -m worker.tiktok.sandbox --port 8787
    POST /_sandbox/fail   {"mode": "throttle", "count": 2} | {"mode": "http500", "pixel_id": "P1"} | {"qps": 5}
                          {"mode": "error", "error_code": 51010} | {"mode": "http429", "retry_after": 3}
                          | {"revoke": "<token>"}
    GET  /_sandbox/received
    POST /_sandbox/reset
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from worker.tiktok.validation import request_problem

TRACK_PATH = "/open_api/v1.3/event/track/"
HANG_SECONDS = 3600
FAILURE_MODES = ("ok", "throttle", "error", "http500", "http503", "http429", "not_json", "hang", "reject_item")
THROTTLE_CODES = (40016, 40100, 40132, 40133)
CONTROL_KEYS = frozenset({"mode", "count", "code", "error_code", "event_id", "retry_after", "pixel_id", "qps",
                          "revoke"})
# What a proxy in front of TikTok answers when it, not TikTok, is in trouble.
PROXY_ERROR_PAGE = "<html><head><title>Service Unavailable</title></head><body>Try again later.</body></html>"
MESSAGES = {
    0: "OK",
    40016: "Requests made too frequently.",
    40100: "Too many requests. Please retry in some time.",
    40104: "Access token is null, you should set it in http header with key Access-Token.",
    40105: "Access token is incorrect or has been revoked.",
    40132: "The request QPS is limited by pixel_code's value.",
    40133: "Advertiser's QPS reaches QPS limit for current path.",
    50000: "System error.",
    50002: "Error processing the request, please retry.",
    60001: "System in maintenance, please retry later.",
}
# TikTok's byte limit per request is unknown: do not invent one stricter than its 1000-event limit.
MAX_BODY_BYTES = 16 * 2**20


@dataclass
class Failure:
    """A misbehaviour the sandbox was told to show, for `remaining` requests or (None) until changed;
    to the requests of one pixel only when `pixel_id` is set."""

    mode: str
    remaining: int | None
    code: int | None
    event_id: str | None = None
    retry_after: int | None = None
    pixel_id: str | None = None

    def item_index(self, events: list[dict[str, Any]]) -> int | None:
        return next((index for index, event in enumerate(events) if event.get("event_id") == self.event_id), None)


class SandboxState:
    """What the sandbox accepted, and how it was told to behave."""

    def __init__(self, revoked_tokens: Iterable[str] = ()):
        self.initially_revoked = frozenset(revoked_tokens)
        self.closing = asyncio.Event()
        self.reset()

    def reset(self) -> None:
        self.revoked_tokens = set(self.initially_revoked)
        self.received: list[dict[str, Any]] = []
        self.attempts: list[dict[str, Any]] = []  # every well-formed request, answered well or not
        self.failure: Failure | None = None
        self.qps: int | None = None
        self.let_through: dict[str, deque[float]] = defaultdict(deque)

    def fail(self, mode: str, count: int | None = None, code: int | None = None,
             error_code: int | None = None, event_id: str | None = None, retry_after: int | None = None,
             pixel_id: str | None = None) -> None:
        """Misbehave on the next `count` requests (reject_item: those carrying `event_id`; with `pixel_id`:
        that pixel's), or until changed."""
        if mode not in FAILURE_MODES:
            raise ValueError(f"mode must be one of {', '.join(FAILURE_MODES)}, not {mode!r}")
        if count is not None and (type(count) is not int or count < 1):
            raise ValueError(f"count must be a positive integer, not {count!r}")
        if mode == "throttle" and code not in (None, *THROTTLE_CODES):
            raise ValueError(f"a throttle code is one of {THROTTLE_CODES}, not {code!r}")
        if mode == "error" and error_code is not None and type(error_code) is not int:
            raise ValueError(f"error_code must be an integer, not {error_code!r}")
        if mode == "reject_item" and not isinstance(event_id, str):
            raise ValueError("reject_item needs the event_id of the event to reject")
        if retry_after is not None and (mode != "http429" or type(retry_after) is not int or retry_after < 0):
            raise ValueError(f"retry_after is whole seconds for http429, not {retry_after!r}")
        answered_code = {"throttle": code or 40100, "error": 50000 if error_code is None else error_code}
        self.failure = None if mode == "ok" else Failure(mode, count, answered_code.get(mode), event_id, retry_after,
                                                         pixel_id)

    def limit_qps(self, qps: int | None) -> None:
        """Answer 40100 to requests beyond `qps` a second for one pixel; None lifts the limit."""
        if qps is not None and (type(qps) is not int or qps < 1):
            raise ValueError(f"qps must be a positive integer or null, not {qps!r}")
        self.qps = qps
        self.let_through.clear()

    def revoke(self, token: str) -> None:
        self.revoked_tokens.add(token)

    def take_failure(self, pixel_id: str, events: list[dict[str, Any]]) -> Failure | None:
        """The misbehaviour due for this request, counting it against `remaining`."""
        failure = self.failure
        if (failure is None or (failure.mode == "reject_item" and failure.item_index(events) is None)
                or failure.pixel_id not in (None, pixel_id)):
            return None
        if failure.remaining is not None:
            failure.remaining -= 1
            if failure.remaining == 0:
                self.failure = None
        return failure

    def within_qps(self, pixel_id: str, now: float) -> bool:
        # Only requests let through count, so a client that backs off gets in again within the second.
        if self.qps is None:
            return True
        recent = self.let_through[pixel_id]
        while recent and now - recent[0] >= 1:
            recent.popleft()
        if len(recent) >= self.qps:
            return False
        recent.append(now)
        return True

    def events(self) -> list[dict[str, Any]]:
        """Every accepted event, in arrival order."""
        return [event for request in self.received for event in request["events"]]

    def max_requests_per_second(self, pixel_id: str) -> int:
        """The most requests accepted for `pixel_id` within any one second."""
        arrivals = [request["monotonic"] for request in self.received if request["pixel_id"] == pixel_id]
        return max((bisect.bisect_left(arrivals, start + 1) - i for i, start in enumerate(arrivals)), default=0)


STATE = web.AppKey("sandbox_state", SandboxState)


def new_request_id() -> str:
    """Shaped like TikTok's: the UTC time, then something unique."""
    return time.strftime("%Y%m%d%H%M%S", time.gmtime()) + uuid.uuid4().hex[:20].upper()


def answer(code: int, message: str | None = None, request_id: str | None = None) -> web.Response:
    envelope = {"code": code, "message": message or MESSAGES.get(code, f"Error {code}."),
                "request_id": request_id or new_request_id(), "data": {}}
    return web.Response(body=orjson.dumps(envelope), content_type="application/json")


async def track(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    token = request.headers.get("Access-Token")
    if not token:
        return answer(40104)
    if token in state.revoked_tokens:
        return answer(40105)
    if request.content_type != "application/json":
        return answer(40002, f"Content-Type must be application/json, not {request.content_type!r}.")
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return answer(40002, "The request body is not valid JSON.")
    if problem := request_problem(body):
        return answer(40002, problem)
    # The query string tells senders apart (tests give each replica its own TIKTOK_API_URL).
    state.attempts.append({"pixel_id": body["event_source_id"], "sender": request.query_string,
                           "monotonic": time.monotonic(), "events": len(body["data"])})
    if failure := state.take_failure(body["event_source_id"], body["data"]):
        return await misbehave(state, failure, body["data"])
    if not state.within_qps(body["event_source_id"], time.monotonic()):
        return answer(40100)
    request_id = new_request_id()
    state.received.append({
        "request_id": request_id,
        "pixel_id": body["event_source_id"],
        "test_event_code": body.get("test_event_code"),
        "access_token": token,
        "events": body["data"],
        "received_at": time.time(),
        "monotonic": time.monotonic(),
    })
    return answer(0, request_id=request_id)


async def misbehave(state: SandboxState, failure: Failure, events: list[dict[str, Any]]) -> web.StreamResponse:
    if failure.mode == "http500":
        return web.Response(status=500, text="500 Internal Server Error")
    if failure.mode == "http503":
        return web.Response(status=503, text="503 Service Unavailable")
    if failure.mode == "http429":
        headers = {} if failure.retry_after is None else {"Retry-After": str(failure.retry_after)}
        return web.Response(status=429, text="429 Too Many Requests", headers=headers)
    if failure.mode == "not_json":
        return web.Response(status=200, text=PROXY_ERROR_PAGE, content_type="text/html")
    if failure.mode == "hang":
        # Outlasts any client timeout; shutting the sandbox down releases it.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(state.closing.wait(), HANG_SECONDS)
        return answer(50002)
    if failure.mode == "reject_item":
        return answer(40002, f"data.{failure.item_index(events)}.event_id: Rejected by the sandbox as told.")
    return answer(failure.code)


async def control_fail(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        orders = orjson.loads(await request.read())
        if not isinstance(orders, dict) or not orders or not set(orders) <= CONTROL_KEYS:
            raise ValueError(f"expected an object of {', '.join(sorted(CONTROL_KEYS))}, not {orders!r}")
        if "mode" in orders:
            state.fail(orders["mode"], orders.get("count"), orders.get("code"), orders.get("error_code"),
                       orders.get("event_id"), orders.get("retry_after"), orders.get("pixel_id"))
        if "qps" in orders:
            state.limit_qps(orders["qps"])
        if "revoke" in orders:
            state.revoke(str(orders["revoke"]))
    except ValueError as exc:  # orjson's JSONDecodeError included
        return web.Response(status=400, text=str(exc)[:300])
    return web.json_response({"ok": True})


async def control_received(request: web.Request) -> web.Response:
    return web.Response(body=orjson.dumps(request.app[STATE].received), content_type="application/json")


async def control_reset(request: web.Request) -> web.Response:
    request.app[STATE].reset()
    return web.json_response({"ok": True})


@web.middleware
async def not_found_like_tiktok(request: web.Request, handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return web.Response(status=404, text="404 page not found")


async def release_hanging_requests(app: web.Application) -> None:
    app[STATE].closing.set()


def make_sandbox_app(state: SandboxState | None = None) -> web.Application:
    app = web.Application(middlewares=[not_found_like_tiktok], client_max_size=MAX_BODY_BYTES)
    app[STATE] = state or SandboxState()

    app.on_shutdown.append(release_hanging_requests)
    app.router.add_post(TRACK_PATH, track)
    app.router.add_post("/_sandbox/fail", control_fail)
    app.router.add_get("/_sandbox/received", control_received)
    app.router.add_post("/_sandbox/reset", control_reset)
    return app


class Sandbox:
    """The sandbox served in-process on 127.0.0.1: `async with Sandbox() as sandbox: post to sandbox.url`."""

    def __init__(self, port: int = 0, revoked_tokens: Iterable[str] = ()):
        self.port = port
        self.state = SandboxState(revoked_tokens)
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The Events API endpoint to use as TIKTOK_API_URL."""
        return self.base_url + TRACK_PATH

    async def start(self) -> Sandbox:
        self._runner = web.AppRunner(make_sandbox_app(self.state), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Sandbox:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


async def serve(port: int) -> None:
    async with Sandbox(port) as sandbox:
        print(f"TIKTOK_API_URL={sandbox.url}", flush=True)
        await asyncio.Event().wait()


def main(port: int) -> None:
    """Serve on 127.0.0.1:`port` (0 picks a free one) until interrupted, printing the TIKTOK_API_URL to use."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(port))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="A local stand-in for the TikTok Events API.")
    parser.add_argument("--port", type=int, default=8787, help="port on 127.0.0.1 (0 picks a free one)")
    main(parser.parse_args().port)
