from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aeroflow.storage.duckdb import DuckDBFlightStore


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    # A directory that does not exist yet: the store must create it.
    return tmp_path / "data" / "aeroflow.duckdb"


@pytest.fixture
def store(db_path: Path) -> Iterator[DuckDBFlightStore]:
    duck = DuckDBFlightStore(db_path)
    yield duck
    duck.close()
