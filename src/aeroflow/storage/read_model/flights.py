"""Columns of result rows -> ``port.Flight`` objects, typed exactly as the DuckDB adapter
returns them: instants aware in ``datetime.UTC``, the local departure naive, ints as ``int``.

A page is a few dozen rows, so fixed costs dominate: numpy does the arithmetic once per page
for all columns together, and each column becomes Python objects in one pass of ``map`` over
memoised values (C, no Python frame per value) instead of an expression per value.
"""

from __future__ import annotations

import dataclasses
import operator
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import numpy as np

from aeroflow.domain.events import FlightStatus
from aeroflow.storage.port import Flight
from aeroflow.storage.read_model import ids
from aeroflow.storage.read_model.columns import (
    CODED,
    INTEGERS,
    PACKED,
    Dictionary,
    Row,
    RowValues,
)
from aeroflow.storage.read_model.memo import Memo

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_LOCAL_EPOCH: Final = datetime(1970, 1, 1)
_MICROSECOND: Final = timedelta(microseconds=1)
_DAY: Final = 86_400_000_000  # microseconds
_FIELDS: Final = tuple(field.name for field in dataclasses.fields(Flight))
_LINES: Final = {name: line for line, name in enumerate(PACKED)}
# Aware instants stored in ``RowValues.ints`` (the departure has its own array), ingest last.
_INSTANTS: Final = (
    "scheduled_arrival",
    "actual_departure",
    "actual_arrival",
    "event_time",
    "updated_at",
)
_INSTANT_LINES: Final = [_LINES[name] for name in _INSTANTS]
# The instants that repeat across flights (times of schedules and of events), departure first.
_SCHEDULE_TIMES: Final = ("scheduled_departure", *_INSTANTS[:-1])
_SCHEDULE_TIME_LINES: Final = _INSTANT_LINES[:-1]
_UPDATED_LINE: Final = _LINES["updated_at"]
_INTEGER_LINES: Final = [_LINES[name] for name in INTEGERS]
_LOCAL_LINE: Final = _LINES["scheduled_departure_local"]


def _day(day: int) -> datetime:
    return _EPOCH + timedelta(days=day)


def _time_of_day(micros: int) -> timedelta:
    return timedelta(microseconds=micros)


# An instant is its day plus its time of day, both memoised: schedules use a few thousand days
# and at most 1,440 minutes, so after warm-up an instant costs two lookups and an addition.
_DAYS: Final = Memo(_day, 1 << 16)
_TIMES_OF_DAY: Final = Memo(_time_of_day, 1 << 15)
_STATUSES: Final = Memo(FlightStatus, 64)


def to_flights(rows: RowValues, dictionaries: dict[str, Dictionary]) -> list[Flight]:
    count = len(rows)
    if not count:
        return []
    ints = rows.ints
    columns: dict[str, list[Any]] = {"flight_id": ids.decode_column(rows.keys)}

    instants = np.empty((len(_SCHEDULE_TIMES), count), np.int64)
    instants[0] = rows.departures
    instants[1:] = ints[_SCHEDULE_TIME_LINES]
    days, times = np.divmod(instants, _DAY)
    # All these columns in one pass each.
    datetimes = list(
        map(
            operator.add,
            _DAYS.many(days.ravel().tolist()),
            _TIMES_OF_DAY.many(times.ravel().tolist()),
        )
    )
    for at, name in enumerate(_SCHEDULE_TIMES):
        columns[name] = datetimes[at * count : (at + 1) * count]
    # Ingest times are unique to the microsecond: a memo would only miss, and churn.
    columns["updated_at"] = [_EPOCH + _MICROSECOND * v for v in ints[_UPDATED_LINE].tolist()]
    # Naive: numpy builds the datetimes itself, exactly, from microseconds since the epoch.
    columns["scheduled_departure_local"] = ints[_LOCAL_LINE].astype("datetime64[us]").tolist()
    columns.update(zip(INTEGERS, ints[_INTEGER_LINES].tolist(), strict=True))
    if rows.nulls.any():
        lines, positions = np.nonzero(rows.nulls)
        for line, row in zip(lines.tolist(), positions.tolist(), strict=True):
            columns[PACKED[line]][row] = None

    for (name, dictionary), codes in zip(CODED.items(), rows.codes.tolist(), strict=True):
        texts = dictionaries[dictionary].values
        if name == "tail_number":  # the one nullable text
            columns[name] = [None if code < 0 else texts[code] for code in codes]
        else:  # never NULL: ``FlightColumns.from_arrow`` refuses such rows
            columns[name] = list(map(texts.__getitem__, codes))
    columns["status"] = _STATUSES.many(columns["status"])
    return _build(columns)


def to_flight(row: Row, dictionaries: dict[str, Dictionary]) -> Flight:
    """The flight of one row: the same values as ``to_flights`` gives, built one by one."""
    ints = row.ints
    values: dict[str, Any] = {
        name: ints[line] for name, line in zip(INTEGERS, _INTEGER_LINES, strict=True)
    }
    values["flight_id"] = ids.decode(row.key)
    values["scheduled_departure"] = _instant(row.departure)
    for name, line in zip(_INSTANTS, _INSTANT_LINES, strict=True):
        values[name] = _instant(ints[line])
    values["scheduled_departure_local"] = _LOCAL_EPOCH + _MICROSECOND * _required(ints[_LOCAL_LINE])
    for (name, dictionary), code in zip(CODED.items(), row.codes, strict=True):
        values[name] = None if code < 0 else dictionaries[dictionary].values[code]
    values["status"] = _STATUSES.many([values["status"]])[0]
    return _build({name: [value] for name, value in values.items()})[0]


def _required(value: int | None) -> int:
    if value is None:  # ``FlightColumns.from_arrow`` refuses such rows
        raise ValueError("NULL in a required column of the read model")
    return value


def _instant(micros: int | None) -> datetime | None:
    return None if micros is None else _EPOCH + _MICROSECOND * micros


def _build(columns: dict[str, list[Any]]) -> list[Flight]:
    """Flights of the columns. ``Flight`` is frozen, so its ``__init__`` sets each of its 18
    fields through ``object.__setattr__``, about half the cost of a page; filling the new
    instance's ``__dict__`` in field order makes the same object (``__init__`` does nothing
    else, which a test checks) at a fraction of it."""
    new = object.__new__
    flights: list[Flight] = []
    append = flights.append
    for values in zip(*[columns[name] for name in _FIELDS], strict=True):
        flight = new(Flight)
        flight.__dict__.update(zip(_FIELDS, values, strict=True))
        append(flight)
    return flights
