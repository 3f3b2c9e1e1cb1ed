"""Builders and a real HTTP server for the ingest tests (imported by the test modules)."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import orjson

from aeroflow.domain.events import FlightEvent, FlightStatus
from aeroflow.ingest.auth import PushAuthError
from aeroflow.storage.duckdb import DuckDBFlightStore
from aeroflow.storage.port import StorageUnavailableError, WriteBatch, WriteResult

NEW_YORK_WINTER = timezone(timedelta(hours=-5))
CHICAGO_WINTER = timezone(timedelta(hours=-6))
PUBLISH_TIME = "2013-01-02T03:04:05.123456789Z"


def arrived_event(**overrides: Any) -> FlightEvent:
    """UA1545 EWR->IAH on 2013-01-01, arrived, with every optional field set."""
    fields: dict[str, Any] = {
        "carrier": "UA",
        "flight_number": 1545,
        "origin": "EWR",
        "destination": "IAH",
        "scheduled_departure": datetime(2013, 1, 1, 5, 15, tzinfo=NEW_YORK_WINTER),
        "scheduled_arrival": datetime(2013, 1, 1, 8, 19, tzinfo=CHICAGO_WINTER),
        "status": FlightStatus.ARRIVED,
        "actual_departure": datetime(2013, 1, 1, 5, 17, tzinfo=NEW_YORK_WINTER),
        "actual_arrival": datetime(2013, 1, 1, 8, 30, tzinfo=CHICAGO_WINTER),
        "tail_number": "N14228",
        "distance_miles": 1400,
        "air_time_minutes": 227,
        "event_time": datetime(2013, 1, 1, 8, 30, tzinfo=CHICAGO_WINTER),
    }
    fields.update(overrides)
    return FlightEvent(**fields)


def scheduled_event(**overrides: Any) -> FlightEvent:
    """The same flight as ``arrived_event``, a day before departure, no optional values."""
    fields: dict[str, Any] = {
        "status": FlightStatus.SCHEDULED,
        "actual_departure": None,
        "actual_arrival": None,
        "tail_number": None,
        "air_time_minutes": None,
        "event_time": datetime(2012, 12, 31, 5, 15, tzinfo=NEW_YORK_WINTER),
    }
    fields.update(overrides)
    return arrived_event(**fields)


def envelope(
    data: bytes | None,
    *,
    message_id: str = "4242",
    publish_time: str = PUBLISH_TIME,
    **message_fields: Any,
) -> bytes:
    """A push envelope as Pub/Sub sends it (both spellings of id and publish time)."""
    message: dict[str, Any] = {
        "messageId": message_id,
        "message_id": message_id,
        "publishTime": publish_time,
        "publish_time": publish_time,
        **message_fields,
    }
    if data is not None:
        message["data"] = base64.b64encode(data).decode()
    return orjson.dumps({"message": message, "subscription": "projects/p/subscriptions/s"})


def table_count(db_path: Path, table: str) -> int:
    """Rows in a table of a closed DuckDB file (opened read-only for the check)."""
    with duckdb.connect(str(db_path), read_only=True) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608
    assert row is not None
    return int(row[0])


class SwitchableStore(DuckDBFlightStore):
    """The real DuckDB store whose next ``failures_left`` batch writes fail.

    Faked boundary: the push route's job is to turn StorageUnavailableError into 503 and not
    ack. Making DuckDB itself fail (a real outage) is the reliability tests' business.
    """

    failures_left = 0

    def write_batch(self, batch: WriteBatch) -> WriteResult:
        if self.failures_left:
            self.failures_left -= 1
            raise StorageUnavailableError("storage switched off by the test")
        return super().write_batch(batch)


class BearerToken:
    """An authenticator that accepts one token (stands in for OIDC, tested in test_oidc)."""

    def __init__(self) -> None:
        self.calls = 0

    def authenticate(self, authorization: str | None) -> None:
        self.calls += 1
        if authorization is None:
            raise PushAuthError(401, "missing bearer token")
        if authorization != "Bearer good":
            raise PushAuthError(403, "caller may not push")
