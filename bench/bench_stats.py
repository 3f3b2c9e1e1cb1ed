"""Delay stats over a big store, in-process: p50/p95 and CPU per query for every group_by,
without and with filters, through ``DuckDBFlightStore.delay_stats``' own SQL.

No HTTP and no response cache: this is the engine's share of an uncached
``GET /v1/stats/delays`` (the scaling benchmark measures the same through the server, for
carrier and month only). The store is opened read-only with the server's defaults (2 threads,
512MB buffer pool), so the data files under bench/.data are never modified.

    .venv/bin/python bench/bench_stats.py --store bench/.data/flights-10000k.duckdb
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
from harness import load_average, log, machine_info, save_json

from aeroflow.storage.port import FlightFilter, GroupBy
from aeroflow.storage.queries import build_delay_stats
from aeroflow.storage.rows import delay_stats_from_row

FILTERS = {
    "none": FlightFilter(),
    "carrier=UA": FlightFilter(carrier="UA"),
    "origin=JFK, 3 years": FlightFilter(
        origin="JFK",
        departure_from=datetime(2015, 1, 1, tzinfo=UTC),
        departure_to=datetime(2018, 1, 1, tzinfo=UTC),
    ),
}


def _percentile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(
    conn: duckdb.DuckDBPyConnection, group_by: GroupBy, name: str, runs: int
) -> dict[str, Any]:
    query = build_delay_stats(group_by, FILTERS[name], "duckdb", table="flights")
    cursor = conn.cursor()
    cursor.execute(query.sql, query.params).fetchall()  # warm: plan, buffer pool
    load_before = load_average()
    seconds: list[float] = []
    cpu_started = time.process_time()
    for _ in range(runs):
        started = time.perf_counter()
        result = cursor.execute(query.sql, query.params)
        names = [d[0] for d in result.description or ()]
        groups = [
            delay_stats_from_row(dict(zip(names, row, strict=True))) for row in result.fetchall()
        ]
        seconds.append(time.perf_counter() - started)
    cpu = (time.process_time() - cpu_started) / runs
    ordered = sorted(seconds)
    point = {
        "group_by": group_by.value,
        "filter": name,
        "groups": len(groups),
        "runs": runs,
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p95_ms": round(_percentile(ordered, 0.95) * 1000, 1),
        "cpu_ms_per_query": round(cpu * 1000, 1),
        "load_average_before": load_before,
    }
    log(
        f"{group_by.value:>11} | {name:<19} p50 {point['p50_ms']:6.0f} ms, "
        f"p95 {point['p95_ms']:6.0f} ms, CPU {point['cpu_ms_per_query']:6.0f} ms "
        f"(load {load_before[0]})"
    )
    return point


def run(store: Path, runs: int) -> dict[str, Any]:
    report: dict[str, Any] = {
        "benchmark": "stats",
        "store": store.name,
        "machine": machine_info(),
        "load_average_start": load_average(),
    }
    config: dict[str, str | bool | int | float | list[str]] = {
        "threads": 2,
        "memory_limit": "512MB",
    }
    with duckdb.connect(str(store), read_only=True, config=config) as conn:
        (rows,) = conn.execute("SELECT count(*) FROM flights").fetchall()
        report["flights"] = rows[0]
        report["points"] = [
            measure(conn, group_by, name, runs) for name in FILTERS for group_by in GroupBy
        ]
    report["load_average_end"] = load_average()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", type=Path, required=True, help="a DuckDB store file")
    parser.add_argument("--runs", type=int, default=20, help="timed queries per point")
    args = parser.parse_args()
    save_json("stats", run(args.store, args.runs))


if __name__ == "__main__":
    main()
