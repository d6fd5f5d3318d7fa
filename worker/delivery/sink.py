"""Stage 3: the TikTok sink. Batches outbox events per pixel, sends them within the rate
limits, retries what may be retried, and hands every event exactly one outcome: a final result,
or, for an event still failing `TIKTOK_PARK_AFTER_SECONDS` after its first attempt or waiting when
its pixel is handed over, a due time at which to try it again (the caller parks it durably, so a
failing pixel holds no memory and a new owner repeats nothing).

Kafka stays outside: events come in through `submit()`, outcomes leave through the `finish`
callback; the caller bounds how many events are in here (back-pressure).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import random
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import aiohttp
import orjson

from worker.integrations.config import Integration
from worker.metrics import (EVENTS_PER_REQUEST, PIXEL_PAUSED, REQUEST_SECONDS, REQUESTS_IN_FLIGHT, STAGE_SECONDS,
                            TIKTOK_REQUESTS)
from worker.results import final_result
from worker.settings import Settings
from worker.tiktok.payload import request_body
from worker.tiktok.responses import Answer, classify, classify_exception
from worker.tiktok.validation import request_problem

log = logging.getLogger(__name__)


@dataclass
class Ticket:
    """One outbox event on its way; `handle` is the caller's, given back with the result."""

    record: dict[str, Any]
    handle: Any
    attempts: int = 0
    first_attempt: float | None = None  # wall clock, so it survives parking
    ready_at: float = 0.0  # when it may go (retries wait); also starts its linger
    seq: int = field(default_factory=itertools.count().__next__)

    def __lt__(self, other: "Ticket") -> bool:
        return (self.ready_at, self.seq) < (other.ready_at, other.seq)


Final = tuple[Ticket, dict[str, Any]]
Parked = tuple[Ticket, float]  # the ticket, and the wall-clock time it is due again
Finish = Callable[[list[Final], list[Parked]], Awaitable[None]]
IntegrationFor = Callable[[str], tuple[Integration | None, str | None]]


class PixelPace:
    """A pixel's request budget: at most `rate` requests in any one second, and a pause after throttling.

    A request counts from when it leaves until a second after its answer: whenever it reached TikTok,
    it was then either open or answered within the last second, so TikTok never sees more than `rate`
    requests in one of its seconds. Lanes of one pixel take turns (a FIFO lock), so no app starves another.
    """

    def __init__(self, rate: int):
        self.rate = rate
        self.open = 0
        self.answered: deque[float] = deque()
        self.paused_until = 0.0
        self.throttle_streak = 0
        self.turn = asyncio.Lock()

    def wait_time(self, now: float) -> float:
        while self.answered and now - self.answered[0] >= 1.0:
            self.answered.popleft()
        if now < self.paused_until:
            return self.paused_until - now
        if self.open + len(self.answered) >= self.rate:
            return self.answered[0] + 1.0 - now if self.answered else 0.05  # else: until an answer comes
        return 0.0

    async def take_turn(self) -> None:
        async with self.turn:
            while (pause := self.wait_time(time.monotonic())) > 0:
                await asyncio.sleep(pause)
            self.open += 1

    def answered_now(self) -> None:
        self.open -= 1
        self.answered.append(time.monotonic())

    def throttled(self, now: float, cap: float) -> float:
        # TikTok: a QPS limit lifts the next second; repeated throttling backs off further.
        self.throttle_streak += 1
        pause = min(cap, 2 ** (self.throttle_streak - 1)) * random.uniform(1.0, 1.5)
        self.paused_until = max(self.paused_until, now + pause)
        return pause


class Lane:
    """Events for one (pixel, app, test code): they may share a request, and nothing else may."""

    def __init__(self) -> None:
        self.waiting: list[Ticket] = []  # heap by ready_at
        self.wake = asyncio.Event()

    def put(self, ticket: Ticket) -> None:
        heapq.heappush(self.waiting, ticket)
        self.wake.set()


class TikTokSink:
    def __init__(self, settings: Settings, integration_for: IntegrationFor, finish: Finish,
                 session: aiohttp.ClientSession | None = None):
        self.settings = settings
        self.integration_for = integration_for
        self.finish = finish
        self.session = session
        self.lanes: dict[tuple[str, str, str | None], Lane] = {}
        self.lane_tasks: dict[tuple[str, str, str | None], asyncio.Task] = {}
        self.paces: dict[str, PixelPace] = defaultdict(lambda: PixelPace(settings.pixel_rate_limit))
        self.in_flight = asyncio.Semaphore(settings.max_in_flight)
        self.requests: set[asyncio.Task] = set()
        self.handing_over = False  # retries are parked, not kept: the events are leaving this replica
        self.parking: list[Parked] = []

    async def start(self) -> None:
        if self.session is None or self.session.closed:
            self.session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.settings.request_timeout_s),
                json_serialize=lambda v: orjson.dumps(v).decode())

    async def hand_over(self, timeout: float) -> None:
        """Stop sending: park the waiting events (finished here, so their offsets commit and the next owner
        repeats nothing) and let the requests already sent end with their outcome (retries parked), all
        within `timeout`; what is not finished by then is read again by the next owner."""
        self.handing_over = True
        deadline = time.monotonic() + timeout
        try:
            lanes = list(self.lane_tasks.values())
            for task in lanes:
                task.cancel()
            await asyncio.gather(*lanes, return_exceptions=True)
            now, wall = time.monotonic(), time.time()
            waiting = [(t, wall + max(0.0, t.ready_at - now)) for lane in self.lanes.values() for t in lane.waiting]
            self.lanes.clear()
            self.lane_tasks.clear()
            if waiting:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.finish([], waiting), max(0.0, deadline - time.monotonic()))
            if self.requests:
                _, late = await asyncio.wait(list(self.requests), timeout=max(0.0, deadline - time.monotonic()))
                for task in late:
                    task.cancel()
                await asyncio.gather(*late, return_exceptions=True)
        finally:
            self.handing_over = False

    async def stop(self, timeout: float) -> None:
        await self.hand_over(timeout)
        if self.session is not None:
            await self.session.close()

    def submit(self, record: dict[str, Any], handle: Any, attempts: int = 0,
               first_attempt: float | None = None) -> None:
        """Take one outbox event (or a parked one, with its attempts so far)."""
        STAGE_SECONDS.labels("waiting_in_outbox").observe(max(0.0, time.time() - record["joined_ms"] / 1000))
        self.lane_of(record).put(Ticket(record, handle, attempts, first_attempt, ready_at=time.monotonic()))

    def lane_of(self, record: dict[str, Any]) -> Lane:
        key = (record["pixel_id"], record["app_id"], record.get("test_event_code"))
        lane = self.lanes.get(key)
        if lane is None:
            lane = self.lanes[key] = Lane()
            self.lane_tasks[key] = asyncio.create_task(self.run_lane(key, lane), name=f"lane-{key[0]}")
        return lane

    async def run_lane(self, key: tuple[str, str, str | None], lane: Lane) -> None:
        pace = self.paces[key[0]]
        while True:
            now = time.monotonic()
            if not lane.waiting or lane.waiting[0].ready_at > now:
                await self.sleep_until_woken(lane, lane.waiting[0].ready_at - now if lane.waiting else None)
                continue
            oldest = lane.waiting[0].ready_at
            due = sum(1 for t in lane.waiting if t.ready_at <= now)
            if due < self.settings.batch_size and now - oldest < self.settings.batch_linger_s:
                await self.sleep_until_woken(lane, oldest + self.settings.batch_linger_s - now)
                continue
            paced = not self.settings.tiktok_dry_run
            if paced:
                await pace.take_turn()
            try:
                await self.in_flight.acquire()
            except asyncio.CancelledError:  # handed over while waiting: the turn taken is given back
                if paced:
                    pace.answered_now()
                raise
            now = time.monotonic()  # more may have become due while waiting for the turn
            due = sum(1 for t in lane.waiting if t.ready_at <= now)
            batch = [heapq.heappop(lane.waiting) for _ in range(min(self.settings.batch_size, due))]
            task = asyncio.create_task(self.deliver(batch, pace if paced else None))
            self.requests.add(task)
            task.add_done_callback(self.requests.discard)

    @staticmethod
    async def sleep_until_woken(lane: Lane, timeout: float | None) -> None:
        lane.wake.clear()
        try:
            await asyncio.wait_for(lane.wake.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    async def deliver(self, batch: list[Ticket], pace: PixelPace | None) -> None:
        """`pace` is None in a dry run, which sends nothing."""
        try:
            finals = await self.send(batch, pace)
        except Exception:  # a bug here must not strand events: they get a final result
            log.exception("delivering a batch of %d events failed", len(batch))
            finals = [(t, final_result(t.record, "failed", "internal_error", attempts=t.attempts)) for t in batch]
        finally:
            self.in_flight.release()
            if pace is not None:
                pace.answered_now()
        # `requeue` ran within `send`, with no await since: these are exactly this batch's parked events.
        parked, self.parking = self.parking, []
        await self.finish(finals, parked)

    async def send(self, batch: list[Ticket], pace: PixelPace | None) -> list[Final]:
        now = time.time()
        record = batch[0].record
        integration, skip_reason = self.integration_for(record["app_id"])
        finals: list[tuple[Ticket, dict[str, Any]]] = []
        sendable = []
        for ticket in batch:
            if skip_reason is not None:
                finals.append((ticket, final_result(ticket.record, "skipped", skip_reason, attempts=ticket.attempts)))
            elif now - ticket.record["occurred_ts"] > self.settings.max_event_age_s:
                finals.append((ticket, final_result(ticket.record, "failed", "expired", attempts=ticket.attempts)))
            else:
                sendable.append(ticket)
        if sendable:
            body = request_body(record["pixel_id"], record.get("test_event_code"), [t.record for t in sendable])
            if self.settings.tiktok_dry_run:
                finals += self.dry_run(sendable, body)
            else:
                finals += await self.post(sendable, body, integration, pace)
        return finals

    def dry_run(self, tickets: list[Ticket], body: dict[str, Any]) -> list[tuple[Ticket, dict[str, Any]]]:
        problem = request_problem(body)
        status, reason = ("rejected", "invalid_payload") if problem else ("dry_run", "dry_run")
        return [(t, final_result(t.record, status, reason, tiktok_message=problem)) for t in tickets]

    async def post(self, tickets: list[Ticket], body: dict[str, Any], integration: Integration,
                   pace: PixelPace) -> list[tuple[Ticket, dict[str, Any]]]:
        started = time.monotonic()
        for ticket in tickets:
            ticket.attempts += 1
            ticket.first_attempt = ticket.first_attempt or time.time()
        token = integration.access_token
        REQUESTS_IN_FLIGHT.inc()
        try:
            async with self.session.post(
                    self.settings.tiktok_api_url, data=orjson.dumps(body),
                    headers={"Access-Token": token, "Content-Type": "application/json"}) as response:
                answer = classify(response.status, await response.read(), access_token=token,
                                  retry_after=response.headers.get("Retry-After"))
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            answer = classify_exception(exc, access_token=token)
        finally:
            REQUESTS_IN_FLIGHT.dec()
        elapsed = time.monotonic() - started
        REQUEST_SECONDS.observe(elapsed)
        STAGE_SECONDS.labels("tiktok_request").observe(elapsed)
        EVENTS_PER_REQUEST.observe(len(tickets))
        TIKTOK_REQUESTS.labels(str(answer.http_status or "none"), answer.code_label).inc()
        if answer.outcome == "delivered":
            pace.throttle_streak = 0
            PIXEL_PAUSED.labels(tickets[0].record["pixel_id"]).set(0)
            return [(t, self.result(t, "delivered", None, answer)) for t in tickets]
        if answer.outcome == "rejected":
            if answer.bad_item is not None and answer.bad_item < len(tickets):
                # One bad event must not sink its batch: it is rejected, the others go again at once.
                bad = tickets[answer.bad_item]
                for ticket in tickets:
                    if ticket is not bad:
                        self.requeue(ticket, time.monotonic())
                return [(bad, self.result(bad, "rejected", "tiktok_error", answer))]
            return [(t, self.result(t, "rejected", "tiktok_error", answer)) for t in tickets]
        now = time.monotonic()
        if answer.outcome == "throttled":
            pause = pace.throttled(now, self.settings.retry_cap_s)
            PIXEL_PAUSED.labels(tickets[0].record["pixel_id"]).set(pause)
            log.warning("pixel %s throttled by TikTok (code %s): pausing %.1f s",
                        tickets[0].record["pixel_id"], answer.code, pause,
                        extra={"pixel_id": tickets[0].record["pixel_id"]})
        if answer.retry_after:  # the server said when: the pixel waits that long, and so do its events
            pace.paused_until = max(pace.paused_until, now + answer.retry_after)
        finals = []
        for ticket in tickets:
            if (ticket.attempts >= self.settings.retry_max_attempts
                    or time.time() - ticket.first_attempt >= self.settings.retry_max_s):
                finals.append((ticket, self.result(ticket, "failed", "retries_exhausted", answer)))
            else:
                self.requeue(ticket, now + max(self.backoff(ticket.attempts), answer.retry_after or 0.0))
        return finals

    def backoff(self, attempts: int) -> float:
        """Exponential with full jitter, capped."""
        ceiling = min(self.settings.retry_cap_s, self.settings.retry_base_s * 2 ** (attempts - 1))
        return random.uniform(ceiling / 2, ceiling)

    def requeue(self, ticket: Ticket, ready_at: float) -> None:
        now = time.monotonic()
        if self.handing_over or time.time() - ticket.first_attempt >= self.settings.park_after_s:
            # Kept in memory no longer: a pixel failing for long must not hold memory or its partition.
            self.parking.append((ticket, time.time() + max(0.0, ready_at - now)))
            return
        # ready_at in the past for an immediate resend: its linger is already over.
        ticket.ready_at = ready_at - self.settings.batch_linger_s if ready_at <= now else ready_at
        self.lane_of(ticket.record).put(ticket)

    @staticmethod
    def result(ticket: Ticket, status: str, reason: str | None, answer: Answer) -> dict[str, Any]:
        return final_result(ticket.record, status, reason, attempts=ticket.attempts,
                            http_status=answer.http_status, tiktok_code=answer.code,
                            tiktok_message=answer.message, request_id=answer.request_id)
