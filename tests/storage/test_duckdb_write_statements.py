"""The rows DuckDB holds after write_batch, read back from the file with SQL (not through the
read model): flights overwritten in place keep one row each, both lookups of the newest stored
state (a few flights and many) find every stored flight, and mixed batches of events, poison
and redeliveries are stored exactly once."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from storage_factories import accepted, make_event, query_db, rejected

from aeroflow.domain.events import FlightStatus
from aeroflow.domain.schema import FLIGHTS
from aeroflow.storage.duckdb import DuckDBFlightStore
from aeroflow.storage.duckdb_rows import event_rows
from aeroflow.storage.port import AcceptedMessage, RejectedMessage, WriteBatch

T0 = datetime(2013, 1, 1, 12, 0, tzinfo=UTC)
_STATUSES = (FlightStatus.SCHEDULED, FlightStatus.DEPARTED, FlightStatus.ARRIVED)


def _flights_table(path: Path) -> dict[str, tuple[object, ...]]:
    columns = ", ".join(FLIGHTS.column_names)
    rows = query_db(path, f"SELECT {columns} FROM flights")  # noqa: S608 - schema names only
    by_id = {str(row[0]): row for row in rows}
    assert len(by_id) == len(rows), "a flight has more than one row"
    return by_id


def _expected_row(message: AcceptedMessage) -> tuple[object, ...]:
    """The flights row of ``message`` as the write path derives it (checked in test_duckdb_rows
    against the domain's properties)."""
    table = event_rows([message]).flights_rows([0])
    return tuple(table.column(name)[0].as_py() for name in FLIGHTS.column_names)


@pytest.mark.parametrize("flights", [3, 64, 65, 300], ids=lambda n: f"{n}-flights")
def test_every_stored_flight_a_batch_beats_is_overwritten_in_place(
    store: DuckDBFlightStore, db_path: Path, flights: int
) -> None:
    # Up to 64 flights the stored state is looked up one way, above it another: both must
    # find every flight, over several departure days.
    def departure(n: int) -> datetime:
        return datetime(2013, 1, 1, 5) + timedelta(days=n % 5)

    def events(status: FlightStatus) -> list[AcceptedMessage]:
        return [
            accepted(
                make_event(
                    flight_number=n,
                    departure_local=departure(n),
                    status=status,
                    dep_delay=n % 30,
                ),
                f"{status.value}-{n}",
            )
            for n in range(1, flights + 1)
        ]

    store.write_batch(WriteBatch(accepted=events(FlightStatus.SCHEDULED)))
    departed = events(FlightStatus.DEPARTED)
    # An older event in the same batch as a newer one for other flights: it must lose.
    stale = accepted(
        make_event(
            flight_number=1, departure_local=departure(1), event_time=T0 - timedelta(days=30)
        ),
        "stale-1",
    )

    result = store.write_batch(WriteBatch(accepted=[*departed, stale]))

    assert result.stored == flights + 1
    table = _flights_table(db_path)
    assert len(table) == flights
    for message in departed:
        assert table[message.event.flight_id] == _expected_row(message)


def test_a_batch_of_new_flights_and_replaced_ones_reports_all_to_the_read_model(
    db_path: Path,
) -> None:
    applied: list[set[str]] = []
    store = DuckDBFlightStore(db_path, read_model=False)
    store._flights_committed = lambda rows: applied.append(
        set(rows.column("flight_id").to_pylist())
    )
    try:
        first = [accepted(make_event(flight_number=n), f"s-{n}") for n in (1, 2)]
        store.write_batch(WriteBatch(accepted=first))
        second = [
            accepted(make_event(flight_number=2, status=FlightStatus.DEPARTED), "d-2"),
            accepted(make_event(flight_number=3), "s-3"),
            # Older than the stored scheduled event: not upserted, not reported.
            accepted(make_event(flight_number=1, event_time=T0 - timedelta(days=30)), "o-1"),
        ]
        store.write_batch(WriteBatch(accepted=second))
        store.write_batch(WriteBatch(accepted=second))  # a replay upserts nothing
    finally:
        store.close()

    assert applied == [
        {"UA0001-EWR-20130101", "UA0002-EWR-20130101"},
        {"UA0002-EWR-20130101", "UA0003-EWR-20130101"},
    ]


@st.composite
def _mixed_deliveries(
    draw: st.DrawFn,
) -> tuple[list[AcceptedMessage], list[RejectedMessage], list[WriteBatch]]:
    """Events of a few flights plus poison messages, redelivered in random batches."""
    events: list[AcceptedMessage] = []
    for flight_number in range(1, draw(st.integers(1, 4)) + 1):
        for i in range(draw(st.integers(1, 4))):
            event = make_event(
                flight_number=flight_number,
                departure_local=datetime(2013, 1, 1, 5) + timedelta(days=flight_number % 2),
                status=draw(st.sampled_from(_STATUSES)),
                dep_delay=draw(st.integers(-10, 60)),
                arr_delay=draw(st.integers(-10, 60)),
                event_time=T0 + timedelta(minutes=draw(st.integers(0, 3))),
            )
            publish = T0 + timedelta(seconds=draw(st.integers(0, 2)))
            events.append(accepted(event, f"e-{flight_number}-{i}", publish_time=publish))
    poison = [rejected(f"r-{i}") for i in range(draw(st.integers(0, 3)))]
    deliveries: list[AcceptedMessage | RejectedMessage] = [*events, *poison]
    deliveries += draw(st.lists(st.sampled_from(deliveries), max_size=8))
    deliveries = draw(st.permutations(deliveries))
    cuts = sorted(draw(st.lists(st.integers(0, len(deliveries)), max_size=4)))
    bounds = [0, *cuts, len(deliveries)]
    batches = []
    for a, b in itertools.pairwise(bounds):
        part = deliveries[a:b]
        if part:
            batches.append(
                WriteBatch(
                    accepted=[m for m in part if isinstance(m, AcceptedMessage)],
                    rejected=[m for m in part if isinstance(m, RejectedMessage)],
                )
            )
    return events, poison, batches


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DuckDBFlightStore]:
    # One file for all examples (emptied per example); no read model: the file is the subject.
    duck = DuckDBFlightStore(tmp_path_factory.mktemp("statements") / "s.duckdb", read_model=False)
    yield duck
    duck.close()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=_mixed_deliveries())
def test_mixed_redelivered_batches_leave_each_message_once_and_the_newest_row(
    shared_store: DuckDBFlightStore,
    case: tuple[list[AcceptedMessage], list[RejectedMessage], list[WriteBatch]],
) -> None:
    events, poison, batches = case
    store = shared_store
    path = store.path
    query_db(path, "DELETE FROM flight_events; DELETE FROM flights; DELETE FROM rejected_messages")
    # Emptied behind the store's back: its hints must not skip a lookup they would need.
    store._has_rejections = True

    results = [store.write_batch(batch) for batch in batches]

    assert sum(r.stored for r in results) == len(events)
    assert sum(r.rejected for r in results) == len(poison)
    stored_events = query_db(path, "SELECT message_id FROM flight_events")
    assert sorted(row[0] for row in stored_events) == sorted(m.meta.message_id for m in events)
    stored_poison = query_db(path, "SELECT message_id FROM rejected_messages")
    assert sorted(row[0] for row in stored_poison) == sorted(m.meta.message_id for m in poison)
    table = _flights_table(path)
    by_flight: dict[str, list[AcceptedMessage]] = {}
    for message in events:
        by_flight.setdefault(message.event.flight_id, []).append(message)
    assert set(table) == set(by_flight)
    for flight_id, mine in by_flight.items():
        winner = max(
            mine, key=lambda m: (m.event.event_time, m.meta.publish_time, m.meta.message_id)
        )
        assert table[flight_id] == _expected_row(winner)
