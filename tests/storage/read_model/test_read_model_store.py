"""The read model inside a real DuckDB store: fed by writes, rebuilt at open, safe under
concurrent reads, and out of the way when it cannot hold the data."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from storage_factories import accepted, flight_dataset, make_event

from aeroflow.domain.events import FlightStatus
from aeroflow.storage.duckdb import DuckDBFlightStore
from aeroflow.storage.port import (
    FlightFilter,
    FlightPage,
    FlightQuery,
    Keyset,
    SortOrder,
    WriteBatch,
)
from aeroflow.storage.read_model import Tuning

DATASET = flight_dataset(300, seed=7)
FLIGHT_IDS = sorted(DATASET.expected)


def everything(store: DuckDBFlightStore, sort: SortOrder = SortOrder.ASC) -> list[str]:
    """Every flight id, walked in pages of 7 by keyset."""
    found: list[str] = []
    query = FlightQuery(sort=sort, limit=7)
    while True:
        page = store.list_flights(query)
        found.extend(f.flight_id for f in page.flights)
        if page.next is None:
            return found
        query = FlightQuery(sort=sort, limit=7, after=page.next)


@pytest.fixture
def written(tmp_path: Path) -> Path:
    """A store file holding the dataset, written without the model, closed."""
    path = tmp_path / "store.duckdb"
    store = DuckDBFlightStore(path, read_model=False)
    for batch in DATASET.batches(50):
        store.write_batch(batch)
    store.close()
    return path


def test_a_reopened_store_rebuilds_the_model_from_flights(written: Path) -> None:
    tuning = Tuning(load_chunk_rows=13)  # many chunks, combined into one run
    store = DuckDBFlightStore(written, read_model=True, read_model_tuning=tuning)
    try:
        assert not store.reads_block
        for flight_id, expected in DATASET.expected.items():
            assert store.get_flight(flight_id) == expected
        ordered = sorted(
            DATASET.expected.values(), key=lambda f: (f.scheduled_departure, f.flight_id)
        )
        assert everything(store) == [f.flight_id for f in ordered]
        assert everything(store, SortOrder.DESC) == [f.flight_id for f in reversed(ordered)]
    finally:
        store.close()


def test_a_read_after_write_batch_returns_sees_the_write(tmp_path: Path) -> None:
    store = DuckDBFlightStore(tmp_path / "rw.duckdb", read_model=True)
    try:
        scheduled = make_event(status=FlightStatus.SCHEDULED)
        store.write_batch(WriteBatch(accepted=[accepted(scheduled, "m1")]))
        version = store.write_version
        departed = make_event(
            status=FlightStatus.DEPARTED,
            dep_delay=12,
            event_time=scheduled.scheduled_departure + timedelta(minutes=12),
        )
        store.write_batch(WriteBatch(accepted=[accepted(departed, "m2")]))
        assert store.write_version == version + 1
        found = store.get_flight(departed.flight_id)
        assert found is not None
        assert found.status is FlightStatus.DEPARTED
        page = store.list_flights(FlightQuery(FlightFilter(min_dep_delay=10)))
        assert [f.flight_id for f in page.flights] == [departed.flight_id]
        # An older event and a redelivery change nothing, in DuckDB or in the model.
        store.write_batch(
            WriteBatch(accepted=[accepted(scheduled, "m3"), accepted(departed, "m2")])
        )
        assert store.get_flight(departed.flight_id) == found
    finally:
        store.close()


def test_background_merges_keep_every_answer_while_readers_read(tmp_path: Path) -> None:
    tuning = Tuning(freeze_rows=16, merge_ratio=2, background_merges=True)
    sql = DuckDBFlightStore(tmp_path / "sql.duckdb", read_model=False)
    store = DuckDBFlightStore(tmp_path / "model.duckdb", read_model=True, read_model_tuning=tuning)
    problems: list[str] = []
    stop = threading.Event()

    def read() -> None:
        # Between writes any state is fine; a torn one is not: ordered, no flight twice.
        while not stop.is_set():
            ids = everything(store)
            if len(set(ids)) != len(ids):
                problems.append("a flight listed twice")
            flights = [store.get_flight(i) for i in ids[:20]]
            if None in flights:
                problems.append("a listed flight not found")

    readers = [threading.Thread(target=read) for _ in range(2)]
    for reader in readers:
        reader.start()
    try:
        for batch in DATASET.batches(9):
            assert store.write_batch(batch) == sql.write_batch(batch)
    finally:
        stop.set()
        for reader in readers:
            reader.join()
    try:
        assert problems == []
        assert everything(store) == everything(sql)
        assert everything(store, SortOrder.DESC) == everything(sql, SortOrder.DESC)
        for flight_id in FLIGHT_IDS:
            assert store.get_flight(flight_id) == sql.get_flight(flight_id)
    finally:
        sql.close()
        store.close()


def test_bad_queries_fail_as_they_do_on_sql(written: Path) -> None:
    store = DuckDBFlightStore(written, read_model=True)
    try:
        naive = datetime(2013, 1, 1)
        cases = {
            "limit must be at least 1": FlightQuery(limit=0),
            "departure_from must be timezone-aware": FlightQuery(
                FlightFilter(departure_from=naive)
            ),
            "after.scheduled_departure must be timezone-aware": FlightQuery(
                after=Keyset(naive, FLIGHT_IDS[0])
            ),
        }
        for message, query in cases.items():
            with pytest.raises(ValueError, match=message):
                store.list_flights(query)
        unknown = store.list_flights(FlightQuery(FlightFilter(carrier="ZZ")))
        assert unknown == FlightPage(flights=[], next=None)
    finally:
        store.close()


def test_ids_the_model_cannot_key_leave_reads_to_duckdb(written: Path) -> None:
    connection = duckdb.connect(str(written))
    connection.execute(
        "INSERT INTO flights SELECT * REPLACE ('legacy-id' AS flight_id) FROM flights LIMIT 1"
    )
    connection.close()
    store = DuckDBFlightStore(written, read_model=True)
    try:
        assert store.reads_block  # the model is off: SQL answers, blocking
        assert store.get_flight("legacy-id") is not None
        assert "legacy-id" in everything(store)
    finally:
        store.close()
