"""Load on the click collector: how many landing-page clicks a second one worker takes, and their p99 latency.

    .venv/bin/python -m bench.collector_load [--requests 20000] [--concurrency 32] [--max-seconds 60]

Starts a local Kafka (or uses KAFKA_BOOTSTRAP_SERVERS) and one worker with the collector on, then posts
clicks to it over loopback only, bounded by --requests and --max-seconds, each as a browser's landing
script would, from 10,000 visitor addresses (passed in X-Forwarded-For, the worker trusting it). Every
202 means Kafka acknowledged the click; the end offsets of the clicks topic are checked against them.
Prints requests/s sustained and latency percentiles.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
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
        cpu_before = {name: process_cpu_seconds(pid) for name, pid in pids.items()} | {"load": time.process_time()}
        latencies, statuses, seconds = await load(collect, args.requests, args.concurrency, args.max_seconds)
        cpu = {name: process_cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
        cpu["this load generator"] = time.process_time() - cpu_before["load"]
        async with Probe(kafka.bootstrap, PARTITIONS) as probe:
            on_topic = await probe.count(f"{prefix}clicks")
    finally:
        worker.kill()
    quantiles = statistics.quantiles(latencies, n=100)
    print(f"collector load, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores "
          f"({platform.processor() or platform.machine()}), {kafka.version}; worker, Kafka and this load generator "
          "share the machine")
    print(f"requests {len(latencies)} in {seconds:.1f} s, concurrency {args.concurrency}: "
          f"{len(latencies) / seconds:.0f} requests/s sustained")
    print(f"latency p50 {quantiles[49] * 1000:.1f} ms, p99 {quantiles[98] * 1000:.1f} ms, "
          f"max {max(latencies) * 1000:.1f} ms")
    print(f"answers {dict(sorted(statuses.items()))}; clicks on the topic {on_topic} (warm-up included)")
    print("CPU used meanwhile, in cores: " + ", ".join(f"{name} {used / seconds:.2f}" for name, used in cpu.items())
          + f"; load average {os.getloadavg()[0]:.1f} (others share this machine)")
    print(f"worker CPU per click {cpu['worker'] / len(latencies) * 1000:.2f} ms: about "
          f"{len(latencies) / cpu['worker']:.0f} clicks/s per core of the worker when it has the CPU")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--max-seconds", type=float, default=60.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="collector-load-") as workdir, broker(Path(workdir)) as kafka:
        asyncio.run(run(args, kafka, workdir))


if __name__ == "__main__":
    main()
