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
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from google.cloud import bigquery

from aeroflow.devtools.bigquery_emulator import RunningEmulator, emulator_python, running_emulator
from aeroflow.storage.bigquery import BigQueryFlightStore
from aeroflow.storage.bigquery_setup import create_dataset_and_tables

PROJECT = "aeroflow-test"
LOCATION = "EU"

BigQueryEmulator = RunningEmulator


@pytest.fixture(scope="session")
def bigquery_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningEmulator]:
    python = emulator_python()
    if not python.exists():
        pytest.skip(
            f"BigQuery emulator not installed: {python} is missing "
            "(`make bqemulator-venv` creates it, and `make test` runs that first)"
        )
    log_path = tmp_path_factory.mktemp("bqemulator") / "bqemulator.log"
    with running_emulator(PROJECT, log_path) as emulator:
        yield emulator


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
    client = emulator.client(location=LOCATION)
    dataset = f"aeroflow_{uuid.uuid4().hex[:12]}"
    create_dataset_and_tables(client, dataset=dataset, location=LOCATION)
    try:
        yield BigQueryDataset(client=client, project=emulator.project, dataset=dataset)
    finally:
        client.delete_dataset(f"{emulator.project}.{dataset}", delete_contents=True)
        client.close()


def emulator_store(emulator: BigQueryEmulator) -> BigQueryFlightStore:
    """A store over a new dataset, with a client of its own that ``close()`` closes. The
    dataset stays until the emulator stops (it keeps everything in memory)."""
    client = emulator.client(location=LOCATION)
    dataset = f"aeroflow_{uuid.uuid4().hex[:12]}"
    create_dataset_and_tables(client, dataset=dataset, location=LOCATION)
    return BigQueryFlightStore(
        client,
        dataset=dataset,
        location=LOCATION,
        max_bytes_billed=10 * 1024**3,
        job_timeout_seconds=30.0,
        project=emulator.project,
    )


@pytest.fixture
def bigquery_dataset(bigquery_emulator: BigQueryEmulator) -> Iterator[BigQueryDataset]:
    with fresh_dataset(bigquery_emulator) as dataset:
        yield dataset


@pytest.fixture
def bigquery_store(bigquery_dataset: BigQueryDataset) -> BigQueryFlightStore:
    # The dataset fixture owns the client and closes it.
    return bigquery_dataset.store()
