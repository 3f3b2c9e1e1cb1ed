"""Fixtures of the security suite: one seeded DuckDB store, read-only, shared by all tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from security_support import sample_events, seed_batch

from aeroflow.domain.events import FlightEvent
from aeroflow.storage.duckdb import DuckDBFlightStore
from aeroflow.storage.port import FlightStore


@pytest.fixture(scope="session")
def events() -> list[FlightEvent]:
    return sample_events()


@pytest.fixture(scope="session")
def store(
    tmp_path_factory: pytest.TempPathFactory, events: list[FlightEvent]
) -> Iterator[FlightStore]:
    """Nothing may write to it: the tests share it."""
    opened = DuckDBFlightStore(tmp_path_factory.mktemp("security") / "aeroflow.duckdb", threads=2)
    opened.write_batch(seed_batch(events))
    yield opened
    opened.close()
