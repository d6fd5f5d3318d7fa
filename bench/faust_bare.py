"""The Faust ceiling: one agent that iterates the input topics (clicks and app events) and does nothing
with the records: what Faust's consumer loop costs per record, before any work.

    BENCH_BOOTSTRAP=... BENCH_PREFIX=... BENCH_EXPECT=N python -m bench.faust_bare worker -l info

Bare iteration as in the faust-streaming notes (section 3b): `stream.items()`, raw values. Once it has
iterated BENCH_EXPECT records it prints one JSON line, `{"records": N, "last_wall": <time.time()>}`,
the end of the measured interval (the bench takes its start from the first input record's timestamp).
"""

from __future__ import annotations

import json
import os
import time

import faust

PREFIX = os.environ.get("BENCH_PREFIX", "bench.")
EXPECT = int(os.environ.get("BENCH_EXPECT", "0"))

app = faust.App(
    f"{PREFIX}bare",
    broker=f"kafka://{os.environ.get('BENCH_BOOTSTRAP', '127.0.0.1:9092')}",
    store="memory://",
    topic_partitions=int(os.environ.get("BENCH_PARTITIONS", "4")),
    web_host="127.0.0.1",
    web_port=int(os.environ.get("BENCH_WEB_PORT", "6068")),
    datadir=os.environ.get("BENCH_DATADIR", ".local/bare-data"),
    autodiscover=False,
)

inputs = app.topic(f"{PREFIX}clicks", f"{PREFIX}app-events", key_serializer="raw", value_serializer="raw")


@app.agent(inputs)
async def iterate(stream):
    records = 0
    async for _key, _value in stream.items():
        records += 1
        if records == EXPECT:
            print(json.dumps({"records": records, "last_wall": time.time()}), flush=True)


if __name__ == "__main__":
    app.main()
