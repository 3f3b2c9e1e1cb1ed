"""Columns of result rows -> ``port.Flight`` objects, typed exactly as the DuckDB adapter
returns them: instants aware in ``datetime.UTC``, the local departure naive, ints as ``int``.

A page is a few dozen rows, so fixed costs dominate: numpy does the arithmetic once per page
for all columns together, and each column becomes Python objects in one pass of ``map`` over
memoised values (C, no Python frame per value) instead of an expression per value.
"""

from __future__ import annotations

import dataclasses
import itertools
import operator
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import numpy as np

from aeroflow.domain.events import FlightStatus
from aeroflow.storage.port import Flight
from aeroflow.storage.read_model import ids
from aeroflow.storage.read_model.columns import (
    CODE_LINES,
    CODED,
    INTEGERS,
    KEY_LINE,
    LINE_COUNT,
    LINES,
    PACKED,
    PACKED_LINES,
    SCHEDULE_INSTANTS,
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
_INSTANTS: Final = SCHEDULE_INSTANTS
_INSTANT_LINES: Final = [LINES[name] for name in _INSTANTS]
_LOCAL_LINE: Final = LINES["scheduled_departure_local"]
_UPDATED_LINE: Final = LINES["updated_at"]
# Per line, what ``to_flights`` divides it by: a key splits into its id's prefix and date, an
# instant into its day and time of day; other lines stay whole (quotient, remainder 0).
_DIVISORS: Final = np.ones((LINE_COUNT, 1), np.int64)
_DIVISORS[KEY_LINE] = ids.DATES
_DIVISORS[[*_INSTANT_LINES, _LOCAL_LINE, _UPDATED_LINE]] = _DAY


def _day(day: int) -> datetime:
    return _EPOCH + timedelta(days=day)


def _local_day(day: int) -> datetime:
    return _LOCAL_EPOCH + timedelta(days=day)


def _time_of_day(micros: int) -> timedelta:
    return timedelta(microseconds=micros)


# An instant is its day plus its time of day, both memoised: schedules use a few thousand days
# and at most 1,440 minutes, so after warm-up an instant costs two lookups and an addition.
_DAYS: Final = Memo(_day, 1 << 16)
_LOCAL_DAYS: Final = Memo(_local_day, 1 << 16)
_TIMES_OF_DAY: Final = Memo(_time_of_day, 1 << 15)
_STATUSES: Final = Memo(FlightStatus, 64)


def to_flights(rows: RowValues, dictionaries: dict[str, Dictionary]) -> list[Flight]:
    count = len(rows)
    if not count:
        return []
    # The only numpy calls: every line split at once, then turned into Python ints.
    quotients, remainders = np.divmod(rows.lines, _DIVISORS)
    whole: list[list[int]] = quotients.tolist()
    parts: list[list[int]] = remainders.tolist()
    columns: dict[str, list[Any]] = {
        "flight_id": ids.decode_parts(whole[KEY_LINE], parts[KEY_LINE]),
    }
    # Every datetime in one pass of each kind: days, times of day, additions.
    days = _DAYS.many(list(itertools.chain.from_iterable(whole[i] for i in _INSTANT_LINES)))
    days += _LOCAL_DAYS.many(whole[_LOCAL_LINE])
    days += _DAYS.many(whole[_UPDATED_LINE])
    times = list(itertools.chain.from_iterable(parts[i] for i in _INSTANT_LINES))
    times += parts[_LOCAL_LINE]
    times_of_day = _TIMES_OF_DAY.many(times)
    # Ingest times are unique to the microsecond: a memo would only miss, and churn.
    times_of_day += map(_MICROSECOND.__mul__, parts[_UPDATED_LINE])
    datetimes = list(map(operator.add, days, times_of_day))
    for at, name in enumerate((*_INSTANTS, "scheduled_departure_local", "updated_at")):
        columns[name] = datetimes[at * count : (at + 1) * count]
    for name in INTEGERS:
        columns[name] = whole[PACKED_LINES[name]]
    if np.count_nonzero(rows.nulls):  # no Python wrapper, unlike ndarray.any
        null_lines, null_rows = np.nonzero(rows.nulls)
        for line, row in zip(null_lines.tolist(), null_rows.tolist(), strict=True):
            columns[PACKED[line]][row] = None

    for name, dictionary in CODED.items():
        texts = dictionaries[dictionary].values
        codes = whole[CODE_LINES[name]]
        if name == "tail_number":  # the one nullable text
            columns[name] = [None if code < 0 else texts[code] for code in codes]
        else:  # never NULL: ``FlightColumns.from_arrow`` refuses such rows
            columns[name] = list(map(texts.__getitem__, codes))
    columns["status"] = _STATUSES.many(columns["status"])
    return _build(columns)


def to_flight(row: Row, dictionaries: dict[str, Dictionary]) -> Flight:
    """The flight of one row: the same values as ``to_flights`` gives, built one by one."""
    # In field order from the start, so that the dict can become the Flight's as it is.
    values: dict[str, Any] = dict.fromkeys(_FIELDS)
    values.update(zip(PACKED, row.ints, strict=True))
    values["flight_id"] = ids.decode(row.key)
    values["scheduled_departure"] = row.departure
    for name in (*_INSTANTS, "updated_at"):
        micros = values[name]
        values[name] = None if micros is None else _EPOCH + _MICROSECOND * micros
    local = _required(values["scheduled_departure_local"])
    values["scheduled_departure_local"] = _LOCAL_EPOCH + _MICROSECOND * local
    for (name, dictionary), code in zip(CODED.items(), row.codes, strict=True):
        values[name] = None if code < 0 else dictionaries[dictionary].values[code]
    values["status"] = _STATUSES.one(values["status"])
    flight = object.__new__(Flight)  # see _build
    flight.__dict__.update(values)
    return flight


def _required(value: int | None) -> int:
    if value is None:  # ``FlightColumns.from_arrow`` refuses such rows
        raise ValueError("NULL in a required column of the read model")
    return value


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
