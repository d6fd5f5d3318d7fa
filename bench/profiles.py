"""Summaries of a `py-spy record --format raw` profile (collapsed stacks: "frame;frame;... count").

`python -m bench.profiles bench/results/profile-worker.txt` prints them.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

LINE = re.compile(r":\d+\)$")

# Inclusive shares: a sample counts once for a row when any frame of its stack matches.
STAGES = [
    ("input stage: parse, validate, re-key (worker/ingest/)", ("(worker/ingest/",)),
    ("  of which parse + JSON Schema validation", ("parse_click (worker/ingest", "parse_app_event (worker/ingest")),
    ("consumer-group stages: getmany, commit (worker/consumer_group.py)", ("AIOKafkaConsumer.getmany (aiokafka/",
                                                                          "BatchStage.commit (worker/consumer_group")),
    ("join agent: join, table, outbox (worker/attribution/)", ("(worker/attribution/",)),
    ("  of which table + changelog writes (`store`)", ("store (worker/attribution/agents.py",)),
    ("delivery: outbox, TikTok sink, results (worker/delivery/)", ("(worker/delivery/", "TikTokSink.")),
    ("analytics: count_results, campaign rows (worker/analytics/)", ("(worker/analytics/",)),
    ("textbook agents (join_clicks, join_events)", ("join_clicks (bench/", "join_events (bench/")),
    ("Faust: consumer drain + dispatch to streams", ("Consumer._drain_messages (faust/", "Conductor.")),
    ("Faust: stream iteration, take_events, acks", ("Stream._c_aiter (faust/", "Stream.take_events (faust/",
                                                    "Stream.ack (faust/", "Stream.__aiter__ (faust/",
                                                    "Stream._py_aiter (faust/")),
    ("Faust: Record (de)serialization", ("faust/models/", "faust/serializers/")),
    ("Faust: table set/changelog (textbook)", ("faust/tables/",)),
    ("Faust: group_by repartition (textbook)", ("Stream.group_by", "Event.forward", "Event._send")),
    ("Faust's consumer thread (aiokafka fetch + decode)", ("WorkerThread.run (mode/threads.py",)),
    ("producer: batches per partition (worker/produce.py) and send()", ("Sends.flush (worker/produce",
                                                                         "AIOKafkaProducer.send (aiokafka/")),
    ("producer: sender task (requests, acks)", ("Sender.", "SendProduceReqHandler.")),
    ("event loop: epoll wait", ("EpollSelector.select (selectors.py",)),
]


def parse(path: Path) -> tuple[int, list[tuple[list[str], int]]]:
    samples = []
    total = 0
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        samples.append(([LINE.sub(")", f) for f in stack.split(";")], n))
    return total, samples


def package(frame: str) -> str:
    """The library a frame's file belongs to, or worker/<stage>, bench, stdlib asyncio."""
    match = re.search(r"\((.*)\)$", frame)
    where = match.group(1) if match else frame
    if where.startswith("worker/"):
        parts = where.split("/")
        return "worker/" + (parts[1].removesuffix(".py") if len(parts) > 2 else parts[1])
    head = where.split("/")[0]
    if head in ("asyncio", "selectors.py", "threading.py", "queue.py"):
        return "asyncio, selectors (event loop)"
    if head.endswith(".py") or head.startswith("<"):
        return "stdlib / other"
    return head


def summarise(path: Path, top: int = 15) -> dict:
    total, samples = parse(path)
    by_package: Counter[str] = Counter()
    by_function: Counter[str] = Counter()
    stages: Counter[str] = Counter()
    for frames, n in samples:
        leaf = frames[-1] if frames and frames[-1] else "(no Python frame)"
        by_package[package(leaf)] += n
        by_function[leaf] += n
        joined = ";".join(frames)
        for name, patterns in STAGES:
            if any(p in joined for p in patterns):
                stages[name] += n
    share = (lambda n: n / total) if total else (lambda n: 0.0)
    return {"samples": total,
            "stages": [(name, share(stages[name])) for name, _ in STAGES if stages[name]],
            "packages": [(k, share(v)) for k, v in by_package.most_common(12)],
            "functions": [(k, share(v)) for k, v in by_function.most_common(top)]}


def markdown(summary: dict, title: str) -> str:
    out = [f"**{title}** ({summary['samples']:,} samples at 100 Hz, on-CPU only)", "",
           "| inclusive share of samples | % |", "|---|---:|"]
    out += [f"| {name.replace('  ', '&nbsp;&nbsp;')} | {v:.1%} |" for name, v in summary["stages"]]
    out += ["", "| self time by library | % |", "|---|---:|"]
    out += [f"| {name} | {v:.1%} |" for name, v in summary["packages"]]
    out += ["", "| self time, top functions | % |", "|---|---:|"]
    out += [f"| `{name}` | {v:.1%} |" for name, v in summary["functions"][:10]]
    return "\n".join(out)


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(markdown(summarise(Path(arg)), arg))
        print()
