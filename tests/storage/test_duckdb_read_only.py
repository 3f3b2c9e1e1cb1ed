"""DuckDBFlightStore opened read-only (``aeroflow api``): it serves a published snapshot of a
real store file, refuses writes, creates nothing, and shares the file with other read-only
processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from storage_factories import accepted, make_event

from aeroflow.storage.duckdb import DuckDBFlightStore, NotAStoreError, ReadOnlyStoreError
from aeroflow.storage.port import FlightQuery, StorageUnavailableError, WriteBatch

FLIGHT_ID = "UA1545-EWR-20130101"

# Another process opens the same file read-only while the test's store holds it: DuckDB's
# shared lock, not a thread of this process (one process would share one database instance).
_OTHER_READER = """
import sys
from pathlib import Path
from aeroflow.storage.duckdb import DuckDBFlightStore
store = DuckDBFlightStore(Path(sys.argv[1]), read_only=True)
flight = store.get_flight(sys.argv[2])
store.close()
print(flight.flight_id if flight else "missing")
"""


@pytest.fixture
def published(tmp_path: Path) -> Path:
    """A store file written through the store, then closed: the snapshot to serve."""
    path = tmp_path / "published.duckdb"
    writer = DuckDBFlightStore(path)
    writer.write_batch(WriteBatch(accepted=[accepted(make_event(), "m-1")]))
    writer.close()
    return path


@pytest.mark.parametrize("read_model", [True, False])
def test_serves_the_snapshot(published: Path, read_model: bool) -> None:
    store = DuckDBFlightStore(published, read_only=True, read_model=read_model)
    try:
        flight = store.get_flight(FLIGHT_ID)
        page = store.list_flights(FlightQuery(limit=10))
        store.ping()
    finally:
        store.close()
    assert flight is not None
    assert flight.flight_id == FLIGHT_ID
    assert [f.flight_id for f in page.flights] == [FLIGHT_ID]


def test_refuses_writes_and_leaves_the_file_as_it_was(published: Path) -> None:
    before = published.read_bytes()
    store = DuckDBFlightStore(published, read_only=True)
    try:
        with pytest.raises(ReadOnlyStoreError, match="read-only"):
            store.write_batch(WriteBatch(accepted=[accepted(make_event(flight_number=9), "m-2")]))
        assert store.write_version == 0
        assert store.get_flight("UA9-EWR-20130101") is None
    finally:
        store.close()
    assert published.read_bytes() == before
    assert not published.with_name(published.name + ".wal").exists()


def test_other_processes_open_the_file_read_only_meanwhile(published: Path) -> None:
    store = DuckDBFlightStore(published, read_only=True)
    try:
        other = subprocess.run(
            [sys.executable, "-c", _OTHER_READER, str(published), FLIGHT_ID],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert other.stdout.strip() == FLIGHT_ID
        # ... and no process may write it while a reader holds it.
        with pytest.raises(StorageUnavailableError):
            DuckDBFlightStore(published)
    finally:
        store.close()


def test_a_missing_file_is_refused_and_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "aeroflow.duckdb"
    with pytest.raises(NotAStoreError, match="no DuckDB database"):
        DuckDBFlightStore(missing, read_only=True)
    assert not missing.parent.exists()


def test_a_database_without_the_schema_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.duckdb"
    with duckdb.connect(str(other)) as connection:
        connection.execute("CREATE TABLE flights (flight_id VARCHAR)")
    with pytest.raises(NotAStoreError, match=r"not an aeroflow store \(missing flight_events\."):
        DuckDBFlightStore(other, read_only=True)
    with duckdb.connect(str(other), read_only=True) as connection:
        tables = connection.execute("SELECT table_name FROM information_schema.tables").fetchall()
    assert tables == [("flights",)], "the read-only open created or migrated something"


def test_a_file_that_is_not_duckdb_is_refused(tmp_path: Path) -> None:
    text = tmp_path / "notes.duckdb"
    text.write_text("not a database\n")
    with pytest.raises(StorageUnavailableError, match="not a valid DuckDB database"):
        DuckDBFlightStore(text, read_only=True)
