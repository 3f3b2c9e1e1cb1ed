"""Real aeroflow processes and a push sender that remembers every answer.

``AeroflowServer`` runs ``python -m aeroflow serve`` as its own process group on a free
127.0.0.1 port, over a DuckDB file, and can SIGKILL it, SIGTERM it and start it again on the same
file and port. Its output goes through a pipe (drained into a log file by a thread of the test
process), never straight into a file: the storage-outage test caps the server's file size with
RLIMIT_FSIZE, which would otherwise break its logging before its database.

``TrackingSender`` plays a Pub/Sub push subscription: it POSTs push envelopes built here from
Google's documented format (not aeroflow's helper), retries what was not acknowledged, and keeps,
per message id, every answer and the moment of the 2xx. A message is never sent again once it got
a 2xx, so "stored at the end" proves "acked means durable" for it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import aiohttp
import duckdb
import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

START_TIMEOUT_SECONDS: Final = 60.0
STOP_TIMEOUT_SECONDS: Final = 30.0
SUBSCRIPTION: Final = "projects/aeroflow-reliability/subscriptions/flight-events-push"

FULL: Final = os.environ.get("AEROFLOW_RELIABILITY_FULL") == "1"
full_only: Final = pytest.mark.skipif(
    not FULL, reason="whole-sample variant: set AEROFLOW_RELIABILITY_FULL=1 to run it"
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def clean_env(**overrides: str) -> dict[str, str]:
    """The test's environment without AEROFLOW_* (a developer's settings must not leak in)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AEROFLOW_")}
    env.pop("PUBSUB_EMULATOR_HOST", None)
    # One access-log line per push request costs the server about a third of its CPU.
    env["AEROFLOW_LOG_LEVEL"] = "WARNING"
    env.update(overrides)
    return env


class _OutputPump:
    """Copies a child's output pipe into a log file until EOF."""

    def __init__(self, pipe: Any, log_path: Path) -> None:
        self._pipe = pipe
        self._log_path = log_path
        self._thread = threading.Thread(target=self._run, name="output-pump", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with self._log_path.open("ab") as log:
            for line in iter(self._pipe.readline, b""):
                log.write(line)
                log.flush()
        self._pipe.close()

    def join(self, timeout: float = 5.0) -> None:
        self._thread.join(timeout)


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"


class ManagedProcess:
    """A child in its own process group, so that killing it kills everything it started."""

    def __init__(
        self, name: str, command: Sequence[str], *, cwd: Path, env: dict[str, str], log: Path
    ) -> None:
        self.name = name
        self.command = list(command)
        self.cwd = cwd
        self.env = env
        self.log_path = log
        self.process: subprocess.Popen[bytes] | None = None
        self._pump: _OutputPump | None = None
        self.starts = 0

    def spawn(self) -> None:
        if self.running:
            raise RuntimeError("already running")
        with self.log_path.open("ab") as log:
            log.write(f"--- start #{self.starts + 1}: {' '.join(self.command)}\n".encode())
        self.process = subprocess.Popen(
            self.command,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.starts += 1
        self._pump = _OutputPump(self.process.stdout, self.log_path)

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process group: no handler, no drain, no checkpoint."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
        if self._pump is not None:
            self._pump.join()

    def terminate(self, timeout: float = STOP_TIMEOUT_SECONDS) -> int:
        """SIGTERM to the process (as Cloud Run sends it); its exit code."""
        assert self.process is not None, "not started"
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"{self.name} did not exit within {timeout:.0f} s of SIGTERM:\n"
                f"{tail(self.log_path)}"
            ) from None
        if self._pump is not None:
            self._pump.join()
        return code

    def wait(self, timeout: float) -> int:
        assert self.process is not None, "not started"
        code = self.process.wait(timeout=timeout)
        if self._pump is not None:
            self._pump.join()
        return code

    def rss_bytes(self) -> int:
        """Resident set size of the process (Linux /proc), 0 once it is gone."""
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return 0
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def cleanup(self) -> None:
        if self.running:
            self.kill()


def aeroflow_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "aeroflow", *args]


class AeroflowServer(ManagedProcess):
    """``aeroflow serve`` on 127.0.0.1:port over ``db_path``; restartable on the same file."""

    def __init__(self, db_path: Path, workdir: Path, *, env: dict[str, str] | None = None) -> None:
        self.db_path = db_path
        self.port = free_port()
        super().__init__(
            "aeroflow serve",
            aeroflow_command(
                "serve", "--host", "127.0.0.1", "--port", str(self.port), "--db", str(db_path)
            ),
            cwd=workdir,
            env=clean_env(**(env or {})),
            log=workdir / f"serve-{self.port}.log",
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def push_url(self) -> str:
        return f"{self.base_url}/pubsub/push"

    def start(self, timeout: float = START_TIMEOUT_SECONDS) -> None:
        self.spawn()
        deadline = time.monotonic() + timeout
        while True:
            if not self.running:
                raise AssertionError(
                    f"aeroflow serve exited with {self.process and self.process.returncode}:\n"
                    f"{tail(self.log_path)}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base_url}/readyz", timeout=2.0).status_code == 200:
                    return
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(
                    f"aeroflow serve not ready after {timeout:.0f} s:\n{tail(self.log_path)}"
                )
            time.sleep(0.05)

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        """SIGTERM and check the shutdown was clean: uvicorn re-raises the signal after its
        graceful shutdown (exit status -SIGTERM) and the store's close() checkpointed, folding
        the write-ahead log into the database file."""
        code = self.terminate(timeout)
        assert code in (0, -signal.SIGTERM), f"exit {code}:\n{tail(self.log_path)}"
        wal = self.db_path.with_name(self.db_path.name + ".wal")
        assert not wal.exists() or wal.stat().st_size == 0, "no checkpoint on shutdown"

    def readyz(self) -> int:
        return httpx.get(f"{self.base_url}/readyz", timeout=10.0).status_code

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples called ``name`` whose labels include ``labels``."""
        text = httpx.get(f"{self.base_url}/metrics", timeout=10.0).text
        total = 0.0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and labels.items() <= sample.labels.items():
                    total += sample.value
        return total


# --- what the API serves -------------------------------------------------------------------


def read_all_flights(base_url: str) -> list[dict[str, Any]]:
    """Every flight ``GET /v1/flights`` lists, following ``next_cursor``."""
    flights: list[dict[str, Any]] = []
    cursor: str | None = None
    with httpx.Client(base_url=base_url, timeout=60) as client:
        while True:
            params: dict[str, str | int] = {"limit": 1000}
            if cursor is not None:
                params["cursor"] = cursor
            response = client.get("/v1/flights", params=params)
            assert response.status_code == 200, response.text[:500]
            page = response.json()
            flights.extend(page["data"])
            cursor = page["next_cursor"]
            if cursor is None:
                return flights


def delay_stats(base_url: str, group_by: str) -> dict[str, dict[str, Any]]:
    response = httpx.get(f"{base_url}/v1/stats/delays", params={"group_by": group_by}, timeout=60)
    assert response.status_code == 200, response.text[:500]
    return {row["group"]: row for row in response.json()["data"]}


# --- what the DuckDB file holds (read after the server stopped) ----------------------------


@dataclass(frozen=True)
class StoredCounts:
    events: int
    distinct_event_ids: int
    rejected: int
    distinct_rejected_ids: int
    flights: int


def stored_counts(db_path: Path) -> StoredCounts:
    with duckdb.connect(str(db_path), read_only=True) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM flight_events),"
            " (SELECT count(DISTINCT message_id) FROM flight_events),"
            " (SELECT count(*) FROM rejected_messages),"
            " (SELECT count(DISTINCT message_id) FROM rejected_messages),"
            " (SELECT count(*) FROM flights)"
        ).fetchone()
    assert row is not None
    return StoredCounts(*(int(v) for v in row))


def stored_event_ids(db_path: Path) -> set[str]:
    with duckdb.connect(str(db_path), read_only=True) as conn:
        return {r[0] for r in conn.execute("SELECT message_id FROM flight_events").fetchall()}


def stored_rejections(db_path: Path) -> dict[str, str]:
    """message_id -> reason of every row in rejected_messages."""
    with duckdb.connect(str(db_path), read_only=True) as conn:
        rows = conn.execute("SELECT message_id, reason FROM rejected_messages").fetchall()
    return {str(message_id): str(reason) for message_id, reason in rows}


# --- the push sender -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PushMessage:
    message_id: str
    data: str  # the envelope's ``data`` field exactly as sent (base64, or not, for poison)
    attributes: dict[str, str] = field(default_factory=dict)
    ordering_key: str = ""

    @classmethod
    def of_bytes(
        cls, message_id: str, data: bytes, attributes: dict[str, str] | None = None, key: str = ""
    ) -> PushMessage:
        return cls(message_id, base64.b64encode(data).decode("ascii"), attributes or {}, key)


@dataclass(slots=True)
class Delivery:
    """One copy of a message in the stream, from first attempt to its 2xx (or giving up)."""

    message_id: str
    released_at: float = 0.0  # time.monotonic() of the first attempt
    attempts: int = 0
    answers: list[int | str] = field(default_factory=list)  # HTTP status or exception name
    acked_at: float | None = None  # time.monotonic() of the 2xx


@dataclass
class SendLog:
    deliveries: list[Delivery] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0

    def acked_ids(self, before: float | None = None) -> set[str]:
        return {
            d.message_id
            for d in self.deliveries
            if d.acked_at is not None and (before is None or d.acked_at < before)
        }

    def unacked_ids(self) -> set[str]:
        return {d.message_id for d in self.deliveries} - self.acked_ids()

    def answers(self) -> Counter[int | str]:
        return Counter(a for d in self.deliveries for a in d.answers)

    def first_answers(self) -> Counter[int | str]:
        return Counter(d.answers[0] for d in self.deliveries if d.answers)

    @property
    def acked(self) -> int:
        """Copies acknowledged (a message sent twice on purpose counts twice)."""
        return sum(1 for d in self.deliveries if d.acked_at is not None)

    @property
    def seconds(self) -> float:
        return self.finished - self.started


class TrackingSender:
    """Deliver push envelopes, ``concurrency`` in flight, recording every answer.

    Not acknowledged (5xx, 429, connection error) -> retried after a short jittered backoff,
    the server's Retry-After capped at ``max_backoff`` (the tests restart servers in seconds,
    Pub/Sub's own backoff is tested elsewhere), until ``give_up_after`` seconds have passed
    since the run started. Any other 4xx is final: that message is not acknowledged. With
    ``rate`` the messages are released at that many per second (an open-loop load).
    """

    def __init__(
        self,
        url: str,
        *,
        concurrency: int = 32,
        give_up_after: float = 120.0,
        max_backoff: float = 0.5,
        rate: float | None = None,
        seed: int = 0,
    ) -> None:
        self.url = url
        self.concurrency = concurrency
        self.give_up_after = give_up_after
        self.max_backoff = max_backoff
        self.rate = rate
        self.log = SendLog()
        self.stop = threading.Event()  # set to stop handing out new messages
        self._random = random.Random(seed)

    def run(self, messages: Iterable[PushMessage]) -> SendLog:
        asyncio.run(self._run(iter(messages)))
        return self.log

    def run_in_thread(self, messages: Iterable[PushMessage]) -> threading.Thread:
        thread = threading.Thread(target=self.run, args=(messages,), name="sender", daemon=True)
        thread.start()
        return thread

    async def _run(self, messages: Iterator[PushMessage]) -> None:
        self.log.started = time.monotonic()
        deadline = self.log.started + self.give_up_after
        released = 0
        lock = asyncio.Lock()

        async def next_message() -> PushMessage | None:
            nonlocal released
            async with lock:
                if self.stop.is_set():
                    return None
                message = next(messages, None)
                if message is None:
                    return None
                if self.rate is not None:
                    due = self.log.started + released / self.rate
                    if (delay := due - time.monotonic()) > 0:
                        await asyncio.sleep(delay)
                released += 1
                return message

        connector = aiohttp.TCPConnector(limit=self.concurrency)
        timeout = aiohttp.ClientTimeout(total=30)
        headers = {"content-type": "application/json"}
        session = aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers)
        async with session:

            async def worker() -> None:
                while (message := await next_message()) is not None:
                    await self._deliver(session, message, deadline)

            async with asyncio.TaskGroup() as group:
                for _ in range(self.concurrency):
                    group.create_task(worker())
        self.log.finished = time.monotonic()

    async def _deliver(
        self, session: aiohttp.ClientSession, message: PushMessage, deadline: float
    ) -> None:
        delivery = Delivery(message.message_id, released_at=time.monotonic())
        self.log.deliveries.append(delivery)
        publish_time = rfc3339(datetime.now(UTC))  # stamped once, as Pub/Sub does
        while True:
            delivery.attempts += 1
            body = push_envelope(message, publish_time, delivery.attempts)
            retry_after = 0.0
            try:
                async with session.post(self.url, data=body) as response:
                    await response.read()
                    status = response.status
                    retry_after = _seconds(response.headers.get("Retry-After"))
            except (aiohttp.ClientError, TimeoutError) as exc:
                delivery.answers.append(type(exc).__name__)
            else:
                delivery.answers.append(status)
                if 200 <= status < 300:
                    delivery.acked_at = time.monotonic()
                    return
                if status != 429 and status < 500:
                    return
            if time.monotonic() > deadline:
                return
            ceiling = min(self.max_backoff, 0.02 * 2 ** min(delivery.attempts, 10))
            pause = max(min(retry_after, self.max_backoff), self._random.uniform(0, ceiling))
            await asyncio.sleep(pause)


def push_envelope(message: PushMessage, publish_time: str, attempt: int) -> bytes:
    """What a Pub/Sub push subscription POSTs (cloud.google.com/pubsub/docs/push)."""
    body: dict[str, Any] = {
        "data": message.data,
        "messageId": message.message_id,
        "message_id": message.message_id,
        "publishTime": publish_time,
        "publish_time": publish_time,
    }
    if message.attributes:
        body["attributes"] = message.attributes
    if message.ordering_key:
        body["orderingKey"] = message.ordering_key
    return orjson.dumps({"message": body, "subscription": SUBSCRIPTION, "deliveryAttempt": attempt})


def rfc3339(value: datetime) -> str:
    return value.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _seconds(value: str | None) -> float:
    try:
        return float(value) if value is not None else 0.0
    except ValueError:
        return 0.0
