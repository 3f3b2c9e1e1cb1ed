"""``make bench``: every benchmark in one run, then the report.

1. The full nycflights13 sample through the real push path into ``bench/.data/nyc.duckdb``
   (timed: the "full sample load" figure and the 64-publisher push rate).
2. The same flights for the peers (SQLite for Datasette, Parquet for ROAPI) and a 10 M-row
   store generated with DuckDB SQL (not through ingest).
3. Read API on the sample: aeroflow (cache on, the default), aeroflow with the cache off,
   the raw ASGI ceiling, Datasette and ROAPI; ``aeroflow api --workers 2`` (the read-only
   role on both cores), cache on and off, for the pages and lookups. Then aeroflow on 10 M
   rows (with 2 workers too).
4. Scaling from 336 k to 10 M rows (cache off), 5. ingest, 6. ``report.md`` with charts.

Results: ``bench/results/*.json`` and ``report.md``; data under ``bench/.data`` (git-ignored).
``--quick`` is a smoke run (short points, a slice of the sample, small sizes); its results go
to ``bench/results/quick`` and prove only that the machinery works.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

import bench_ingest
import bench_read
import bench_scaling
import bench_stats
import datasets
import peers
import report
from harness import DATA, RESULTS, load_average, log, machine_info, save_json

CACHE_SENSITIVE = ("single", "stats_carrier", "stats_month", "deep")
# `aeroflow api --workers 2`, beside the single-process rows (still the local default's).
WORKERS_SYSTEMS = ("aeroflow-workers2", "aeroflow-workers2-nocache")
WORKERS_SCENARIOS = ("single", "random", "point")


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    # So that every ``finally`` runs and no server is left behind.
    sys.exit(128 + signum)


def _workers(db: Path, dataset: str, seconds: float) -> dict[str, Any]:
    return bench_read.bench_read(
        dataset,
        db,
        sqlite_file=None,
        parquet_file=None,
        systems=WORKERS_SYSTEMS,
        seconds=seconds,
        scenario_names=WORKERS_SCENARIOS,
    )


def main() -> None:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run, not a measurement")
    parser.add_argument(
        "--reuse-data",
        action="store_true",
        help="keep an already loaded bench/.data/nyc.duckdb (no load figure)",
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="wrk duration per point")
    parser.add_argument("--skip", default="", help="comma list: peers,big,scaling,ingest")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    started = time.monotonic()
    DATA.mkdir(parents=True, exist_ok=True)

    seconds = 1.0 if args.quick else args.seconds
    limit = 20_000 if args.quick else None
    big_rows = 1_000_000 if args.quick else 10_000_000
    sizes = (50_000, 200_000, 1_000_000) if args.quick else bench_scaling.SIZES
    if args.quick:
        report.use_results_dir(RESULTS / "quick")

    peers.ensure_peer_venvs()
    nyc = DATA / ("nyc-quick.duckdb" if args.quick and not args.reuse_data else "nyc.duckdb")
    if args.reuse_data and nyc.exists():
        log(f"reusing {nyc.name} ({datasets.count_flights(nyc):,} flights)")
    else:
        log("loading the nycflights13 sample through push ingest (aeroflow publish -> serve)")
        load = datasets.load_sample_via_push(nyc, concurrency=64, limit=limit)
        load["machine"] = machine_info()
        save_json(report.name("load_full_sample"), load)
        log(
            f"loaded {load['messages']:,} messages in {load['publish_seconds']:.0f} s"
            f" ({load['messages_per_second']:,.0f} msg/s)"
        )

    sqlite_file, parquet_file = DATA / "flights.db", DATA / "flights.parquet"
    generated: dict[str, Any] = {}
    if "peers" not in skip:
        generated["sqlite"] = datasets.export_sqlite(nyc, sqlite_file)
        generated["parquet"] = datasets.export_parquet(nyc, parquet_file)
    big = bench_scaling.store_for(nyc, big_rows)

    # --- read API ---------------------------------------------------------------------------
    read: dict[str, Any] | None = None
    systems = ["aeroflow", "raw-asgi"] + ([] if "peers" in skip else ["datasette", "roapi"])
    read = bench_read.bench_read(
        "nyc",
        nyc,
        sqlite_file=sqlite_file,
        parquet_file=parquet_file,
        systems=systems,
        seconds=seconds,
    )
    nocache = bench_read.bench_read(
        "nyc",
        nyc,
        sqlite_file=None,
        parquet_file=None,
        systems=["aeroflow-nocache"],
        seconds=seconds,
        scenario_names=CACHE_SENSITIVE,
    )
    read["systems"].update(nocache["systems"])
    read["systems"].update(_workers(nyc, "nyc", seconds)["systems"])
    read["generated"] = generated
    save_json(report.name("read_nyc"), read)

    if "big" not in skip:
        big_read = bench_read.bench_read(
            "big", big, sqlite_file=None, parquet_file=None, systems=["aeroflow"], seconds=seconds
        )
        big_nocache = bench_read.bench_read(
            "big",
            big,
            sqlite_file=None,
            parquet_file=None,
            systems=["aeroflow-nocache"],
            seconds=seconds,
            scenario_names=CACHE_SENSITIVE,
        )
        big_read["systems"].update(big_nocache["systems"])
        big_read["systems"].update(_workers(big, "big", seconds)["systems"])
        save_json(report.name("read_big"), big_read)
        # Every grouping, with and without filters, straight on DuckDB: the uncached cost the
        # response cache hides in the read runs above.
        save_json(report.name("stats"), bench_stats.run(big, runs=5 if args.quick else 20))

    if "scaling" not in skip:
        save_json(report.name("scaling"), bench_scaling.bench_scaling(nyc, sizes, seconds))

    if "ingest" not in skip:
        full_load = report.results_dir() / "load_full_sample.json"
        ingest = bench_ingest.run(nyc, full_load if full_load.exists() else None)
        save_json(report.name("ingest"), ingest)

    summary = {
        "seconds": round(time.monotonic() - started),
        "quick": args.quick,
        "load_average_end": load_average(),
    }
    save_json(report.name("run"), summary)
    report.write_report()
    log(f"make bench finished in {summary['seconds'] / 60:.1f} min")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
