"""The limit: one plain aiokafka consumer (in a consumer group, like the worker) that reads the
clicks and app-events topics and parses every value with orjson, nothing else.

    python -m bench.plain_consumer --bootstrap B --prefix P --count N

Prints one JSON line: records read, seconds and CPU-seconds from the first record read to the last,
records/s (the median of `--passes` reads of the same records, each by a new consumer group).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import orjson
from aiokafka import AIOKafkaConsumer


async def run(bootstrap: str, prefix: str, count: int, timeout: float, passes: int) -> dict:
    """Read the topics `passes` times over (a new group each time); the median pass is the figure."""
    runs = [await one_pass(bootstrap, prefix, count, timeout, f"{prefix}plain-consumer-{n}") for n in range(passes)]
    runs.sort(key=lambda r: r["rate"])
    return {**runs[len(runs) // 2], "passes": [r["rate"] for r in runs]}


async def one_pass(bootstrap: str, prefix: str, count: int, timeout: float, group: str) -> dict:
    consumer = AIOKafkaConsumer(f"{prefix}clicks", f"{prefix}app-events", bootstrap_servers=bootstrap,
                                group_id=group, auto_offset_reset="earliest",
                                enable_auto_commit=True)
    await consumer.start()
    read = 0
    parsed_bytes = 0
    first = last = None
    cpu_first = cpu_last = 0.0
    deadline = time.monotonic() + timeout
    try:
        while read < count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            for messages in batches.values():
                if first is None and messages:
                    first, cpu_first = time.monotonic(), time.process_time()
                for message in messages:
                    value = orjson.loads(message.value)
                    parsed_bytes += len(message.value)
                    read += 1 if value else 0
            last, cpu_last = time.monotonic(), time.process_time()
    finally:
        await consumer.stop()
    seconds = (last - first) if first is not None else 0.0
    return {"records": read, "seconds": seconds, "rate": read / seconds if seconds else 0.0,
            "cpu_seconds": cpu_last - cpu_first,
            "mean_value_bytes": parsed_bytes / read if read else 0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--passes", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.bootstrap, args.prefix, args.count, args.timeout, args.passes))), flush=True)


if __name__ == "__main__":
    main()
