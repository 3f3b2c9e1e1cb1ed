"""Column storage of the read model: packed integers, dictionaries, and a batch of flights rows
as plain numpy columns.

Every time is an int64 count of microseconds since the epoch, NULL as ``NULL``. Kept in a run
(``run.Run``), most of them are packed: stored as the difference to the flight's scheduled
departure (or to the column's minimum), divided by the coarsest unit that divides every value
(a minute, a second, a millisecond, a microsecond) in the narrowest integer type that holds the
range. Real schedules are whole minutes within a day of the departure, so most times take two
bytes, and any microsecond value still round-trips exactly.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from aeroflow.domain.schema import FLIGHTS
from aeroflow.storage.port import Flight
from aeroflow.storage.read_model import ids

Int64Array = npt.NDArray[np.int64]
Int32Array = npt.NDArray[np.int32]
IntArray = npt.NDArray[np.signedinteger]
BoolArray = npt.NDArray[np.bool_]

NULL: Final = np.iinfo(np.int64).min
NO_CODE: Final = -1  # dictionary code of a NULL string

# The packed columns and what each is stored relative to: the scheduled departure or nothing.
RELATIVE_TIMES: Final = (
    "scheduled_arrival",
    "scheduled_departure_local",
    "actual_departure",
    "actual_arrival",
    "event_time",
)
ABSOLUTE_TIMES: Final = ("updated_at",)
INTEGERS: Final = (
    "flight_number",
    "dep_delay_minutes",
    "arr_delay_minutes",
    "distance_miles",
    "air_time_minutes",
)
PACKED: Final = (*RELATIVE_TIMES, *ABSOLUTE_TIMES, *INTEGERS)
# Dictionary-coded strings, and the dictionary each uses (origin and destination share one).
CODED: Final = {
    "carrier": "carrier",
    "origin": "airport",
    "destination": "airport",
    "status": "status",
    "tail_number": "tail_number",
}
# NOT NULL in ``flights``: checked once per batch in ``FlightColumns.from_arrow``, so building
# a page need not look for NULLs in them.
REQUIRED: Final = tuple(
    column.name
    for column in FLIGHTS.columns
    if column.required and column.name in {f.name for f in dataclasses.fields(Flight)}
)
TIMESTAMP_COLUMNS: Final = frozenset(("scheduled_departure", *RELATIVE_TIMES, *ABSOLUTE_TIMES)) - {
    "scheduled_departure_local"
}

_TIME_UNITS: Final = (60_000_000, 1_000_000, 1_000, 1)
# Where orjson writes datetime64 as it writes datetimes, in µs since the epoch, with room to
# spare: it stops at 9999-12-30T22:00 (and then writes a truncated array without raising), and
# datetime at year 1. Instants outside are written through ``port.Flight`` objects.
WRITABLE_FIRST: Final = -62_135_596_800_000_000  # 0001-01-01T00:00Z
WRITABLE_END: Final = 253_370_764_800_000_000  # 9999-01-01T00:00Z
_INTEGER_UNITS: Final = (1,)
_TYPES: Final = (np.int8, np.int16, np.int32, np.int64)


class UnsupportedRowsError(ValueError):
    """Rows the read model cannot hold exactly; the store then answers from SQL."""


class UnsupportedFlightIdError(UnsupportedRowsError):
    """A flight id is not in the domain's shape, so the read model cannot index it."""


@dataclass(frozen=True, slots=True)
class PackedInts:
    """Integers stored as ``(value / unit) - low`` in a narrow type; -1 is NULL."""

    data: IntArray
    unit: int
    low: int  # in units; the smallest value
    high: int  # in units; the largest value (high < low: no value at all)

    @classmethod
    def pack(cls, values: Int64Array, units: Sequence[int]) -> PackedInts:
        valid = values != NULL
        present = values[valid]
        unit = next((u for u in units if not (present % u).any()), 1)
        scaled = present // unit
        low, high = (int(scaled.min()), int(scaled.max())) if len(scaled) else (0, -1)
        data = np.full(len(values), -1, dtype=_narrowest(high - low))
        data[valid] = scaled - low
        return cls(data, unit, low, high)

    def unpack(self, rows: IntArray | slice) -> Int64Array:
        stored = self.data[rows]
        values = (stored.astype(np.int64) + self.low) * self.unit
        values[stored < 0] = NULL
        return values

    def take(self, rows: IntArray) -> PackedInts:
        return PackedInts(self.data[rows], self.unit, self.low, self.high)

    @property
    def nbytes(self) -> int:
        return int(self.data.nbytes)

    @classmethod
    def concat(cls, parts: Sequence[PackedInts]) -> PackedInts:
        """One column holding the parts' values in order, in their common unit."""
        unit = min((p.unit for p in parts), default=1)
        filled = [p for p in parts if p.high >= p.low]
        low = min((p.low * (p.unit // unit) for p in filled), default=0)
        high = max((p.high * (p.unit // unit) for p in filled), default=-1)
        data = np.full(sum(len(p.data) for p in parts), -1, dtype=_narrowest(high - low))
        start = 0
        for part in parts:
            stored = part.data
            valid = stored >= 0
            out = data[start : start + len(stored)]
            out[valid] = (stored[valid].astype(np.int64) + part.low) * (part.unit // unit) - low
            start += len(stored)
        return cls(data, unit, low, high)


def _narrowest(span: int) -> type[np.signedinteger]:
    return next(t for t in _TYPES if span <= np.iinfo(t).max)


def code_type(size: int) -> type[np.signedinteger]:
    """The narrowest signed type for codes of a dictionary of ``size`` values (and -1)."""
    return _narrowest(size)


class Dictionary:
    """Append-only string dictionary: codes never change, so runs built earlier stay valid.

    Grown by the writer under the model's lock; readers only look up codes that exist.
    """

    def __init__(self) -> None:
        self.values: list[str] = []
        self._codes: dict[str, int] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.values)

    def lookup(self, value: str) -> int | None:
        return self._codes.get(value)

    def code(self, value: str) -> int:
        found = self._codes.get(value)
        if found is None:
            with self._lock:
                found = self._codes.setdefault(value, len(self.values))
                if found == len(self.values):
                    self.values.append(value)
        return found

    def encode(self, column: pa.Array | pa.ChunkedArray) -> Int32Array:
        """Codes of a string column, ``NO_CODE`` for NULL."""
        encoded = pc.dictionary_encode(_one_chunk(column))
        values = encoded.dictionary.to_pylist()
        # Known values without a method call each (a batch's tail numbers are hundreds).
        known = self._codes.get
        found = [known(value) for value in values]
        if None in found:
            found = [self.code(v) if c is None else c for v, c in zip(values, found, strict=True)]
        # The last entry is for NULL, whose index is filled with -1.
        mapping = np.array([*found, NO_CODE], np.int32)
        indices = encoded.indices
        if indices.null_count:
            indices = pc.fill_null(indices, -1)
        codes: Int32Array = mapping[indices.to_numpy(zero_copy_only=False)]
        return codes


@dataclass(frozen=True, slots=True)
class FlightColumns:
    """Flights rows as numpy columns: times and integers unpacked (int64, ``NULL``), strings
    as dictionary codes (int32, ``NO_CODE``), the flight id as its ``ids`` key."""

    keys: Int64Array
    departures: Int64Array
    ints: dict[str, Int64Array]
    codes: dict[str, Int32Array]

    def __len__(self) -> int:
        return len(self.keys)

    def take(self, rows: IntArray) -> FlightColumns:
        return FlightColumns(
            self.keys[rows],
            self.departures[rows],
            {name: column[rows] for name, column in self.ints.items()},
            {name: column[rows] for name, column in self.codes.items()},
        )

    @classmethod
    def concat(cls, parts: Iterable[FlightColumns]) -> FlightColumns:
        items = list(parts)
        return cls(
            np.concatenate([p.keys for p in items]),
            np.concatenate([p.departures for p in items]),
            {n: np.concatenate([p.ints[n] for p in items]) for n in PACKED},
            {n: np.concatenate([p.codes[n] for p in items]) for n in CODED},
        )

    @classmethod
    def from_arrow(
        cls, table: pa.Table | pa.RecordBatch, dictionaries: dict[str, Dictionary]
    ) -> FlightColumns:
        """Columns of ``flights`` rows, as the write path inserts them or DuckDB returns them.

        Raises UnsupportedFlightIdError for an id outside the domain's shape and
        UnsupportedRowsError for a NULL in a required column.
        """
        missing = [name for name in REQUIRED if table.column(name).null_count]
        if missing:
            raise UnsupportedRowsError(f"NULL in required flights columns: {', '.join(missing)}")
        return cls(
            flight_keys(table.column("flight_id")),
            _micros(table.column("scheduled_departure")),
            {name: _micros(table.column(name)) for name in PACKED},
            {
                name: dictionaries[dictionary].encode(table.column(name))
                for name, dictionary in CODED.items()
            },
        )


# Lines of ``RowValues.lines``: the key, the departure, the packed columns, the codes.
KEY_LINE: Final = 0
DEPARTURE_LINE: Final = 1
PACKED_LINES: Final = {name: 2 + at for at, name in enumerate(PACKED)}
CODE_LINES: Final = {name: 2 + len(PACKED) + at for at, name in enumerate(CODED)}
LINE_COUNT: Final = 2 + len(PACKED) + len(CODED)
# The line of every time and integer column, the departure included.
LINES: Final = {"scheduled_departure": DEPARTURE_LINE, **PACKED_LINES}
# Aware instants that repeat across flights (times of schedules and of events).
SCHEDULE_INSTANTS: Final = (
    "scheduled_departure",
    "scheduled_arrival",
    "actual_departure",
    "actual_arrival",
    "event_time",
)


# Not frozen: one is made per page, and a frozen dataclass's __init__ sets each field through
# object.__setattr__.
@dataclass(slots=True)
class RowValues:
    """A few rows for building ``port.Flight`` objects, as one int64 matrix with a line per
    column (see ``KEY_LINE`` and the others): the flight key, the departure, the packed
    columns unpacked (NULL cells set to 0 and flagged in ``nulls``, a line per name of
    ``PACKED``), the dictionary codes (``NO_CODE`` for NULL). One matrix, because a page is a
    few dozen rows: numpy's fixed cost per call dominates, so the fewer calls the better."""

    lines: Int64Array
    nulls: BoolArray  # a line per name of PACKED
    # True when every instant is known to lie in [WRITABLE_FIRST, WRITABLE_END) (a run's
    # bounds say so), which spares the page writer its own check; False: not known.
    instants_writable: bool = False

    def __len__(self) -> int:
        return int(self.lines.shape[1])


@dataclass(slots=True)  # not frozen, as RowValues
class Row:
    """One row as Python values (a point lookup: numpy's per-call cost would dominate): the
    packed columns in ``PACKED`` order (None for NULL), the codes in ``CODED`` order."""

    key: int
    departure: int
    ints: list[int | None]
    codes: list[int]


def _one_chunk(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(column, pa.ChunkedArray):
        # One chunk (a write batch's rows) is used as it is, not copied.
        return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    return column


def _micros(column: pa.Array | pa.ChunkedArray) -> Int64Array:
    """Timestamps (µs, aware or naive) as µs since the epoch; integers as they are."""
    array = _one_chunk(column)
    if pa.types.is_timestamp(array.type):
        if array.type.unit != "us":
            array = array.cast(pa.timestamp("us", array.type.tz))
        array = array.view(pa.int64())  # the same bytes: no cast kernel per column
    elif array.type != pa.int64():
        array = array.cast(pa.int64())
    if array.null_count:
        array = pc.fill_null(array, NULL)
    # A copy: a view would keep the Arrow buffer alive, and at load every chunk's buffers
    # would stay until the run is assembled (peak RSS at 10 M flights 994 -> 2,407 MiB).
    values: Int64Array = np.array(array.to_numpy(zero_copy_only=False), dtype=np.int64)
    return values


def flight_keys(column: pa.Array | pa.ChunkedArray) -> Int64Array:
    array = _one_chunk(column)
    if array.type != pa.string():
        array = array.cast(pa.string())
    count = len(array)
    if array.null_count:
        raise UnsupportedFlightIdError("NULL flight_id")
    offsets = np.frombuffer(array.buffers()[1], np.int32, count + 1, array.offset * 4)
    keys: Int64Array | None = None
    if count and bool((np.diff(offsets) == ids.ID_LENGTH).all()):
        data = memoryview(array.buffers()[2])[int(offsets[0]) : int(offsets[-1])]
        keys = ids.encode_many(data, count)
    elif count == 0:
        keys = np.empty(0, np.int64)
    if keys is None:
        bad = next(
            (i for i in array.to_pylist() if ids.encode(i) is None),
            "?",
        )
        raise UnsupportedFlightIdError(f"flight_id {bad!r} is not in the domain's shape")
    return keys
