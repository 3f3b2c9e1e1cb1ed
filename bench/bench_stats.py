"""Delay stats over a big store, in-process: p50/p95 and CPU per query for every group_by,
without and with filters, through ``DuckDBFlightStore.delay_stats``: from the read model when
it is on (the server's default), from DuckDB's SQL with ``--read-model off``.

No HTTP and no response cache: this is the store's share of an uncached
``GET /v1/stats/delays`` (the scaling benchmark measures the same through the server, for
carrier and month only). The store is opened read-only with the server's defaults (2 threads,
512MB buffer pool), so the data files under bench/.data are never modified. For an A/B, run
this script with ``PYTHONPATH`` pointing at another checkout's ``src``.

    .venv/bin/python bench/bench_stats.py --store bench/.data/flights-10000k.duckdb
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness import load_average, log, machine_info, save_json

from aeroflow.storage.duckdb import DuckDBFlightStore
from aeroflow.storage.port import FlightFilter, GroupBy

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


def measure(store: DuckDBFlightStore, group_by: GroupBy, name: str, runs: int) -> dict[str, Any]:
    flight_filter = FILTERS[name]
    store.delay_stats(group_by, flight_filter)  # warm: plan, buffer pool, caches
    load_before = load_average()
    seconds: list[float] = []
    cpu_started = time.process_time()
    for _ in range(runs):
        started = time.perf_counter()
        groups = store.delay_stats(group_by, flight_filter)
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


def run(store_path: Path, runs: int, *, read_model: bool = True) -> dict[str, Any]:
    report: dict[str, Any] = {
        "benchmark": "stats",
        "store": store_path.name,
        "read_model": read_model,
        "machine": machine_info(),
        "load_average_start": load_average(),
    }
    store = DuckDBFlightStore(
        store_path, threads=2, memory_limit="512MB", read_model=read_model, read_only=True
    )
    try:
        report["flights"] = sum(s.flights for s in store.delay_stats(GroupBy.HOUR, FlightFilter()))
        report["points"] = [
            measure(store, group_by, name, runs) for name in FILTERS for group_by in GroupBy
        ]
    finally:
        store.close()
    report["load_average_end"] = load_average()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", type=Path, required=True, help="a DuckDB store file")
    parser.add_argument("--runs", type=int, default=20, help="timed queries per point")
    parser.add_argument(
        "--read-model",
        choices=("on", "off"),
        default="on",
        help="answer from the read model (the server's default) or from DuckDB's SQL",
    )
    parser.add_argument(
        "--out", type=Path, help="write the JSON here (A/B runs) instead of bench/results"
    )
    args = parser.parse_args()
    report = run(args.store, args.runs, read_model=args.read_model == "on")
    if args.out is None:
        save_json("stats", report)
    else:
        args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
