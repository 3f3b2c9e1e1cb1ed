"""pytest fixtures for the BigQuery emulator (bqemulator), registered in tests/conftest.py.

One emulator per test session, started on first use on free 127.0.0.1 ports through
scripts/bqemulator_launcher.py with the interpreter of ``.venv-bqemulator`` (``make
bqemulator-venv`` creates it; ``make test`` depends on that, so CI always runs these tests), and
stopped by its PID at the end. Without that venv the tests that need the emulator skip and say
why; an emulator that is installed but fails to start fails the tests instead.

Each test gets a fresh dataset with aeroflow's tables, dropped afterwards.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from aeroflow.storage.bigquery import BigQueryFlightStore
from aeroflow.storage.bigquery_setup import create_dataset_and_tables

REPO = Path(__file__).resolve().parents[1]
LAUNCHER = REPO / "scripts" / "bqemulator_launcher.py"
EMULATOR_PYTHON = Path(
    os.environ.get("AEROFLOW_BQEMULATOR_PYTHON", REPO / ".venv-bqemulator" / "bin" / "python")
)
PROJECT = "aeroflow-test"
LOCATION = "EU"
START_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class BigQueryEmulator:
    rest_url: str
    grpc_target: str
    project: str
    pid: int

    def client(self) -> bigquery.Client:
        return bigquery.Client(
            project=self.project,
            credentials=AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=self.rest_url),
            location=LOCATION,
        )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"bqemulator exited with {process.returncode} at start-up:\n{_tail(log_path)}"
            )
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"bqemulator not healthy after {START_TIMEOUT_SECONDS}s:\n{_tail(log_path)}")


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def bigquery_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BigQueryEmulator]:
    if not EMULATOR_PYTHON.exists():
        pytest.skip(
            f"BigQuery emulator not installed: {EMULATOR_PYTHON} is missing "
            "(create it with `make bqemulator-venv`; `make test` does so)"
        )
    log_path = tmp_path_factory.mktemp("bqemulator") / "bqemulator.log"
    rest_port, grpc_port = _free_port(), _free_port()
    command = [
        str(EMULATOR_PYTHON),
        str(LAUNCHER),
        "--rest-host", "127.0.0.1",
        "--rest-port", str(rest_port),
        "--grpc-host", "127.0.0.1",
        "--grpc-port", str(grpc_port),
        "--project", PROJECT,
        "--ephemeral",
        "--log-level", "warning",
        "--log-format", "console",
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    rest_url = f"http://127.0.0.1:{rest_port}"
    try:
        _wait_healthy(rest_url, process, log_path)
        yield BigQueryEmulator(
            rest_url=rest_url,
            grpc_target=f"127.0.0.1:{grpc_port}",
            project=PROJECT,
            pid=process.pid,
        )
    finally:
        _stop(process)


@dataclass(frozen=True)
class BigQueryDataset:
    client: bigquery.Client
    project: str
    dataset: str

    def table(self, name: str) -> str:
        return f"{self.project}.{self.dataset}.{name}"

    def store(self, *, job_timeout_seconds: float = 30.0) -> BigQueryFlightStore:
        return BigQueryFlightStore(
            self.client,
            dataset=self.dataset,
            location=LOCATION,
            max_bytes_billed=10 * 1024**3,
            job_timeout_seconds=job_timeout_seconds,
            project=self.project,
        )

    def query(self, sql: str) -> list[dict[str, object]]:
        return [dict(row.items()) for row in self.client.query_and_wait(sql, location=LOCATION)]

    def select(self, columns: str, table: str) -> list[dict[str, object]]:
        """Read a table directly, past the adapter (test code: names are constants)."""
        return self.query(f"SELECT {columns} FROM `{self.table(table)}`")  # noqa: S608

    def count(self, table: str) -> int:
        value = self.select("COUNT(*) AS n", table)[0]["n"]
        assert isinstance(value, int)
        return value


@contextlib.contextmanager
def fresh_dataset(emulator: BigQueryEmulator) -> Iterator[BigQueryDataset]:
    """A new dataset with aeroflow's tables, dropped on exit."""
    client = emulator.client()
    dataset = f"aeroflow_{uuid.uuid4().hex[:12]}"
    create_dataset_and_tables(client, dataset=dataset, location=LOCATION)
    try:
        yield BigQueryDataset(client=client, project=emulator.project, dataset=dataset)
    finally:
        client.delete_dataset(f"{emulator.project}.{dataset}", delete_contents=True)
        client.close()


@pytest.fixture
def bigquery_dataset(bigquery_emulator: BigQueryEmulator) -> Iterator[BigQueryDataset]:
    with fresh_dataset(bigquery_emulator) as dataset:
        yield dataset


@pytest.fixture
def bigquery_store(bigquery_dataset: BigQueryDataset) -> BigQueryFlightStore:
    # The dataset fixture owns the client and closes it.
    return bigquery_dataset.store()
