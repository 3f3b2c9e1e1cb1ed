"""What a read request costs outside the store: server CPU per request and req/s, c=32.

Five targets; the first three run the same scenarios (``single`` cached URL, ``random`` pages,
``point`` lookups):

* ``serve``: ``aeroflow serve`` exactly as shipped, on a copy of ``bench/.data/nyc.duckdb``.
* ``ceiling``: the real app (``bootstrap.build_server_app``, every middleware, JSON access log,
  the same uvicorn options and protocol as ``aeroflow serve``) over a store that answers from
  a dict precomputed by DuckDB and says ``reads_block == False``. **A ceiling, not a
  result**: it shows what the HTTP layer costs once the store answers in microseconds (the
  in-memory read model's job); it has no write version, so its response cache is off (every
  request is routed, ETag still computed).

* ``asgi``: the ceiling's app driven in-process, no server and no socket, one request at a
  time: CPU (``time.process_time``) per request of the app alone, the steadiest figure on a
  shared machine. ``single`` runs with the response cache on (a versioned replay store).
* ``cache-gc``: what a response cache filled by requests that never repeat costs the garbage
  collector: the app (cache on, startup heap frozen as ``aeroflow serve`` freezes it) answers
  ``--requests`` pages of one flight (~1 KB, a point lookup's size), each page asked with its
  parameters in every order so that no cache key repeats; then the objects a full collection
  must walk and the CPU of one full collection. Such
  collections run every time enough objects survive, and their pauses set the p99 of a
  workload the cache cannot serve.
* ``tail``: where wrk's latency tail comes from. ``aeroflow serve`` runs with a probe on the
  read lane's protocol path (``ReadLaneResponses._answered``) and the collector's callbacks;
  each wrk run (c=32, ``--runs`` of them per scenario) is set beside what the server saw in
  it: its longest answer (wall and CPU; answers over 5 ms counted, split into preempted by the
  kernel or blocked in a system call), the longest time between two answers on one connection
  (bounds, from the server's side, what any one request waited for it), the longest pause of
  the garbage collector, and the share of the run its event loop's thread was ready to run but
  waiting for a CPU (and wrk's). A wrk p99 far above the longest wait between two answers on
  one connection lies outside the server process. Also the serving thread's CPU per answer:
  all of it, inside the answer, and the answer's ``ReadLane.prepare`` and ``ReadLane.record``
  (metrics and access line). The probe costs a few microseconds a request.

CPU per request is the server process's user+system time over the run divided by the requests
wrk completed: less sensitive to the neighbours on a shared machine than req/s. The 1-minute
load average before each run is printed with it.

    .venv/bin/python bench/route_overhead.py --target serve --seconds 5
    .venv/bin/python bench/route_overhead.py --target ceiling --scenarios random,point
    .venv/bin/python bench/route_overhead.py --target asgi
    .venv/bin/python bench/route_overhead.py --target cache-gc --requests 60000
    .venv/bin/python bench/route_overhead.py --target tail --scenarios random,point --runs 5
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import scenarios
from harness import (
    DATA,
    VENV_BIN,
    Server,
    cpu_seconds,
    free_port,
    load_average,
    run_wrk,
    wait_idle,
    write_request_list,
)

CEILING_RANDOM = 3_000  # pages precomputed for the ceiling (about 3 ms each in DuckDB)
CEILING_POINT = 6_000


def _request_lists(db: Path) -> dict[str, list[str]]:
    w = scenarios.workload(db)
    scenarios.DEEP_CARRIERS = ()  # walking deep pages needs a server; not measured here
    w.deep_urls["aeroflow"] = ["/v1/flights?carrier=UA&limit=50"]
    return scenarios.aeroflow_requests(w, "http://unused")


# --- the ceiling server (a child process) ----------------------------------------------------


class _ReplayStore:
    """Answers reads from what the wrapped DuckDB store answered while recording."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._pages: dict[Any, Any] = {}
        self._flights: dict[str, Any] = {}
        self.replaying = False

    @property
    def reads_block(self) -> bool:
        return not self.replaying

    def list_flights(self, query: Any) -> Any:
        if self.replaying:
            return self._pages[query]
        page = self._pages[query] = self._inner.list_flights(query)
        return page

    def get_flight(self, flight_id: str) -> Any:
        if self.replaying:
            return self._flights.get(flight_id)
        flight = self._flights[flight_id] = self._inner.get_flight(flight_id)
        return flight

    def delay_stats(self, group_by: Any, flight_filter: Any) -> Any:
        return self._inner.delay_stats(group_by, flight_filter)

    def write_batch(self, batch: Any) -> Any:
        return self._inner.write_batch(batch)

    def ping(self) -> None:
        self._inner.ping()

    def close(self) -> None:
        self._inner.close()


class _VersionedReplayStore(_ReplayStore):
    """The same, with a write version that never moves: the response cache turns on."""

    @property
    def write_version(self) -> int:
        return 0


def _replay_app(db: Path, port: int, lists: dict[str, list[str]], versioned: bool) -> Any:
    """The real app over a replay store, after one pass over ``lists`` through the app."""
    import httpx

    from aeroflow import bootstrap
    from aeroflow.settings import Settings

    settings = Settings(duckdb_path=db, port=port)
    real_build_store = bootstrap.build_store
    store = (_VersionedReplayStore if versioned else _ReplayStore)(real_build_store(settings))
    bootstrap.build_store = lambda _settings, **_options: store  # type: ignore[assignment]
    try:
        bootstrap.configure_observability(settings)
        app = bootstrap.build_server_app(settings, bootstrap.Role.SERVE)
    finally:
        bootstrap.build_store = real_build_store  # type: ignore[assignment]

    async def record() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://x") as client:
            for urls in lists.values():
                for url in urls:
                    response = await client.get(url)
                    if response.status_code != 200:
                        raise RuntimeError(f"{url}: {response.status_code}")

    asyncio.run(record())
    store.replaying = True
    return app


def _serve_ceiling(db: Path, port: int, lists_dir: Path) -> None:
    import uvicorn

    from aeroflow import cli
    from aeroflow.settings import Settings

    lists = {n: (lists_dir / f"{n}.txt").read_text().split() for n in ("single", "random", "point")}
    app = _replay_app(db, port, lists, versioned=False)
    # The server as `aeroflow serve` configures it (its protocol answers plain reads itself).
    options = cli._server_options(Settings(duckdb_path=db, port=port))
    uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, **options)).run()


# --- in-process ------------------------------------------------------------------------------


def _asgi_cost(db: Path, lists: dict[str, list[str]], names: Sequence[str], n: int) -> None:
    """CPU per request of the app alone: requests sent straight to the ASGI callable."""
    import logging

    for name in names:
        app = _replay_app(db, 8080, {name: lists[name]}, versioned=name == "single")
        # The access log's line is built and formatted as in production, written to nowhere.
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(open(os.devnull, "w"))  # noqa: SIM115
        statuses: dict[int, int] = {}
        load = load_average()[0]
        per_request = asyncio.run(_drive(app, lists[name], n, statuses))
        print(
            f"asgi     {name:7} {per_request * 1e6:6.0f} us CPU/req  (n={n}, statuses"
            f" {statuses})  load {load:.2f}",
            flush=True,
        )


def _cache_gc(db: Path, lists: dict[str, list[str]], n: int) -> None:
    """Tracked objects and one full collection's CPU after ``n`` never-repeating requests."""
    import logging

    # Pages of one flight (about 1 KB, like a point lookup: ~60,000 fit in the default 64 MiB),
    # each asked with its parameters in every order: one page, many cache keys.
    pages = [url.replace("limit=50", "limit=1") for url in lists["random"]]
    app = _replay_app(db, 8080, {"pages": pages}, versioned=True)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(open(os.devnull, "w"))  # noqa: SIM115
    urls: list[str] = []
    for order in itertools.permutations(range(5)):
        for url in pages:
            path, _, query = url.partition("?")
            params = query.split("&")
            urls.append(f"{path}?{'&'.join(params[i] for i in order)}")
            if len(urls) == n:
                break
        if len(urls) == n:
            break
    statuses: dict[int, int] = {}
    gc.collect()
    gc.freeze()  # as aeroflow serve does once started
    try:
        asyncio.run(_drive(app, urls, len(urls), statuses))
        for generation in (0, 1):
            gc.collect(generation)
        tracked = sum(len(gc.get_objects(generation)) for generation in range(3))
        full = []
        for _ in range(3):
            started = time.process_time()
            gc.collect()
            full.append(time.process_time() - started)
    finally:
        gc.unfreeze()
    print(
        f"cache-gc {len(urls)} unique pages of one flight (statuses {statuses}): {tracked}"
        f" tracked objects outside the frozen heap, full collection {min(full) * 1e3:.1f} ms"
        f" CPU  load {load_average()[0]:.2f}",
        flush=True,
    )


async def _drive(app: Any, urls: list[str], n: int, statuses: dict[int, int]) -> float:
    """Seconds of process CPU per request over ``n`` requests, after n/5 to warm up."""

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses[message["status"]] = statuses.get(message["status"], 0) + 1

    for count in (n // 5, n):
        started = time.process_time()
        for i in range(count):
            path, _, query = urls[i % len(urls)].partition("?")
            scope = {
                "type": "http",
                "asgi": {"version": "3.0", "spec_version": "2.4"},
                "http_version": "1.1",
                "method": "GET",
                "scheme": "http",
                "path": path,
                "raw_path": path.encode(),
                "query_string": query.encode(),
                "root_path": "",
                "headers": [(b"host", b"127.0.0.1:8080")],
                "client": ("127.0.0.1", 50000),
                "server": ("127.0.0.1", 8080),
                "state": {},
            }
            await app(scope, receive, send)
    return (time.process_time() - started) / n


# --- the tail --------------------------------------------------------------------------------

SLOW_ANSWER = 0.005  # seconds: an answer over this is counted, with why it took so long


def _runq_ns() -> int:
    """Nanoseconds this thread has waited, runnable, for a CPU (the kernel's schedstat)."""
    return int(Path("/proc/thread-self/schedstat").read_text().split()[1])


class _TailProbe:
    """What the serving thread saw between two SIGUSR1 (each writes the report, then resets)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.started = time.perf_counter()
        self.runq_before = _runq_ns()
        self.answers = 0
        self.longest = (0.0, 0.0)  # wall, CPU seconds of the longest answer
        self.slow = {"count": 0, "preempted": 0, "blocked": 0}
        self.previous_end: float | None = None
        self.idle_longest = 0.0
        self.by_connection: dict[int, float] = {}
        self.connection_longest = 0.0
        self.gc_longest = (0.0, 0.0)  # wall, CPU seconds
        self.gc_full = 0
        self._gc_started = (0.0, 0.0)
        # The serving thread's CPU: all of it, and inside the answers and two of their parts.
        self.cpu_before = time.thread_time()
        self.cpu = {"answer": 0.0, "prepare": 0.0, "record": 0.0}

    def answer(self, protocol: Any, answered: Any) -> bool:
        usage = resource.getrusage(resource.RUSAGE_THREAD)
        start, cpu = time.perf_counter(), time.thread_time()
        result: bool = answered(protocol)
        end = time.perf_counter()
        self.cpu["answer"] += time.thread_time() - cpu
        wall = end - start
        if wall > SLOW_ANSWER:
            after = resource.getrusage(resource.RUSAGE_THREAD)
            self.slow["count"] += 1
            self.slow["preempted"] += after.ru_nivcsw > usage.ru_nivcsw
            self.slow["blocked"] += after.ru_nvcsw > usage.ru_nvcsw
        if wall > self.longest[0]:
            self.longest = (wall, time.thread_time() - cpu)
        if self.previous_end is not None:
            self.idle_longest = max(self.idle_longest, start - self.previous_end)
        self.previous_end = end
        # Keyed by the protocol object: one per connection, alive while it is open.
        before = self.by_connection.get(id(protocol))
        if before is not None:
            self.connection_longest = max(self.connection_longest, start - before)
        self.by_connection[id(protocol)] = start
        self.answers += 1
        return result

    def timed(self, part: str, call: Any) -> Any:
        def timed_call(*args: Any) -> Any:
            started = time.thread_time()
            try:
                return call(*args)
            finally:
                self.cpu[part] += time.thread_time() - started

        return timed_call

    def on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = (time.perf_counter(), time.thread_time())
            return
        wall = time.perf_counter() - self._gc_started[0]
        if wall > self.gc_longest[0]:
            self.gc_longest = (wall, time.thread_time() - self._gc_started[1])
        self.gc_full += info["generation"] == 2

    def report(self) -> dict[str, Any]:
        elapsed = time.perf_counter() - self.started
        return {
            "answers": self.answers,
            "longest_answer_ms": round(self.longest[0] * 1e3, 2),
            "longest_answer_cpu_ms": round(self.longest[1] * 1e3, 2),
            "slow_answers": self.slow,
            "longest_connection_wait_ms": round(self.connection_longest * 1e3, 2),
            "longest_idle_ms": round(self.idle_longest * 1e3, 2),
            "gc_longest_ms": round(self.gc_longest[0] * 1e3, 2),
            "gc_longest_cpu_ms": round(self.gc_longest[1] * 1e3, 2),
            "gc_full": self.gc_full,
            "runq_share": round((_runq_ns() - self.runq_before) / 1e9 / elapsed, 3),
            "cpu_us_per_answer": {
                part: round(seconds / max(self.answers, 1) * 1e6, 1)
                for part, seconds in {
                    "thread": time.thread_time() - self.cpu_before,
                    **self.cpu,
                }.items()
            },
        }


def _serve_probed(db: Path, port: int, report: Path) -> None:
    """``aeroflow serve`` as the CLI runs it, with the probe (SIGUSR1: report, then reset)."""
    from aeroflow import cli
    from aeroflow.api.middleware import lane, read_protocol

    probe = _TailProbe()
    for part in ("prepare", "record"):
        setattr(lane.ReadLane, part, probe.timed(part, getattr(lane.ReadLane, part)))
    answered = read_protocol.ReadLaneResponses._answered

    def probed(protocol: Any) -> bool:
        return probe.answer(protocol, answered)

    setattr(read_protocol.ReadLaneResponses, "_answered", probed)  # noqa: B010
    gc.callbacks.append(probe.on_gc)

    def on_usr1(_signal: int, _frame: Any) -> None:
        written = report.with_suffix(".tmp")
        written.write_text(json.dumps(probe.report()))
        written.replace(report)
        probe.reset()

    signal.signal(signal.SIGUSR1, on_usr1)
    sys.argv = ["aeroflow", "serve", "--port", str(port), "--db", str(db)]
    cli.app()


class _WrkWaits(threading.Thread):
    """How long this process's wrk child, while it ran, waited runnable for a CPU (all its
    threads, read every 50 ms until it exits: the last 50 ms may be missed)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.done = threading.Event()
        self.waited_ns = 0
        self.ran_for = 0.0

    def run(self) -> None:
        pid = None
        while pid is None and not self.done.is_set():
            pid = _child_named("wrk")
            if pid is None:
                time.sleep(0.01)
        started = time.monotonic()
        first: int | None = None
        while not self.done.wait(0.05) and pid is not None:
            try:
                waited = sum(
                    int((task / "schedstat").read_text().split()[1])
                    for task in Path(f"/proc/{pid}/task").iterdir()
                )
            except (OSError, IndexError, ValueError):
                break  # exited
            first = waited if first is None else first
            self.waited_ns = waited - first
            self.ran_for = time.monotonic() - started

    @property
    def share(self) -> float:
        return self.waited_ns / 1e9 / self.ran_for if self.ran_for else 0.0


def _child_named(name: str) -> int | None:
    me = str(os.getpid())
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)
            except OSError:
                continue
            if fields[0].endswith(f"({name}") and fields[1].split()[1] == me:
                return int(entry.name)
    return None


def _probe_report(server: Server, report: Path) -> dict[str, Any]:
    report.unlink(missing_ok=True)
    os.kill(server.pid, signal.SIGUSR1)
    deadline = time.monotonic() + 10
    while not report.exists():
        if time.monotonic() > deadline:
            raise RuntimeError("the probed server wrote no report")
        time.sleep(0.05)
    found: dict[str, Any] = json.loads(report.read_text())
    return found


def _measure_tail(
    server: Server,
    lists: dict[str, Path],
    names: Sequence[str],
    seconds: float,
    runs: int,
    report: Path,
) -> None:
    for name in names:
        run_wrk(server.base_url, lists[name], connections=32, seconds=1)  # warm-up
        wait_idle(server.pid)
        _probe_report(server, report)
        for run in range(1, runs + 1):
            wrk_waits = _WrkWaits()
            wrk_waits.start()
            result = run_wrk(server.base_url, lists[name], connections=32, seconds=seconds)
            seen = _probe_report(server, report)
            wrk_waits.done.set()
            wrk_waits.join()
            wait_idle(server.pid)
            _probe_report(server, report)  # the backlog worked off is not the next run's
            slow = seen["slow_answers"]
            print(
                f"tail {name:6} run {run}: wrk {result['rps']:6.0f} req/s p50"
                f" {result['p50_ms']:6.2f} p99 {result['p99_ms']:7.2f} max"
                f" {result['max_ms']:7.2f} ms | server: longest answer"
                f" {seen['longest_answer_ms']:6.2f} ms (CPU {seen['longest_answer_cpu_ms']:.2f}),"
                f" >5 ms {slow['count']} (preempted {slow['preempted']}, blocked"
                f" {slow['blocked']}), longest wait on a connection"
                f" {seen['longest_connection_wait_ms']:6.2f} ms, idle"
                f" {seen['longest_idle_ms']:5.2f} ms, GC {seen['gc_longest_ms']:5.2f} ms (CPU"
                f" {seen['gc_longest_cpu_ms']:.2f},"
                f" {seen['gc_full']} full), waiting for a CPU {seen['runq_share']:.0%}"
                f" | wrk waiting for a CPU {wrk_waits.share:.0%}"
                f" | CPU us per answer {seen['cpu_us_per_answer']}"
                f" | load {result['load_1m_before']:.2f}",
                flush=True,
            )


# --- the driver ------------------------------------------------------------------------------


def _measure(server: Server, lists: dict[str, Path], names: Sequence[str], seconds: float) -> None:
    for name in names:
        base = server.base_url
        run_wrk(base, lists[name], connections=32, seconds=1)  # warm-up (and fill the cache)
        wait_idle(server.pid)
        load = load_average()[0]
        cpu_before = cpu_seconds(server.pid)
        result = run_wrk(base, lists[name], connections=32, seconds=seconds)
        wait_idle(server.pid)
        cpu = cpu_seconds(server.pid) - cpu_before
        us = cpu / max(result["requests"], 1) * 1e6
        print(
            f"{server.name:8} {name:7} c=32 {result['rps']:8.0f} req/s  p50 {result['p50_ms']:6.2f}"
            f"  p99 {result['p99_ms']:6.2f} ms  cpu {us:6.0f} us/req  errors {result['errors']}"
            f"  bytes {result['mean_response_bytes']}  load {load:.2f}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--target", choices=("serve", "ceiling", "asgi", "cache-gc", "tail"), default="serve"
    )
    parser.add_argument("--runs", type=int, default=5, help="wrk runs per scenario (tail)")
    parser.add_argument("--requests", type=int, default=5000, help="per scenario (asgi)")
    parser.add_argument("--scenarios", default="single,random,point")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--db", type=Path, default=DATA / "nyc.duckdb")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--lists", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--probe", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe is not None:
        _serve_probed(args.db, args.port, args.probe)
        return
    if args.child:
        _serve_ceiling(args.db, args.port, args.lists)
        return

    names = [n for n in args.scenarios.split(",") if n]
    with tempfile.TemporaryDirectory(prefix="route-overhead-") as tmp:
        work = Path(tmp)
        db = work / "store.duckdb"
        shutil.copyfile(args.db, db)  # the sample is never opened read-write in place
        all_lists = _request_lists(db)
        if args.target not in ("serve", "tail"):
            all_lists["random"] = all_lists["random"][:CEILING_RANDOM]
            all_lists["point"] = all_lists["point"][:CEILING_POINT]
        if args.target == "asgi":
            _asgi_cost(db, all_lists, names, args.requests)
            return
        if args.target == "cache-gc":
            _cache_gc(db, all_lists, args.requests)
            return
        lists = {
            n: write_request_list(work / f"{n}.txt", all_lists[n])
            for n in ("single", "random", "point")
        }
        port = free_port()
        env = {"AEROFLOW_DUCKDB_PATH": str(db), "AEROFLOW_PORT": str(port)}
        if args.target == "serve":
            command = [str(VENV_BIN / "aeroflow"), "serve", "--port", str(port), "--db", str(db)]
        elif args.target == "tail":
            command = [sys.executable, __file__, "--db", str(db), "--port", str(port)]
            command += ["--probe", str(work / "probe.json")]
        else:
            command = [sys.executable, __file__, "--child", "--db", str(db), "--port", str(port)]
            command += ["--lists", str(work)]
        server = Server(
            args.target,
            command,
            port,
            ready_path="/healthz",
            env=env,
            log_path=Path(os.devnull),
        )
        started = time.monotonic()
        server.start(timeout=300)
        try:
            print(f"{args.target}: ready in {time.monotonic() - started:.0f} s, pid {server.pid}")
            if args.target == "tail":
                _measure_tail(server, lists, names, args.seconds, args.runs, work / "probe.json")
            else:
                _measure(server, lists, names, args.seconds)
        finally:
            server.stop()
    subprocess.run(["uptime"], check=False)


if __name__ == "__main__":
    main()
