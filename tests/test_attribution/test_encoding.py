"""The join state's encoding and its expiry times, on states in memory."""

import orjson

from worker.attribution import encoding, join
from worker.attribution.join import DEDUP_WINDOW_S

WINDOW = 7 * 86400


def landing_click(ts=1000.0):
    """A click as the input stage passes it on: more fields than the join keeps."""
    return {"ttclid": "T", "app_id": "a", "occurred_at": "2026-11-30T00:16:40Z", "occurred_ts": ts,
            "ttp": "2F7h37YkS1j57AYSKTI7IHhJPYH", "ip": "203.0.113.5", "user_agent": "Mozilla/5.0 (iPhone)",
            "url": "https://app.example/?campaign_name=Spring&ttclid=T", "campaign_name": "Spring"}


def waiting_state():
    state = join.new_state(3)
    event = {"event_id": "e1", "app_id": "a", "name": "trial_started", "ttclid": "T", "occurred_ts": 1100.0,
             "user": {"id": "u1"}, "source": [3, 17]}
    join.on_app_event(state, event, 2000.5, 600, WINDOW)
    return state


def test_a_state_comes_back_as_the_join_uses_it():
    state = waiting_state()
    assert encoding.decode(encoding.encode(state)) == {**state, "seen": {"a/e1": [2000, [3, 17]]}}
    [released] = join.on_click(state, landing_click())
    back = encoding.decode(encoding.encode(state))
    assert back["click"] == {"occurred_ts": 1000.0, "ttp": "2F7h37YkS1j57AYSKTI7IHhJPYH", "ip": "203.0.113.5",
                             "user_agent": "Mozilla/5.0 (iPhone)", "campaign_name": "Spring",
                             "url": "https://app.example/?campaign_name=Spring&ttclid=T"}
    # what a later app event is joined with is the same, decoded or not
    event = {"event_id": "e2", "app_id": "a", "name": "x", "ttclid": "T", "source": [3, 18]}
    assert join.on_app_event(back, event, 2100, 600, WINDOW) == join.on_app_event(state, event, 2100, 600, WINDOW)


def test_the_encoding_keeps_neither_field_names_nor_unused_fields():
    state = join.new_state(0)
    join.on_click(state, landing_click())
    raw = encoding.encode(state)
    assert b"occurred_at" not in raw and b"app_id" not in raw and b"user_agent" not in raw
    assert len(raw) < len(orjson.dumps(landing_click()))


def test_a_state_is_due_when_its_first_wait_click_or_event_id_runs_out():
    state = waiting_state()
    assert join.next_change(state, WINDOW) == 2000.5 + 600
    join.on_click(state, landing_click(ts=1000.0))
    assert join.next_change(state, WINDOW) == 2000.5 + DEDUP_WINDOW_S
    join.expire(state, 2000.5 + DEDUP_WINDOW_S, 2000.5 + DEDUP_WINDOW_S, WINDOW)
    assert join.next_change(state, WINDOW) == 1000.0 + WINDOW
    join.expire(state, 1000.0 + WINDOW, 1000.0 + WINDOW, WINDOW)
    assert join.is_empty(state) and join.next_change(state, WINDOW) is None


def test_the_expiry_index_hands_out_what_is_due_and_nothing_else():
    from types import SimpleNamespace

    from worker.attribution.storage import MemoryStates
    states = MemoryStates(SimpleNamespace(data={}))
    for i in range(1000):
        states.file_due(0, f"T{i}".encode(), 10_000.0 + i)  # one a second from 10,000 s
    states.file_due(1, b"other partition", 0.0)
    due = states.due(0, 10_004.0, limit=100)
    assert [key for _, key in due] == [b"T0", b"T1", b"T2", b"T3", b"T4"]
    assert states.due(0, 10_004.0, limit=100) == due  # until they are swept
    states.forget_due(0, due)
    assert [key for _, key in states.due(0, 10_006.5, limit=100)] == [b"T5", b"T6"]
    assert len(states.due(0, 20_000.0, limit=100)) == 100
