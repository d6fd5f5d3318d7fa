"""The load generator, run as its own process so that it never shares a core's time slice
with the measured process or with the in-process TikTok sandbox of `bench.run`.

    python -m bench.load burst  --bootstrap B --prefix P --clicks N --report out.json
    python -m bench.load paced  --bootstrap B --prefix P --clicks N --rate R --report out.json
    python -m bench.load clicks --bootstrap B --prefix P --rate R --seconds S --report out.json

`burst` produces the mix as fast as it can, `paced` at R records a second (clicks and app
events together) and records when each app event and each converting click was handed to
the producer (time.monotonic(), which is one clock for all processes of the machine),
`clicks` produces only clicks at R a second for S seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import orjson
from aiokafka import AIOKafkaProducer

from bench import mix


async def run(args: argparse.Namespace) -> dict:
    producer = AIOKafkaProducer(bootstrap_servers=args.bootstrap, acks=1, linger_ms=10 if args.mode == "burst" else 2,
                                max_batch_size=262144, max_request_size=4 * 2**20)
    await producer.start()
    topics = {"click": f"{args.prefix}clicks", "event": f"{args.prefix}app-events"}
    report: dict = {"mode": args.mode, "clicks": 0, "events": 0, "event_times": {}, "click_times": {}}
    pending: list[asyncio.Future] = []

    async def send(item: mix.Item, now: float) -> None:
        key, value = mix.record(item, now, args.tag)
        pending.append(await producer.send(topics[item.kind], orjson.dumps(value), key))
        if item.kind == "click":
            report["clicks"] += 1
        else:
            report["events"] += 1
        if args.mode == "paced":
            mono = time.monotonic()
            if item.kind == "event":
                report["event_times"][value["event_id"]] = [mono, item.ttclid]
            elif item.converting:
                report["click_times"][item.ttclid] = mono
        if len(pending) >= 5000:
            await asyncio.gather(*pending)
            pending.clear()

    try:
        report["first_send_wall"] = time.time()
        started = time.monotonic()
        if args.mode == "burst":
            for item in mix.plan(args.clicks, args.clicks_per_event, args.early, args.seed, args.partitions, args.tag,
                                 args.apps):
                await send(item, time.time())
        elif args.mode == "paced":
            items = mix.plan(args.clicks, args.clicks_per_event, args.early, args.seed, args.partitions, args.tag,
                             args.apps)
            await paced(items, args.rate, send, started)
        else:
            stream = mix.clicks_only(0, args.tag, args.partitions)
            total = int(args.rate * args.seconds)
            await paced((next(stream) for _ in range(total)), args.rate, send, started)
        await asyncio.gather(*pending)
        await producer.flush()
        report["last_ack_wall"] = time.time()
        report["seconds"] = time.monotonic() - started
        report["cpu_seconds"] = time.process_time()
    finally:
        await producer.stop()
    return report


async def paced(items, rate: float, send, started: float) -> None:
    """Hand record k to the producer at started + k / rate, in ticks of 5 ms."""
    for k, item in enumerate(items):
        due = started + k / rate
        delay = due - time.monotonic()
        if delay > 0.005:
            await asyncio.sleep(delay)
        await send(item, time.time())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=("burst", "paced", "clicks"))
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--tag", default="", help="makes ids unique per variant")
    parser.add_argument("--clicks", type=int, default=0)
    parser.add_argument("--clicks-per-event", type=int, default=10)
    parser.add_argument("--early", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--apps", type=int, default=None, help="only the first N apps of the mix")
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--report", required=True)
    args = parser.parse_args()
    report = asyncio.run(run(args))
    with open(args.report, "w") as out:
        json.dump(report, out)


if __name__ == "__main__":
    main()
