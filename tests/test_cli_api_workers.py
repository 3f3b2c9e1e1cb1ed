"""``aeroflow api`` as a user runs it: the read-only role over a published DuckDB file, on one
process or several (``--workers N``). Real processes on 127.0.0.1, a real store file written
through the store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector

from aeroflow.devtools.bigquery_emulator import RunningEmulator
from aeroflow.devtools.child_process import free_port, wait_ready
from aeroflow.storage.duckdb import DuckDBFlightStore
from aeroflow.storage.port import StorageUnavailableError
from published_store import flight_id, publish_store, scheduled_flights

AEROFLOW = [sys.executable, "-m", "aeroflow"]
FLIGHTS = 60
PAGE = 7
# Requests each on a connection of its own: the kernel picks the worker per connection, so
# 20 of them all reach one of 2 workers once in 2^19 runs.
FRESH_CONNECTIONS = 20
STOP_TIMEOUT_SECONDS = 30.0


@dataclass
class Server:
    base: str
    process: subprocess.Popen[bytes]
    metrics_root: Path

    def workers(self) -> list[int]:
        """The supervisor's children now (its main thread's: where uvicorn starts them)."""
        pid = self.process.pid
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        return [int(child) for child in text.split()]

    def settled_requests_per_pid(self, route: str, total: float) -> dict[int, float]:
        """``requests_per_pid`` once the counts add up to ``total``: a request is counted
        after its response is sent, so the client may read before the last increments."""
        deadline = time.monotonic() + 10
        while sum((counts := self.requests_per_pid(route)).values()) < total:
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        return counts

    def requests_per_pid(self, route: str) -> dict[int, float]:
        """2xx GETs of ``route`` each worker counted, from the workers' own metric files."""
        counts: dict[int, float] = {}
        for path in self.metrics_root.glob("aeroflow-metrics-*/counter_*.db"):
            pid = int(path.stem.split("_")[1])
            for family in MultiProcessCollector.merge([str(path)]):
                for sample in family.samples:
                    if (
                        sample.name == "aeroflow_http_requests_total"
                        and sample.labels["route"] == route
                    ):
                        counts[pid] = counts.get(pid, 0.0) + sample.value
        return counts


def start(tmp_path: Path, db: Path, *options: str, env: dict[str, str] | None = None) -> Server:
    port = free_port()
    metrics_root = tmp_path / "metrics"
    metrics_root.mkdir(exist_ok=True)
    process = subprocess.Popen(
        [*AEROFLOW, "api", "--port", str(port), "--db", str(db), *options],
        env={
            **os.environ,
            "AEROFLOW_LOG_LEVEL": "WARNING",
            # The supervisor makes its fresh metrics directory in there: the test can look.
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_root),
            **(env or {}),
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, process, timeout=60)
    except BaseException:
        stop(process)
        raise
    return Server(base, process, metrics_root)


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> int:
    if process.poll() is None:
        process.send_signal(sig)
    try:
        return process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie has ended: its parent just has not reaped it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_gone(pids: list[int], timeout: float = STOP_TIMEOUT_SECONDS) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := [pid for pid in pids if alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


@pytest.fixture
def published(tmp_path: Path) -> Path:
    return publish_store(tmp_path / "published.duckdb", FLIGHTS)


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """For the module's one two-worker server: nothing may write it."""
    return publish_store(tmp_path_factory.mktemp("shared") / "published.duckdb", FLIGHTS)


@pytest.fixture(scope="module")
def two_workers(shared_store: Path) -> Iterator[Server]:
    # One server for the tests that only read through it: each start loads two read models.
    server = start(shared_store.parent, shared_store, "--workers", "2")
    try:
        yield server
    finally:
        stop(server.process)


def fresh_get(url: str) -> httpx.Response:
    # No client: a new connection per request. trust_env off: loopback, never a proxy.
    return httpx.get(url, timeout=10, trust_env=False)


def test_two_workers_serve_pages_lookups_and_each_others_cursors(two_workers: Server) -> None:
    assert len([pid for pid in two_workers.workers() if alive(pid)]) >= 2
    # A keyset walk, each page on a new connection: cursors minted by either worker.
    seen: list[str] = []
    url = f"{two_workers.base}/v1/flights?carrier=UA&destination=IAH&limit={PAGE}"
    etags: dict[str, str] = {}
    while url:
        page = fresh_get(url)
        assert page.status_code == 200, page.text
        seen += [flight["flight_id"] for flight in page.json()["data"]]
        etags[url] = page.headers["etag"]
        next_link = page.links.get("next", {}).get("url")
        url = httpx.URL(two_workers.base).join(next_link).__str__() if next_link else ""
    assert seen == [flight_id(n) for n in range(FLIGHTS)]
    # Point lookups, and the same page's ETag whichever worker answers it.
    for n in range(0, FLIGHTS, FLIGHTS // 5):
        found = fresh_get(f"{two_workers.base}/v1/flights/{flight_id(n)}")
        assert found.status_code == 200
        assert found.json()["flight_id"] == flight_id(n)
    first_page = next(iter(etags))
    for _ in range(FRESH_CONNECTIONS):
        assert fresh_get(first_page).headers["etag"] == etags[first_page]
    served = two_workers.requests_per_pid("/v1/flights")
    assert len([pid for pid, count in served.items() if count]) == 2, served


def test_metrics_count_every_workers_requests(two_workers: Server) -> None:
    route = "/v1/flights/{flight_id}"
    before = two_workers.requests_per_pid(route)
    for n in range(FRESH_CONNECTIONS):
        assert fresh_get(f"{two_workers.base}/v1/flights/{flight_id(n)}").status_code == 200
    after = two_workers.settled_requests_per_pid(route, sum(before.values()) + FRESH_CONNECTIONS)
    served = {pid: count - before.get(pid, 0.0) for pid, count in after.items()}
    assert sum(served.values()) == FRESH_CONNECTIONS
    assert len([count for count in served.values() if count]) == 2, served
    total = sum(after.values())
    # Each scrape reaches one worker and reports them all.
    sample = 'aeroflow_http_requests_total{method="GET",route="/v1/flights/{flight_id}"'
    for _ in range(6):
        text = fresh_get(f"{two_workers.base}/metrics").text
        lines = [line for line in text.splitlines() if line.startswith(sample)]
        assert lines == [f'{sample},status_class="2xx"}} {total}']
        assert 'aeroflow_build_info{version="' in text
        assert text.count("aeroflow_build_info{") == 1
        assert "process_resident_memory_bytes " in text


def test_the_workers_open_the_store_read_only(two_workers: Server, shared_store: Path) -> None:
    # Another process may read the file meanwhile; none may write it.
    reader = DuckDBFlightStore(shared_store, read_only=True, read_model=False)
    try:
        assert reader.get_flight(flight_id(0)) is not None
    finally:
        reader.close()
    with pytest.raises(StorageUnavailableError):
        DuckDBFlightStore(shared_store, read_model=False)
    # The read-only role has no write path at all.
    pushed = httpx.post(f"{two_workers.base}/pubsub/push", json={}, trust_env=False)
    assert pushed.status_code == 404


def test_a_second_server_on_the_port_is_refused(two_workers: Server, shared_store: Path) -> None:
    # Its workers could join the first one's SO_REUSEPORT listeners and share its traffic.
    port = httpx.URL(two_workers.base).port
    assert port is not None
    done = subprocess.run(
        [*AEROFLOW, "api", "--port", str(port), "--db", str(shared_store), "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 3
    assert f"cannot listen on 127.0.0.1:{port}" in done.stdout  # the JSON log
    assert fresh_get(f"{two_workers.base}/readyz").status_code == 200


@pytest.mark.emulator
def test_two_workers_over_bigquery(tmp_path: Path, bigquery_emulator: RunningEmulator) -> None:
    # Each worker builds its own client; there is no file to open read-only.
    from bigquery_emulator import LOCATION, fresh_dataset

    with fresh_dataset(bigquery_emulator) as data:
        data.store().write_batch(scheduled_flights(FLIGHTS))
        server = start(
            tmp_path,
            tmp_path / "unused.duckdb",
            "--workers",
            "2",
            env={
                "AEROFLOW_STORAGE_BACKEND": "bigquery",
                "AEROFLOW_GCP_PROJECT": data.project,
                "AEROFLOW_BIGQUERY_DATASET": data.dataset,
                "AEROFLOW_BIGQUERY_LOCATION": LOCATION,
                "AEROFLOW_BIGQUERY_API_ENDPOINT": bigquery_emulator.rest_url,
            },
        )
        try:
            for n in range(FRESH_CONNECTIONS):
                found = fresh_get(f"{server.base}/v1/flights/{flight_id(n)}")
                assert found.status_code == 200, found.text
            served = server.requests_per_pid("/v1/flights/{flight_id}")
            assert len([count for count in served.values() if count]) == 2, served
        finally:
            stop(server.process)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stopping_the_supervisor_stops_every_worker(
    tmp_path: Path, published: Path, sig: int
) -> None:
    # The worker count from the settings this time.
    server = start(tmp_path, published, env={"AEROFLOW_API_WORKERS": "2"})
    workers = server.workers()
    assert len(workers) >= 2
    assert stop(server.process, sig) == 0
    assert wait_gone(workers) == []
    left = list(server.metrics_root.glob("aeroflow-metrics-*"))
    assert left == [], "the workers' metrics directory was left behind"


def test_a_killed_supervisor_takes_its_workers_along(tmp_path: Path, published: Path) -> None:
    server = start(tmp_path, published, "--workers", "2")
    workers = server.workers()
    server.process.kill()
    server.process.wait()
    assert wait_gone(workers) == [], "workers outlived their supervisor"


def test_one_process_serves_the_file_read_only(tmp_path: Path, published: Path) -> None:
    server = start(tmp_path, published)
    try:
        assert fresh_get(f"{server.base}/v1/flights/{flight_id(3)}").status_code == 200
        reader = DuckDBFlightStore(published, read_only=True, read_model=False)
        reader.close()
    finally:
        stop(server.process)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_file_it_cannot_serve_is_one_clear_error(tmp_path: Path, workers: str) -> None:
    missing = tmp_path / "missing.duckdb"
    done = subprocess.run(
        [*AEROFLOW, "api", "--port", str(free_port()), "--db", str(missing), "--workers", workers],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "aeroflow api cannot serve the store: no DuckDB database at" in done.stderr
    assert "Traceback" not in done.stderr
    assert not missing.exists()
