"""Pydantic models of the API's JSON shapes, for the OpenAPI document only.

Routes build their bodies with orjson from the port's dataclasses (``serialization.py``); these
models are declared as ``response_model`` so clients get an accurate schema, and a test checks
that real responses carry exactly these fields.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from aeroflow.domain.events import FlightStatus
from aeroflow.storage.port import GroupBy


class FlightOut(BaseModel):
    flight_id: str = Field(
        description="{carrier}{flight_number:04d}-{origin}-{local departure date YYYYMMDD}",
        examples=["UA1545-EWR-20130101"],
    )
    carrier: str = Field(examples=["UA"])
    flight_number: int = Field(ge=1, le=9999)
    origin: str = Field(examples=["EWR"])
    destination: str = Field(examples=["IAH"])
    scheduled_departure: datetime = Field(description="RFC 3339, UTC (Z).")
    scheduled_arrival: datetime = Field(description="RFC 3339, UTC (Z).")
    # A string, not a datetime: OpenAPI's date-time format requires an offset, this has none.
    scheduled_departure_local: str = Field(
        description="Wall-clock time at the origin airport, without offset.",
        pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?$",
        examples=["2013-01-01T05:15:00"],
    )
    status: FlightStatus
    actual_departure: datetime | None
    actual_arrival: datetime | None
    dep_delay_minutes: int | None
    arr_delay_minutes: int | None
    tail_number: str | None
    distance_miles: int
    air_time_minutes: int | None
    event_time: datetime = Field(description="Time of the event this state comes from.")
    updated_at: datetime = Field(description="When aeroflow last changed this flight.")


class FlightPageOut(BaseModel):
    data: list[FlightOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page."
    )


class DelayStatsOut(BaseModel):
    group: str = Field(
        description="Carrier/airport code, YYYY-MM (month), 1-7 (ISO weekday) or 0-23 (hour)."
    )
    flights: int
    cancelled: int
    avg_dep_delay_minutes: float | None
    p50_dep_delay_minutes: float | None
    p95_dep_delay_minutes: float | None
    on_time_rate: float | None = Field(
        description="Share of flights with a known arrival delay arriving <= 15 minutes late."
    )


class DelayStatsPageOut(BaseModel):
    group_by: GroupBy
    data: list[DelayStatsOut]


class ErrorBody(BaseModel):
    code: str = Field(examples=["validation_error"])
    message: str
    details: list[dict[str, Any]]


class ErrorOut(BaseModel):
    error: ErrorBody


class StatusOut(BaseModel):
    status: str = Field(examples=["ok"])


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries documenting the error shape for these statuses."""
    descriptions = {
        400: "Unknown query parameter (`unknown_parameter`) or bad cursor (`invalid_cursor`).",
        404: "Not found (`not_found`).",
        406: "None of the acceptable media types can be produced (`not_acceptable`).",
        414: "Query string too long (`uri_too_long`).",
        422: "Invalid parameter value (`validation_error`).",
        503: "Storage temporarily unavailable (`unavailable`); see Retry-After.",
    }
    return {
        status: {"model": ErrorOut, "description": descriptions.get(status, "Error.")}
        for status in statuses
    }
