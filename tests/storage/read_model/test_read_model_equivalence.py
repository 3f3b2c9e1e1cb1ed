"""The read model answers exactly as DuckDB does, whatever was written.

Two real stores get the same random writes (new flights, newer, older and tied events for
existing ones, redelivered message ids): one answers from SQL, the other from the read model,
tuned so that tiny batches already freeze the tail into runs and merge them. After every write
both answer the same random queries (every filter, both orders, keyset pages, limits 1..1000)
and point lookups, compared value by value and type by type.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from storage_factories import accepted, flight_filters, make_event

from aeroflow.domain.events import FlightStatus
from aeroflow.storage.duckdb import DuckDBFlightStore
from aeroflow.storage.port import (
    FlightPage,
    FlightPageJson,
    FlightQuery,
    Keyset,
    SortOrder,
    WriteBatch,
)
from aeroflow.storage.read_model import Tuning

CARRIERS = ("UA", "AA", "9E")
ORIGINS = {"EWR": -5, "JFK": -5, "LAX": -8}  # UTC offsets in winter
DESTINATIONS = ("IAH", "MIA", "ORD")
DAY = datetime(2013, 1, 7)
EPOCH = datetime(2013, 1, 1, tzinfo=UTC)


@st.composite
def messages(draw: st.DrawFn) -> Any:
    """One accepted message for a flight from a small pool, so flights get several events."""
    origin = draw(st.sampled_from(sorted(ORIGINS)))
    # Few distinct departures: ties on scheduled_departure are common, as in real schedules.
    departure = DAY + timedelta(
        days=draw(st.integers(0, 2)), hours=draw(st.sampled_from([6, 7])), minutes=30
    )
    status = draw(st.sampled_from(list(FlightStatus)))
    dep_delay = draw(st.integers(-10, 90))
    event = make_event(
        carrier=draw(st.sampled_from(CARRIERS)),
        flight_number=draw(st.integers(1, 4)),
        origin=origin,
        destination=draw(st.sampled_from(DESTINATIONS)),
        departure_local=departure,
        offset=timezone(timedelta(hours=ORIGINS[origin])),
        duration=timedelta(minutes=draw(st.sampled_from([75, 200, 200]))),
        status=status,
        dep_delay=dep_delay,
        arr_delay=dep_delay + draw(st.integers(-5, 20)),
        # Few event times: newer, older and tied events for the same flight.
        event_time=EPOCH + timedelta(hours=draw(st.integers(0, 3))),
        tail_number=draw(st.sampled_from([None, "N14228", "N24211"])),
        distance_miles=draw(st.integers(100, 2600)),
        air_time_minutes=draw(st.sampled_from([None, 45, 227])),
    )
    return accepted(
        event,
        f"m{draw(st.integers(0, 60))}",  # ids repeat: redeliveries
        publish_time=EPOCH + timedelta(seconds=draw(st.integers(0, 2))),
        # Sub-second ingest times: packed columns must keep microseconds.
        ingest_time=EPOCH + timedelta(days=400, microseconds=draw(st.integers(0, 10**7))),
    )


instants = st.builds(
    lambda day, hour, offset: (
        datetime(2013, 1, 7, tzinfo=UTC) + timedelta(days=day, hours=hour)
    ).astimezone(timezone(timedelta(hours=offset))),
    st.integers(-1, 3),
    st.sampled_from([0, 11, 11.5, 12, 14, 15.5, 16, 24]),
    st.sampled_from([0, -5, 3]),
)
filters = flight_filters(
    carriers=[*CARRIERS, "ZZ"],
    origins=[*ORIGINS, "SFO"],
    destinations=[*DESTINATIONS, "XXX"],
    departures=instants,
    min_dep_delays=st.integers(-20, 100),
)
flight_ids = st.sampled_from(
    [
        "UA0001-EWR-20130107",
        "AA0004-LAX-20130108",
        "9E0002-JFK-20130109",
        "UA0003-JFK-20130107",
        "UA0001-EWR-2013010",  # not an id's shape: compared as text
        "ua0001-EWR-20130107",
        "",
        "ZZZZ",
    ]
)
keysets = st.builds(Keyset, scheduled_departure=instants, flight_id=flight_ids)
queries = st.builds(
    FlightQuery,
    filter=filters,
    sort=st.sampled_from(list(SortOrder)),
    limit=st.sampled_from([1, 2, 3, 1000]) | st.integers(1, 1000),
    after=st.none() | keysets,
)
tunings = st.builds(
    Tuning,
    freeze_rows=st.integers(1, 8),
    merge_ratio=st.integers(1, 4),
    background_merges=st.just(False),
)


def shape(page: FlightPage) -> list[tuple[Any, ...]]:
    """Values with their types and zones: equal datetimes in other zones would compare equal."""

    def typed(value: Any) -> tuple[Any, ...]:
        zone = value.tzinfo if isinstance(value, datetime) else None
        return (value, type(value), zone)

    rows = [tuple(typed(v) for v in dataclasses.astuple(f)) for f in page.flights]
    return [*rows, (page.next,)]


@dataclasses.dataclass
class Pair:
    sql: DuckDBFlightStore
    model: DuckDBFlightStore

    def same_page(self, query: FlightQuery) -> FlightPage | None:
        try:
            expected = self.sql.list_flights(query)
        except ValueError as exc:
            with pytest.raises(ValueError, match=re.escape(str(exc))):
                self.model.list_flights(query)
            with pytest.raises(ValueError, match=re.escape(str(exc))):
                self.model.list_flights_json(query)
            return None
        assert shape(self.model.list_flights(query)) == shape(expected), query
        # The page the model writes as JSON itself: byte for byte the SQL page serialised.
        assert self.model.list_flights_json(query) == FlightPageJson.of(expected), query
        return expected

    def same_walk(self, query: FlightQuery) -> None:
        """The query's pages, following each page's keyset, up to a few pages."""
        for _ in range(4):
            page = self.same_page(query)
            if page is None or page.next is None:
                return
            query = dataclasses.replace(query, after=page.next)

    def same_lookups(self, flight_ids: list[str]) -> None:
        for flight_id in flight_ids:
            expected = self.sql.get_flight(flight_id)
            found = self.model.get_flight(flight_id)
            assert (found is None) == (expected is None), flight_id
            if expected is not None and found is not None:
                assert shape(FlightPage([found], None)) == shape(FlightPage([expected], None))


_counter = itertools.count()


def stores(root: Path, tuning: Tuning) -> Iterator[Pair]:
    directory = root / f"example-{next(_counter)}"
    sql = DuckDBFlightStore(directory / "sql.duckdb", read_model=False)
    model = DuckDBFlightStore(directory / "model.duckdb", read_model=True, read_model_tuning=tuning)
    try:
        yield Pair(sql, model)
    finally:
        sql.close()
        model.close()


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    tuning=tunings,
    batches=st.lists(st.lists(messages(), min_size=1, max_size=10), min_size=1, max_size=6),
    asked=st.lists(queries, min_size=3, max_size=3),
)
def test_model_answers_as_duckdb_after_every_write(
    tmp_path: Path, tuning: Tuning, batches: list[list[Any]], asked: list[FlightQuery]
) -> None:
    for pair in stores(tmp_path, tuning):
        assert not pair.model.reads_block
        known: list[str] = []
        for batch in batches:
            expected = pair.sql.write_batch(WriteBatch(accepted=batch))
            assert pair.model.write_batch(WriteBatch(accepted=batch)) == expected
            known.extend(m.event.flight_id for m in batch)
            for query in asked:
                pair.same_walk(query)
            # Everything, in pages of 3 both ways: every row of every run and the tail.
            for order in SortOrder:
                pair.same_walk(FlightQuery(sort=order, limit=3))
            pair.same_lookups([*known, "UA0009-EWR-20130107", "nonsense"])
        # Still the model answering: had it given up, DuckDB would have answered everything.
        assert not pair.model.reads_block
