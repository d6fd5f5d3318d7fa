"""In-order acks: a partition commits past an event only once everything before it is finished."""

from worker.delivery.acks import InOrderAcks


def test_a_partition_commits_only_an_unbroken_run_of_finished_events_and_counts_all_it_holds():
    acks = InOrderAcks()
    first, second, third = (acks.track("p0", offset) for offset in (10, 11, 14))  # 12, 13: not for us
    other = acks.track("p1", 3)
    assert acks.held == 4
    assert acks.finished("p0", second) is None  # the first is not finished: nothing may commit
    assert acks.held == 4, "a finished event waiting behind an unfinished one is still held"
    assert acks.finished("p0", first) == 12
    assert acks.finished("p1", other) == 4
    assert acks.finished("p0", third) == 15
    assert acks.held == 0


def test_after_a_rebalance_nothing_is_held_and_late_outcomes_commit_nothing():
    acks = InOrderAcks()
    stale = acks.track("p0", 5)
    acks.forget_all()
    fresh = acks.track("p0", 5)
    assert acks.finished("p0", stale) is None
    assert acks.finished("p0", fresh) == 6 and acks.held == 0
