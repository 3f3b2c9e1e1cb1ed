"""Columns of result rows -> the JSON array of their flights, without ``port.Flight`` objects.

The bytes are exactly ``port.flights_json`` of the flights ``flights.to_flights`` builds from
the same rows (tests hold them to that). Building the flights costs a Python object per value
and serialising them walks every one again; here orjson writes whole columns straight from
numpy instead: the instants as ``datetime64[us]`` (which it writes exactly as it writes the
equivalent datetimes, microseconds and all), the integers as int64, two calls per page. Their
texts are split apart into one list with the ids' texts, the dictionaries' texts (encoded once
per entry) and the constant texts of a row; one ``itemgetter`` made per page length picks them
in the page's order and one ``join`` writes the page. A page is a few dozen rows, so the cost
is in the number of Python-level steps, not in the values: these are a handful per page, none
per row.
"""

from __future__ import annotations

import dataclasses
import operator
import threading
from collections.abc import Callable
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
    LINE_COUNT,
    LINES,
    PACKED,
    SCHEDULE_INSTANTS,
    WRITABLE_END,
    WRITABLE_FIRST,
    Dictionary,
    Int64Array,
    RowValues,
)

_NULL: Final = "null"
_INSTANTS: Final = (*SCHEDULE_INSTANTS, "updated_at")
_INSTANT_LINES: Final = [LINES[name] for name in _INSTANTS]
# The instants, then the local departure: one gather, and one range check for them all.
_TIME_LINES: Final = [*_INSTANT_LINES, LINES["scheduled_departure_local"]]
_FIRST: Final = WRITABLE_FIRST
_INTEGER_LINES: Final = [LINES[name] for name in INTEGERS]
# numpy's datetime64 is naive: NAIVE_UTC makes orjson write it as it writes an aware instant.
_AWARE: Final = FLIGHTS_JSON_OPTIONS | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NAIVE_UTC
_NAIVE: Final = FLIGHTS_JSON_OPTIONS | orjson.OPT_SERIALIZE_NUMPY
_FIELDS: Final = tuple(field.name for field in dataclasses.fields(Flight))


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
        self.dictionary = dictionary
        self._encode = encode
        self._texts: list[str] = []
        self._lock = threading.Lock()

    def texts(self) -> list[str]:
        values = self.dictionary.values
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


# The numeric lines of a page, gathered at once: the aware instants, the local departure,
# the integers. The first _TIME_COUNT lines are instants.
_NUMERIC_LINES: Final = [*_INSTANT_LINES, LINES["scheduled_departure_local"], *_INTEGER_LINES]
_TIME_COUNT: Final = len(_INSTANT_LINES) + 1
# The codes are the last lines of ``RowValues.lines``: a page's are a slice, not a gather.
_FIRST_CODE_LINE: Final = min(CODE_LINES.values())
if sorted(CODE_LINES.values()) != list(range(_FIRST_CODE_LINE, LINE_COUNT)):
    raise AssertionError("page_json expects the code lines last, in CODED's order")
# Writable instants, shifted to start at 0: one unsigned comparison checks both ends (a value
# below _FIRST wraps to a huge one).
_SPAN: Final = np.uint64(WRITABLE_END - WRITABLE_FIRST)
# The page's texts, in blocks of a value per row (see ``_rows_text``): the instants and the
# integers (orjson's one text), the local departure (its other), the two halves of the id,
# the coded texts.
_BLOCKS: Final = (
    *_INSTANTS,
    *INTEGERS,
    "scheduled_departure_local",
    "flight_id/prefix",
    "flight_id/date",
    *CODED,
)
_BLOCK: Final = {name: at for at, name in enumerate(_BLOCKS)}
# Per line of ``RowValues.nulls`` (``PACKED``), the block its NULLs are written in.
_NULL_BLOCKS: Final = np.array([_BLOCK[name] for name in PACKED], np.int64)
# Rows written by one ``_rows_text``: its item picker is kept per row count up to this.
_CHUNK_ROWS: Final = 100


def _before(name: str) -> str:
    """The constant text before a field's value: the id's is the row's opening."""
    if name == "flight_id":
        return '},{"flight_id":"'  # the first row's "}," becomes "[" (see _rows_text)
    return ('","' if name == "carrier" else ',"') + f'{name}":'  # the id's quote closed


# The texts written before the values that have no text of their own for it: numbers and
# instants. A coded value's text and the id's first half start with theirs already.
_PLAIN: Final = [name for name in _FIELDS if name in _BLOCK and name not in CODED]
_LITERALS: Final = [_before(name) for name in _PLAIN]
_LITERAL: Final = {name: at for at, name in enumerate(_PLAIN)}
_END: Final = len(_LITERALS)  # the page's end, "}]", after the literals
_OPENED_PREFIXES: Final = ids.prefix_memo(_before("flight_id"))


def _picker(count: int) -> Callable[[list[str]], tuple[str, ...]]:
    """The texts of a page of ``count`` rows, picked in the page's order from the list
    ``_rows_text`` makes: ``_LITERALS``, the end, then each block of ``count`` values."""
    first = _END + 1  # where the blocks start
    order: list[int] = []
    for row in range(count):
        for name in _FIELDS:
            if name == "flight_id":
                order.append(first + _BLOCK["flight_id/prefix"] * count + row)
                order.append(first + _BLOCK["flight_id/date"] * count + row)
                continue
            if name in _LITERAL:
                order.append(_LITERAL[name])
            order.append(first + _BLOCK[name] * count + row)
    order.append(_END)
    # Each index as the one shared int object of its value: the pickers of all page lengths
    # then hold pointers only, and a page touches fewer objects.
    return operator.itemgetter(*map(_INDEXES.__getitem__, order))


_INDEXES: Final = list(range(_END + 1 + len(_BLOCKS) * _CHUNK_ROWS))


class _Pickers:
    """``_picker`` per row count, made once: ~31 indexes per row, ~1.3 MB for every row count
    up to _CHUNK_ROWS."""

    def __init__(self) -> None:
        self._made: dict[int, Callable[[list[str]], tuple[str, ...]]] = {}

    def __call__(self, count: int) -> Callable[[list[str]], tuple[str, ...]]:
        picker = self._made.get(count)
        if picker is None:
            picker = self._made.setdefault(count, _picker(count))
        return picker


_PICKERS: Final = _Pickers()


class CodeTexts:
    """The text of every code of each coded column, the field's name before it, in one list,
    so that a page's codes become texts in one pass: each line's codes are shifted by its
    column's offset in it. A nullable column's ``null`` sits right before its texts, where its
    NULL (-1) lands. Rebuilt when a dictionary has grown (rare: new carriers, airports, tail
    numbers)."""

    def __init__(self, fragments: dict[str, TextFragments]) -> None:
        self._fragments = [fragments[dictionary] for dictionary in CODED.values()]
        self._dictionaries = [f.dictionary for f in self._fragments]
        self._lock = threading.Lock()
        self._current: tuple[list[int], list[str], Int64Array] = ([], [], _NO_OFFSETS)

    def current(self) -> tuple[list[str], Int64Array]:
        """The texts, and per code line (``CODED``'s order) the offset of its codes."""
        sizes, texts, offsets = self._current
        if sizes != [len(d.values) for d in self._dictionaries]:
            with self._lock:
                texts, offsets = self._rebuild()
        return texts, offsets

    def _rebuild(self) -> tuple[list[str], Int64Array]:
        sizes = [len(d.values) for d in self._dictionaries]
        texts: list[str] = []
        starts: list[int] = []
        for name, fragments, size in zip(CODED, self._fragments, sizes, strict=True):
            before = _before(name)
            if name == "tail_number":  # the one nullable text
                texts.append(before + _NULL)
            starts.append(len(texts))
            # Up to the size read: what the snapshot claims to know (fragments may know more).
            texts.extend([before + text for text in fragments.texts()[:size]])
        offsets = np.array([[start] for start in starts], np.int64)
        self._current = (sizes, texts, offsets)
        return texts, offsets


_NO_OFFSETS: Final = np.zeros((len(CODED), 1), np.int64)


def _rows_text(rows: RowValues, codes: tuple[list[str], Int64Array]) -> str:
    """The JSON array of the rows' flights (at most _CHUNK_ROWS; instants in range)."""
    count = len(rows)
    lines = rows.lines
    numeric = lines[_NUMERIC_LINES]
    stamps = numeric[:_TIME_COUNT].view("datetime64[us]")
    # One orjson call for the aware instants and the integers: '[["...",...],[1,...]]'.
    both = (stamps[: _TIME_COUNT - 1].ravel(), numeric[_TIME_COUNT:].ravel())
    text = orjson.dumps(both, option=_AWARE).decode()
    local = orjson.dumps(stamps[_TIME_COUNT - 1], option=_NAIVE).decode()
    prefixes, dates = ids.decode_halves(lines[KEY_LINE], _OPENED_PREFIXES)
    prefixes[0] = "[" + prefixes[0][2:]  # the first row opens the array: no "},"
    texts, offsets = codes
    coded = (lines[_FIRST_CODE_LINE:] + offsets).ravel().tolist()
    values = [
        *_LITERALS,
        "}]",
        *text[2:-2].replace("],[", ",", 1).split(","),
        *local[1:-1].split(","),
        *prefixes,
        *dates,
        *map(texts.__getitem__, coded),
    ]
    if np.count_nonzero(rows.nulls):  # no Python wrapper, unlike ndarray.any
        null_lines, null_rows = np.nonzero(rows.nulls)
        at = _NULL_BLOCKS[null_lines] * count + null_rows + _END + 1
        for index in at.tolist():
            values[index] = _NULL
    return "".join(_PICKERS(count)(values))


def to_json(
    rows: RowValues,
    codes: CodeTexts,
    to_flights: Callable[[RowValues], list[Flight]],
) -> bytes:
    """The JSON array of the rows' flights, as ``port.flights_json`` of ``to_flights(rows)``
    writes it (which it falls back to for instants orjson cannot write from numpy: years 1
    and 9999)."""
    count = len(rows)
    if not count:
        return b"[]"
    if not rows.instants_writable:
        times = rows.lines[_TIME_LINES]
        if np.count_nonzero((times - _FIRST).view(np.uint64) >= _SPAN):
            return flights_json(to_flights(rows))
    current = codes.current()  # after the rows: it knows every code they hold
    if count <= _CHUNK_ROWS:
        return _rows_text(rows, current).encode()
    chunks = []
    for start in range(0, count, _CHUNK_ROWS):
        part = slice(start, start + _CHUNK_ROWS)
        chunks.append(_rows_text(RowValues(rows.lines[:, part], rows.nulls[:, part]), current))
    # Each chunk is an array: its brackets dropped, the rows of all joined in one.
    return ("[" + ",".join(chunk[1:-1] for chunk in chunks) + "]").encode()
