import math

from worker.attribution.stream_time import MAX_MARKS, StreamTime


def test_stream_time_is_the_latest_observation_whose_records_are_all_processed():
    clock = StreamTime()
    clock.observe(0, at=100.0, end=10, committed=5)
    assert clock.of(0) == -math.inf  # records 5-9 were written before 100.0 and are not read yet
    clock.processed(0, 8)
    clock.observe(0, at=101.0, end=12, committed=5)
    assert clock.of(0) == -math.inf
    clock.processed(0, 9)
    clock.observe(0, at=102.0, end=12, committed=5)
    assert clock.of(0) == 100.0  # everything written before 100.0 is read, not what came by 101.0
    clock.processed(0, 11)
    clock.observe(0, at=103.0, end=12, committed=None)
    assert clock.of(0) == 103.0  # read to the end, and nothing written since


def test_a_partition_read_to_its_end_by_an_earlier_owner_is_current_at_once():
    clock = StreamTime()
    clock.observe(3, at=50.0, end=7, committed=7)
    assert clock.of(3) == 50.0
    assert clock.of(4) == -math.inf


def test_a_rebalance_forgets_what_was_read():
    clock = StreamTime()
    clock.processed(0, 9)
    clock.observe(0, at=100.0, end=10, committed=None)
    clock.clear()
    clock.observe(0, at=101.0, end=10, committed=None)
    assert clock.of(0) == -math.inf


def test_a_long_backlog_keeps_a_bounded_number_of_observations_and_still_advances():
    clock = StreamTime()
    for second in range(MAX_MARKS + 100):
        clock.observe(0, at=float(second), end=second + 1, committed=0)
    clock.processed(0, MAX_MARKS + 200)
    clock.observe(0, at=10_000.0, end=MAX_MARKS + 201, committed=0)
    assert clock.of(0) == MAX_MARKS - 1  # the last observation kept; the next tick catches up
    clock.observe(0, at=10_001.0, end=MAX_MARKS + 201, committed=0)
    assert clock.of(0) == 10_001.0
