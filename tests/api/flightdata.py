"""A deterministic flight data set for the API tests, and its expected current state.

Built to exercise the edges the API promises to handle:
- many flights share a scheduled departure, so pagination depends on the flight_id tiebreak;
- evening departures at UTC-5/UTC-4 fall on the next UTC day, so "a bare date is a UTC day"
  differs from the local date in the flight id;
- some flights get an earlier "scheduled" event written AFTER their final event, so the current
  state must be the latest event_time, not the last write;
- every status, with and without known delays, for the delay statistics.

``expected_flights`` is the independent model the tests compare the API against: the latest
event per flight, computed here in plain Python from what was written.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone

from aeroflow.domain.events import FlightEvent, FlightStatus
from aeroflow.storage.port import AcceptedMessage, MessageMeta, WriteBatch

CARRIERS = ("UA", "AA", "B6", "9E", "DL")
ORIGINS = ("EWR", "JFK", "LGA")
DESTINATIONS = ("IAH", "ORD", "ATL", "LAX", "BOS")
# Few distinct departure times, so equal scheduled_departure values are common.
LOCAL_TIMES = ((6, 0), (6, 0), (9, 30), (13, 15), (19, 45), (21, 30), (23, 5))
EST = timezone(timedelta(hours=-5))
EDT = timezone(timedelta(hours=-4))
FLIGHT_COUNT = 260


@dataclass(frozen=True)
class Dataset:
    batches: tuple[WriteBatch, ...]  # written in this order
    current: dict[str, FlightEvent]  # flight_id -> event expected to be the current state


def build_dataset(seed: int = 20130101, count: int = FLIGHT_COUNT) -> Dataset:
    rng = random.Random(seed)
    finals: list[FlightEvent] = []
    earlier: list[FlightEvent] = []
    numbers = dict.fromkeys(CARRIERS, 100)
    for _ in range(count):
        carrier = rng.choice(CARRIERS)
        numbers[carrier] += rng.randint(1, 40)
        day = date(2013, 1, 1) + timedelta(days=rng.choice((0, 0, 1, 2, 30, 45, 70, 100)))
        hour, minute = rng.choice(LOCAL_TIMES)
        offset = EST if day < date(2013, 3, 10) else EDT
        departure = datetime(day.year, day.month, day.day, hour, minute, tzinfo=offset)
        origin = rng.choice(ORIGINS)
        event = _final_event(
            rng,
            carrier=carrier,
            number=numbers[carrier],
            origin=origin,
            destination=rng.choice(DESTINATIONS),
            departure=departure,
        )
        finals.append(event)
        if rng.random() < 0.3:
            earlier.append(
                event.model_copy(
                    update={
                        "status": FlightStatus.SCHEDULED,
                        "actual_departure": None,
                        "actual_arrival": None,
                        "air_time_minutes": None,
                        "event_time": departure - timedelta(days=2),
                    }
                )
            )
    ingest_time = datetime(2026, 1, 1, tzinfo=UTC)
    final_batch = WriteBatch(accepted=[_message(e, i, ingest_time) for i, e in enumerate(finals)])
    # Written last although older: the store must keep the later event_time.
    stale_batch = WriteBatch(
        accepted=[_message(e, len(finals) + i, ingest_time) for i, e in enumerate(earlier)]
    )
    current = {e.flight_id: e for e in finals}
    assert len(current) == len(finals), "flight ids must be unique in the data set"
    return Dataset(batches=(final_batch, stale_batch), current=current)


def _final_event(
    rng: random.Random,
    *,
    carrier: str,
    number: int,
    origin: str,
    destination: str,
    departure: datetime,
) -> FlightEvent:
    status = rng.choice(
        (FlightStatus.ARRIVED,) * 6
        + (FlightStatus.SCHEDULED, FlightStatus.DEPARTED, FlightStatus.CANCELLED)
        + (FlightStatus.DIVERTED,)
    )
    duration = timedelta(minutes=rng.choice((75, 140, 195, 330)))
    dep_delay = timedelta(minutes=rng.choice((-7, -2, 0, 0, 3, 12, 15, 16, 44, 95, 240)))
    arr_shift = timedelta(minutes=rng.choice((-20, -5, 0, 10, 15, 16, 30)))
    actual_departure: datetime | None = None
    actual_arrival: datetime | None = None
    air_time: int | None = None
    event_time = departure - timedelta(hours=3)
    if status in (FlightStatus.DEPARTED, FlightStatus.ARRIVED, FlightStatus.DIVERTED):
        actual_departure = departure + dep_delay
        event_time = actual_departure + timedelta(minutes=1)
    if status is FlightStatus.ARRIVED:
        actual_arrival = departure + duration + dep_delay + arr_shift
        air_time = int((actual_arrival - departure - dep_delay).total_seconds() // 60) - 10
        event_time = actual_arrival + timedelta(minutes=2)
    return FlightEvent(
        carrier=carrier,
        flight_number=number,
        origin=origin,
        destination=destination,
        scheduled_departure=departure,
        scheduled_arrival=departure + duration,
        status=status,
        actual_departure=actual_departure,
        actual_arrival=actual_arrival,
        tail_number=f"N{rng.randint(100, 999)}{carrier}"[:6],
        distance_miles=rng.choice((200, 719, 1400, 2475)),
        air_time_minutes=air_time,
        event_time=event_time,
    )


def _message(event: FlightEvent, index: int, ingest_time: datetime) -> AcceptedMessage:
    meta = MessageMeta(
        message_id=f"api-test-{index:05d}",
        publish_time=event.event_time.astimezone(UTC),
        ordering_key=event.flight_id,
    )
    return AcceptedMessage(meta=meta, event=event, ingest_time=ingest_time)


# --- the independent model of what the API must return ----------------------------------


def _z(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def expected_json(event: FlightEvent) -> dict[str, object]:
    """The Flight JSON for an event, except ``updated_at`` (set by the store)."""
    return {
        "flight_id": event.flight_id,
        "carrier": event.carrier,
        "flight_number": event.flight_number,
        "origin": event.origin,
        "destination": event.destination,
        "scheduled_departure": _z(event.scheduled_departure),
        "scheduled_arrival": _z(event.scheduled_arrival),
        "scheduled_departure_local": event.scheduled_departure_local.strftime("%Y-%m-%dT%H:%M:%S"),
        "status": event.status.value,
        "actual_departure": _z(event.actual_departure),
        "actual_arrival": _z(event.actual_arrival),
        "dep_delay_minutes": event.dep_delay_minutes,
        "arr_delay_minutes": event.arr_delay_minutes,
        "tail_number": event.tail_number,
        "distance_miles": event.distance_miles,
        "air_time_minutes": event.air_time_minutes,
        "event_time": _z(event.event_time),
    }


def sort_key(event: FlightEvent) -> tuple[datetime, str]:
    return (event.scheduled_departure.astimezone(UTC), event.flight_id)
