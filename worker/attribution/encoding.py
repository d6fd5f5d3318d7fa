"""Pure: a join state as the bytes kept in the table and written to its changelog, and back.

A JSON array instead of the state's dict, holding only what the join and the TikTok payload use:
the click's time and context fields by position (its other fields are not kept), event ids seen with
whole seconds. App events waiting for their click are kept whole: the payload is built from them.

    [partition, click | null, waiting, {"app_id/event_id": [seen_s, source_partition, source_offset]}]
    click: [occurred_ts, ttp, ip, user_agent, locale, url, referrer, campaign_name, adset_name, ad_name]
"""

from __future__ import annotations

import orjson

from worker.attribution.join import CLICK_CONTEXT, State


def encode(state: State) -> bytes:
    click = state["click"]
    if click is not None:
        click = [click["occurred_ts"], *(click.get(name) for name in CLICK_CONTEXT)]
        while click[-1] is None:
            click.pop()
    seen = {key: [int(seen_at), *source] for key, (seen_at, source) in state["seen"].items()}
    # orjson hands back a buffer of several KiB for a state of a few hundred bytes; a table keeps
    # it for the attribution window, so keep an exactly sized copy.
    return bytes(memoryview(orjson.dumps([state["p"], click, state["waiting"], seen])))


def decode(raw: bytes) -> State:
    partition, click, waiting, seen = orjson.loads(raw)
    if click is not None:
        context = {name: value for name, value in zip(CLICK_CONTEXT, click[1:]) if value is not None}
        click = {"occurred_ts": click[0], **context}
    return {"p": partition, "click": click, "waiting": waiting,
            "seen": {key: [seen_at, [partition_, offset]] for key, (seen_at, partition_, offset) in seen.items()}}
