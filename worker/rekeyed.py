"""Pure: the records of `by-ttclid`, which the input stage writes and the join reads.

One record holds the clicks and app events that one input batch re-keyed to one partition, in the
order they were read: `{"items": [{"click": {...}} or {"app_event": {...}}, ...]}`, without a key
(the partition is their ttclids'). Faust's consumer loop costs ~70 us a record, whatever the record
holds, and the join is the only stage it runs: one record a batch and partition, instead of one a
click, is what lets the join go faster than Faust reads records. The version before wrote one item a
record, keyed by its ttclid; the join reads those too. Its replicas dead-letter a record of several
items, so the input stage writes those only while every member of the join's group reads them
(`all_read_batches`): a rolling upgrade from that version writes one item a record until its last
old replica has left.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator

import orjson

# The Kafka client id of replicas that read records of several items; the version before ran under
# Faust's default (`faust-<its version>`).
CLIENT_ID = "web2app-worker"
# Past a few hundred items a record saves no more of Faust's loop, and the join buffers up to 256
# records (worker/attribution/agents.py); an item alone is at most 16 KiB (MAX_EVENT_BYTES).
MAX_RECORD_BYTES = 64 * 1024


def records(items: list[bytes]) -> Iterator[bytes]:
    """Encoded items (orjson) in as few records of at most MAX_RECORD_BYTES as keep their order."""
    start, size = 0, 0
    for end, item in enumerate(items):
        if size and size + len(item) > MAX_RECORD_BYTES:
            yield _record(items[start:end])
            start, size = end, 0
        size += len(item) + 1
    if start < len(items):
        yield _record(items[start:])


def _record(items: list[bytes]) -> bytes:
    return b'{"items":[' + b",".join(items) + b"]}"


def items(key: bytes | None, value: bytes) -> list[tuple[bytes | None, dict[str, Any]]]:
    """(ttclid, item) of each item of a record, in order; the ttclid is None where the item names it
    (`ttclid_of`)."""
    record = orjson.loads(value)
    if "items" in record:
        return [(None, item) for item in record["items"]]
    return [(key, record)]


def ttclid_of(item: dict[str, Any]) -> bytes:
    return (item["click"] if "click" in item else item["app_event"])["ttclid"].encode()


def all_read_batches(client_ids: Iterable[str]) -> bool:
    """Whether the members of the join's group (their client ids) all read records of several items."""
    return all(client_id == CLIENT_ID for client_id in client_ids)
