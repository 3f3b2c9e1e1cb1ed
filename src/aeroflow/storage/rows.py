"""Result rows of ``queries`` -> port dataclasses, shared by the adapters.

Both DuckDB and the BigQuery client hand back TIMESTAMP columns as aware datetimes (in some UTC
zone object) and DATETIME columns as naive ones; these helpers normalise to ``datetime.UTC`` so
the API serialises every instant the same way whichever backend ran.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import TypeVar

from aeroflow.domain.events import FlightStatus
from aeroflow.storage.port import DelayStats, Flight

T = TypeVar("T")


def utc(value: datetime) -> datetime:
    """An instant read back from storage, as an aware datetime in ``datetime.UTC``."""
    if value.tzinfo is None:
        # A naive TIMESTAMP from storage is UTC by construction of the schema.
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _value(row: Mapping[str, object], name: str, kind: type[T]) -> T:
    value = row[name]
    if not isinstance(value, kind):
        raise TypeError(f"column {name}: expected {kind.__name__}, got {type(value).__name__}")
    return value


def _optional(row: Mapping[str, object], name: str, kind: type[T]) -> T | None:
    return None if row[name] is None else _value(row, name, kind)


def _instant(row: Mapping[str, object], name: str) -> datetime:
    return utc(_value(row, name, datetime))


def _optional_instant(row: Mapping[str, object], name: str) -> datetime | None:
    value = _optional(row, name, datetime)
    return None if value is None else utc(value)


def _optional_number(row: Mapping[str, object], name: str) -> float | None:
    # Averages may come back as Decimal or int depending on the engine's type inference.
    value = row[name]
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise TypeError(f"column {name}: expected a number, got {type(value).__name__}")
    return float(value)


def flight_from_row(row: Mapping[str, object]) -> Flight:
    """Build a Flight from a row keyed by ``queries.FLIGHT_COLUMNS``."""
    local = _value(row, "scheduled_departure_local", datetime)
    if local.tzinfo is not None:
        raise TypeError("scheduled_departure_local must be a naive (wall-clock) datetime")
    return Flight(
        flight_id=_value(row, "flight_id", str),
        carrier=_value(row, "carrier", str),
        flight_number=_value(row, "flight_number", int),
        origin=_value(row, "origin", str),
        destination=_value(row, "destination", str),
        scheduled_departure=_instant(row, "scheduled_departure"),
        scheduled_arrival=_instant(row, "scheduled_arrival"),
        scheduled_departure_local=local,
        status=FlightStatus(_value(row, "status", str)),
        actual_departure=_optional_instant(row, "actual_departure"),
        actual_arrival=_optional_instant(row, "actual_arrival"),
        dep_delay_minutes=_optional(row, "dep_delay_minutes", int),
        arr_delay_minutes=_optional(row, "arr_delay_minutes", int),
        tail_number=_optional(row, "tail_number", str),
        distance_miles=_value(row, "distance_miles", int),
        air_time_minutes=_optional(row, "air_time_minutes", int),
        event_time=_instant(row, "event_time"),
        updated_at=_instant(row, "updated_at"),
    )


def delay_stats_from_row(row: Mapping[str, object]) -> DelayStats:
    """Build DelayStats from a row keyed by ``queries.DELAY_STATS_COLUMNS``."""
    return DelayStats(
        group=_value(row, "group", str),
        flights=_value(row, "flights", int),
        cancelled=_value(row, "cancelled", int),
        avg_dep_delay_minutes=_optional_number(row, "avg_dep_delay_minutes"),
        p50_dep_delay_minutes=_optional_number(row, "p50_dep_delay_minutes"),
        p95_dep_delay_minutes=_optional_number(row, "p95_dep_delay_minutes"),
        on_time_rate=_optional_number(row, "on_time_rate"),
    )
