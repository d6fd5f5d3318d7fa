"""Load on the click collector: how many landing-page clicks a second one worker takes, and their p99 latency.

    .venv/bin/python -m bench.collector_load [--requests 20000] [--concurrency 32] [--max-seconds 60]

Starts a local Kafka (or uses KAFKA_BOOTSTRAP_SERVERS) and one worker with the collector on, then posts
clicks to it over loopback only, bounded by --requests and --max-seconds, each as a browser's landing
script would, from 10,000 visitor addresses (passed in X-Forwarded-For, the worker trusting it). Every
202 means Kafka acknowledged the click; the end offsets of the clicks topic are checked against them.
Prints requests/s sustained and latency percentiles; with --write also puts them in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp
import orjson

from bench.harness import Broker, Probe, broker, faust_process, process_cpu_seconds
from tests.kafka_broker import free_port

ADS = [("Spring Sale #1 🚀", "東京 25-34", "Video 1"), ("Retargeting", "US & CA", "50% off")]
PARTITIONS = 4
REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "BENCHMARKS.md"
SECTION_FILE = REPO / "bench" / "results" / "collector.md"
USER_AGENT = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"


def click_body(i: int, rng: random.Random) -> bytes:
    campaign, adset, ad = rng.choice(ADS)
    url = f"https://yourapp.example/?campaign_name={campaign}&adset_name={adset}&ad_name={ad}&ttclid=E.C.P.load{i:08d}"
    return orjson.dumps({"app_id": "com.example.app", "url": url, "ttp": f"ttp{rng.getrandbits(64):016x}",
                         "referrer": "https://www.tiktok.com/", "locale": "en-US"})


async def load(collect: str, requests: int, concurrency: int, max_seconds: float) -> tuple[list[float], Counter, float]:
    rng = random.Random(15)
    bodies = [click_body(i, rng) for i in range(requests)]
    addresses = [f"198.51.{i // 256}.{i % 256}" for i in range(10_000)]
    latencies: list[float] = []
    statuses: Counter = Counter()
    next_index = iter(range(requests))
    started = time.monotonic()
    deadline = started + max_seconds

    async def client(session: aiohttp.ClientSession) -> None:
        for i in next_index:
            if time.monotonic() > deadline:
                return
            headers = {"Content-Type": "text/plain", "User-Agent": USER_AGENT,
                       "X-Forwarded-For": addresses[i % len(addresses)]}
            sent = time.monotonic()
            async with session.post(collect, data=bodies[i], headers=headers) as response:
                await response.read()
            latencies.append(time.monotonic() - sent)
            statuses[response.status] += 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*[client(session) for _ in range(concurrency)])
    return latencies, statuses, time.monotonic() - started


async def run(args: argparse.Namespace, kafka: Broker, workdir: str) -> None:
    prefix = f"bcollect{int(time.time())}."
    port = free_port()
    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap, "TOPIC_PREFIX": prefix, "TOPIC_PARTITIONS": str(PARTITIONS),
           "WEB_HOST": "127.0.0.1", "WEB_PORT": str(port), "DATA_DIR": f"{workdir}/data",
           "COLLECTOR_ENABLED": "on", "COLLECTOR_TRUSTED_PROXY_HEADER": "X-Forwarded-For",
           "TIKTOK_API_URL": "http://127.0.0.1:9/"}  # no app events: nothing is ever sent
    worker = faust_process("worker", env, Path(workdir) / "worker.log").start()
    try:
        await worker.wait_ready()
        collect = f"http://127.0.0.1:{port}/collect"
        await load(collect, min(500, args.requests), args.concurrency, args.max_seconds)  # warm-up
        pids = {"worker": worker.pid, "Kafka": kafka.pid}
        load_before = os.getloadavg()[0]
        cpu_before = {name: process_cpu_seconds(pid) for name, pid in pids.items()} | {"load": time.process_time()}
        latencies, statuses, seconds = await load(collect, args.requests, args.concurrency, args.max_seconds)
        cpu = {name: process_cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
        cpu["this load generator"] = time.process_time() - cpu_before["load"]
        async with Probe(kafka.bootstrap, PARTITIONS) as probe:
            on_topic = await probe.count(f"{prefix}clicks")
    finally:
        worker.kill()
    quantiles = statistics.quantiles(latencies, n=100)
    figures = {"at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cores": os.cpu_count(),
               "kafka": kafka.version, "requests": len(latencies), "seconds": seconds,
               "concurrency": args.concurrency, "rate": len(latencies) / seconds, "p50_ms": quantiles[49] * 1000,
               "p99_ms": quantiles[98] * 1000, "max_ms": max(latencies) * 1000, "statuses": dict(sorted(statuses.items())),
               "on_topic": on_topic, "cpu": {name: used / seconds for name, used in cpu.items()},
               "worker_cpu_ms_per_click": cpu["worker"] / len(latencies) * 1000, "load_before": load_before,
               "load_after": os.getloadavg()[0]}
    print(f"collector load, {figures['at']}, {figures['cores']} cores, {kafka.version}; worker, Kafka and this "
          "load generator share the machine")
    print(f"requests {len(latencies)} in {seconds:.1f} s, concurrency {args.concurrency}: "
          f"{figures['rate']:.0f} requests/s sustained")
    print(f"latency p50 {figures['p50_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms, max {figures['max_ms']:.1f} ms")
    print(f"answers {figures['statuses']}; clicks on the topic {on_topic} (warm-up included)")
    print("CPU used meanwhile, in cores: " + ", ".join(f"{name} {used:.2f}" for name, used in figures["cpu"].items())
          + f"; load average {load_before:.1f} before, {figures['load_after']:.1f} after (others share this machine)")
    print(f"worker CPU per click {figures['worker_cpu_ms_per_click']:.2f} ms: about "
          f"{1000 / figures['worker_cpu_ms_per_click']:.0f} clicks/s per core of the worker when it has the CPU")
    if args.write:
        section = markdown(figures)
        SECTION_FILE.write_text(section)
        BENCHMARKS.write_text(spliced(BENCHMARKS.read_text(), section))
        print(f"wrote {SECTION_FILE.relative_to(REPO)} and its section of BENCHMARKS.md")


def markdown(f: dict) -> str:
    """The "Click collector" section of BENCHMARKS.md (bench.run keeps it when it rewrites the file)."""
    cpu = f["cpu"]
    answers = ", ".join(f"{status} x {count:,}" for status, count in f["statuses"].items())
    return f"""## Click collector

Measured with `bench/collector_load.py` on {f['at']}, {f['cores']} cores, {f['kafka']}; other people's test
runs shared the machine: load average {f['load_before']:.1f} before, {f['load_after']:.1f} after.

```sh
.venv/bin/python -m bench.collector_load --write   # --requests 20000 --concurrency 32 --max-seconds 60; its own Kafka
```

One worker (`COLLECTOR_ENABLED=on`, `COLLECTOR_TRUSTED_PROXY_HEADER=X-Forwarded-For`, other settings default,
{PARTITIONS} partitions), a local Kafka and the load generator on the same cores, over loopback only. The load
generator keeps {f['concurrency']} requests open and posts clicks as the landing script does (a landing URL with
unencoded names holding `#`, `&`, `%`, emoji and Japanese, a `_ttp` value, referrer and locale) from 10,000
addresses in `X-Forwarded-For`, after a 500-click warm-up. A latency runs from the request to its 202, which
comes only once Kafka acknowledged the click (`acks=all`); the worker's input stage reads and re-keys the same
clicks meanwhile.

| figure | value |
|---|---|
| requests | {f['requests']:,} in {f['seconds']:.1f} s, answered {answers}; {f['on_topic']:,} clicks on the topic (warm-up included) |
| sustained | **{f['rate']:,.0f} requests/s** |
| latency | p50 {f['p50_ms']:.1f} ms, **p99 {f['p99_ms']:.1f} ms**, max {f['max_ms']:.1f} ms |
| CPU used meanwhile (cores) | {", ".join(f"{name} {used:.2f}" for name, used in cpu.items())} |
| worker CPU per click | {f['worker_cpu_ms_per_click']:.2f} ms: about **{1000 / f['worker_cpu_ms_per_click']:,.0f} clicks/s per core** of the worker |

With other runs on the machine our processes get a share of the cores, so requests/s and latency measure the
contention as much as the collector; the CPU per click carries over best to a machine of its own (one worker
core for about {1000 / f['worker_cpu_ms_per_click']:,.0f} clicks/s; replicas behind a load balancer share more).
"""


def spliced(document: str, section: str) -> str:
    """BENCHMARKS.md with its "Click collector" section replaced, or added before "Files"."""
    head, found, rest = document.partition("## Click collector\n")
    if found:
        _, next_heading, after = rest.partition("\n## ")
        return head + section + ("\n## " + after if next_heading else "")
    head, found, rest = document.partition("## Files\n")
    return head + section + "\n" + found + rest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--max-seconds", type=float, default=60.0)
    parser.add_argument("--write", action="store_true", help="put the figures in BENCHMARKS.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="collector-load-") as workdir, broker(Path(workdir)) as kafka:
        asyncio.run(run(args, kafka, workdir))


if __name__ == "__main__":
    main()
