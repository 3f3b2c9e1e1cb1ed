"""Read API under load: aeroflow and its peers, same data, same questions, one after another.

For each system: start it, generate its request lists from the data (``scenarios.py``), check
that every scenario answers 200, then run wrk for each scenario at each connection count, and
record req/s, latency percentiles, errors and the server's memory. Systems run one at a time
so they never compete for the two cores.

    .venv/bin/python bench/bench_read.py --dataset nyc --db bench/.data/nyc.duckdb
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import datasets
import peers
import scenarios
from harness import (
    DATA,
    RESULTS,
    Server,
    load_average,
    log,
    machine_info,
    peak_rss_mib,
    process_tree,
    rss_mib,
    run_wrk,
    running,
    save_json,
    wait_for_quiet,
    wait_idle,
    write_request_list,
)

CONNECTIONS = (1, 8, 32, 64)


def _request_files(dataset: str, system: str, lists: dict[str, list[str]]) -> dict[str, Path]:
    folder = DATA / "requests" / dataset / system
    return {
        name: write_request_list(folder / f"{name}.txt", lines) for name, lines in lists.items()
    }


def measure(
    server: Server,
    files: dict[str, Path],
    *,
    scenario_names: Sequence[str],
    connections: Sequence[int],
    seconds: float,
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for scenario in scenario_names:
        points = []
        for count in connections:
            point = run_wrk(server.base_url, files[scenario], connections=count, seconds=seconds)
            point["drained_seconds"] = wait_idle(server.pid)
            log(
                f"  {server.name:<18} {scenario:<14} c={count:<3} {point['rps']:>9,.0f} req/s"
                f"  p50 {point['p50_ms']:7.2f}  p99 {point['p99_ms']:7.2f} ms"
                f"  errors {point['errors']}"
            )
            points.append(point)
        results[scenario] = points
    return results


def _memory(server: Server) -> dict[str, Any]:
    return {
        "rss_mib": round(rss_mib(server.pid), 1),
        "peak_rss_mib": round(peak_rss_mib(server.pid), 1),
        # A supervisor and its workers (aeroflow api --workers N): each process's share.
        "rss_per_process_mib": [round(_rss_alone_mib(pid), 1) for pid in process_tree(server.pid)],
    }


def _rss_alone_mib(pid: int) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return 0.0
    return next((int(line.split()[1]) / 1024 for line in status if line[:6] == "VmRSS:"), 0.0)


def wait_listening(port: int, count: int, *, timeout: float) -> None:
    """Until ``count`` sockets listen on ``port`` (one per worker of ``aeroflow api``)."""
    deadline = time.monotonic() + timeout
    local = f":{port:04X}"
    while time.monotonic() < deadline:
        rows = [line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:]]
        # Fields: sl, local_address, rem_address, st (0A = LISTEN), ...
        if sum(row[1].endswith(local) and row[3] == "0A" for row in rows) >= count:
            return
        time.sleep(0.2)
    raise RuntimeError(f"fewer than {count} listeners on port {port} after {timeout:.0f} s")


def bench_system(
    name: str,
    server: Server,
    *,
    dataset: str,
    workload: scenarios.Workload,
    builder: str,
    scenario_names: Sequence[str],
    connections: Sequence[int],
    seconds: float,
    lists: dict[str, list[str]] | None = None,
    listeners: int = 1,
) -> dict[str, Any]:
    wait_for_quiet()
    with running(server, timeout=300):
        if listeners > 1:
            # Ready is one worker answering; the others may still be loading their model.
            wait_listening(server.port, listeners, timeout=300)
        memory_idle = _memory(server)
        if lists is None:
            lists = scenarios.BUILDERS[builder](workload, server.base_url, 13)
        lists = {k: v for k, v in lists.items() if k in scenario_names}
        sizes = scenarios.check_requests(name, server.base_url, lists)
        files = _request_files(dataset, builder, lists)
        results = measure(
            server,
            files,
            scenario_names=scenario_names,
            connections=connections,
            seconds=seconds,
        )
        return {
            "system": name,
            "scenarios": results,
            "response_bytes": sizes,
            "memory_idle": memory_idle,
            "memory_after": _memory(server),
            "distinct_requests": {k: len(v) for k, v in lists.items()},
        }


def raw_bodies(
    aeroflow_server: Server, workload: scenarios.Workload, dataset: str
) -> tuple[Path, dict[str, list[str]]]:
    """aeroflow's own response bytes per scenario, for the raw ASGI ceiling, and aeroflow's
    request lists (the deep cursors can only be walked on aeroflow itself)."""
    from harness import http_get

    lists = scenarios.aeroflow_requests(workload, aeroflow_server.base_url, 13)
    bodies: dict[str, str] = {}
    for scenario, urls in lists.items():
        status, body = http_get(aeroflow_server.base_url + urls[0])
        if status != 200:
            raise RuntimeError(f"aeroflow {scenario}: HTTP {status}")
        prefix = urls[0]
        if scenario == "random":
            prefix = "/v1/flights?carrier="
        elif scenario == "point":
            prefix = "/v1/flights/"
        elif scenario == "deep":
            for url in urls:
                bodies[url.split("&cursor=")[0] + "&cursor="] = body.decode("latin-1")
            continue
        bodies[prefix] = body.decode("latin-1")
    path = DATA / "requests" / dataset / "raw_bodies.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(bodies))
    return path, lists


def bench_read(
    dataset: str,
    db: Path,
    *,
    sqlite_file: Path | None,
    parquet_file: Path | None,
    systems: Sequence[str],
    scenario_names: Sequence[str] = scenarios.SCENARIOS,
    connections: Sequence[int] = CONNECTIONS,
    seconds: float = 8.0,
) -> dict[str, Any]:
    workload = scenarios.workload(db)
    report: dict[str, Any] = {
        "benchmark": "read_api",
        "dataset": dataset,
        "flights": datasets.count_flights(db),
        "seconds_per_point": seconds,
        "connections": list(connections),
        "load_average_start": load_average(),
        "machine": machine_info(),
        "systems": {},
    }
    common = {
        "dataset": dataset,
        "workload": workload,
        "scenario_names": scenario_names,
        "connections": connections,
        "seconds": seconds,
    }
    for system in systems:
        log(f"{dataset}: {system}")
        if system == "aeroflow":
            result = bench_system(system, peers.aeroflow(db), builder="aeroflow", **common)
        elif system == "aeroflow-nocache":
            server = peers.aeroflow(db, AEROFLOW_RESPONSE_CACHE_MIB="0")
            result = bench_system(system, server, builder="aeroflow", **common)
        elif system.startswith("aeroflow-workers"):
            # aeroflow-workers<N>[-nocache]: aeroflow api --workers N
            workers = int(system.removeprefix("aeroflow-workers").split("-")[0])
            env = {"AEROFLOW_RESPONSE_CACHE_MIB": "0"} if system.endswith("-nocache") else {}
            server = peers.aeroflow_api(db, workers=workers, **env)
            server.name = system
            result = bench_system(system, server, builder="aeroflow", listeners=workers, **common)
        elif system == "raw-asgi":
            with running(peers.aeroflow(db)) as source:
                bodies, lists = raw_bodies(source, workload, dataset)
            server = peers.raw_asgi(bodies)
            result = bench_system(system, server, builder="aeroflow", lists=lists, **common)
        elif system == "datasette":
            if sqlite_file is None:
                raise ValueError("datasette needs --sqlite")
            server = peers.datasette(sqlite_file)
            result = bench_system(system, server, builder="datasette", **common)
        elif system == "roapi":
            if parquet_file is None:
                raise ValueError("roapi needs --parquet")
            server = peers.roapi(parquet_file)
            result = bench_system(system, server, builder="roapi", **common)
        else:
            raise ValueError(f"unknown system {system}")
        report["systems"][system] = result
    report["load_average_end"] = load_average()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="nyc")
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--sqlite", type=Path)
    parser.add_argument("--parquet", type=Path)
    parser.add_argument("--systems", default="aeroflow")
    parser.add_argument("--scenarios", default=",".join(scenarios.SCENARIOS))
    parser.add_argument("--connections", default="1,8,32,64")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--out", default=None, help="result name under bench/results")
    parser.add_argument(
        "--merge", action="store_true", help="replace only these systems in an existing result"
    )
    args = parser.parse_args()
    report = bench_read(
        args.dataset,
        args.db,
        sqlite_file=args.sqlite,
        parquet_file=args.parquet,
        systems=args.systems.split(","),
        scenario_names=args.scenarios.split(","),
        connections=[int(c) for c in args.connections.split(",")],
        seconds=args.seconds,
    )
    name = args.out or f"read_{args.dataset}"
    existing = RESULTS / f"{name}.json"
    if args.merge and existing.exists():
        merged = json.loads(existing.read_text())
        merged["systems"].update(report["systems"])
        merged.setdefault("reruns", []).append(
            {"systems": list(report["systems"]), "load_average_start": report["load_average_start"]}
        )
        report = merged
    save_json(name, report)


if __name__ == "__main__":
    main()
