"""State at scale, in one go: `.venv/bin/python -m bench.state` (its own Kafka).

Faust rebuilds a table from its changelog at 7,500-9,000 records a second here, and each worker start
on an empty data directory is such a rebuild: the default (a million held) takes about 7 minutes on
2 quiet cores; `--held 1000000 5000000` adds the 5 million step, 32 minutes in all.

Measures the join table held by one worker, memory store beside RocksDB (`STATE_STORE`):

  rss, disk   RSS of a worker holding a million ttclids (`--held` for more steps) and holding none, its data
              directory's size
  readyz      time from the process start to /readyz answering 200: on an empty data directory (a full
              rebuild from the changelog), and, with RocksDB, restarted on the kept directory
  expiry      CPU-seconds per minute of the idle worker holding them: what the expiry
              sweep (once a minute) costs, with everything else the idle worker does
  throughput  the worker on the benchmark's input mix (bench/run.py's `worker` variant), memory store
              and RocksDB, interleaved, `--repeat` rounds each

Millions of states take minutes to go through the worker on this machine (about 15,000
records/s), so the states are written straight to the table's changelog topic, encoded by the
worker's own code (`worker.attribution.encoding`), in the partition the worker would use: clicks of
the benchmark's shape with times spread over the attribution window (so they expire at the steady
rate of a full window), one in ten with an app event's id seen in the last 48 hours. The worker then
holds exactly what it would have written itself. Prints a table and writes
bench/results/state.json and bench/results/state.md (a section of BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(REPO)

from aiokafka import AIOKafkaProducer  # noqa: E402
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # noqa: E402
from aiokafka.partitioner import murmur2  # noqa: E402

from bench import harness, run  # noqa: E402
from bench.harness import Probe, broker, faust_process, process_cpu_seconds  # noqa: E402
from tests.kafka_broker import free_port  # noqa: E402
from worker.attribution import encoding, join  # noqa: E402
from worker.tiktok.sandbox import Sandbox  # noqa: E402

RESULTS = REPO / "bench" / "results"
PARTITIONS = run.PARTITIONS
WINDOW_S = 7 * 86400
STORES = ("memory", "rocksdb")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def state_of(i: int, now: float, rng: random.Random) -> tuple[bytes, int, bytes]:
    """(ttclid, partition, encoded state) of the i-th held ttclid."""
    ttclid = f"E.C.P.{i:012d}.{rng.getrandbits(64):016x}"
    key = ttclid.encode()
    partition = (murmur2(key) & 0x7FFFFFFF) % PARTITIONS  # the producer's default partitioner, as for by-ttclid
    state = join.new_state(partition)
    state["click"] = {
        "occurred_ts": now - rng.uniform(0, WINDOW_S), "ttp": f"2F7h37YkS1j57AYSKTI7IHhJP{i % 97:02d}",
        "ip": f"203.0.{i % 250}.{i % 199}", "locale": "en-US", "referrer": "https://www.tiktok.com/",
        "user_agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
                      "(KHTML, like Gecko) Mobile/15E148 musical_ly_34.1.0",
        "url": f"https://landing.example.com/install?utm_source=tiktok&campaign_name=Spring-{i % 7}"
               f"&adset_name=US-25-{i % 5}&ad_name=Video-{i % 11}&ttclid={ttclid}",
        "campaign_name": f"Spring-{i % 7}", "adset_name": f"US-25-{i % 5}", "ad_name": f"Video-{i % 11}"}
    if i % 10 == 0:
        state["seen"][f"com.example.app{i % 8}/evt-{i:012d}"] = [now - rng.uniform(0, join.DEDUP_WINDOW_S),
                                                                 [partition, i]]
    return key, partition, encoding.encode(state)


async def populate(bootstrap: str, changelog: str, first: int, n: int) -> dict:
    """Write states `first` .. `first + n` to the changelog, in producer batches."""
    rng = random.Random(first)
    now = time.time()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, max_batch_size=1 << 20, linger_ms=20)
    await producer.start()
    started = time.monotonic()
    sizes = []
    try:
        batches = {p: producer.create_batch() for p in range(PARTITIONS)}
        pending = []
        for i in range(first, first + n):
            key, partition, value = state_of(i, now, rng)
            if len(sizes) < 10_000:
                sizes.append(len(value))
            if batches[partition].append(key=key, value=value, timestamp=None) is None:
                batches[partition].close()
                pending.append(await producer.send_batch(batches[partition], changelog, partition=partition))
                batches[partition] = producer.create_batch()
                batches[partition].append(key=key, value=value, timestamp=None)
            if len(pending) > 64:
                await asyncio.gather(*pending)
                pending = []
        for partition, batch in batches.items():
            batch.close()
            pending.append(await producer.send_batch(batch, changelog, partition=partition))
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return {"states": n, "seconds": time.monotonic() - started, "mean_state_bytes": statistics.mean(sizes)}


async def create_changelog(bootstrap: str, changelog: str) -> None:
    """As Faust creates it (compacted), before the states are written to it."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(changelog, PARTITIONS, 1, topic_configs={"cleanup.policy": "compact"})])
    finally:
        await admin.close()


def disk_bytes(path: Path) -> int:
    if not path.exists():
        return 0
    return int(subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True).stdout.split()[0])


async def steady_rss(pid: int) -> int:
    await asyncio.sleep(3)
    return await run.steady_rss(pid)


async def start_timed(ctx: run.Ctx, env: dict[str, str], data_dir: Path, log_path: Path) -> tuple[harness.Proc, float]:
    """A worker on `data_dir`; (the process, seconds from its start to /readyz answering 200)."""
    started = time.monotonic()
    proc = faust_process("worker", {**env, "WEB_PORT": str(free_port()), "DATA_DIR": str(data_dir)}, log_path).start()
    await proc.wait_ready(timeout=ctx.args.timeout)
    return proc, time.monotonic() - started


async def held(ctx: run.Ctx, prefix: str, store: str, n: int, tag: str) -> dict:
    """One worker of `store` holding the changelog's `n` states: readiness, RSS, disk, idle CPU."""
    env = run.worker_env(ctx, prefix, STATE_STORE=store)
    data_dir = ctx.workdir / tag / "data"
    proc, fresh_s = await start_timed(ctx, env, data_dir, ctx.workdir / tag / "worker.log")
    try:
        rss = await steady_rss(proc.pid)
        cpu_before = process_cpu_seconds(proc.pid)
        await asyncio.sleep(ctx.args.idle_seconds)
        idle_cpu = (process_cpu_seconds(proc.pid) - cpu_before) / ctx.args.idle_seconds * 60
    finally:
        proc.stop()
    row = {"store": store, "held": n, "readyz_fresh_s": fresh_s, "rss": rss, "disk": disk_bytes(data_dir),
           "idle_cpu_s_per_min": idle_cpu}
    if store == "rocksdb":
        proc, kept_s = await start_timed(ctx, env, data_dir, ctx.workdir / tag / "worker-restarted.log")
        try:
            row["rss_restarted"] = await steady_rss(proc.pid)
        finally:
            proc.stop()
        row["readyz_kept_s"] = kept_s
    log(f"{store} holding {n:,}: ready in {fresh_s:.1f} s (fresh)"
        + (f", {row['readyz_kept_s']:.1f} s (kept directory)" if "readyz_kept_s" in row else "")
        + f"; RSS {rss / 2**20:,.0f} MiB; disk {row['disk'] / 2**20:,.0f} MiB; idle {idle_cpu:.2f} CPU-s/min")
    return row


async def empty_rss(ctx: run.Ctx, store: str) -> int:
    prefix = ctx.prefix(f"empty-{store}")
    env = run.worker_env(ctx, prefix, STATE_STORE=store)
    run.apply_integrations(ctx, env)
    proc, _ = await start_timed(ctx, env, ctx.workdir / f"empty-{store}" / "data",
                                ctx.workdir / f"empty-{store}" / "worker.log")
    try:
        return await steady_rss(proc.pid)
    finally:
        proc.stop()


async def throughput(ctx: run.Ctx, store: str, round_no: int) -> dict:
    row = await run.worker(ctx, round_no, 1, tag=f"{store}-", STATE_STORE=store)
    log(f"throughput round {round_no}, {store}: {row['rate']:,.0f} input records/s")
    return {"store": store, "round": round_no, "rate": row["rate"], "rss": row["rss"][0],
            "cpu_per_s": row["cpu"].get("cpu_share:worker-0")}


async def measure(args: argparse.Namespace, the_broker, workdir: Path, runid: str) -> dict:
    results: dict = {"held": [], "throughput": [], "empty_rss": {}}
    async with Sandbox() as sandbox, Probe(the_broker.bootstrap, PARTITIONS) as probe:
        ctx = run.Ctx(args, the_broker, sandbox, probe, workdir, runid)
        for store in STORES:
            results["empty_rss"][store] = await empty_rss(ctx, store)
            log(f"{store}, nothing held: RSS {results['empty_rss'][store] / 2**20:,.0f} MiB")
        prefix = ctx.prefix("held")
        changelog = f"{prefix}worker-ttclids-changelog"
        run.apply_integrations(ctx, run.worker_env(ctx, prefix))
        await create_changelog(ctx.bootstrap, changelog)
        written = 0
        for n in args.held:
            log(f"writing {n - written:,} states to the changelog ...")
            results.setdefault("populate", []).append(await populate(ctx.bootstrap, changelog, written, n - written))
            written = n
            log(f"written in {results['populate'][-1]['seconds']:.0f} s, "
                f"{results['populate'][-1]['mean_state_bytes']:.0f} bytes a state on average")
            for store in STORES:
                results["held"].append(await held(ctx, prefix, store, n, f"held-{store}-{n}"))
        for round_no in range(1, args.repeat + 1):
            for store in STORES:
                try:
                    results["throughput"].append(await throughput(ctx, store, round_no))
                except RuntimeError as exc:  # a run that did not finish is reported, not hidden
                    log(f"throughput round {round_no}, {store}: did not finish: {str(exc)[:200]}")
                    results["throughput"].append({"store": store, "round": round_no, "rate": None,
                                                  "error": str(exc)[:500]})
    return results


def markdown(results: dict) -> str:
    a = results["args"]
    empty = results["empty_rss"]
    mib = 2**20
    mean_state = statistics.mean(p["mean_state_bytes"] for p in results["populate"])
    out = ["## State at scale (memory store and RocksDB)", "",
           f"Measured with `bench/state.py` on {results['date']} ({results['total_seconds'] / 60:.1f} min, its own "
           f"Kafka, {PARTITIONS} partitions, one worker):", "",
           "```sh", ".venv/bin/python -m bench.state" + (f" {results['command']}" if results["command"] else ""), "```",
           "",
           f"States written straight to the changelog with the worker's encoding (see the script's docstring): "
           f"clicks spread over the 7-day window, one in ten with an event id seen; {mean_state:.0f} bytes a state "
           f"on the changelog on average (the encoding before this change: ~680). RSS of a worker holding "
           f"nothing: memory store {empty['memory'] / mib:,.0f} MiB, RocksDB {empty['rocksdb'] / mib:,.0f} MiB.", "",
           "| store | ttclids held | RSS | RSS per million held | disk (data dir) | /readyz, empty data dir "
           "(full rebuild) | /readyz, kept data dir | idle CPU (expiry included) |",
           "|---|---|---|---|---|---|---|---|"]
    for r in results["held"]:
        per_million = (r["rss"] - empty[r["store"]]) / r["held"] * 1e6
        kept = (f"{r['readyz_kept_s']:.1f} s, then RSS {r['rss_restarted'] / mib:,.0f} MiB" if "readyz_kept_s" in r
                else "(a full rebuild, as on an empty one)")
        out.append(f"| {r['store']} | {r['held']:,} | {r['rss'] / mib:,.0f} MiB | {per_million / mib:,.0f} MiB "
                   f"| {r['disk'] / mib:,.0f} MiB | {r['readyz_fresh_s']:.1f} s | {kept} "
                   f"| {r['idle_cpu_s_per_min']:.2f} CPU-s/min |")
    out += ["", "RSS after a full rebuild keeps what the rebuild allocated (the allocator does not hand it back); "
            "the RocksDB worker restarted on its data directory holds the same states in the RSS shown with the "
            "kept directory.", "",
            f"Idle CPU: over {a['idle_seconds']:.0f} s with no input, so it holds one or two runs of the expiry "
            "sweep (every 60 s) besides the worker's timers and Kafka fetches. The sweep reads the states the "
            "expiry index holds as due (held / window per second: about 100 a minute per million held with the "
            "7-day window), not every state as before.", "",
            "| throughput round | memory store | RocksDB | RocksDB / memory |", "|---|---|---|---|"]
    for round_no in sorted({r["round"] for r in results["throughput"]}):
        by = {r["store"]: r["rate"] for r in results["throughput"] if r["round"] == round_no}
        memory, rocks = by.get("memory"), by.get("rocksdb")
        ratio = f"{rocks / memory:.2f}" if memory and rocks else "n/a"
        out.append(f"| {round_no} | {_rate(memory)} | {_rate(rocks)} | {ratio} |")
    out += ["", "Throughput: bench/run.py's `worker x1` variant (the same input mix), the two stores interleaved."]
    return "\n".join(out) + "\n"


def _rate(rate: float | None) -> str:
    return "did not finish (see state.json)" if rate is None else f"{rate:,.0f} records/s"


def main() -> None:
    if sys.argv[1:] == ["--report-only"]:  # BENCHMARKS.md's section again from state.json, measuring nothing
        (RESULTS / "state.md").write_text(markdown(json.loads((RESULTS / "state.json").read_text())))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--held", type=int, nargs="+", default=[1_000_000],
                        help="ttclids held, in increasing order (each step adds states to the same changelog)")
    parser.add_argument("--clicks", type=int, default=60_000, help="clicks per throughput run")
    parser.add_argument("--repeat", type=int, default=2, help="throughput rounds")
    parser.add_argument("--idle-seconds", type=float, default=90.0)
    parser.add_argument("--timeout", type=float, default=900.0, help="longest wait for a worker or an output")
    args = parser.parse_args()
    started = time.monotonic()
    runid = uuid.uuid4().hex[:6]
    with tempfile.TemporaryDirectory(prefix="bench-state-") as tmp, broker(Path(tmp)) as the_broker:
        log(f"broker {the_broker.bootstrap}; work files in {tmp}")
        results = asyncio.run(measure(args, the_broker, Path(tmp), runid))
    results["args"] = vars(args)
    results["command"] = " ".join(sys.argv[1:])
    results["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    results["total_seconds"] = time.monotonic() - started
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "state.json").write_text(json.dumps(results, indent=1))
    (RESULTS / "state.md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
