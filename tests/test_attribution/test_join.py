"""The join rules, on states in memory."""

from worker.attribution import join

GRACE, WINDOW = 600, 7 * 86400


def click(ts=1000.0, campaign="Spring"):
    return {"ttclid": "T", "app_id": "a", "occurred_ts": ts, "campaign_name": campaign, "ip": "203.0.113.5",
            "url": "https://app.example/?ttclid=T"}


def event(event_id="e1", name="trial_started", offset=1):
    return {"event_id": event_id, "app_id": "a", "name": name, "ttclid": "T", "occurred_ts": 1100.0,
            "source": [0, offset]}


def test_an_event_after_its_click_leaves_enriched():
    state = join.new_state(0)
    assert join.on_click(state, click()) == []
    [out], duplicate = join.on_app_event(state, event(offset=1), 2000, GRACE, WINDOW)
    assert not duplicate
    assert out["enriched"] and out["campaign_name"] == "Spring" and out["ip"] == "203.0.113.5"
    assert out["url"] == "https://app.example/?ttclid=T"


def test_events_waiting_for_their_click_leave_with_it_in_order():
    state = join.new_state(0)
    assert join.on_app_event(state, event("e1", offset=1), 2000, GRACE, WINDOW) == ([], False)
    assert join.on_app_event(state, event("e2", offset=2), 2001, GRACE, WINDOW) == ([], False)
    released = join.on_click(state, click())
    assert [e["event_id"] for e in released] == ["e1", "e2"]
    assert all(e["enriched"] for e in released) and state["waiting"] == []


def test_after_the_grace_period_an_event_leaves_without_enrichment_once():
    state = join.new_state(0)
    join.on_app_event(state, event(offset=1), 2000, GRACE, WINDOW)
    assert join.expire(state, 2000 + GRACE - 1, 2000 + GRACE - 1, WINDOW) == []
    [out] = join.expire(state, 2000 + GRACE, 2000 + GRACE, WINDOW)
    assert out["enriched"] is False and "wait_until" not in out
    assert join.on_click(state, click()) == []  # the late click does not send it again


def test_an_event_waits_past_its_grace_until_the_stream_has_been_read_that_far():
    state = join.new_state(0)
    join.on_app_event(state, event(offset=1), 2000, GRACE, WINDOW)
    # The wall clock is past the grace period, the stream (a replica catching up after a crash) is not.
    assert join.expire(state, 2000 + GRACE + 30, 2000 + GRACE - 1, WINDOW) == []
    [out] = join.on_click(state, click())
    assert out["enriched"] is True


def test_the_latest_click_wins_whatever_the_order_they_arrive_in():
    state = join.new_state(0)
    join.on_click(state, click(ts=1000, campaign="Old"))
    join.on_click(state, click(ts=2000, campaign="New"))
    join.on_click(state, click(ts=1500, campaign="Late but older"))
    [out], _ = join.on_app_event(state, event(offset=1), 2500, GRACE, WINDOW)
    assert out["campaign_name"] == "New"


def test_a_repeated_event_id_is_a_duplicate_but_a_replay_of_the_same_record_is_not():
    state = join.new_state(0)
    join.on_click(state, click())
    assert join.on_app_event(state, event(offset=7), 2000, GRACE, WINDOW)[1] is False
    assert join.on_app_event(state, event(offset=7), 2001, GRACE, WINDOW)[1] is False  # crash replay
    assert join.on_app_event(state, event(offset=8), 2002, GRACE, WINDOW)[1] is True
    assert join.on_app_event(state, event(offset=9), 2000 + join.DEDUP_WINDOW_S, GRACE, WINDOW)[1] is False


def test_state_is_forgotten_after_the_windows():
    state = join.new_state(0)
    window = 3600
    join.on_click(state, click(ts=1000))
    join.on_app_event(state, event(offset=1), 1000, GRACE, window)
    join.expire(state, 1000 + window, 1000 + window, window)
    assert state["click"] is None and not join.is_empty(state)  # the event id is kept for 48 h
    join.expire(state, 1000 + join.DEDUP_WINDOW_S, 1000 + join.DEDUP_WINDOW_S, window)
    assert join.is_empty(state)


def test_a_click_past_the_window_does_not_enrich():
    state = join.new_state(0)
    join.on_click(state, click(ts=1000))
    assert join.on_app_event(state, event(offset=1), 1000 + WINDOW, GRACE, WINDOW) == ([], False)
    assert state["waiting"]


def test_past_max_waiting_a_further_event_leaves_at_once_without_enrichment():
    state = join.new_state(0)
    for i in range(join.MAX_WAITING):
        assert join.on_app_event(state, event(f"e{i}", offset=i), 2000, GRACE, WINDOW) == ([], False)
    [out], duplicate = join.on_app_event(state, event("one-too-many", offset=99), 2000, GRACE, WINDOW)
    assert out["event_id"] == "one-too-many" and out["enriched"] is False and not duplicate
    assert len(state["waiting"]) == join.MAX_WAITING
    assert len(join.on_click(state, click())) == join.MAX_WAITING


def test_past_max_seen_the_oldest_event_ids_are_forgotten():
    state = join.new_state(0)
    join.on_click(state, click())
    for i in range(join.MAX_SEEN + 5):
        join.on_app_event(state, event(f"e{i}", offset=i), 2000 + i, GRACE, WINDOW)
    assert len(state["seen"]) == join.MAX_SEEN
    assert "a/e0" not in state["seen"] and f"a/e{join.MAX_SEEN + 4}" in state["seen"]


def test_a_copy_keeps_the_state_as_it_was_whatever_the_join_does_to_the_original():
    from worker.attribution import encoding
    state = join.new_state(0)
    join.on_app_event(state, event("e1", offset=1), 2000, GRACE, WINDOW)
    for change in (lambda s: join.on_app_event(s, event("e2", offset=2), 2001, GRACE, WINDOW),
                   lambda s: join.on_click(s, click()),
                   lambda s: join.on_app_event(s, event("e3", offset=3), 2002, GRACE, WINDOW),
                   lambda s: join.expire(s, 2000 + join.DEDUP_WINDOW_S, 2000 + join.DEDUP_WINDOW_S, WINDOW)):
        before = encoding.encode(state)
        kept = join.copy(state)
        change(state)
        assert encoding.encode(kept) == before
