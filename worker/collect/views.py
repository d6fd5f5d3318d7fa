"""The collector's web edge: `POST /collect` takes a landing page's click, `/landing.js` is the script
that sends it, `/landing/demo` a landing page to try it with. All answer 404 unless COLLECTOR_ENABLED.

A click is answered 202 only once Kafka has acknowledged it on the clicks topic (keyed by ttclid);
an invalid one gets 4xx with the reason the worker would have dead-lettered it for.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from pathlib import Path

from faust.web import Request, Response, View

from worker.app import app, settings
from worker.collect.clicks import allowed_origin, client_ip, collected_click
from worker.collect.limits import RateLimit
from worker.ingest.records import InvalidRecord
from worker.metrics import CLICKS_COLLECTED
from worker.produce import encode_key
from worker.topics import TopicNames

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
LANDING_SCRIPT = (HERE / "landing.js").read_bytes()
DEMO_PAGE = (HERE / "demo.html").read_bytes()
ALLOWED_ORIGINS = frozenset(o.strip() for o in settings.collector_allowed_origins.split(",") if o.strip())
clicks_topic = TopicNames.of(settings).clicks
# The worker's dead-letter reasons as answers; any other (invalid_json, schema_violation) is 400.
REFUSAL_STATUS = {"missing_ttclid": 422, "too_large": 413}
rate_limit = RateLimit(settings.collector_requests_per_minute_per_ip)


def cors_headers(request: Request) -> dict[str, str]:
    origin = request.headers.get("Origin")
    if origin is None:
        return {}
    return {"Access-Control-Allow-Origin": origin, "Access-Control-Allow-Methods": "POST",
            "Access-Control-Allow-Headers": "Content-Type", "Access-Control-Max-Age": "86400", "Vary": "Origin"}


def refusal(view: View, request: Request) -> Response | None:
    """Why this request may not post a click, as the answer to give; None when it may."""
    if not settings.collector_enabled:
        return view.json({"error": "the collector is off: set COLLECTOR_ENABLED"}, status=404)
    if not allowed_origin(request.headers.get("Origin"), request.host, ALLOWED_ORIGINS):
        CLICKS_COLLECTED.labels("403").inc()
        return view.json({"error": "origin not allowed: add it to COLLECTOR_ALLOWED_ORIGINS"}, status=403)
    return None


def outcome(view: View, request: Request, status: int, body: dict, **headers: str) -> Response:
    CLICKS_COLLECTED.labels(str(status)).inc()
    return view.json(body, status=status, headers={**cors_headers(request), **headers})


@app.page("/collect")
class Collect(View):
    async def options(self, request: Request) -> Response:  # the browser's CORS preflight
        return refused if (refused := refusal(self, request)) else self.bytes(b"", status=204,
                                                                              headers=cors_headers(request))

    async def post(self, request: Request) -> Response:
        if refused := refusal(self, request):
            return refused
        ip = client_ip(request.remote, request.headers, settings.collector_trusted_proxy_header)
        if not rate_limit.allow(ip or "", time.monotonic()):
            return outcome(self, request, 429, {"error": "too many clicks from this address"},
                           **{"Retry-After": str(rate_limit.retry_after_s(ip or ""))})
        if request.content_length is None:
            return outcome(self, request, 411, {"error": "a Content-Length is required"})
        if request.content_length > settings.collector_max_body_bytes:
            return outcome(self, request, 413, {"error": f"a click is at most {settings.collector_max_body_bytes} "
                                                         "bytes (COLLECTOR_MAX_BODY_BYTES)"})
        try:
            ttclid, click = collected_click(await request.read(), ip, request.headers.get("User-Agent"),
                                            datetime.now(timezone.utc))
        except InvalidRecord as exc:
            return outcome(self, request, REFUSAL_STATUS.get(exc.reason, 400), {"error": exc.reason, "detail": exc.detail})
        try:
            await (await app.producer.send(clicks_topic, encode_key(ttclid), click, None, None, None))
        except Exception as exc:  # the landing page may try again; the visit is not lost silently
            log.warning("a click could not be written to %s: %s", clicks_topic, type(exc).__name__)
            return outcome(self, request, 503, {"error": "the click could not be written to Kafka"})
        return outcome(self, request, 202, {"status": "accepted"})


@app.page("/landing.js")
class LandingScript(View):
    async def get(self, request: Request) -> Response:
        if refused := refusal(self, request):
            return refused
        return self.bytes(LANDING_SCRIPT, content_type="text/javascript",
                          headers={"Cache-Control": "public, max-age=300"})


@app.page("/landing/demo")
class DemoLandingPage(View):
    async def get(self, request: Request) -> Response:
        if refused := refusal(self, request):
            return refused
        return self.bytes(DEMO_PAGE, content_type="text/html")
