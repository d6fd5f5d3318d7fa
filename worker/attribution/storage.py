"""Faust edge: where the join states of this replica's partitions live, and the index that expires them.

Two stores, chosen by `STATE_STORE`:
- `memory`: Faust's memory store, one dict; rebuilt from the changelog at every start and rebalance.
- `rocksdb`: Faust's `rocksdb://` store (rocksdict), one database per partition under `DATA_DIR`;
  a replica that starts again on its data directory replays only the changelog records written since.

Either way the join writes its states itself (in batches, after their changelog records are
acknowledged), so this module is the one place that touches Faust's store internals: the partition's
database (`_db_for_partition`) and the changelog offset the database holds (`set_persisted_offset`,
which Faust itself advances only for writes made through `table[key] = value`).

The expiry index files each state under the time it next changes (`join.next_change`), so the sweep
reads what is due and nothing else. An entry is a hint: the sweep loads the state and lets `join.expire`
decide, and a state stored again is filed again under its new time (the old entry is dropped when due).
"""

from __future__ import annotations

import heapq
import math
import struct
from collections import defaultdict
from typing import Iterable, Mapping

import faust
import rocksdict
from faust.types import TP

from worker.attribution import encoding
from worker.attribution.join import State, next_change

# Each RocksDB partition's entries: 8 bytes of due time in whole seconds, big-endian so that they
# sort by time, then the ttclid.
DUE_FAMILY = "due"
_SECONDS = struct.Struct(">Q")


class MemoryStates:
    """The memory store's dict; the expiry index in memory, rebuilt with the table after every rebalance."""

    def __init__(self, table: faust.Table):
        self.table = table
        # partition -> (heap of due seconds, second -> ttclids due then)
        self._due: dict[int, tuple[list[int], dict[int, set[bytes]]]] = defaultdict(lambda: ([], {}))

    def get(self, partition: int, key: bytes) -> State | None:
        raw = self.table.data.get(key)
        return None if raw is None else encoding.decode(raw)

    def write(self, partition: int, key: bytes, raw: bytes | None) -> None:
        if raw is None:
            self.table.data.pop(key, None)
        else:
            self.table.data[key] = raw

    def file_due(self, partition: int, key: bytes, when: float) -> None:
        times, keys = self._due[partition]
        second = math.ceil(when)
        if second not in keys:
            keys[second] = set()
            heapq.heappush(times, second)
        keys[second].add(key)  # the table's own key object: the index holds a reference, not a copy

    def due(self, partition: int, now: float, limit: int) -> list[tuple[int, bytes]]:
        """(second, ttclid) of the states due by `now`, earliest first, at most about `limit`."""
        times, keys = self._due[partition]
        seconds: list[int] = []
        found: list[tuple[int, bytes]] = []
        while times and times[0] <= now and len(found) < limit:
            seconds.append(heapq.heappop(times))
            found += ((seconds[-1], key) for key in keys.get(seconds[-1], ()))
        for second in seconds:  # `forget_due` drops them once swept
            heapq.heappush(times, second)
        return found

    def forget_due(self, partition: int, entries: Iterable[tuple[int, bytes]]) -> None:
        times, keys = self._due[partition]
        for second, key in entries:
            keys.get(second, set()).discard(key)
        while times and not keys.get(times[0]):
            keys.pop(heapq.heappop(times), None)

    def on_restored(self, partition: int, key: bytes, raw: bytes | None, attribution_window_s: float) -> None:
        """The memory store is rebuilt whole: `settle` files every state after the rebuild."""

    def settle(self, owned: set[int], attribution_window_s: float,
               horizon: float) -> Iterable[tuple[int, bytes, State]]:
        """After a rebuild: drop states of partitions owned elsewhere, file the others; yields them all."""
        self._due.clear()
        for key, raw in list(self.table.data.items()):
            state = encoding.decode(raw)
            if state["p"] not in owned:
                del self.table.data[key]
                continue
            if (when := next_change(state, attribution_window_s)) is not None:
                self.file_due(state["p"], key, when)
            yield state["p"], key, state

    def persisted(self, offsets: Mapping[TP, int]) -> None:
        """The memory store keeps nothing across starts."""

    def held(self, owned: set[int]) -> int:
        return len(self.table.data)


class RocksStates:
    """Faust's RocksDB store: states in each partition's database, the expiry index in its `due` family."""

    def __init__(self, table: faust.Table):
        self.table = table

    def _db(self, partition: int):
        # Never kept: Faust closes a revoked partition's database by dropping its last reference.
        return self.table.data._db_for_partition(partition)

    def _due_handle(self, partition: int):
        """The `due` family's handle, for writes. (A family opened as a dict, which reads need, flushes
        its memtable when it is dropped: opened for each write, it made one file per entry.)"""
        db = self._db(partition)
        try:
            return db, db.get_column_family_handle(DUE_FAMILY)
        except Exception:  # rocksdict raises a bare Exception for a family not created yet
            # With the states' small buffers (`rocksdb_options`): with RocksDB's defaults (2 x 64 MiB of
            # memtable a partition) a full rebuild at 5 million held left 408 MiB of RSS, 185 MiB with these.
            db.create_column_family(DUE_FAMILY, self.table.data.rocksdb_options.as_options())
            return db, db.get_column_family_handle(DUE_FAMILY)

    def _write_due(self, partition: int, entries: Iterable[tuple[int, bytes]], delete: bool = False) -> None:
        db, handle = self._due_handle(partition)
        batch = rocksdict.WriteBatch(raw_mode=True)
        for second, key in entries:
            if delete:
                batch.delete(_SECONDS.pack(second) + key, handle)
            else:
                batch.put(_SECONDS.pack(second) + key, b"", handle)
        db.write(batch)

    def get(self, partition: int, key: bytes) -> State | None:
        raw = self._db(partition).get(key)
        return None if raw is None else encoding.decode(raw)

    def write(self, partition: int, key: bytes, raw: bytes | None) -> None:
        if raw is None:
            self._db(partition).delete(key)
        else:
            self._db(partition).put(key, raw)

    def file_due(self, partition: int, key: bytes, when: float) -> None:
        self._write_due(partition, [(math.ceil(when), key)])

    def due(self, partition: int, now: float, limit: int) -> list[tuple[int, bytes]]:
        found: list[tuple[int, bytes]] = []
        self._due_handle(partition)  # the family exists
        entries = self._db(partition).get_column_family(DUE_FAMILY).iter()
        entries.seek_to_first()
        while entries.valid() and len(found) < limit:
            entry = entries.key()
            second = _SECONDS.unpack_from(entry)[0]
            if second > now:
                break
            found.append((second, entry[_SECONDS.size:]))
            entries.next()
        return found

    def forget_due(self, partition: int, entries: Iterable[tuple[int, bytes]]) -> None:
        self._write_due(partition, entries, delete=True)

    def on_restored(self, partition: int, key: bytes, raw: bytes | None, attribution_window_s: float) -> None:
        """A changelog record Faust restores into the database (active or standby) is filed as it comes."""
        if raw is not None and (when := next_change(encoding.decode(raw), attribution_window_s)) is not None:
            self.file_due(partition, key, when)

    def settle(self, owned: set[int], attribution_window_s: float,
               horizon: float) -> Iterable[tuple[int, bytes, State]]:
        """After a rebuild: the states the index says change by `horizon`, not the whole table (given
        the grace period as horizon, every state with app events waiting for their click is among them)."""
        for partition in owned:
            for _, key in self.due(partition, horizon, limit=math.inf):
                if (state := self.get(partition, key)) is not None:
                    yield partition, key, state

    def persisted(self, offsets: Mapping[TP, int]) -> None:
        """Record in each partition's database the changelog offset its states are written up to, so
        that Faust's recovery at the next start reads the changelog from there instead of from its start."""
        for tp, offset in offsets.items():
            self.table.data.set_persisted_offset(tp, offset)

    def held(self, owned: set[int]) -> int:
        # RocksDB's estimate (exact once compacted): counting would read every key. Only databases Faust
        # has open: asking for another would open it.
        open_dbs = self.table.data._dbs
        return sum(open_dbs[p].property_int_value("rocksdb.estimate-num-keys") or 0 for p in owned if p in open_dbs)


def rocksdb_options(store: str) -> dict | None:
    """Faust's defaults give each partition's database a 2 GiB block cache and up to 3 x 64 MiB of
    write buffers; a few MiB each keep a replica's memory small and flat however many states it holds."""
    if store != "rocksdb":
        return None
    return {"block_cache_size": 8 << 20, "write_buffer_size": 4 << 20, "max_write_buffer_number": 2,
            "target_file_size_base": 32 << 20}


def states_for(table: faust.Table, store: str) -> MemoryStates | RocksStates:
    return RocksStates(table) if store == "rocksdb" else MemoryStates(table)
