"""The DuckDB write path's Arrow rows: the vectorised derived columns equal the domain's
properties, for any valid event (offsets, midnight, rounding ties, missing actual times)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st
from storage_factories import accepted, make_event, rejected

from aeroflow.domain.events import FlightEvent, FlightStatus
from aeroflow.storage.duckdb_rows import (
    EVENTS_SCHEMA,
    REJECTED_SCHEMA,
    event_rows,
    rejected_rows,
)
from aeroflow.storage.port import AcceptedMessage

# Delays in seconds around the half-minute ties that round() sends to the even minute.
_TIE_SECONDS = st.sampled_from([-90, -30, 0, 29, 30, 31, 90, 150, 3599, 3630])


@st.composite
def _events(draw: st.DrawFn) -> FlightEvent:
    offset = timezone(timedelta(minutes=draw(st.integers(-12 * 60, 14 * 60))))
    local = draw(st.datetimes(datetime(1951, 1, 1), datetime(2098, 12, 31)))
    departure = local.replace(tzinfo=offset)
    arrival = departure + timedelta(seconds=draw(st.integers(60, 24 * 3600)))
    status = draw(st.sampled_from(list(FlightStatus)))
    actual_departure = actual_arrival = None
    if status in (FlightStatus.DEPARTED, FlightStatus.ARRIVED, FlightStatus.DIVERTED):
        seconds = draw(st.one_of(_TIE_SECONDS, st.integers(-23 * 3600, 48 * 3600)))
        actual_departure = departure + timedelta(
            seconds=seconds, microseconds=draw(st.just(0) | st.integers(0, 999_999))
        )
    if status is FlightStatus.ARRIVED:
        assert actual_departure is not None
        late = draw(st.one_of(_TIE_SECONDS, st.integers(-3600, 48 * 3600)))
        actual_arrival = max(
            arrival + timedelta(seconds=late), actual_departure + timedelta(minutes=1)
        )
    return FlightEvent(
        carrier=draw(st.sampled_from(["UA", "9E", "B6"])),
        flight_number=draw(st.integers(1, 9999)),
        origin="EWR",
        destination="IAH",
        scheduled_departure=departure,
        scheduled_arrival=arrival,
        status=status,
        actual_departure=actual_departure,
        actual_arrival=actual_arrival,
        tail_number=draw(st.none() | st.just("N14228")),
        distance_miles=draw(st.integers(1, 20_000)),
        air_time_minutes=draw(st.none() | st.integers(1, 1440)),
        event_time=departure.astimezone(UTC) - timedelta(minutes=draw(st.integers(0, 10_000))),
    )


def _reference(messages: list[AcceptedMessage]) -> pa.Table:
    """The rows value by value, straight from the domain's properties."""
    rows = [
        {
            "message_id": m.meta.message_id,
            "publish_time": m.meta.publish_time,
            "ingest_time": m.ingest_time,
            "ordering_key": m.meta.ordering_key,
            "attributes": '{"source":"test"}' if m.meta.attributes else None,
            "flight_id": m.event.flight_id,
            "scheduled_departure_local": m.event.scheduled_departure_local,
            "dep_delay_minutes": m.event.dep_delay_minutes,
            "arr_delay_minutes": m.event.arr_delay_minutes,
            **{
                name: getattr(m.event, name)
                for name in EVENTS_SCHEMA.names
                if name in FlightEvent.model_fields
            },
            "status": m.event.status.value,
        }
        for m in messages
    ]
    return pa.Table.from_pylist(rows, schema=EVENTS_SCHEMA)


# No deadline: on a loaded machine one example took 370 ms (11 ms when rerun), and what this
# test asserts is values, never time.
@settings(deadline=None)
@given(events=st.lists(_events(), min_size=1, max_size=20))
def test_rows_equal_the_domains_values(events: list[FlightEvent]) -> None:
    messages = [
        accepted(
            event,
            f"m-{i}",
            publish_time=datetime(2013, 1, 1, tzinfo=UTC) + timedelta(microseconds=i),
            attributes={"source": "test"} if i % 2 else None,
        )
        for i, event in enumerate(events)
    ]

    rows = event_rows(messages)

    assert rows.table.schema == EVENTS_SCHEMA
    assert rows.table.to_pylist() == _reference(messages).to_pylist()
    assert [key[0] for key in rows.keys] == [e.flight_id for e in events]


def test_keys_order_events_by_time_then_publish_time_then_id() -> None:
    early = make_event(event_time=datetime(2013, 1, 1, 10, tzinfo=UTC))
    late = make_event(event_time=datetime(2013, 1, 1, 11, tzinfo=UTC))
    messages = [
        accepted(late, "b", publish_time=datetime(2013, 1, 1, tzinfo=UTC)),
        accepted(late, "a", publish_time=datetime(2013, 1, 1, tzinfo=UTC)),
        accepted(early, "c", publish_time=datetime(2013, 1, 2, tzinfo=UTC)),
    ]

    rows = event_rows(messages)

    ((key, position),) = rows.newest_per_flight().values()
    assert (key[3], position) == ("b", 0)
    assert rows.keys[2][1] == 1_357_034_400_000_000  # 2013-01-01T10:00Z in µs


def test_local_departure_days_bound_every_flight_of_the_batch() -> None:
    messages = [
        accepted(make_event(departure_local=datetime(2013, 3, 9, 23, 59)), "a"),
        accepted(make_event(departure_local=datetime(2013, 3, 7, 0, 0), flight_number=7), "b"),
    ]

    assert event_rows(messages).local_departure_days() == (
        datetime(2013, 3, 7),
        datetime(2013, 3, 10),
    )


def test_without_drops_the_named_messages() -> None:
    messages = [accepted(make_event(flight_number=n), f"m-{n}") for n in (1, 2, 3)]

    rows = event_rows(messages).without({"m-2"})

    assert rows.table.column("message_id").to_pylist() == ["m-1", "m-3"]
    assert [key[3] for key in rows.keys] == ["m-1", "m-3"]


def test_flights_rows_take_updated_at_from_the_ingest_time() -> None:
    ingest = datetime(2013, 1, 3, tzinfo=UTC)
    message = accepted(make_event(), "m", ingest_time=ingest)

    (row,) = event_rows([message]).flights_rows([0]).to_pylist()

    assert row["updated_at"] == ingest
    assert row["flight_id"] == "UA1545-EWR-20130101"


def test_rejected_rows_keep_every_field() -> None:
    message = rejected("r-1", b"\xff\x00", attributes={"k": "v"})

    (row,) = rejected_rows([message]).to_pylist()

    assert rejected_rows([message]).schema == REJECTED_SCHEMA
    assert row == {
        "message_id": "r-1",
        "publish_time": message.meta.publish_time,
        "received_at": message.received_at,
        "subscription": message.meta.subscription,
        "attributes": '{"k":"v"}',
        "reason": "invalid_json",
        "detail": message.detail,
        "raw_data": b"\xff\x00",
    }
