"""DuckDBFlightStore.write_version: the counter the API's response cache is invalidated by."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from aeroflow.domain.events import FlightEvent
from aeroflow.ingest.samples import nycflights13_events
from aeroflow.storage.duckdb import DuckDBFlightStore
from aeroflow.storage.port import AcceptedMessage, MessageMeta, WriteBatch


def _message(event: FlightEvent, message_id: str) -> AcceptedMessage:
    meta = MessageMeta(message_id=message_id, publish_time=datetime.now(UTC))
    return AcceptedMessage(meta=meta, event=event, ingest_time=datetime.now(UTC))


def test_write_version_counts_commits_that_can_change_flights(tmp_path: Path) -> None:
    events = list(nycflights13_events(limit=2))
    store = DuckDBFlightStore(tmp_path / "v.duckdb")
    try:
        assert store.write_version == 0
        store.write_batch(WriteBatch(accepted=[_message(events[0], "m1")]))
        assert store.write_version == 1
        # A redelivery changes nothing: cached reads stay valid.
        store.write_batch(WriteBatch(accepted=[_message(events[0], "m1")]))
        assert store.write_version == 1
        store.write_batch(WriteBatch(accepted=[_message(events[1], "m2")]))
        assert store.write_version == 2
        # Reads never move it.
        store.get_flight(events[0].flight_id)
        assert store.write_version == 2
    finally:
        store.close()
