"""Columns of result rows -> ``port.Flight`` objects, typed exactly as the DuckDB adapter
returns them: instants aware in ``datetime.UTC``, the local departure naive, ints as ``int``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final, TypeVar

from aeroflow.domain.events import FlightStatus
from aeroflow.storage.port import Flight
from aeroflow.storage.read_model import ids
from aeroflow.storage.read_model.columns import Dictionary, RowValues

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_LOCAL_EPOCH: Final = datetime(1970, 1, 1)
_MICROSECOND: Final = timedelta(microseconds=1)
T = TypeVar("T")


def _instants(values: list[int | None]) -> list[datetime | None]:
    return [None if v is None else _EPOCH + _MICROSECOND * v for v in values]


def _required(values: list[T | None]) -> list[T]:
    # Required columns are never NULL in ``flights``; a None here is a model bug.
    if None in values:
        raise ValueError("NULL in a required column of the read model")
    return values  # type: ignore[return-value]


def to_flights(rows: RowValues, dictionaries: dict[str, Dictionary]) -> list[Flight]:
    def texts(name: str, dictionary: str) -> list[str | None]:
        values = dictionaries[dictionary].values
        return [None if c < 0 else values[c] for c in rows.codes[name]]

    statuses = [FlightStatus(v) for v in dictionaries["status"].values]
    ints = rows.ints
    return [
        Flight(*row)
        for row in zip(
            ids.decode_many(rows.keys),
            _required(texts("carrier", "carrier")),
            _required(ints["flight_number"]),
            _required(texts("origin", "airport")),
            _required(texts("destination", "airport")),
            [_EPOCH + _MICROSECOND * v for v in rows.departures],
            _required(_instants(ints["scheduled_arrival"])),
            [_LOCAL_EPOCH + _MICROSECOND * v for v in _required(ints["scheduled_departure_local"])],
            [statuses[c] for c in rows.codes["status"]],
            _instants(ints["actual_departure"]),
            _instants(ints["actual_arrival"]),
            ints["dep_delay_minutes"],
            ints["arr_delay_minutes"],
            texts("tail_number", "tail_number"),
            _required(ints["distance_miles"]),
            ints["air_time_minutes"],
            _required(_instants(ints["event_time"])),
            _required(_instants(ints["updated_at"])),
            strict=True,
        )
    ]
