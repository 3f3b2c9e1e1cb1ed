"""Columns of result rows -> the JSON array of their flights, without ``port.Flight`` objects.

The bytes are exactly ``port.flights_json`` of the flights ``flights.to_flights`` builds from
the same rows (tests hold them to that). Building the flights costs a Python object per value
and serialising them walks every one again; here orjson writes whole columns straight from
numpy instead: the instants as ``datetime64[us]`` (which it writes exactly as it writes the
equivalent datetimes, microseconds and all), the integers as int64, three calls per page. Their
texts are cut apart and put into a row template with the flight ids and the dictionary texts,
which are encoded once per dictionary entry. About a third of the cost of the flights path.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Final

import numpy as np
import orjson

from aeroflow.domain.events import FlightStatus
from aeroflow.storage.port import FLIGHTS_JSON_OPTIONS, Flight, flights_json
from aeroflow.storage.read_model import ids
from aeroflow.storage.read_model.columns import (
    CODE_LINES,
    CODED,
    INTEGERS,
    KEY_LINE,
    LINES,
    PACKED,
    SCHEDULE_INSTANTS,
    Dictionary,
    RowValues,
)

_NULL: Final = "null"
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_INSTANTS: Final = (*SCHEDULE_INSTANTS, "updated_at")
_INSTANT_LINES: Final = [LINES[name] for name in _INSTANTS]
# The instants, then the local departure: one gather, and one range check for them all.
_TIME_LINES: Final = [*_INSTANT_LINES, LINES["scheduled_departure_local"]]
# Where orjson writes datetime64 as it writes datetimes, with room to spare: it stops at
# 9999-12-30T22:00 (and then writes a truncated array without raising), and datetime at year 1.
_FIRST: Final = (datetime(1, 1, 1, tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)
_END: Final = (datetime(9999, 1, 1, tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)
_INTEGER_LINES: Final = [LINES[name] for name in INTEGERS]
# numpy's datetime64 is naive: NAIVE_UTC makes orjson write it as it writes an aware instant.
_AWARE: Final = FLIGHTS_JSON_OPTIONS | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NAIVE_UTC
_NAIVE: Final = FLIGHTS_JSON_OPTIONS | orjson.OPT_SERIALIZE_NUMPY
_FIELDS: Final = tuple(field.name for field in dataclasses.fields(Flight))
# One row, as orjson writes a dataclass: its fields in order, compactly. The id is quoted
# here: an id with a key has letters, digits and dashes only (``ids.encode``).
_ROW: Final = (
    "{"
    + ",".join(f'"{name}":"%s"' if name == "flight_id" else f'"{name}":%s' for name in _FIELDS)
    + "}"
)


def _dumps(value: object) -> str:
    return orjson.dumps(value, option=FLIGHTS_JSON_OPTIONS).decode()


def _status_text(text: str) -> str:
    # Through the enum, as to_flights: a text that is no status fails alike on both paths.
    return _dumps(FlightStatus(text))


class TextFragments:
    """The JSON text of each value of a ``Dictionary``, by code, grown as the dictionary grows.

    The dictionary only appends, so a code's text never changes once made.
    """

    def __init__(self, dictionary: Dictionary, encode: Callable[[str], str] = _dumps) -> None:
        self._dictionary = dictionary
        self._encode = encode
        self._texts: list[str] = []
        self._lock = threading.Lock()

    def texts(self) -> list[str]:
        values = self._dictionary.values
        if len(self._texts) < len(values):
            with self._lock:  # two readers extending at once would shift every later code
                known, size = len(self._texts), len(values)
                self._texts.extend(map(self._encode, values[known:size]))
        return self._texts


def fragments_of(dictionaries: dict[str, Dictionary]) -> dict[str, TextFragments]:
    """Per dictionary name (``columns.CODED``'s values), its ``TextFragments``."""
    return {
        name: TextFragments(dictionary, _status_text if name == "status" else _dumps)
        for name, dictionary in dictionaries.items()
    }


def _column_texts(lines: np.ndarray, option: int) -> list[list[str]]:
    """orjson's text of each value of a 2-D array, a list per line (no value holds a comma)."""
    text = orjson.dumps(lines, option=option).decode()
    return [line.split(",") for line in text[2:-2].split("],[")]


def to_json(
    rows: RowValues,
    fragments: dict[str, TextFragments],
    to_flights: Callable[[RowValues], list[Flight]],
) -> bytes:
    """The JSON array of the rows' flights, as ``port.flights_json`` of ``to_flights(rows)``
    writes it (which it falls back to for instants orjson cannot write from numpy: years 1
    and 9999)."""
    if not len(rows):
        return b"[]"
    lines = rows.lines
    times = lines[_TIME_LINES]
    if times.min() < _FIRST or times.max() >= _END:
        return flights_json(to_flights(rows))
    stamps = times.view("datetime64[us]")
    columns: dict[str, list[str]] = dict(
        zip(_INSTANTS, _column_texts(stamps[:-1], _AWARE), strict=True)
    )
    columns["scheduled_departure_local"] = _column_texts(stamps[-1:], _NAIVE)[0]
    columns.update(zip(INTEGERS, _column_texts(lines[_INTEGER_LINES], _NAIVE), strict=True))
    if np.count_nonzero(rows.nulls):  # no Python wrapper, unlike ndarray.any
        null_lines, null_rows = np.nonzero(rows.nulls)
        for line, row in zip(null_lines.tolist(), null_rows.tolist(), strict=True):
            columns[PACKED[line]][row] = _NULL
    columns["flight_id"] = ids.decode_column(lines[KEY_LINE])
    codes: list[list[int]] = lines[list(CODE_LINES.values())].tolist()
    for (name, dictionary), column in zip(CODED.items(), codes, strict=True):
        known = fragments[dictionary].texts()
        if name == "tail_number":  # the one nullable text
            columns[name] = [_NULL if code < 0 else known[code] for code in column]
        else:  # never NULL: ``FlightColumns.from_arrow`` refuses such rows
            columns[name] = list(map(known.__getitem__, column))
    texts = map(_ROW.__mod__, zip(*[columns[name] for name in _FIELDS], strict=True))
    return ("[" + ",".join(texts) + "]").encode()
