"""Flights come out of the read model exactly as they went in: every value, type, time zone
and field order, on both the page path and the point-lookup path, for values the sample data
never has (instants before 1970 or far ahead, microseconds, NULL in every nullable column)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aeroflow.domain.events import FlightStatus
from aeroflow.storage.port import Flight, FlightPageJson, FlightQuery, SortOrder
from aeroflow.storage.read_model import FlightReadModel, Tuning, UnsupportedRowsError
from aeroflow.storage.read_model.columns import FlightColumns

_FIELDS = [field.name for field in dataclasses.fields(Flight)]
_INSTANT = pa.timestamp("us", tz="UTC")
SCHEMA = pa.schema(
    [
        ("flight_id", pa.string()),
        ("carrier", pa.string()),
        ("flight_number", pa.int64()),
        ("origin", pa.string()),
        ("destination", pa.string()),
        ("scheduled_departure", _INSTANT),
        ("scheduled_arrival", _INSTANT),
        ("scheduled_departure_local", pa.timestamp("us")),
        ("status", pa.string()),
        ("actual_departure", _INSTANT),
        ("actual_arrival", _INSTANT),
        ("dep_delay_minutes", pa.int64()),
        ("arr_delay_minutes", pa.int64()),
        ("tail_number", pa.string()),
        ("distance_miles", pa.int64()),
        ("air_time_minutes", pa.int64()),
        ("event_time", _INSTANT),
        ("updated_at", _INSTANT),
    ]
)

instants = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(2200, 12, 31), timezones=st.just(UTC)
) | st.sampled_from(
    [
        datetime(1, 2, 1, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(9999, 11, 30, 23, 59, 59, 999_999, tzinfo=UTC),
    ]
)
optional_ints = st.none() | st.integers(-(2**40), 2**40)


@st.composite
def flights(draw: st.DrawFn) -> Flight:
    departure = draw(instants)
    carrier = draw(st.sampled_from(["UA", "AA", "9E"]))
    number = draw(st.integers(0, 9999))
    origin = draw(st.sampled_from(["EWR", "JFK"]))
    day = departure.date()

    def near() -> datetime:
        # Stored relative to the departure in a run: any distance (up to ~11 days, so the
        # extreme instants stay in range), any precision.
        return departure + timedelta(microseconds=draw(st.integers(-(10**12), 10**12)))

    return Flight(
        flight_id=f"{carrier}{number:04d}-{origin}-{day.year:04d}{day.month:02d}{day.day:02d}",
        carrier=carrier,
        flight_number=number,
        origin=origin,
        destination=draw(st.sampled_from(["IAH", "ORD"])),
        scheduled_departure=departure,
        scheduled_arrival=near(),
        scheduled_departure_local=near().replace(tzinfo=None),
        status=draw(st.sampled_from(list(FlightStatus))),
        actual_departure=draw(st.none() | st.just(near())),
        actual_arrival=draw(st.none() | st.just(near())),
        dep_delay_minutes=draw(optional_ints),
        arr_delay_minutes=draw(optional_ints),
        tail_number=draw(st.none() | st.sampled_from(["N14228", "N24211"])),
        distance_miles=draw(st.integers(-(2**40), 2**40)),
        air_time_minutes=draw(optional_ints),
        event_time=near(),
        updated_at=draw(instants),
    )


def table(rows: list[Flight]) -> pa.Table:
    return pa.Table.from_pylist(
        [{**vars(f), "status": f.status.value} for f in rows], schema=SCHEMA
    )


def typed(flight: Flight | None) -> list[tuple[Any, ...]]:
    """Values with their types and zones, in ``__dict__`` order (what orjson serialises)."""
    assert flight is not None
    return [
        (name, value, type(value), value.tzinfo if isinstance(value, datetime) else None)
        for name, value in vars(flight).items()
    ]


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(flights(), min_size=1, max_size=25, unique_by=lambda f: f.flight_id),
    split=st.integers(0, 25),
    freeze_rows=st.integers(1, 30),
)
def test_flights_come_back_exactly_as_written(
    rows: list[Flight], split: int, freeze_rows: int
) -> None:
    model = FlightReadModel(Tuning(freeze_rows=freeze_rows, background_merges=False))
    try:
        # Two batches, so that rows sit in runs and in the tail.
        for batch in (rows[:split], rows[split:]):
            if batch:
                model.apply(table(batch))
        expected = sorted(rows, key=lambda f: (f.scheduled_departure, f.flight_id))
        page = model.list_flights(FlightQuery(limit=1000))
        assert [typed(f) for f in page.flights] == [typed(f) for f in expected]
        for flight in rows:
            assert typed(model.get_flight(flight.flight_id)) == typed(flight)
        # The page written as JSON without Flight objects: the same bytes and keyset, also
        # for pages cut short (a next page) and drawn from runs and the tail together.
        for limit in (1, 2, 7, 1000):
            for order in SortOrder:
                query = FlightQuery(sort=order, limit=limit)
                assert model.list_flights_json(query) == FlightPageJson.of(
                    model.list_flights(query)
                )
    finally:
        model.close()


@settings(max_examples=30, deadline=None)
@given(
    rows=st.lists(flights(), min_size=1, max_size=10, unique_by=lambda f: f.flight_id),
    tail_numbers=st.lists(st.text(max_size=8), min_size=1, max_size=4),
)
def test_page_json_escapes_texts_as_orjson_does(
    rows: list[Flight], tail_numbers: list[str]
) -> None:
    # Quotes, backslashes, control characters and non-ASCII text in the one free-text column.
    rows = [
        dataclasses.replace(f, tail_number=tail_numbers[at % len(tail_numbers)])
        for at, f in enumerate(rows)
    ]
    model = FlightReadModel(Tuning(background_merges=False))
    try:
        model.apply(table(rows))
        query = FlightQuery(limit=1000)
        written = model.list_flights_json(query)
        assert written == FlightPageJson.of(model.list_flights(query))
        assert [f["tail_number"] for f in orjson.loads(written.data)] == [
            f.tail_number for f in sorted(rows, key=lambda f: (f.scheduled_departure, f.flight_id))
        ]
    finally:
        model.close()


def test_a_flight_is_its_fields_and_nothing_else() -> None:
    # The model fills a new Flight's __dict__ instead of calling __init__ (flights._build):
    # the same object only while __init__ does no more than set the fields, in order.
    assert not hasattr(Flight, "__post_init__")
    values: dict[str, Any] = {name: object() for name in _FIELDS}
    assert list(vars(Flight(**values)).items()) == list(values.items())


def test_a_null_in_a_required_column_is_refused_when_applied() -> None:
    row = {
        **dict.fromkeys(_FIELDS),
        "flight_id": "UA0001-EWR-20130101",
        "carrier": "UA",
        "flight_number": 1,
        "origin": "EWR",
        "destination": "IAH",
        "scheduled_departure": datetime(2013, 1, 1, 10, tzinfo=UTC),
        "scheduled_departure_local": datetime(2013, 1, 1, 5),
        "status": "scheduled",
        "distance_miles": 1400,
        "event_time": datetime(2013, 1, 1, tzinfo=UTC),
        "updated_at": datetime(2013, 1, 1, tzinfo=UTC),
    }  # scheduled_arrival is missing
    with pytest.raises(UnsupportedRowsError, match="scheduled_arrival"):
        FlightColumns.from_arrow(pa.Table.from_pylist([row], schema=SCHEMA), {})
