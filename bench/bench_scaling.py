"""How latency and memory grow with the store: 336 k (the pushed sample) to 10 M flights.

Each size is a store derived from the pushed sample with DuckDB SQL (``datasets.scaled_store``;
not through ingest). aeroflow runs with its response cache OFF, so every request reaches the
store: this measures the query path, not the cache. Per size: randomised pages and point
lookups at 32 connections, stats by carrier and by month one at a time (1 connection), and the
server's RSS when idle after start and at its peak.

    .venv/bin/python bench/bench_scaling.py --source bench/.data/nyc.duckdb
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import datasets
import peers
import scenarios
from bench_read import _request_files
from harness import (
    DATA,
    load_average,
    log,
    machine_info,
    peak_rss_mib,
    rss_mib,
    run_wrk,
    running,
    save_json,
    wait_idle,
)

SIZES = (336_776, 1_000_000, 3_000_000, 10_000_000)
POINTS = (("random", 32), ("point", 32), ("stats_carrier", 1), ("stats_month", 1))


def store_for(source: Path, rows: int) -> Path:
    """The store of this size: the source itself at its own size, else one derived from it
    (fewer rows: the earliest; more: copies with shifted years)."""
    if rows == datasets.count_flights(source):
        return source
    target = DATA / f"flights-{rows // 1000}k.duckdb"
    if not target.exists() or datasets.count_flights(target) != rows:
        datasets.scaled_store(source, target, rows)
    return target


def measure_size(db: Path, rows: int, seconds: float) -> dict[str, Any]:
    workload = scenarios.workload(db)
    server = peers.aeroflow(db, AEROFLOW_RESPONSE_CACHE_MIB="0")
    with running(server, timeout=300):
        idle = rss_mib(server.pid)
        lists = scenarios.aeroflow_requests(workload, server.base_url, 13)
        wanted = {name for name, _ in POINTS}
        files = _request_files(
            f"scale-{rows}", "aeroflow", {k: v for k, v in lists.items() if k in wanted}
        )
        points = {}
        for scenario, connections in POINTS:
            point = run_wrk(
                server.base_url,
                files[scenario],
                connections=connections,
                seconds=seconds,
                timeout_seconds=30,
            )
            point["drained_seconds"] = wait_idle(server.pid)
            points[scenario] = point
            log(
                f"  {rows:>11,} {scenario:<14} c={connections:<3} {point['rps']:>8,.0f} req/s"
                f"  p50 {point['p50_ms']:8.2f}  p95 {point['p95_ms']:8.2f}"
                f"  p99 {point['p99_ms']:8.2f} ms"
            )
        return {
            "rows": rows,
            "store_file_mib": round(db.stat().st_size / 2**20, 1),
            "rss_idle_mib": round(idle, 1),
            "rss_after_mib": round(rss_mib(server.pid), 1),
            "rss_peak_mib": round(peak_rss_mib(server.pid), 1),
            "points": points,
        }


def bench_scaling(source: Path, sizes: tuple[int, ...], seconds: float) -> dict[str, Any]:
    report: dict[str, Any] = {
        "benchmark": "scaling",
        "cache": "off (AEROFLOW_RESPONSE_CACHE_MIB=0)",
        "seconds_per_point": seconds,
        "machine": machine_info(),
        "load_average_start": load_average(),
        "sizes": [],
        "generated": {},
    }
    for rows in sizes:
        db = store_for(source, rows)
        log(f"scaling: {rows:,} flights ({db.name})")
        report["sizes"].append(measure_size(db, rows, seconds))
    report["load_average_end"] = load_average()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source", type=Path, required=True)
    parser.add_argument("--sizes", default=",".join(str(s) for s in SIZES))
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--json", type=Path, help="write here instead of bench/results")
    args = parser.parse_args()
    sizes = tuple(int(s) for s in args.sizes.split(","))
    report = bench_scaling(args.source, sizes, args.seconds)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    else:
        save_json("scaling", report)


if __name__ == "__main__":
    main()
