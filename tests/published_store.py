"""A DuckDB store file written through the store and closed: what the read-only ``aeroflow
api`` serves. Tests import it by rootdir (``from published_store import publish_store``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from aeroflow.domain.events import FlightEvent, FlightStatus
from aeroflow.storage.duckdb import DuckDBFlightStore
from aeroflow.storage.port import AcceptedMessage, MessageMeta, WriteBatch

FIRST_DEPARTURE = datetime(2013, 1, 1, 11, 0, tzinfo=UTC)


def flight_id(number: int) -> str:
    """The id of the ``number``-th flight (from 0) of ``publish_store``."""
    return _scheduled(number).event.flight_id


def publish_store(path: Path, flights: int = 0) -> Path:
    """``path`` created (or extended) with ``flights`` UA flights EWR -> IAH, one an hour
    from 2013-01-01 11:00 UTC; 0 makes an empty store with aeroflow's schema."""
    store = DuckDBFlightStore(path, read_model=False)
    try:
        if flights:
            store.write_batch(scheduled_flights(flights))
    finally:
        store.close()
    return path


def scheduled_flights(flights: int) -> WriteBatch:
    """The batch ``publish_store`` writes, for any store."""
    return WriteBatch(accepted=[_scheduled(n) for n in range(flights)])


def _scheduled(number: int) -> AcceptedMessage:
    departure = FIRST_DEPARTURE + timedelta(hours=number)
    event = FlightEvent(
        carrier="UA",
        flight_number=100 + number,
        origin="EWR",
        destination="IAH",
        scheduled_departure=departure,
        scheduled_arrival=departure + timedelta(hours=4),
        status=FlightStatus.SCHEDULED,
        distance_miles=1400,
        event_time=departure - timedelta(days=1),
    )
    meta = MessageMeta(
        message_id=f"published-{number}",
        publish_time=departure - timedelta(days=1),
        attributes={},
        ordering_key=event.flight_id,
        subscription="projects/p/subscriptions/flight-events-push",
    )
    return AcceptedMessage(meta=meta, event=event, ingest_time=meta.publish_time)
