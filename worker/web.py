"""The web port: probes for Kubernetes and Prometheus metrics, thin readers of the worker's state.

/healthz  200 while the process serves requests (liveness)
/readyz   200 once Kafka answers, a partition assignment has completed and the integrations
          topic has been read to its end; 503 with the reasons otherwise (readiness)
/metrics  Prometheus exposition
/campaigns        delivery results per app, UTC day, campaign, ad set and ad (JSON; ?app=&from=&to=)
/campaigns/page   the same as a page that updates itself, with a chart
"""

from __future__ import annotations

import asyncio
import base64
import hmac
from pathlib import Path

from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from worker.analytics.agents import campaign_rows
from worker.analytics.stats import matching
from worker.app import app, settings
from worker.attribution.agents import owned_partitions, states, table_settled, waiting_deadlines
from worker.ingest.agents import ingest
from worker.integrations.catalog import catalog
from worker.metrics import CONSUMER_LAG, READY, TTCLIDS_HELD, TTCLIDS_WAITING
from worker.topics import TopicNames, partitions_of

assignment_completed = asyncio.Event()


@app.on_partitions_assigned.connect
async def note_assignment(app, assigned: set, **kwargs) -> None:
    assignment_completed.set()


@app.on_partitions_revoked.connect
async def note_rebalance(app, revoked: set, **kwargs) -> None:
    assignment_completed.clear()  # not ready while the group rebalances


@app.page("/healthz")
class Health(View):
    async def get(self, request: Request) -> Response:
        return self.json({"status": "alive"})


async def readiness_problems() -> list[str]:
    problems = []
    try:
        await asyncio.wait_for(partitions_of(settings, TopicNames.of(settings).integrations), 3)
    except Exception as exc:
        problems.append(f"Kafka does not answer: {type(exc).__name__}")
    if not (assignment_completed.is_set() and ingest.assigned.is_set()):
        problems.append("no partition assignment yet, or a rebalance is under way")
    if not catalog.caught_up.is_set():
        problems.append("integrations topic not read to its end yet")
    if not table_settled.is_set():
        problems.append("join state not restored yet")
    return problems


@app.page("/readyz")
class Ready(View):
    async def get(self, request: Request) -> Response:
        problems = await readiness_problems()
        if problems:
            return self.json({"status": "not ready", "problems": problems}, status=503)
        return self.json({"status": "ready"})


@app.page("/metrics")
class Metrics(View):
    async def get(self, request: Request) -> Response:
        READY.set(0 if await readiness_problems() else 1)
        TTCLIDS_HELD.set(states.held(owned_partitions()))
        TTCLIDS_WAITING.set(len(waiting_deadlines))
        CONSUMER_LAG.clear()  # partitions that moved to another replica are its to report
        for tp, lag in (await ingest.lag()).items():
            CONSUMER_LAG.labels(tp.topic.removeprefix(settings.topic_prefix), str(tp.partition)).set(lag)
        # aiohttp takes the charset apart from the content type
        return self.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])


def analytics_refusal(view: View, request: Request) -> Response | None:
    """None when the request may see the analytics; else 404 (they are off) or 401."""
    if not settings.analytics_token:
        return view.json({"error": "analytics are off: set ANALYTICS_TOKEN"}, status=404)
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            credentials = base64.b64decode(credentials.encode(), validate=False).decode(errors="replace")
        except ValueError:  # not base64: as good as no credentials
            credentials = ""
        credentials = credentials.partition(":")[2]
    elif scheme.lower() != "bearer":
        credentials = ""
    if hmac.compare_digest(credentials.encode(), settings.analytics_token.encode()):
        return None
    return view.json({"error": "unauthorized"}, status=401,
                     headers={"WWW-Authenticate": 'Basic realm="web2app analytics"'})


def private(response: Response) -> Response:
    """Analytics are for the analyst who asked: no cache keeps them, no browser guesses their type."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@app.page("/campaigns")
class Campaigns(View):
    async def get(self, request: Request) -> Response:
        if refused := analytics_refusal(self, request):
            return private(refused)
        query = request.query
        return private(self.json(matching(list(campaign_rows.rows.values()), query.get("app"), query.get("from"),
                                          query.get("to"))))


CAMPAIGNS_PAGE = (Path(__file__).parent / "analytics" / "page.html").read_bytes()


@app.page("/campaigns/page")
class CampaignsPage(View):
    async def get(self, request: Request) -> Response:
        if refused := analytics_refusal(self, request):
            return private(refused)
        return private(self.bytes(CAMPAIGNS_PAGE, content_type="text/html"))
