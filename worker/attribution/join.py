"""Stage 2, pure: the join of app events with the click they came from, per ttclid.

One state per ttclid holds the latest click, the app events waiting for it and the
event ids already seen. Every function takes the state and returns the new one with
the app events it releases, joined (`enriched`) or not; nothing here knows Faust.
"""

from __future__ import annotations

from typing import Any

# TikTok deduplicates (pixel, event_id, event) for 48 hours; we never send an event id twice within it.
DEDUP_WINDOW_S = 48 * 3600
# What one ttclid may hold, so that its state always fits a Kafka record (1 MB) with events of at most
# `worker.ingest.records.MAX_EVENT_BYTES`: past MAX_WAITING a further app event leaves at once without
# enrichment; past MAX_SEEN the oldest event ids are forgotten (their dedup ends early).
MAX_WAITING = 20
MAX_SEEN = 1000
CLICK_CONTEXT = ("ttp", "ip", "user_agent", "locale", "url", "referrer", "campaign_name", "adset_name", "ad_name")

State = dict[str, Any]


def new_state(partition: int) -> State:
    # The partition lets timers write the changelog where the stream would have.
    return {"p": partition, "click": None, "waiting": [], "seen": {}}


def copy(state: State) -> State:
    """A copy that the functions below leave as it is when they change `state`: they replace its click
    and change `waiting` and `seen` only at their top level. Cheaper than a deep copy or an encoding."""
    return {**state, "waiting": list(state["waiting"]), "seen": dict(state["seen"])}


def joined(event: dict[str, Any], click: dict[str, Any] | None) -> dict[str, Any]:
    if click is None:
        return {**event, "enriched": False}
    context = {name: click[name] for name in CLICK_CONTEXT if click.get(name) is not None}
    return {**event, **context, "enriched": True}


def on_click(state: State, click: dict[str, Any]) -> list[dict[str, Any]]:
    """Keep the latest click; the app events waiting for it leave now, in their order."""
    current = state["click"]
    if current is None or click["occurred_ts"] >= current["occurred_ts"]:
        state["click"] = click
    released = [joined(event, state["click"]) for event in state["waiting"]]
    state["waiting"] = []
    return released


def on_app_event(state: State, event: dict[str, Any], now: float,
                 grace_s: float, attribution_window_s: float) -> tuple[list[dict[str, Any]], bool]:
    """(released events, is_duplicate).

    `event["source"]`, where the app event was read, tells a replay of the same record (a crash or
    a rebalance) from a true repeat (upstream sent the event id again).
    """
    source = event["source"]
    key = f"{event['app_id']}/{event['event_id']}"
    seen = state["seen"].get(key)
    if seen is not None and seen[1] == source:
        # A replay of a record this state already holds (after a rebalance or a crash): a state is
        # stored only once its batch's outbox records are acknowledged, so the event has left or waits.
        return [], False
    if seen is not None and now - seen[0] < DEDUP_WINDOW_S:
        return [], True
    state["seen"][key] = [now, source]
    while len(state["seen"]) > MAX_SEEN:
        del state["seen"][next(iter(state["seen"]))]
    if state["click"] is not None and state["click"]["occurred_ts"] + attribution_window_s <= now:
        state["click"] = None
    if state["click"] is not None:
        return [joined(event, state["click"])], False
    if any(w["event_id"] == event["event_id"] and w["app_id"] == event["app_id"] for w in state["waiting"]):
        return [], False
    if len(state["waiting"]) >= MAX_WAITING:
        return [joined(event, None)], False
    state["waiting"].append({**event, "wait_until": now + grace_s})
    return [], False


def expire(state: State, now: float, stream_time: float, attribution_window_s: float) -> list[dict[str, Any]]:
    """Release app events whose grace period is over by `stream_time` (see `stream_time`), unenriched;
    forget clicks and event ids old by `now`."""
    due = [w for w in state["waiting"] if w["wait_until"] <= stream_time]
    state["waiting"] = [w for w in state["waiting"] if w["wait_until"] > stream_time]
    released = [joined(_without_deadline(w), None) for w in due]
    click = state["click"]
    if click is not None and click["occurred_ts"] + attribution_window_s <= now:
        state["click"] = None
    state["seen"] = {k: v for k, v in state["seen"].items() if now - v[0] < DEDUP_WINDOW_S}
    return released


def is_empty(state: State) -> bool:
    return state["click"] is None and not state["waiting"] and not state["seen"]


def next_deadline(state: State) -> float | None:
    return min((w["wait_until"] for w in state["waiting"]), default=None)


def next_change(state: State, attribution_window_s: float) -> float | None:
    """When `expire` would next change the state (an event's grace ends, the click or the oldest event id
    expires); None for an empty state. The expiry index files each state under this time."""
    times = [w["wait_until"] for w in state["waiting"]]
    if state["click"] is not None:
        times.append(state["click"]["occurred_ts"] + attribution_window_s)
    times += (seen_at + DEDUP_WINDOW_S for seen_at, _ in state["seen"].values())
    return min(times, default=None)


def _without_deadline(event: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k != "wait_until"}
