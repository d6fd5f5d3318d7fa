"""The by-ttclid records: what one input batch re-keyed to a partition, in as few records as fit."""

import orjson

from worker import rekeyed


def item(n: int, size: int = 300) -> bytes:
    return orjson.dumps({"click": {"ttclid": f"T{n}", "pad": "x" * size}})


def test_items_travel_in_few_records_in_their_order_each_within_the_bound():
    items = [item(n) for n in range(1000)]
    records = list(rekeyed.records(items))
    assert len(records) == 6  # ~320 KB of items, 64 KiB a record
    assert all(len(r) <= rekeyed.MAX_RECORD_BYTES for r in records)
    read = [it for r in records for _, it in rekeyed.items(None, r)]
    assert read == [orjson.loads(i) for i in items]
    assert [rekeyed.ttclid_of(it) for it in read[:2]] == [b"T0", b"T1"]


def test_an_item_larger_than_a_record_travels_alone():
    items = [item(0), item(1, size=rekeyed.MAX_RECORD_BYTES), item(2)]
    assert [len(rekeyed.items(None, r)) for r in rekeyed.records(items)] == [1, 1, 1]


def test_a_record_written_by_the_version_before_is_one_item_keyed_by_its_ttclid():
    value = orjson.dumps({"app_event": {"event_id": "e1", "ttclid": "T1"}})
    assert rekeyed.items(b"T1", value) == [(b"T1", {"app_event": {"event_id": "e1", "ttclid": "T1"}})]


def test_records_of_several_items_are_written_only_while_every_join_replica_reads_them():
    assert rekeyed.all_read_batches([rekeyed.CLIENT_ID, rekeyed.CLIENT_ID])
    assert not rekeyed.all_read_batches([rekeyed.CLIENT_ID, "faust-0.15.3"])  # a replica of 0.1.0
