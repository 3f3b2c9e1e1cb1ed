"""Where the bytes of a store opened as ``aeroflow serve`` opens it are, phase by phase.

One process, in-process calls (no HTTP): after the imports, after the store is open (the read
model built), after the delay stats of every grouping, after a few thousand page and point
reads, and after write batches that insert new flights (so DuckDB's primary-key index is
updated, which is what needs its blocks in memory). Per phase: RSS and its high-water mark,
DuckDB's own accounting (``duckdb_memory()``), and at the end the read model's bytes per
column. The store is opened with the server's settings (``AEROFLOW_DUCKDB_MEMORY_LIMIT``...),
so a setting can be tried without a server.

The store is written to: pass a copy (``--copy`` makes one in a temporary directory).

    .venv/bin/python bench/bench_memory.py --store /tmp/big.duckdb --json /tmp/memory.json
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import random
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from harness import load_average, log, machine_info, save_json

from aeroflow.storage.port import FlightFilter, FlightQuery, GroupBy

_MIB = 2**20


def _status(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def snapshot(phase: str, conn: Any | None, started: float) -> dict[str, Any]:
    gc.collect()
    point: dict[str, Any] = {
        "phase": phase,
        "seconds": round(time.perf_counter() - started, 1),
        "rss_mib": round(_status("VmRSS"), 1),
        "peak_rss_mib": round(_status("VmHWM"), 1),
        "load_average": load_average(),
    }
    if conn is not None:
        rows = conn.execute(
            "SELECT tag, memory_usage_bytes, temporary_storage_bytes FROM duckdb_memory()"
            " WHERE memory_usage_bytes > 0 OR temporary_storage_bytes > 0"
        ).fetchall()
        point["duckdb_mib"] = {tag: round(used / _MIB, 1) for tag, used, _ in rows}
        point["duckdb_temp_mib"] = round(sum(t for _, _, t in rows) / _MIB, 1)
    log(
        f"{phase:<10} rss {point['rss_mib']:7.1f} MiB  peak {point['peak_rss_mib']:7.1f} MiB"
        f"  duckdb {point.get('duckdb_mib', {})}  load {point['load_average'][0]:.2f}"
    )
    return point


def model_columns(store: Any) -> dict[str, Any]:
    """Bytes of every array of the read model, summed over its runs, by column."""
    model = store._read_model
    if model is None:
        return {}
    by_column: dict[str, int] = {}

    def add(name: str, nbytes: int) -> None:
        by_column[name] = by_column.get(name, 0) + int(nbytes)

    for run in model._runs:
        add("departures", run.departures.nbytes)
        add("keys", run.keys.nbytes)
        add("key_order", run.key_order.nbytes)
        for name, packed in run.packed.items():
            add(f"packed.{name} ({packed.data.dtype})", packed.nbytes)
        for name, codes in run.codes.items():
            add(f"codes.{name} ({codes.dtype})", codes.nbytes)
        for name, postings in run.postings.items():
            add(f"postings.{name} ({postings.rows.dtype})", postings.nbytes)
    flights = len(model)
    total = sum(by_column.values())
    return {
        "flights": flights,
        "runs": model.run_sizes,
        "total_mib": round(total / _MIB, 1),
        "bytes_per_flight": round(total / max(flights, 1), 2),
        "columns_mib": {k: round(v / _MIB, 2) for k, v in sorted(by_column.items())},
    }


def stats_load(store: Any, runs: int) -> None:
    utc = UTC
    filters = (
        FlightFilter(),
        FlightFilter(carrier="UA"),
        FlightFilter(
            origin="JFK",
            departure_from=datetime(2015, 1, 1, tzinfo=utc),
            departure_to=datetime(2018, 1, 1, tzinfo=utc),
        ),
    )
    for _ in range(runs):
        for group_by in GroupBy:
            for flt in filters:
                store.delay_stats(group_by, flt)


def read_load(store: Any, count: int) -> None:
    rng = random.Random(7)
    ids: list[str] = []
    for _ in range(count):
        start = datetime(2013, 1, 1, tzinfo=UTC) + timedelta(days=rng.randrange(29 * 365))
        query = FlightQuery(
            filter=FlightFilter(
                carrier=rng.choice(("UA", "B6", "EV", "DL", "AA")),
                departure_from=start,
                departure_to=start + timedelta(days=7),
            ),
            limit=50,
        )
        page = store.list_flights(query)
        ids.extend(f.flight_id for f in page.flights[:2])
    for flight_id in ids:
        store.get_flight(flight_id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--copy", action="store_true", help="work on a temporary copy")
    parser.add_argument("--stats-runs", type=int, default=2)
    parser.add_argument("--reads", type=int, default=2000)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--settle", type=float, default=10.0)
    parser.add_argument(
        "--set", action="append", default=[], help="NAME=VALUE: a DuckDB SET after the open"
    )
    args = parser.parse_args()

    started = time.perf_counter()
    from aeroflow.bootstrap import build_store
    from aeroflow.settings import Settings
    from aeroflow.storage.port import WriteBatch

    report: dict[str, Any] = {"benchmark": "memory", "machine": machine_info(), "phases": []}
    phases: list[dict[str, Any]] = report["phases"]
    phases.append(snapshot("imports", None, started))
    # In a child process: the sample (pandas frames) would otherwise stay in this one's RSS.
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        messages = pool.apply(_messages, (args.batches * args.batch_size,))
    phases.append(snapshot("messages", None, started))

    with tempfile.TemporaryDirectory(dir="/tmp") as scratch:
        path = args.store
        if args.copy:
            path = Path(scratch) / args.store.name
            shutil.copyfile(args.store, path)
        settings = Settings(duckdb_path=path)
        report["settings"] = {
            "duckdb_memory_limit": settings.duckdb_memory_limit,
            "duckdb_threads": settings.duckdb_threads,
        }
        store: Any = build_store(settings)
        conn = store._conn
        try:
            report["duckdb_settings"] = dict(
                conn.execute(
                    "SELECT name, value FROM duckdb_settings() WHERE name IN ('memory_limit',"
                    " 'threads', 'allocator_flush_threshold', 'allocator_background_threads',"
                    " 'allocator_bulk_deallocation_flush_threshold')"
                ).fetchall()
            )
            phases.append(snapshot("open", conn, started))
            for assignment in args.set:
                name, value = assignment.split("=", 1)
                conn.execute(f"SET {name} = '{value}'")  # a benchmark's own flags
            if args.set:
                time.sleep(2)
                phases.append(snapshot("set", conn, started))
            report["model"] = model_columns(store)
            log(f"model: {report['model']}")
            stats_load(store, args.stats_runs)
            phases.append(snapshot("stats", conn, started))
            time.sleep(args.settle)  # freed pages go back to the OS after a decay time
            phases.append(snapshot("settled", conn, started))
            read_load(store, args.reads)
            phases.append(snapshot("reads", conn, started))
            stored = 0
            for at in range(args.batches):
                chunk = messages[at * args.batch_size : (at + 1) * args.batch_size]
                stored += store.write_batch(WriteBatch(accepted=chunk, rejected=[])).stored
            report["stored"] = stored
            phases.append(snapshot("writes", conn, started))
            # What the WAL's automatic checkpoint does after enough writes: DuckDB writes the
            # changed tables and their indexes back to the file.
            conn.execute("CHECKPOINT")
            phases.append(snapshot("checkpoint", conn, started))
            stats_load(store, 1)
            phases.append(snapshot("stats2", conn, started))
        finally:
            store.close()
    if args.json:
        args.json.write_text(__import__("json").dumps(report, indent=2))
    else:
        save_json("memory", report)


def _messages(count: int) -> list[Any]:
    """``count`` sample events moved 40 years on (flights no store here holds), with their
    own message ids: every batch inserts new flights, as new schedules do."""
    from datasets import sample_messages

    from aeroflow.ingest.publisher import event_message_id
    from aeroflow.storage.port import MessageMeta

    shift = timedelta(days=40 * 365 + 10)  # whole days: same weekdays aside, same shapes
    moved = []
    for message in sample_messages(count):
        event = message.event
        changes: dict[str, Any] = {
            name: getattr(event, name) + shift
            for name in (
                "scheduled_departure",
                "scheduled_arrival",
                "actual_departure",
                "actual_arrival",
                "event_time",
            )
            if getattr(event, name) is not None
        }
        event = event.model_copy(update=changes)
        meta = MessageMeta(
            message_id=event_message_id(event),
            publish_time=message.meta.publish_time + shift,
            ordering_key=event.flight_id,
        )
        moved.append(message.__class__(meta=meta, event=event, ingest_time=message.ingest_time))
    return moved


if __name__ == "__main__":
    main()
