"""Builders for flight events and Pub/Sub message wrappers used by the storage tests."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import duckdb

from aeroflow.domain.events import FlightEvent, FlightStatus
from aeroflow.storage.port import (
    AcceptedMessage,
    MessageMeta,
    RejectedMessage,
    RejectReason,
)

NEW_YORK_WINTER = timezone(timedelta(hours=-5))
BASE_PUBLISH = datetime(2013, 1, 1, tzinfo=UTC)


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
