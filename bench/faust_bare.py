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

from bench.faust_app import PREFIX, bench_app

EXPECT = int(os.environ.get("BENCH_EXPECT", "0"))

app = bench_app("bare", 6068)

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
