"""Prometheus metrics. Labels stay bounded: topics, reasons, statuses, codes, pixels and
stages, never a ttclid, an event_id or a token."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECORDS_READ = Counter("web2app_records_read", "Input records read", ["topic"])
DEAD_LETTERS = Counter("web2app_dead_letters", "Records sent to the dead-letter topic", ["reason"])
CLICKS_COLLECTED = Counter("web2app_clicks_collected", "Clicks posted to the collector, by HTTP status answered",
                           ["status"])
RESULTS = Counter("web2app_results", "Final delivery results written", ["status", "reason"])
TIKTOK_REQUESTS = Counter("web2app_tiktok_requests", "Events API requests by answer",
                          ["http_status", "code"])
REQUEST_SECONDS = Histogram("web2app_tiktok_request_seconds", "Events API request duration",
                            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
EVENTS_PER_REQUEST = Histogram("web2app_tiktok_events_per_request", "Events carried by one request",
                               buckets=(1, 10, 50, 100, 250, 500, 750, 1000))
REQUESTS_IN_FLIGHT = Gauge("web2app_tiktok_requests_in_flight", "Events API requests open now")
PIXEL_PAUSED = Gauge("web2app_pixel_throttle_pause_seconds",
                     "Back-off after a pixel's last throttling answer; 0 once TikTok accepts it again", ["pixel_id"])
# Read to final, split where the time goes (as Snowplow Snowbridge does).
STAGE_SECONDS = Histogram("web2app_stage_seconds", "Time an app event spent in each stage", ["stage"],
                          buckets=(0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900))
TTCLIDS_HELD = Gauge("web2app_ttclids_held", "ttclids with join state in this replica's table")
TTCLIDS_WAITING = Gauge("web2app_ttclids_with_waiting_events", "ttclids whose app events wait for their click")
# Scraped from every replica, ready or not, so "no replica ready" can be told apart from "no replica".
READY = Gauge("web2app_ready", "1 when /readyz answers 200, else 0")
STATES_RESTORED = Counter("web2app_states_restored",
                          "join states read back from the changelog to rebuild the table (at a start, a rebalance, "
                          "or for a standby)")
CONSUMER_LAG = Gauge("web2app_consumer_lag", "Records behind the end of an input partition",
                     ["topic", "partition"])
INTERNAL_ERRORS = Counter("web2app_internal_errors", "Failures of the worker's own code that cost one record or "
                          "one timer tick (and are logged)", ["where"])
