"""The Faust app, built once from the settings; each stage's agents register on it.

Pipeline, one package per stage, in the order a record travels:
  ingest       clicks / app-events  -> validated, re-keyed by ttclid (or dead-lettered)
  attribution  by-ttclid            -> click table join, integration mapping -> outbox (or a skipped result)
  delivery     outbox               -> TikTok Events API requests -> delivery results
"""

from __future__ import annotations

import os
import threading

import faust

from worker.kafka_security import faust_credentials
from worker.logs import logging_config
from worker.settings import Settings

settings = Settings.from_env()

class UnknownReadOffsets(dict):
    """The consumer loop's view of read offsets: always unknown.

    faust-streaming 0.15.3 resumes fetching a partition before it seeks it back to the committed
    offset after a rebalance. A record fetched early then counts the offsets before it as a gap,
    marked done and committed, and the same records re-fetched after the seek are dropped as already
    read: they are never processed. Unknown read offsets turn both into re-processing, which every
    stage here tolerates (a replayed record is recognised, a resent event deduplicated by TikTok).
    """

    def __getitem__(self, tp):
        return None


class WorkerApp(faust.App):
    def _new_consumer(self):
        consumer = super()._new_consumer()
        consumer._read_offset = UnknownReadOffsets()
        faust_new_offset = consumer._new_offset

        def new_offset(tp):
            # Faust commits a run of acked offsets that starts one past the committed offset (which is
            # the next offset to read), stepping over an unprocessed record (faust-streaming#606).
            acked, committed = consumer._acked[tp], consumer._committed_offset[tp]
            if acked and committed is not None and min(acked) > committed:
                return None
            return faust_new_offset(tp)

        consumer._new_offset = new_offset
        return consumer

    async def on_stop(self) -> None:
        # A bound on shutdown whatever hangs (a broker gone, a stuck request): what was not
        # committed is read again by the next owner, so exiting loses nothing.
        watchdog = threading.Timer(settings.shutdown_timeout_s, os._exit, args=(1,))
        watchdog.daemon = True
        watchdog.start()
        await super().on_stop()


app = WorkerApp(
    settings.app_id,
    broker=f"kafka://{settings.kafka_bootstrap_servers}",
    broker_credentials=faust_credentials(settings),
    store="memory://",
    topic_partitions=settings.topic_partitions,
    # Tables are rebuilt from their changelogs on assignment; standbys would hold
    # copies of other workers' partitions that our expiry sweeps must not touch.
    table_standby_replicas=0,
    logging_config=logging_config(settings.log_format, settings.log_level),
    web_host=settings.web_host,
    web_port=settings.web_port,
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


# Stages register their agents on import, in pipeline order.
import worker.ingest.agents  # noqa: E402,F401
import worker.attribution.agents  # noqa: E402,F401
import worker.delivery.agents  # noqa: E402,F401
import worker.analytics.agents  # noqa: E402,F401
import worker.web  # noqa: E402,F401  (probes, metrics, analytics)
