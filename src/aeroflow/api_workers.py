"""``aeroflow api --workers N``: the read API served by N processes on one listening socket.

Python runs one core's worth of a process's requests; a read-only API can use every core by
running more processes. uvicorn's own supervisor (``uvicorn.supervisors.Multiprocess``, what
``uvicorn --workers`` runs) spawns the workers, replaces one that dies and, on SIGTERM or
SIGINT, sends each worker SIGTERM and waits for it (each drains its requests as a single
server does). Each worker builds its app with ``aeroflow.bootstrap:api_worker_app`` from the
same settings.

One listening socket per worker, not uvicorn's one socket shared by all (Linux, where
SO_REUSEPORT spreads new connections over the listeners by their addresses): on a shared
socket, the worker that wakes first accepts every connection waiting, so a client opening
its keep-alive connections at once lands on one worker. Measured with wrk, 32 connections:
32 on one worker and 0 on the other, the second core idle.

Shared by the workers: the store file (opened read-only by each, so they can), the cursor
secret and ETags (settings and content hashes: a cursor or ETag from one worker is good at
another), and the metrics (merged, see ``observability.multiprocess_metrics``). Per worker:
the read model (memory x N), the response cache (never stale on a snapshot), and the rate
limits' counters with the default in-memory storage (as they already are per Cloud Run
instance): a client spread over N workers gets up to N times its limit per instance.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import socket
import sys
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Final, cast

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from aeroflow.observability.multiprocess_metrics import shared_metrics_directory
from aeroflow.settings import Settings

log = logging.getLogger(__name__)

WORKER_APP: Final = "aeroflow.bootstrap:api_worker_app"
# A worker that does not answer the supervisor's ping within this long is killed and
# replaced. It answers from a thread, which needs the GIL while the worker loads its read
# model (10 M flights: 13-36 s alone, 97 s for two workers at once under load 8); uvicorn's
# 5 s risked killing a loading worker, and a longer wait only delays replacing a hung one.
HEALTHCHECK_TIMEOUT_SECONDS: Final = 60
_PR_SET_PDEATHSIG: Final = 1
# Elsewhere SO_REUSEPORT does not spread connections (or does not exist): one shared socket.
_REUSE_PORT: Final = getattr(socket, "SO_REUSEPORT", None) if sys.platform == "linux" else None


def serve_workers(settings: Settings, **server_options: Any) -> int:
    """Serve ``settings.api_workers`` workers on ``settings.host:port`` until SIGTERM or
    SIGINT; the exit status: ``STARTUP_FAILURE`` (3) when a worker could not start, which
    stops the others (it would fail the same way on every restart), else 0.

    ``server_options``: uvicorn ``Config`` options of the single-process server."""
    # The workers read their settings as any aeroflow process does (environment, .env);
    # the command line's file goes to them the same way.
    os.environ["AEROFLOW_DUCKDB_PATH"] = str(settings.duckdb_path)
    config = uvicorn.Config(
        WORKER_APP,
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.api_workers,
        timeout_worker_healthcheck=HEALTHCHECK_TIMEOUT_SECONDS,
        **server_options,
    )
    with shared_metrics_directory():
        if _REUSE_PORT is None:
            sock = config.bind_socket()
            sockets: list[socket.socket] = [sock]
        else:
            try:
                sock = _claim_port(settings.host, settings.port)
            except OSError as exc:
                log.error("cannot listen on %s:%d: %s", settings.host, settings.port, exc)
                return STARTUP_FAILURE
            sockets = _WorkerListeners(settings.host, sock.getsockname()[1])
            log.info("serving on %s:%d with %d workers", *sock.getsockname()[:2], config.workers)
        try:
            supervisor = Multiprocess(config, sockets=sockets)
            supervisor.run()
        finally:
            sock.close()
    if any(process.exitcode == STARTUP_FAILURE for process in supervisor.processes):
        return STARTUP_FAILURE
    return 0


class _WorkerListeners(list[socket.socket]):
    """The sockets uvicorn's supervisor hands each worker it spawns: pickled as the address,
    so that each worker unpickles a listening socket of its own on it."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__()
        self.host = host
        self.port = port

    def __reduce__(self) -> tuple[Any, tuple[str, int]]:
        return _own_listener, (self.host, self.port)


def _claim_port(host: str, port: int) -> socket.socket:
    """A socket bound with SO_REUSEPORT to ``host:port`` (port 0: a free one), held (never
    listened on) while the workers run, so that only they can listen there.

    Any process of this user may join a port bound with SO_REUSEPORT, and a second server
    started on it by mistake would silently share the traffic: a plain bind first fails if
    anything holds the port, this server's own claim included."""
    with socket.socket(_family(host)) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        probe.bind((host, port))
        port = probe.getsockname()[1]
    return _reuse_port_socket(host, port)


def _own_listener(host: str, port: int) -> list[socket.socket]:
    """In a worker: its listening socket (uvicorn listens on it)."""
    return [_reuse_port_socket(host, port)]


def _reuse_port_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(_family(host))
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, cast(int, _REUSE_PORT), 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def store_problem_in_child(settings: Settings) -> str | None:
    """``bootstrap.read_only_store_problem`` in a short-lived process: opening the file
    leaves ~80 MiB of DuckDB's memory in the process that did (measured: the supervisor's
    RSS 60 -> 154 MiB), which the supervisor, serving nothing, need not keep."""
    from aeroflow.bootstrap import read_only_store_problem

    if settings.storage_backend != "duckdb":
        return None  # no file to check
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as checker:
        return checker.submit(read_only_store_problem, settings).result()


def exit_with_supervisor() -> None:
    """In a worker: have the kernel send SIGTERM when the supervisor dies, even killed by
    SIGKILL (Linux), so that no orphaned worker keeps serving on the socket. uvicorn starts
    every worker from its supervisor's main thread, whose end is what the kernel watches."""
    parent = multiprocessing.parent_process()
    if parent is None or not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        log.warning("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
        return
    if os.getppid() != parent.pid:
        raise SystemExit("the supervisor exited while this worker started")
