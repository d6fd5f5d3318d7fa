"""The Faust app, built once from the settings; each stage's agents register on it.

Pipeline, one package per stage, in the order a record travels:
  ingest       clicks / app-events  -> validated, re-keyed by ttclid (or dead-lettered); a consumer group of its own
  attribution  by-ttclid            -> click table join, integration mapping -> outbox (or a skipped result)
  delivery     outbox               -> TikTok Events API requests -> delivery results
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from typing import Awaitable, Callable

import faust

from worker.kafka_security import client_options, faust_credentials
from worker.logs import logging_config
from worker.metrics import INTERNAL_ERRORS
from worker.offsets import SafeCommits
from worker.produce import KafkaWrites
from worker.rekeyed import CLIENT_ID
from worker.settings import Settings

log = logging.getLogger(__name__)
settings = Settings.from_env()
# What the stages write goes through this producer, in batches (worker/produce.py).
writes = KafkaWrites(settings)


class WorkerApp(faust.App):
    safe_commits: SafeCommits | None = None

    def on_init_dependencies(self):
        # First among the app's services, so it is started before and stopped after every stage.
        return [writes, *super().on_init_dependencies()]

    def _new_consumer(self):
        consumer = super()._new_consumer()
        self.safe_commits = SafeCommits(consumer, client_options(settings))
        return consumer

    async def on_stop(self) -> None:
        # A bound on shutdown whatever hangs (a broker gone, a stuck request): what was not
        # committed is read again by the next owner, so exiting loses nothing.
        watchdog = threading.Timer(settings.shutdown_timeout_s, os._exit, args=(1,))
        watchdog.daemon = True
        watchdog.start()
        await super().on_stop()
        if self.safe_commits is not None:
            await self.safe_commits.close()


app = WorkerApp(
    settings.app_id,
    broker=f"kafka://{settings.kafka_bootstrap_servers}",
    # Tells the input stage that this replica reads by-ttclid records of several items (worker/rekeyed.py).
    broker_client_id=CLIENT_ID,
    broker_credentials=faust_credentials(settings),
    store="memory://",  # the join table has its own: STATE_STORE (worker/attribution/agents.py)
    topic_partitions=settings.topic_partitions,
    # A standby copy is written by Faust from the changelog only; the join and its expiry touch the
    # partitions this replica owns.
    table_standby_replicas=settings.state_standby_replicas,
    logging_config=logging_config(settings.log_format, settings.log_level),
    web_host=settings.web_host,
    web_port=settings.web_port,
    # Faust's own views would show any table's rows (tokens, user data) to whoever reaches the port.
    web_router_enabled=False,
    web_tables_enabled=False,
    datadir=settings.data_dir,
    autodiscover=False,
    consumer_auto_offset_reset="earliest",
    producer_acks=-1,
    producer_linger=0.005,
    producer_max_batch_size=262144,
    broker_commit_interval=1.0,
    stream_buffer_maxsize=8192,
    # Outbox events can wait minutes for TikTok; a rebalance must not wait for them
    # (their offsets are not committed, so the new owner reads them again).
    stream_wait_empty=False,
    # A replica that dies is noticed in 10 s (not Faust's 60 s), so its partitions move on quickly.
    broker_session_timeout=10,
)


def survives(timer: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
    """A timer whose failure is logged and counted, and that runs again at its next tick: left to Faust,
    an exception in a timer stops the worker."""
    @functools.wraps(timer)
    async def guarded() -> None:
        try:
            await timer()
        except Exception:
            INTERNAL_ERRORS.labels(timer.__name__).inc()
            log.exception("%s failed; it runs again at its next tick", timer.__name__)
    return guarded


@app.timer(interval=1.0)
@survives
async def heal_stalled_commits() -> None:
    if not app.rebalancing:
        await app.safe_commits.heal(time.monotonic())


# Stages register their agents on import, in pipeline order.
import worker.ingest.agents  # noqa: E402,F401
import worker.attribution.agents  # noqa: E402,F401
import worker.delivery.agents  # noqa: E402,F401
import worker.analytics.agents  # noqa: E402,F401
import worker.web  # noqa: E402,F401  (probes, metrics, analytics)
import worker.collect.views  # noqa: E402,F401  (the click collector and the landing script)
