"""Builders for flight events and Pub/Sub message wrappers used by the storage tests."""

from __future__ import annotations

import functools
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
from hypothesis import strategies as st

from aeroflow.domain.events import FlightEvent, FlightStatus
from aeroflow.storage.port import (
    AcceptedMessage,
    Flight,
    FlightFilter,
    MessageMeta,
    RejectedMessage,
    RejectReason,
    WriteBatch,
)

NEW_YORK_WINTER = timezone(timedelta(hours=-5))
BASE_PUBLISH = datetime(2013, 1, 1, tzinfo=UTC)


def flight_filters(
    *,
    carriers: Sequence[str],
    origins: Sequence[str],
    destinations: Sequence[str],
    departures: st.SearchStrategy[datetime],
    min_dep_delays: st.SearchStrategy[int],
) -> st.SearchStrategy[FlightFilter]:
    """Filters with any combination of fields set (each one left out as often as not), over
    the given values: include a value no flight has to reach the empty answers."""
    return st.builds(
        FlightFilter,
        carrier=st.none() | st.sampled_from(carriers),
        origin=st.none() | st.sampled_from(origins),
        destination=st.none() | st.sampled_from(destinations),
        status=st.none() | st.sampled_from(list(FlightStatus)),
        departure_from=st.none() | departures,
        departure_to=st.none() | departures,
        min_dep_delay=st.none() | min_dep_delays,
    )


def make_event(
    *,
    carrier: str = "UA",
    flight_number: int = 1545,
    origin: str = "EWR",
    destination: str = "IAH",
    departure_local: datetime = datetime(2013, 1, 1, 5, 15),
    offset: timezone = NEW_YORK_WINTER,
    duration: timedelta = timedelta(hours=3, minutes=30),
    status: FlightStatus = FlightStatus.SCHEDULED,
    dep_delay: int = 0,
    arr_delay: int = 0,
    event_time: datetime | None = None,
    tail_number: str | None = "N14228",
    distance_miles: int = 1400,
    air_time_minutes: int | None = None,
) -> FlightEvent:
    """A consistent event: actual times are derived from the delays as the status needs."""
    scheduled_departure = departure_local.replace(tzinfo=offset)
    scheduled_arrival = scheduled_departure + duration
    actual_departure = actual_arrival = None
    if status in (FlightStatus.DEPARTED, FlightStatus.ARRIVED, FlightStatus.DIVERTED):
        actual_departure = scheduled_departure + timedelta(minutes=dep_delay)
    if status is FlightStatus.ARRIVED:
        actual_arrival = scheduled_arrival + timedelta(minutes=arr_delay)
    if event_time is None:
        event_time = actual_arrival or actual_departure or scheduled_departure - timedelta(days=1)
    return FlightEvent(
        carrier=carrier,
        flight_number=flight_number,
        origin=origin,
        destination=destination,
        scheduled_departure=scheduled_departure,
        scheduled_arrival=scheduled_arrival,
        status=status,
        actual_departure=actual_departure,
        actual_arrival=actual_arrival,
        tail_number=tail_number,
        distance_miles=distance_miles,
        air_time_minutes=air_time_minutes,
        event_time=event_time,
    )


def accepted(
    event: FlightEvent,
    message_id: str,
    *,
    publish_time: datetime = BASE_PUBLISH,
    attributes: Mapping[str, str] | None = None,
    ingest_time: datetime | None = None,
) -> AcceptedMessage:
    meta = MessageMeta(
        message_id=message_id,
        publish_time=publish_time,
        attributes=dict(attributes or {}),
        ordering_key=event.flight_id,
        subscription="projects/p/subscriptions/flight-events-push",
    )
    return AcceptedMessage(meta=meta, event=event, ingest_time=ingest_time or publish_time)


def rejected(
    message_id: str,
    raw_data: bytes = b"{not json",
    *,
    reason: RejectReason = RejectReason.INVALID_JSON,
    detail: str = "Expecting property name enclosed in double quotes",
    publish_time: datetime = BASE_PUBLISH,
    attributes: Mapping[str, str] | None = None,
) -> RejectedMessage:
    meta = MessageMeta(
        message_id=message_id,
        publish_time=publish_time,
        attributes=dict(attributes or {}),
        subscription="projects/p/subscriptions/flight-events-push",
    )
    return RejectedMessage(
        meta=meta,
        raw_data=raw_data,
        reason=reason,
        detail=detail,
        received_at=publish_time + timedelta(seconds=1),
    )


def query_db(
    db_path: Path, sql: str, params: Mapping[str, object] | None = None
) -> list[tuple[object, ...]]:
    """Run SQL on the store's database file through a second connection.

    Same path and same configuration as the store, so DuckDB hands out a connection to the
    already open database instead of fighting over the file lock.
    """
    connection = duckdb.connect(str(db_path), config={"threads": 2})
    try:
        return connection.execute(sql, params).fetchall()
    finally:
        connection.close()


# --- a varied data set ------------------------------------------------------------------------

_ZONES = {
    "EWR": ZoneInfo("America/New_York"),
    "JFK": ZoneInfo("America/New_York"),
    "LGA": ZoneInfo("America/New_York"),
    # A second zone, so local-time groupings cannot be confused with UTC or New York time.
    "LAX": ZoneInfo("America/Los_Angeles"),
}
_CARRIERS = ("UA", "AA", "B6", "DL", "9E")
_DESTINATIONS = ("IAH", "MIA", "ORD", "ATL", "BOS")
_FINAL_STATUSES = (
    [FlightStatus.ARRIVED] * 6
    + [FlightStatus.DEPARTED] * 2
    + [FlightStatus.SCHEDULED] * 2
    + [FlightStatus.CANCELLED, FlightStatus.DIVERTED]
)


@dataclass(frozen=True)
class FlightDataset:
    """Messages in delivery order (shuffled, with redeliveries) and the expected final state."""

    deliveries: list[AcceptedMessage]
    expected: dict[str, Flight]  # flight_id -> current state

    def batches(self, size: int) -> list[WriteBatch]:
        d = self.deliveries
        return [WriteBatch(accepted=d[i : i + size]) for i in range(0, len(d), size)]


def _delay(rng: random.Random) -> int:
    # Mostly small, a long tail, some early: like real departure delays.
    return max(-20, min(600, round(rng.expovariate(1 / 25)) - 8))


def flight_dataset(n_flights: int = 400, *, seed: int = 13) -> FlightDataset:
    rng = random.Random(seed)
    history: list[AcceptedMessage] = []
    expected: dict[str, Flight] = {}
    slots: list[tuple[str, datetime]] = []
    for index in range(n_flights):
        if slots and rng.random() < 0.4:
            # Same airport and departure as an earlier flight: departure-time ties are common
            # in real schedules and are what keyset pagination's flight_id tie-breaker is for.
            origin, local = rng.choice(slots)
        else:
            origin = rng.choice(tuple(_ZONES))
            day = date(2013, 1, 1) + timedelta(days=rng.randrange(120))  # crosses a DST change
            slot = rng.randrange(12, 46)  # half hours
            local = datetime.combine(day, time(slot // 2, 30 * (slot % 2)))
            slots.append((origin, local))
        offset = local.replace(tzinfo=_ZONES[origin]).utcoffset()
        assert offset is not None
        build = functools.partial(
            make_event,
            carrier=rng.choice(_CARRIERS),
            flight_number=index + 1,
            origin=origin,
            destination=rng.choice(_DESTINATIONS),
            departure_local=local,
            offset=timezone(offset),
            duration=timedelta(minutes=rng.randrange(60, 360)),
            tail_number=rng.choice([None, f"N{rng.randrange(100, 999)}UA"]),
            distance_miles=rng.randrange(100, 2600),
        )
        dep_delay = _delay(rng)
        arr_delay = dep_delay + rng.randrange(-25, 30)  # block time varies less than delays
        scheduled = build()
        sd = scheduled.scheduled_departure
        final = rng.choice(_FINAL_STATUSES)
        events = [scheduled]
        if final is FlightStatus.CANCELLED:
            events.append(build(status=final, event_time=sd - timedelta(hours=2)))
        elif final is not FlightStatus.SCHEDULED:
            events.append(build(status=FlightStatus.DEPARTED, dep_delay=dep_delay))
            if final is FlightStatus.ARRIVED:
                events.append(build(status=final, dep_delay=dep_delay, arr_delay=arr_delay))
            elif final is FlightStatus.DIVERTED:
                diverted_at = sd + timedelta(minutes=dep_delay, hours=1)
                events.append(build(status=final, dep_delay=dep_delay, event_time=diverted_at))
        messages = [
            accepted(
                event,
                f"{index}-{n}",
                publish_time=event.event_time + timedelta(seconds=rng.randrange(1, 30)),
                ingest_time=event.event_time + timedelta(minutes=1),
            )
            for n, event in enumerate(events)
        ]
        history.extend(messages)
        last = messages[-1]
        expected[last.event.flight_id] = expected_flight(last)
    deliveries = history + rng.sample(history, len(history) // 10)  # redeliveries
    rng.shuffle(deliveries)
    return FlightDataset(deliveries=deliveries, expected=expected)


def expected_flight(message: AcceptedMessage) -> Flight:
    """The Flight a store must return when ``message`` is the latest event of its flight."""
    e = message.event
    return Flight(
        flight_id=e.flight_id,
        carrier=e.carrier,
        flight_number=e.flight_number,
        origin=e.origin,
        destination=e.destination,
        scheduled_departure=e.scheduled_departure.astimezone(UTC),
        scheduled_arrival=e.scheduled_arrival.astimezone(UTC),
        scheduled_departure_local=e.scheduled_departure_local,
        status=e.status,
        actual_departure=e.actual_departure and e.actual_departure.astimezone(UTC),
        actual_arrival=e.actual_arrival and e.actual_arrival.astimezone(UTC),
        dep_delay_minutes=e.dep_delay_minutes,
        arr_delay_minutes=e.arr_delay_minutes,
        tail_number=e.tail_number,
        distance_miles=e.distance_miles,
        air_time_minutes=e.air_time_minutes,
        event_time=e.event_time.astimezone(UTC),
        updated_at=message.ingest_time.astimezone(UTC),
    )
