"""The benchmark, in one go: `.venv/bin/python -m bench.run` (or `python bench/run.py`).

Starts its own Kafka (or uses KAFKA_BOOTSTRAP_SERVERS) and the TikTok sandbox in-process,
gives every measured variant topics of its own (prefix `b<run id>.<variant>.`), produces the
same realistic mix for each (bench/mix.py) from a separate load-generator process, and measures:

  throughput  the limit (plain aiokafka consumer + orjson), the textbook Faust join
              (bench/textbook_app.py), a bare Faust agent that only iterates the input (the Faust
              ceiling, bench/faust_bare.py), the worker with 1 and with 2 replicas, side by side,
              `--repeat` rounds; events/s = input records / (first input record produced ..
              last output record written), from the records' Kafka timestamps
  profile     the worker once more under py-spy (not counted in the throughput figures)
  latency     the worker at half its measured rate, paced: app event (or its click, if later)
              produced -> the sandbox receiving it, p50 / p99
  saturation  a burst of app events for the two apps of one pixel whose request budget binds
              (2 requests/s of 200 events, enforced by the sandbox like TikTok): events per
              request, requests/s against the limit, share of full batches, per-app waits
  memory      RSS per million ttclids held in the click table (memory store)
  bounded     steady clicks for 2.5x a 20 s attribution window: table size and RSS level off

The measured processes run from a snapshot of the committed worker/ (other people commit to this
checkout during a run; `--in-place` runs the working tree instead). Prints a table, writes
bench/results/results.json, bench/results/benchmarks.png, the profiles, and BENCHMARKS.md at the
top of the repo (its hand-written analysis comes from bench/analysis.md). Takes about 12 minutes
on 2 cores with the defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:  # `python bench/run.py`
    sys.path[0] = str(REPO)  # import bench.* as a package, and let bench/ shadow nothing

import orjson  # noqa: E402
import yaml  # noqa: E402
from aiokafka import AIOKafkaConsumer, TopicPartition  # noqa: E402

from bench import harness, mix  # noqa: E402
from bench.harness import (Broker, CpuMeter, Probe, Proc, broker, faust_process, machine_cpu,  # noqa: E402
                           process_cpu_seconds, rss_bytes, wait_group_stable)
from tests.kafka_broker import free_port  # noqa: E402
from worker.rekeyed import items as items_of  # noqa: E402
from worker.settings import Settings  # noqa: E402
from worker.tiktok.sandbox import Sandbox  # noqa: E402
from worker.topics import ensure_topics  # noqa: E402

RESULTS = REPO / "bench" / "results"
PARTITIONS = 4
HIGH_RATE_LIMIT = 1000  # requests/s per pixel: never the limit in the throughput runs
SATURATION_RATE_LIMIT = 2  # requests/s per pixel in the saturation run: the budget binds
SATURATION_BATCH_SIZE = 200  # ... with requests of 200 events (364 events/s for the pixel, 1/10 of TikTok's scale)
BATCH_SIZE = 1000  # TIKTOK_BATCH_SIZE (the default, TikTok's limit)
LINGER_S = 0.5  # TIKTOK_BATCH_LINGER_SECONDS (the default)
WINDOW_S = 20  # ATTRIBUTION_WINDOW_SECONDS in the bounded-state run


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


@dataclass
class Ctx:
    args: argparse.Namespace
    broker: Broker
    sandbox: Sandbox
    probe: Probe
    workdir: Path
    runid: str

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap

    def prefix(self, tag: str) -> str:
        return f"b{self.runid}.{tag}."


# ---------------------------------------------------------------- shared steps

def worker_env(ctx: Ctx, prefix: str, **extra: str) -> dict[str, str]:
    return {"KAFKA_BOOTSTRAP_SERVERS": ctx.bootstrap, "TOPIC_PREFIX": prefix, "TOPIC_PARTITIONS": str(PARTITIONS),
            "TIKTOK_API_URL": ctx.sandbox.url, "TIKTOK_PIXEL_REQUESTS_PER_SECOND": str(HIGH_RATE_LIMIT),
            "TIKTOK_BATCH_SIZE": str(BATCH_SIZE), "TIKTOK_BATCH_LINGER_SECONDS": str(LINGER_S),
            "WEB_HOST": "127.0.0.1", "LOG_FORMAT": "text", **extra}


def integrations_file(ctx: Ctx) -> Path:
    path = ctx.workdir / "integrations.yaml"
    if not path.exists():
        path.write_text(yaml.safe_dump(mix.integrations(PARTITIONS)))
    return path


def apply_integrations(ctx: Ctx, env: dict[str, str]) -> None:
    """As an operator would: `python -m worker integrations apply FILE` (it also creates the topics)."""
    done = subprocess.run([sys.executable, "-m", "worker", "integrations", "apply", str(integrations_file(ctx))],
                          cwd=harness.CODE_DIR, env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"integrations apply failed:\n{done.stdout}\n{done.stderr}")


async def start_workers(ctx: Ctx, prefix: str, env: dict[str, str], replicas: int, tag: str) -> list[Proc]:
    procs = []
    for i in range(replicas):
        own = {**env, "WEB_PORT": str(free_port()), "DATA_DIR": str(ctx.workdir / tag / f"data-{i}")}
        procs.append(faust_process("worker", own, ctx.workdir / tag / f"worker-{i}.log").start())
    try:
        for proc in procs:
            await proc.wait_ready()
        await wait_group_stable(ctx.bootstrap, f"{prefix}worker", replicas)
        await asyncio.sleep(2.0)  # let the last rebalance's recovery and the first fetches settle
    except BaseException:
        stop_all(procs)
        raise
    return procs


def stop_all(procs: list[Proc]) -> None:
    for proc in procs:
        proc.stop()


async def load(ctx: Ctx, mode: str, prefix: str, tag: str, timeout: float = 600, **options) -> dict:
    """Run the load generator (its own process) to the end; its report."""
    report = ctx.workdir / tag / f"load-{mode}.json"
    argv = ["-m", "bench.load", mode, "--bootstrap", ctx.bootstrap, "--prefix", prefix, "--tag", tag,
            "--partitions", str(PARTITIONS), "--report", str(report)]
    for name, value in options.items():
        argv += [f"--{name.replace('_', '-')}", str(value)]
    proc = Proc(argv, {}, ctx.workdir / tag / f"load-{mode}.log").start()
    code = await proc.wait(timeout)
    if code != 0:
        raise RuntimeError(f"load generator failed:\n{proc.output()[-3000:]}")
    return json.loads(report.read_text())


class PySpy:
    """`py-spy record` against a running pid (no code change), raw collapsed stacks; SIGINT ends it."""

    def __init__(self, pid: int, output: Path, rate: int = 100):
        self.output = output
        exe = Path(sys.executable).parent / "py-spy"
        self.process = None
        if not exe.exists():
            log("py-spy is not installed in this environment: no profile (pip install py-spy)")
            return
        output.parent.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [str(exe), "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw", "--nonblocking",
             "--output", str(output)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def stop(self) -> bool:
        if self.process is None:
            return False
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
        return self.output.exists()


async def run_profiled(ctx: Ctx, proc: Proc, name: str) -> PySpy:
    spy = PySpy(proc.pid, RESULTS / f"profile-{name}.txt")
    await asyncio.sleep(0.5)  # py-spy attaches
    return spy


# ---------------------------------------------------------------- throughput

async def plain(ctx: Ctx, round_no: int) -> dict:
    tag = f"plain{round_no}"
    prefix = ctx.prefix(tag)
    await ensure_topics(Settings(kafka_bootstrap_servers=ctx.bootstrap, topic_prefix=prefix,
                                 topic_partitions=PARTITIONS))
    report = await load(ctx, "burst", prefix, tag, clicks=ctx.args.clicks)
    n = report["clicks"] + report["events"]
    proc = Proc(["-m", "bench.plain_consumer", "--bootstrap", ctx.bootstrap, "--prefix", prefix, "--count", str(n)],
                {}, ctx.workdir / tag / "plain.log").start()
    meter = CpuMeter({"consumer": proc.pid, "kafka": ctx.broker.pid}).start()
    await proc.wait(300)
    cpu = meter.stop()
    out = json.loads([line for line in proc.output().splitlines() if line.startswith("{")][-1])
    return {"variant": "plain", "inputs": n, "rate": out["rate"], "seconds": out["seconds"],
            "passes": out["passes"], "mean_value_bytes": out["mean_value_bytes"], "cpu": cpu,
            "records_per_cpu_s": out["records"] / out["cpu_seconds"] if out["cpu_seconds"] else None,
            "note": "input pre-produced; median of 3 reads by new groups"}


async def textbook(ctx: Ctx, round_no: int, profile: bool = False, clicks: int | None = None) -> dict:
    tag = f"textbook{round_no}{'p' if profile else ''}"
    prefix = ctx.prefix(tag)
    settings = Settings(kafka_bootstrap_servers=ctx.bootstrap, topic_prefix=prefix, topic_partitions=PARTITIONS)
    await ensure_topics(settings)
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    admin = AIOKafkaAdminClient(bootstrap_servers=ctx.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(f"{prefix}textbook-outbox", PARTITIONS, 1)])
    finally:
        await admin.close()
    proc = await started_faust_app(ctx, "bench.textbook_app", "textbook", tag, prefix,
                                   BENCH_INTEGRATIONS=str(integrations_file(ctx)))
    try:
        spy = await run_profiled(ctx, proc, "textbook") if profile else None
        meter = CpuMeter({"textbook": proc.pid, "kafka": ctx.broker.pid}).start()
        report = await load(ctx, "burst", prefix, tag, clicks=clicks or ctx.args.clicks)
        await ctx.probe.wait_count(f"{prefix}textbook-outbox", report["events"], [proc], ctx.args.timeout)
        cpu = meter.stop()
        profiled = spy.stop() if spy else False
        rss = rss_bytes(proc.pid)
    finally:
        proc.stop()
    start = await ctx.probe.edge_timestamp([f"{prefix}clicks", f"{prefix}app-events"], last=False)
    end = await ctx.probe.edge_timestamp([f"{prefix}textbook-outbox"], last=True)
    n = report["clicks"] + report["events"]
    return {"variant": "textbook", "inputs": n, "rate": n / (end - start), "seconds": end - start,
            "load_seconds": report["seconds"], "load_cpu_s": report["cpu_seconds"], "cpu": cpu, "rss": rss,
            "profiled": profiled}


async def faust_bare(ctx: Ctx, round_no: int) -> dict:
    """The Faust ceiling: a bare Faust agent iterating the same input (bench/faust_bare.py)."""
    tag = f"bare{round_no}"
    prefix = ctx.prefix(tag)
    await ensure_topics(Settings(kafka_bootstrap_servers=ctx.bootstrap, topic_prefix=prefix,
                                 topic_partitions=PARTITIONS))
    expect = sum(mix.counts(mix.plan(ctx.args.clicks, partitions=PARTITIONS)))
    proc = await started_faust_app(ctx, "bench.faust_bare", "bare", tag, prefix, BENCH_EXPECT=str(expect))
    try:
        meter = CpuMeter({"bare": proc.pid, "kafka": ctx.broker.pid}).start()
        report = await load(ctx, "burst", prefix, tag, clicks=ctx.args.clicks)
        done = await printed_line(proc, '"last_wall"', ctx.args.timeout)
        cpu = meter.stop()
        rss = rss_bytes(proc.pid)
    finally:
        proc.stop()
    start = await ctx.probe.edge_timestamp([f"{prefix}clicks", f"{prefix}app-events"], last=False)
    n = report["clicks"] + report["events"]
    seconds = done["last_wall"] - start
    return {"variant": "bare", "inputs": n, "rate": n / seconds, "seconds": seconds,
            "load_seconds": report["seconds"], "load_cpu_s": report["cpu_seconds"], "cpu": cpu, "rss": rss}


async def started_faust_app(ctx: Ctx, module: str, name: str, tag: str, prefix: str, **env: str) -> Proc:
    """A baseline Faust app (`module`, its group `<prefix><name>`) started on `prefix`, ready, with its
    group stable; `env`: its own settings besides the common ones."""
    env = {"BENCH_BOOTSTRAP": ctx.bootstrap, "BENCH_PREFIX": prefix, "BENCH_PARTITIONS": str(PARTITIONS),
           "BENCH_WEB_PORT": str(free_port()), "BENCH_DATADIR": str(ctx.workdir / tag / "data"), **env}
    proc = faust_process(module, env, ctx.workdir / tag / f"{name}.log").start()
    try:
        await proc.wait_ready()
        await wait_group_stable(ctx.bootstrap, f"{prefix}{name}", 1)
        await asyncio.sleep(2.0)
    except BaseException:
        proc.stop()
        raise
    return proc


async def printed_line(proc: Proc, marker: str, timeout: float) -> dict:
    """The first JSON line the process prints that contains `marker`."""
    deadline = time.monotonic() + timeout
    while not (lines := [line for line in proc.output().splitlines() if marker in line]):
        if not proc.alive() or time.monotonic() > deadline:
            raise RuntimeError(f"{proc.argv}: no {marker} line:\n{proc.output()[-3000:]}")
        await asyncio.sleep(0.1)
    return json.loads(lines[0][lines[0].index("{"):])


async def worker(ctx: Ctx, round_no: int, replicas: int, profile: bool = False, clicks: int | None = None,
                 tag: str = "", **settings: str) -> dict:
    """`replicas` worker processes, the mix as fast as the load generator goes (`settings`: more of the
    worker's environment, under a `tag` of their own)."""
    tag = f"{tag}worker{replicas}x{round_no}{'p' if profile else ''}"
    prefix = ctx.prefix(tag)
    env = worker_env(ctx, prefix, **settings)
    apply_integrations(ctx, env)
    procs = await start_workers(ctx, prefix, env, replicas, tag)
    try:
        ctx.sandbox.state.reset()
        spy = await run_profiled(ctx, procs[0], "worker") if profile else None
        meter = CpuMeter({**{f"worker-{i}": p.pid for i, p in enumerate(procs)}, "kafka": ctx.broker.pid}).start()
        report = await load(ctx, "burst", prefix, tag, clicks=clicks or ctx.args.clicks)
        await ctx.probe.wait_count(f"{prefix}delivery-results", report["events"], procs, ctx.args.timeout)
        cpu = meter.stop()
        profiled = spy.stop() if spy else False
        rss = [rss_bytes(p.pid) for p in procs]
        requests = list(ctx.sandbox.state.received)
    finally:
        stop_all(procs)
    start = await ctx.probe.edge_timestamp([f"{prefix}clicks", f"{prefix}app-events"], last=False)
    end = await ctx.probe.edge_timestamp([f"{prefix}delivery-results"], last=True)
    n = report["clicks"] + report["events"]
    results = await ctx.probe.read_all(f"{prefix}delivery-results")
    statuses = Counter(orjson.loads(r.value)["status"] for r in results)
    outbox = await outbox_times(ctx, prefix)
    return {"variant": f"worker x{replicas}", "replicas": replicas, "inputs": n, "rate": n / (end - start),
            "seconds": end - start, "load_seconds": report["seconds"], "load_cpu_s": report["cpu_seconds"],
            "cpu": cpu, "rss": rss, "statuses": dict(statuses), "results": len(results), "events": report["events"],
            "delivery": request_stats(requests, outbox, BATCH_SIZE, HIGH_RATE_LIMIT), "profiled": profiled}


async def outbox_times(ctx: Ctx, prefix: str) -> dict[str, tuple[str, float]]:
    """event_id -> (app_id, when the join wrote it to the outbox)."""
    return {value["event_id"]: (value["app_id"], r.timestamp / 1000)
            for r in await ctx.probe.read_all(f"{prefix}outbox") if (value := orjson.loads(r.value))}


def request_stats(requests: list[dict], outbox: dict[str, tuple[str, float]], batch_size: int,
                  limit: int, margin_s: float = 0.2) -> dict:
    """Events per request, requests/s per pixel, and the share of full requests: of all, and of those
    sent while the sink was saturated, i.e. while at least `batch_size` events of the request's lane
    (pixel, app) were already in the outbox (written `margin_s` before the request arrived) and not
    yet sent."""
    if not requests:
        return {"requests": 0}
    lanes: dict[tuple, list[dict]] = defaultdict(list)
    for request in requests:
        app_id = outbox.get(request["events"][0]["event_id"], ("?", 0))[0]
        lanes[(request["pixel_id"], app_id)].append(request)
    saturated = saturated_full = 0
    for (pixel, app_id), lane in lanes.items():
        written = sorted(t for a, t in outbox.values() if a == app_id)
        sent = 0
        for request in sorted(lane, key=lambda r: r["monotonic"]):
            available = _count_le(written, request["received_at"] - margin_s) - sent
            if available >= batch_size:
                saturated += 1
                saturated_full += len(request["events"]) >= batch_size
            sent += len(request["events"])
    sizes = [len(r["events"]) for r in requests]
    by_pixel: dict[str, list[float]] = defaultdict(list)
    for request in requests:
        by_pixel[request["pixel_id"]].append(request["monotonic"])
    per_pixel = {}
    for pixel, times in by_pixel.items():
        times.sort()
        best = max(sum(1 for t in times[i:] if t < start + 1.0) for i, start in enumerate(times))
        span = times[-1] - times[0]
        per_pixel[pixel] = {"requests": len(times), "max_in_1s": best,
                            "mean_per_s": (len(times) - 1) / span if span > 0 else None}
    return {"requests": len(requests), "events": sum(sizes), "events_per_request": sum(sizes) / len(sizes),
            "median_events_per_request": statistics.median(sizes), "sizes": sizes,
            "full": sum(1 for s in sizes if s >= batch_size), "full_share": sum(1 for s in sizes if s >= batch_size)
            / len(sizes), "saturated": saturated, "saturated_full": saturated_full,
            "saturated_full_share": saturated_full / saturated if saturated else None,
            "limit_per_pixel": limit, "per_pixel": per_pixel,
            "max_in_1s_any_pixel": max(p["max_in_1s"] for p in per_pixel.values())}


def _count_le(sorted_values: list[float], bound: float) -> int:
    import bisect
    return bisect.bisect_right(sorted_values, bound)


# ---------------------------------------------------------------- latency at half load

async def cpu_timeline(pids: dict[str, int | None], into: list[dict], every: float = 1.0) -> None:
    """Per interval: CPU share (cores) of the given processes and of the whole machine."""
    last = {name: process_cpu_seconds(pid) for name, pid in pids.items()}
    busy0, total0 = machine_cpu()
    t0 = time.monotonic()
    while True:
        await asyncio.sleep(every)
        now = {name: process_cpu_seconds(pid) for name, pid in pids.items()}
        busy, total = machine_cpu()
        cores = os.cpu_count() or 1
        wall = (total - total0) / cores or every
        sample = {"mono": time.monotonic(), "t": time.monotonic() - t0,
                  **{name: (now[name] - last[name]) / wall for name in pids},
                  "machine": (busy - busy0) / wall}
        sample["rest"] = max(0.0, sample["machine"] - sum(sample[name] for name in pids))
        into.append(sample)
        last, busy0, total0 = now, busy, total


async def latency(ctx: Ctx, rate: float, attempt: int = 1) -> dict:
    tag = f"latency{attempt}"
    prefix = ctx.prefix(tag)
    env = worker_env(ctx, prefix)
    apply_integrations(ctx, env)
    procs = await start_workers(ctx, prefix, env, 1, tag)
    clicks = int(rate * ctx.args.latency_seconds * 10 / 11)
    timeline: list[dict] = []
    try:
        ctx.sandbox.state.reset()
        meter = CpuMeter({"worker": procs[0].pid, "kafka": ctx.broker.pid}).start()
        sampler = asyncio.create_task(cpu_timeline({"worker": procs[0].pid, "kafka": ctx.broker.pid}, timeline))
        report = await load(ctx, "paced", prefix, tag, clicks=clicks, rate=rate)
        await ctx.probe.wait_count(f"{prefix}delivery-results", report["events"], procs, 120)
        sampler.cancel()
        cpu = meter.stop()
        requests = list(ctx.sandbox.state.received)
    finally:
        stop_all(procs)
    outbox = await outbox_times(ctx, prefix)
    rekeyed = {}  # event_id -> when ingest wrote it to by-ttclid
    for r in await ctx.probe.read_all(f"{prefix}by-ttclid"):
        for _, item in items_of(r.key, r.value):
            if "app_event" in item:
                rekeyed[item["app_event"]["event_id"]] = r.timestamp / 1000
    # time.monotonic() (load generator, sandbox) against Kafka's wall-clock timestamps
    wall_minus_mono = time.time() - time.monotonic()
    times, early, stages = [], [], defaultdict(list)
    by_second: dict[int, list[float]] = defaultdict(list)
    first = min(t for t, _ in report["event_times"].values())
    for request in requests:
        for event in request["events"]:
            produced, ttclid = report["event_times"][event["event_id"]]
            click = report["click_times"].get(ttclid, produced)
            joinable = max(produced, click)
            times.append(request["monotonic"] - joinable)
            by_second[int(joinable - first)].append(times[-1])
            early.append(click > produced)
            if not early[-1] and event["event_id"] in rekeyed and event["event_id"] in outbox:
                ingest_at = rekeyed[event["event_id"]] - wall_minus_mono
                outbox_at = outbox[event["event_id"]][1] - wall_minus_mono
                stages["ingest"].append(ingest_at - produced)
                stages["join"].append(outbox_at - ingest_at)
                stages["delivery"].append(request["monotonic"] - outbox_at)
    on_time = [t for t, e in zip(times, early) if not e]
    late = [t for t, e in zip(times, early) if e]
    return {"rate_target": rate, "rate_achieved": (report["clicks"] + report["events"]) / report["seconds"],
            "seconds": report["seconds"], "events": report["events"], "delivered_events": len(times),
            "p50": pct(times, 50), "p90": pct(times, 90), "p99": pct(times, 99), "max": max(times),
            "p50_on_time": pct(on_time, 50), "p99_on_time": pct(on_time, 99),
            "p50_early": pct(late, 50), "p99_early": pct(late, 99), "latencies": times,
            "stages": {name: {"p50": pct(v, 50), "p99": pct(v, 99)} for name, v in stages.items()},
            "attempt": attempt,
            "per_second": [{"t": sec, "events": len(v), "p50": pct(v, 50), "max": max(v)}
                           for sec, v in sorted(by_second.items())],
            "cpu_timeline": [{**c, "t": c["mono"] - first} for c in timeline],
            "cpu": cpu, "delivery": request_stats(requests, outbox, BATCH_SIZE, HIGH_RATE_LIMIT)}


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


# ---------------------------------------------------------------- saturation: the request budget binds

async def saturation(ctx: Ctx) -> dict:
    """A burst of app events (their clicks first) for the two apps of one pixel, far more than its
    request budget carries: the sink is saturated for the whole run but its last requests. The
    sandbox enforces the same limit per second as TikTok does (40100 above it)."""
    tag = "saturation"
    prefix = ctx.prefix(tag)
    env = worker_env(ctx, prefix, TIKTOK_PIXEL_REQUESTS_PER_SECOND=str(SATURATION_RATE_LIMIT),
                     TIKTOK_BATCH_SIZE=str(SATURATION_BATCH_SIZE), TIKTOK_RETRY_BASE_SECONDS="0.5")
    apply_integrations(ctx, env)
    procs = await start_workers(ctx, prefix, env, 1, tag)
    state = ctx.sandbox.state
    refused: list[float] = []

    def within_qps(pixel_id: str, now: float, let_in=state.within_qps) -> bool:
        allowed = let_in(pixel_id, now)
        if not allowed:
            refused.append(now)
        return allowed

    try:
        state.reset()
        state.limit_qps(SATURATION_RATE_LIMIT)
        state.within_qps = within_qps  # counts the requests the sandbox throttles (40100)
        report = await load(ctx, "burst", prefix, tag, clicks=ctx.args.saturation_events, clicks_per_event=1,
                            early=0.0, apps=2)
        await ctx.probe.wait_count(f"{prefix}delivery-results", report["events"], procs, ctx.args.timeout)
        requests = list(ctx.sandbox.state.received)
        rss = rss_bytes(procs[0].pid)
    finally:
        del state.within_qps
        state.limit_qps(None)
        stop_all(procs)
    outbox = await outbox_times(ctx, prefix)
    results = [orjson.loads(r.value) for r in await ctx.probe.read_all(f"{prefix}delivery-results")]
    stats = request_stats(requests, outbox, SATURATION_BATCH_SIZE, SATURATION_RATE_LIMIT)
    arrivals = sorted(r["monotonic"] for r in requests)
    lanes: dict[str, list[dict]] = defaultdict(list)
    for request in sorted(requests, key=lambda r: r["monotonic"]):
        lanes[outbox[request["events"][0]["event_id"]][0]].append(request)
    but_last = [r for lane in lanes.values() for r in lane[:-1]]
    ordered = sorted(requests, key=lambda r: r["monotonic"])
    full_at = [i for i, r in enumerate(ordered) if len(r["events"]) >= SATURATION_BATCH_SIZE]
    steady = ordered[full_at[0]:full_at[-1] + 1] if full_at else []
    per_lane = {}
    for app_id, lane in sorted(lanes.items()):
        waits = [r["received_at"] - outbox[e["event_id"]][1] for r in lane for e in r["events"]]
        per_lane[app_id] = {"requests": len(lane), "events": sum(len(r["events"]) for r in lane),
                            "first_s": lane[0]["monotonic"] - arrivals[0], "last_s": lane[-1]["monotonic"] - arrivals[0],
                            "wait_p50": pct(waits, 50), "wait_max": max(waits)}
    return {"events": report["events"], "rss": rss, "delivery": stats, "batch_size": SATURATION_BATCH_SIZE,
            "limit": SATURATION_RATE_LIMIT, "lanes": len(lanes),
            "full_share_but_last_per_lane": sum(len(r["events"]) >= SATURATION_BATCH_SIZE for r in but_last)
            / max(1, len(but_last)),
            "steady_requests": len(steady),
            "steady_full_share": sum(len(r["events"]) >= SATURATION_BATCH_SIZE for r in steady) / max(1, len(steady)),
            "per_lane": per_lane,
            "lane_order": [outbox[r["events"][0]["event_id"]][0] for r in ordered],
            "statuses": dict(Counter(r["status"] for r in results)),
            "retried_events": sum(1 for r in results if (r.get("attempts") or 0) > 1),
            "throttled_requests": len(refused),
            "span_s": arrivals[-1] - arrivals[0] if arrivals else 0,
            "events_per_s": stats["events"] / (arrivals[-1] - arrivals[0]) if len(arrivals) > 1 else None,
            "capacity_events_per_s": SATURATION_RATE_LIMIT * SATURATION_BATCH_SIZE / 1.1,
            "timeline": [(r["monotonic"] - arrivals[0], len(r["events"])) for r in requests]}


# ---------------------------------------------------------------- memory

async def memory(ctx: Ctx) -> dict:
    """RSS of one worker before and after `memory_clicks` clicks (distinct ttclids) are in its table."""
    tag = "memory"
    prefix = ctx.prefix(tag)
    env = worker_env(ctx, prefix)
    apply_integrations(ctx, env)
    procs = await start_workers(ctx, prefix, env, 1, tag)
    n = ctx.args.memory_clicks
    changelog = f"{prefix}worker-ttclids-changelog"
    try:
        await asyncio.sleep(3)
        before = await steady_rss(procs[0].pid)
        await load(ctx, "clicks", prefix, tag, rate=n, seconds=1)
        await ctx.probe.wait_count(changelog, n, procs, ctx.args.timeout)
        await asyncio.sleep(3)
        after = await steady_rss(procs[0].pid)
    finally:
        stop_all(procs)
    sample = await sample_values(ctx, changelog, 2000)
    return {"clicks": n, "rss_before": before, "rss_after": after,
            "per_million": (after - before) / n * 1_000_000,
            "mean_state_bytes": statistics.mean(len(v) for v in sample) if sample else None,
            "mean_key_bytes": statistics.mean(len(k) for k in (await sample_keys(ctx, changelog, 200))) or None}


async def steady_rss(pid: int, samples: int = 5) -> int:
    values = []
    for _ in range(samples):
        values.append(rss_bytes(pid))
        await asyncio.sleep(0.4)
    return int(statistics.median(values))


async def sample_values(ctx: Ctx, topic: str, n: int) -> list[bytes]:
    return [r.value for r in await first_records(ctx, topic, n) if r.value is not None]


async def sample_keys(ctx: Ctx, topic: str, n: int) -> list[bytes]:
    return [r.key for r in await first_records(ctx, topic, n)]


async def first_records(ctx: Ctx, topic: str, n: int) -> list:
    consumer = AIOKafkaConsumer(bootstrap_servers=ctx.bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        out = []
        while len(out) < n:
            batch = await consumer.getmany(tp, timeout_ms=2000, max_records=n - len(out))
            if not batch:
                break
            out += batch[tp]
        return out
    finally:
        await consumer.stop()


# ---------------------------------------------------------------- bounded state over 2.5 windows

async def bounded(ctx: Ctx, rate: float) -> dict:
    tag = "bounded"
    prefix = ctx.prefix(tag)
    env = worker_env(ctx, prefix, ATTRIBUTION_WINDOW_SECONDS=str(WINDOW_S))
    apply_integrations(ctx, env)
    procs = await start_workers(ctx, prefix, env, 1, tag)
    pid = procs[0].pid
    changelog = f"{prefix}worker-ttclids-changelog"
    live: set[bytes] = set()
    counters = {"tombstones": 0, "writes": 0}
    samples: list[dict] = []
    produce_seconds = WINDOW_S * ctx.args.window_multiple

    async def tail() -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=ctx.bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            tps = [TopicPartition(changelog, p) for p in range(PARTITIONS)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            while True:
                for messages in (await consumer.getmany(timeout_ms=200)).values():
                    for m in messages:
                        if m.value is None:
                            live.discard(m.key)
                            counters["tombstones"] += 1
                        else:
                            live.add(m.key)
                            counters["writes"] += 1
        finally:
            await consumer.stop()

    async def sample(started: float) -> None:
        while True:
            samples.append({"t": time.monotonic() - started, "rss": rss_bytes(pid), "live": len(live),
                            "tombstones": counters["tombstones"], "writes": counters["writes"]})
            await asyncio.sleep(1.0)

    tailer = asyncio.create_task(tail())
    try:
        started = time.monotonic()
        sampler = asyncio.create_task(sample(started))
        await load(ctx, "clicks", prefix, tag, rate=rate, seconds=produce_seconds)
        produced_for = time.monotonic() - started
        await asyncio.sleep(WINDOW_S + 10)  # after the clicks stop, the table empties
        sampler.cancel()
    finally:
        tailer.cancel()
        stop_all(procs)
    steady = [s for s in samples if WINDOW_S + 10 <= s["t"] <= produced_for]
    first_window = [s for s in samples if s["t"] <= WINDOW_S]
    return {"window_s": WINDOW_S, "rate": rate, "produce_seconds": produced_for, "samples": samples,
            "clicks": int(rate * produce_seconds),
            "live_max": max(s["live"] for s in samples), "live_end": samples[-1]["live"],
            "live_steady_mean": statistics.mean(s["live"] for s in steady) if steady else None,
            "rss_start": samples[0]["rss"], "rss_max": max(s["rss"] for s in samples),
            "rss_at_window": max(s["rss"] for s in first_window) if first_window else None,
            "rss_steady_first": steady[0]["rss"] if steady else None,
            "rss_steady_last": steady[-1]["rss"] if steady else None,
            "tombstones": counters["tombstones"], "writes": counters["writes"]}


# ---------------------------------------------------------------- the whole run

async def bench(args: argparse.Namespace, the_broker: Broker, workdir: Path, runid: str) -> dict:
    results: dict = {"rounds": []}
    async with Sandbox() as sandbox, Probe(the_broker.bootstrap, PARTITIONS) as probe:
        ctx = Ctx(args, the_broker, sandbox, probe, workdir, runid)
        for round_no in range(1, args.repeat + 1):
            row = {}
            steps = [("plain", lambda: plain(ctx, round_no)),
                     ("textbook", lambda: textbook(ctx, round_no)),
                     ("bare", lambda: faust_bare(ctx, round_no)),
                     ("worker1", lambda: worker(ctx, round_no, 1)),
                     ("worker2", lambda: worker(ctx, round_no, 2))]
            for name, step in steps:
                log(f"round {round_no}: {name} ...")
                row[name] = await step()
                log(f"round {round_no}: {name}: {row[name]['rate']:,.0f} input records/s")
            results["rounds"].append(row)
        worker_rate = statistics.mean(r["worker1"]["rate"] for r in results["rounds"])
        if args.profile:
            log("profile: worker under py-spy ...")
            results["profile_worker"] = await worker(ctx, 0, 1, profile=True, clicks=args.clicks // 2)
            log(f"profile: worker: {results['profile_worker']['rate']:,.0f}/s under py-spy")
            log("profile: textbook under py-spy ...")
            results["profile_textbook"] = await textbook(ctx, 0, profile=True, clicks=args.clicks // 3)
            log(f"profile: textbook: {results['profile_textbook']['rate']:,.0f}/s under py-spy")
        results["latency"] = []
        for attempt in range(1, args.latency_runs + 1):
            log(f"latency at half load ({worker_rate / 2:,.0f} records/s), run {attempt} ...")
            results["latency"].append(await latency(ctx, worker_rate / 2, attempt))
            last = results["latency"][-1]
            log(f"latency run {attempt}: p50 {last['p50']:.3f} s, p99 {last['p99']:.3f} s")
        log("saturation (request budget binds) ...")
        results["saturation"] = await saturation(ctx)
        log(f"saturation: {results['saturation']['delivery']['full_share']:.1%} of requests full")
        log(f"memory: {args.memory_clicks:,} clicks held ...")
        results["memory"] = await memory(ctx)
        log(f"memory: {results['memory']['per_million'] / 2**20:,.0f} MiB RSS per million ttclids")
        rate = min(args.bounded_rate, worker_rate * 0.4)
        log(f"bounded: {rate:,.0f} clicks/s for {WINDOW_S * args.window_multiple:.0f} s, window {WINDOW_S} s ...")
        results["bounded"] = await bounded(ctx, rate)
        log(f"bounded: live ttclids max {results['bounded']['live_max']:,}, at the end {results['bounded']['live_end']:,}")
    return results


def snapshot(workdir: Path) -> dict:
    """The code the measured processes run: worker/ and schemas/ as committed (HEAD), bench/ as it is.

    Other people commit to this checkout while a run goes on; without the snapshot, variants
    measured before and after a commit would run different workers."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout.strip()

    target = workdir / "code"
    target.mkdir()
    commit = git("rev-parse", "HEAD")
    archive = subprocess.run(["git", "archive", commit, "worker", "schemas"], cwd=REPO, capture_output=True)
    if archive.returncode != 0 or not commit:
        log("not a git checkout: the measured processes run from the repo itself")
        target.rmdir()
        return {"commit": None, "dirty": [], "from": str(REPO)}
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    subprocess.run(["cp", "-r", str(REPO / "bench"), str(target / "bench")], check=True)
    harness.CODE_DIR = target
    dirty = [line[3:] for line in git("status", "--porcelain", "--", "worker", "schemas").splitlines()]
    return {"commit": commit, "subject": git("log", "-1", "--format=%s"), "dirty": dirty, "from": str(target)}


def code_changes(info: dict) -> list[str]:
    """Commits that touched worker/ since the snapshot (they are not in the figures)."""
    if not info.get("commit"):
        return []
    out = subprocess.run(["git", "log", "--format=%h %s", f"{info['commit']}..HEAD", "--", "worker", "schemas"],
                         cwd=REPO, capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if line]


def machine(the_broker: Broker) -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()
    from importlib.metadata import version
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_gib": mem_kb / 2**20, "kernel": platform.release(),
            "python": platform.python_version(), "kafka": the_broker.version, "java": java[0] if java else "?",
            "packages": {p: version(p) for p in ("faust-streaming", "aiokafka", "mode-streaming", "orjson",
                                                 "aiohttp", "py-spy", "matplotlib") if _installed(p)},
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "loadavg_start": os.getloadavg()}


def _installed(name: str) -> bool:
    from importlib.metadata import PackageNotFoundError, version
    try:
        version(name)
        return True
    except PackageNotFoundError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clicks", type=int, default=150_000,
                        help="clicks per throughput variant (one app event per 10 clicks on top)")
    parser.add_argument("--repeat", type=int, default=2, help="rounds of the four throughput variants")
    parser.add_argument("--latency-seconds", type=float, default=30.0)
    parser.add_argument("--latency-runs", type=int, default=2, help="runs of the latency measurement, each reported")
    parser.add_argument("--saturation-events", type=int, default=8_000)
    parser.add_argument("--memory-clicks", type=int, default=200_000)
    parser.add_argument("--bounded-rate", type=float, default=3000.0, help="clicks/s in the bounded-state run (at most)")
    parser.add_argument("--window-multiple", type=float, default=2.5)
    parser.add_argument("--timeout", type=float, default=300.0, help="longest wait for one variant's output")
    parser.add_argument("--no-profile", dest="profile", action="store_false")
    parser.add_argument("--no-markdown", dest="markdown", action="store_false",
                        help="do not rewrite BENCHMARKS.md (results.json and the plot are still written)")
    parser.add_argument("--in-place", action="store_true",
                        help="run the measured processes from the repo itself, not from a snapshot of HEAD")
    parser.add_argument("--report-only", action="store_true",
                        help="rebuild BENCHMARKS.md and the plot from bench/results/results.json, measure nothing")
    args = parser.parse_args()

    from bench import report
    if args.report_only:
        results = json.loads((RESULTS / "results.json").read_text())
        results["summary"] = report.summarise(results)
        report.plot(results, RESULTS / "benchmarks.png")
        report.profile_tables(results, RESULTS)
        print(report.console_table(results))
        (REPO / "BENCHMARKS.md").write_text(report.markdown(results))
        return
    started = time.monotonic()
    runid = uuid.uuid4().hex[:6]
    RESULTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp, broker(Path(tmp)) as the_broker:
        workdir = Path(tmp)
        log(f"broker {the_broker.bootstrap} ({the_broker.version}); work files in {workdir}")
        info = machine(the_broker)
        if args.in_place:
            info["code"] = {"commit": None, "dirty": [], "from": str(REPO)}
        else:
            info["code"] = snapshot(workdir)
            log(f"measuring commit {info['code']['commit']} ({info['code'].get('subject', '')}) from a snapshot")
        try:
            results = asyncio.run(bench(args, the_broker, workdir, runid))
        except BaseException:
            keep = Path(tempfile.mkdtemp(prefix="bench-failed-"))
            subprocess.run(["cp", "-r", *[str(p) for p in workdir.iterdir() if p.name != "kafka"], str(keep)])
            log(f"failed; logs kept in {keep}")
            raise
    info["loadavg_end"] = os.getloadavg()
    info["code"]["commits_during_run"] = code_changes(info["code"])
    results["machine"] = info
    results["args"] = vars(args)
    results["command"] = " ".join(["python -m bench.run", *sys.argv[1:]]).strip()
    results["total_seconds"] = time.monotonic() - started
    summary = report.summarise(results)
    results["summary"] = summary
    (RESULTS / "results.json").write_text(json.dumps(results, indent=1, default=str))
    report.plot(results, RESULTS / "benchmarks.png")
    if args.profile:
        report.profile_tables(results, RESULTS)
    print(report.console_table(results))
    if args.markdown:
        (REPO / "BENCHMARKS.md").write_text(report.markdown(results))
        log(f"wrote BENCHMARKS.md and {RESULTS.relative_to(REPO)}/ in {results['total_seconds'] / 60:.1f} min")


if __name__ == "__main__":
    main()
