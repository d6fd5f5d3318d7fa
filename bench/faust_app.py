"""The Faust app of a bench baseline (bench/textbook_app.py, bench/faust_bare.py), set up from the
environment that bench/run.py gives its process."""

from __future__ import annotations

import os

import faust

PREFIX = os.environ.get("BENCH_PREFIX", "bench.")


def bench_app(name: str, web_port: int) -> faust.App:
    return faust.App(
        f"{PREFIX}{name}",
        broker=f"kafka://{os.environ.get('BENCH_BOOTSTRAP', '127.0.0.1:9092')}",
        store="memory://",
        topic_partitions=int(os.environ.get("BENCH_PARTITIONS", "4")),
        web_host="127.0.0.1",
        web_port=int(os.environ.get("BENCH_WEB_PORT", str(web_port))),
        datadir=os.environ.get("BENCH_DATADIR", f".local/{name}-data"),
        autodiscover=False,
    )
