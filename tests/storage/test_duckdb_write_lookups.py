"""The write path asks the read model, when it is on, which of a batch's flights may be stored,
and looks up only those in ``flights``: the rows DuckDB ends up with must be exactly those of a
store that looks every flight up (the model off), whatever the batches."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from storage_factories import accepted, make_event, query_db

from aeroflow.domain.events import FlightStatus
from aeroflow.domain.schema import FLIGHTS
from aeroflow.storage.duckdb import DuckDBFlightStore
from aeroflow.storage.port import AcceptedMessage, WriteBatch, WriteResult
from aeroflow.storage.read_model import Tuning

T0 = datetime(2013, 1, 1, 12, 0, tzinfo=UTC)
_STATUSES = (FlightStatus.SCHEDULED, FlightStatus.DEPARTED, FlightStatus.ARRIVED)
# Small runs, merged in the writer's thread: the flights spread over runs and the tail.
_TUNING = Tuning(freeze_rows=4, merge_ratio=2, background_merges=False)


def _flights_table(path: Path) -> list[tuple[object, ...]]:
    columns = ", ".join(FLIGHTS.column_names)
    return sorted(query_db(path, f"SELECT {columns} FROM flights"))  # noqa: S608 - schema names


def _count(path: Path, table: str) -> int:
    return int(query_db(path, f"SELECT count(*) FROM {table}")[0][0])  # noqa: S608 - constant


def _event(
    number: int, n: int, *, minutes: int = 0, status: FlightStatus = FlightStatus.SCHEDULED
) -> AcceptedMessage:
    event = make_event(
        flight_number=number,
        departure_local=datetime(2013, 1, 1, 5) + timedelta(days=number % 3),
        status=status,
        dep_delay=number % 20,
        event_time=T0 + timedelta(minutes=minutes),
    )
    return accepted(event, f"e-{number}-{n}")


@st.composite
def _batches(draw: st.DrawFn) -> list[WriteBatch]:
    """Events of up to 12 flights, some redelivered, in any order, cut into batches."""
    events = [
        _event(
            number,
            n,
            minutes=draw(st.integers(0, 3)),
            status=draw(st.sampled_from(_STATUSES)),
        )
        for number in range(1, draw(st.integers(1, 12)) + 1)
        for n in range(draw(st.integers(1, 3)))
    ]
    deliveries = [*events, *draw(st.lists(st.sampled_from(events), max_size=6))]
    deliveries = draw(st.permutations(deliveries))
    cuts = sorted(draw(st.lists(st.integers(0, len(deliveries)), max_size=6)))
    bounds = [0, *cuts, len(deliveries)]
    return [WriteBatch(accepted=deliveries[a:b]) for a, b in itertools.pairwise(bounds) if b > a]


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[DuckDBFlightStore, DuckDBFlightStore]]:
    with_model = DuckDBFlightStore(
        tmp_path / "model.duckdb", read_model=True, read_model_tuning=_TUNING
    )
    without = DuckDBFlightStore(tmp_path / "sql.duckdb", read_model=False)
    yield with_model, without
    with_model.close()
    without.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=_batches())
def test_lookups_narrowed_by_the_model_store_what_full_lookups_store(
    tmp_path_factory: pytest.TempPathFactory, batches: list[WriteBatch]
) -> None:
    root = tmp_path_factory.mktemp("lookups")
    with_model = DuckDBFlightStore(root / "m.duckdb", read_model=True, read_model_tuning=_TUNING)
    without = DuckDBFlightStore(root / "s.duckdb", read_model=False)
    try:
        for batch in batches:
            assert with_model.write_batch(batch) == without.write_batch(batch)
        assert _flights_table(with_model.path) == _flights_table(without.path)
    finally:
        with_model.close()
        without.close()


def test_a_flight_deleted_behind_the_store_is_written_again(
    pair: tuple[DuckDBFlightStore, DuckDBFlightStore],
) -> None:
    # The model still holds the flight: a superset of flights only costs a lookup.
    with_model, _ = pair
    with_model.write_batch(WriteBatch(accepted=[_event(n, 0) for n in range(1, 6)]))
    query_db(with_model.path, "DELETE FROM flights WHERE flight_number = 3")

    late = _event(3, 1, minutes=-60)  # older than the deleted row: it must still be written
    result = with_model.write_batch(WriteBatch(accepted=[late, _event(7, 0)]))

    assert result == WriteResult(stored=2, duplicates=0, rejected=0)
    rows = query_db(with_model.path, "SELECT message_id FROM flights WHERE flight_number = 3")
    assert rows == [("e-3-1",)]
    assert _count(with_model.path, "flights") == 6


def test_a_batch_the_flights_key_refuses_leaves_nothing_behind(
    pair: tuple[DuckDBFlightStore, DuckDBFlightStore],
) -> None:
    # A flight written behind the store's back (never the case in service: this process is
    # the file's only writer) is unknown to the model, so the batch inserts it as new: the
    # primary key refuses it, and the batch's transaction, one statement script, rolls back.
    with_model, _ = pair
    with_model.write_batch(WriteBatch(accepted=[_event(2, 0)]))
    outsider = _event(1, 0).event.flight_id
    query_db(
        with_model.path,
        "INSERT INTO flights SELECT * REPLACE ($id AS flight_id) FROM flights",
        {"id": outsider},
    )

    with pytest.raises(duckdb.ConstraintException):
        with_model.write_batch(WriteBatch(accepted=[_event(1, 1, minutes=5), _event(2, 0)]))

    assert query_db(with_model.path, "SELECT message_id FROM flight_events") == [("e-2-0",)]
    assert _count(with_model.path, "flights") == 2
