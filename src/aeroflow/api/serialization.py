"""Response bodies built straight from the port's dataclasses with orjson.

orjson serialises dataclasses, enums and datetimes natively, so a page of flights becomes bytes
without a round trip through pydantic models (those exist only to document the shapes in
OpenAPI, see ``schemas.py``). Aware datetimes are written in UTC with a ``Z``; the naive
``scheduled_departure_local`` is written without an offset, as the contract says.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Sequence
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import orjson

from aeroflow.storage.port import FLIGHTS_JSON_OPTIONS, DelayStats, Flight, GroupBy, flights_json

_OPTIONS = FLIGHTS_JSON_OPTIONS
FLIGHT_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Flight))


def flight_json(flight: Flight) -> bytes:
    return orjson.dumps(flight, option=_OPTIONS)


def flight_page_json(flights: Sequence[Flight], next_cursor: str | None) -> bytes:
    return page_json(flights_json(flights), next_cursor)


def page_json(data: bytes, next_cursor: str | None) -> bytes:
    """The page's body around ``data``, its flights already written (``port.flights_json``):
    what orjson writes for ``{"data": flights, "next_cursor": next_cursor}``."""
    return b'{"data":' + data + b',"next_cursor":' + orjson.dumps(next_cursor) + b"}"


def delay_stats_json(group_by: GroupBy, rows: Sequence[DelayStats]) -> bytes:
    return orjson.dumps({"group_by": group_by, "data": rows}, option=_OPTIONS)


def flights_csv(flights: Sequence[Flight]) -> bytes:
    """RFC 4180 CSV (CRLF line ends) with a header row; empty cells for nulls."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(FLIGHT_FIELDS)
    for flight in flights:
        writer.writerow([_csv_cell(getattr(flight, name)) for name in FLIGHT_FIELDS])
    return buffer.getvalue().encode("utf-8")


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value.isoformat()
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, Enum):
        return str(value.value)
    return str(value)
