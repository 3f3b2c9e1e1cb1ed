"""Fixtures of the API suite: a store per backend, seeded through ``write_batch``.

``store_factory`` is parameterised by backend. Each backend registers an opener in
``STORE_OPENERS``; the whole suite then runs once per backend. To add one (e.g. BigQuery
against the emulator), add an opener and a ``pytest.param`` to ``BACKENDS`` (with a skip
mark where the backend cannot run).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient

from aeroflow.api.app import create_app
from aeroflow.settings import Settings
from aeroflow.storage.port import FlightStore, WriteBatch

from .flightdata import Dataset, build_dataset
from .support import AppFactory, StoreFactory

StoreOpener = Callable[[Path, pytest.FixtureRequest], FlightStore]


def _open_duckdb(directory: Path, request: pytest.FixtureRequest) -> FlightStore:
    from aeroflow.storage.duckdb import DuckDBFlightStore

    return DuckDBFlightStore(directory / "aeroflow.duckdb", threads=2)


def _open_bigquery(directory: Path, request: pytest.FixtureRequest) -> FlightStore:
    # A fresh dataset on the session's BigQuery emulator (tests/bigquery_emulator.py), which
    # skips these tests with the reason when the emulator is not installed.
    from bigquery_emulator import emulator_store

    return emulator_store(request.getfixturevalue("bigquery_emulator"))


STORE_OPENERS: dict[str, StoreOpener] = {"duckdb": _open_duckdb, "bigquery": _open_bigquery}
BACKENDS = [
    pytest.param("duckdb", id="duckdb"),
    pytest.param("bigquery", id="bigquery", marks=pytest.mark.emulator),
]


@pytest.fixture(scope="session", params=BACKENDS)
def store_factory(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StoreFactory]:
    """Opens a fresh, empty store of this backend and writes the given batches through the
    real write path (``FlightStore.write_batch``)."""
    opener = STORE_OPENERS[request.param]
    opened: list[FlightStore] = []

    def make(batches: Sequence[WriteBatch]) -> FlightStore:
        store = opener(tmp_path_factory.mktemp(f"store-{request.param}"), request)
        opened.append(store)
        for batch in batches:
            store.write_batch(batch)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture(scope="session")
def dataset() -> Dataset:
    return build_dataset()


@pytest.fixture(scope="session")
def seeded_store(store_factory: StoreFactory, dataset: Dataset) -> FlightStore:
    """Shared by the read-only tests: nothing may write to it."""
    return store_factory(dataset.batches)


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings(environment="test", cursor_secret="api-test-cursor-secret")


@pytest.fixture(scope="session")
def make_app(settings: Settings) -> AppFactory:
    def make(
        store: FlightStore,
        *,
        routers: Sequence[APIRouter] = (),
        app_settings: Settings | None = None,
    ) -> FastAPI:
        return create_app(app_settings or settings, store, routers=routers)

    return make


@pytest.fixture(scope="session")
def client(make_app: AppFactory, seeded_store: FlightStore) -> Iterator[TestClient]:
    with TestClient(make_app(seeded_store)) as test_client:
        yield test_client
