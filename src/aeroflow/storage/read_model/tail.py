"""The tail: flights written since the last run was built, unsorted and mutable.

Small by construction (the model turns it into a run past a few thousand rows), so a query
checks all of it with a handful of vectorised comparisons. A flight updated again while in
the tail is overwritten in place: each live flight has exactly one row in the model.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from aeroflow.storage.read_model import ids
from aeroflow.storage.read_model.columns import (
    CODED,
    NULL,
    PACKED,
    BoolArray,
    FlightColumns,
    Int32Array,
    Int64Array,
    IntArray,
    Row,
    RowValues,
)
from aeroflow.storage.read_model.plan import After, Plan

_INITIAL_CAPACITY: Final = 1024


class Tail:
    def __init__(self) -> None:
        self._size = 0
        self._capacity = _INITIAL_CAPACITY
        self._columns = _empty(self._capacity)
        self._positions: dict[int, int] = {}  # key -> row

    def __len__(self) -> int:
        return self._size

    def contents(self) -> FlightColumns:
        """A copy of the rows, in no particular order."""
        return self._columns.take(np.arange(self._size))

    def values(self, rows: IntArray) -> RowValues:
        c = self._columns
        columns: list[IntArray] = [
            c.keys,
            c.departures,
            *(c.ints[name] for name in PACKED),
            *(c.codes[name] for name in CODED),
        ]
        rows = rows.astype(np.intp, copy=False)  # once, not by each take
        lines = np.array([column.take(rows) for column in columns], np.int64)
        packed = lines[2 : 2 + len(PACKED)]
        nulls = packed == NULL
        packed[nulls] = 0
        return RowValues(lines, nulls)

    def row(self, row: int) -> Row:
        c = self._columns
        ints = [int(c.ints[name][row]) for name in PACKED]
        return Row(
            int(c.keys[row]),
            int(c.departures[row]),
            [None if value == NULL else value for value in ints],
            [int(c.codes[name][row]) for name in CODED],
        )

    def order_keys(self, rows: IntArray) -> tuple[Int64Array, Int64Array]:
        """(departures, keys) of ``rows``: what orders them in a page."""
        return self._columns.departures[rows], self._columns.keys[rows]

    def find(self, key: int) -> int | None:
        return self._positions.get(key)

    def upsert(self, batch: FlightColumns) -> None:
        """Overwrite the rows of flights already here, append the others (keys distinct)."""
        keys = batch.keys.tolist()
        # One dict probe per key, then numpy: the writer runs this for every commit.
        found = self._positions.get
        known = np.array([found(key, -1) for key in keys], np.int64)
        old = np.flatnonzero(known >= 0)
        new = np.flatnonzero(known < 0)
        if len(old):
            self._write(known[old], batch if len(old) == len(batch) else batch.take(old))
        if len(new):
            start, end = self._size, self._size + len(new)
            self._reserve(end)
            # Appended rows are one slice: slice assignment, no index array.
            self._write(slice(start, end), batch if len(new) == len(batch) else batch.take(new))
            added = keys if len(new) == len(batch) else batch.keys[new].tolist()
            self._positions.update(zip(added, range(start, end), strict=True))
            self._size = end

    def _write(self, rows: IntArray | slice, values: FlightColumns) -> None:
        columns = self._columns
        columns.keys[rows] = values.keys
        columns.departures[rows] = values.departures
        for name in PACKED:
            columns.ints[name][rows] = values.ints[name]
        for name in CODED:
            columns.codes[name][rows] = values.codes[name]

    def _reserve(self, size: int) -> None:
        if size <= self._capacity:
            return
        while self._capacity < size:
            self._capacity *= 2
        grown = _empty(self._capacity)
        n = self._size
        grown.keys[:n] = self._columns.keys[:n]
        grown.departures[:n] = self._columns.departures[:n]
        for name in PACKED:
            grown.ints[name][:n] = self._columns.ints[name][:n]
        for name in CODED:
            grown.codes[name][:n] = self._columns.codes[name][:n]
        self._columns = grown

    def search(self, plan: Plan) -> IntArray:
        """Up to ``plan.want`` rows matching ``plan``, in the query's order."""
        n = self._size
        if not n:
            return np.empty(0, np.int64)
        c = self._columns
        departures = c.departures[:n]
        mask: BoolArray = np.ones(n, np.bool_)
        for name, code in plan.equal.items():
            mask &= c.codes[name][:n] == code
        if plan.status is not None:
            mask &= c.codes["status"][:n] == plan.status
        if plan.departure_from is not None:
            mask &= departures >= plan.departure_from
        if plan.departure_to is not None:
            mask &= departures < plan.departure_to
        if plan.min_dep_delay is not None:
            delays = c.ints["dep_delay_minutes"][:n]
            mask &= (delays != NULL) & (delays >= plan.min_dep_delay)
        rows = np.flatnonzero(mask)
        if plan.after is not None and len(rows):
            rows = rows[self._beyond(plan, plan.after, rows)]
        order = np.lexsort((c.keys[rows], departures[rows]))
        if plan.descending:
            order = order[::-1]
        result: IntArray = rows[order[: plan.want]]
        return result

    def _beyond(self, plan: Plan, after: After, rows: IntArray) -> BoolArray:
        """Which rows lie past the keyset position in the query's direction."""
        departures = self._columns.departures[rows]
        keys = self._columns.keys[rows]
        if plan.descending:
            past: BoolArray = departures < after.departure
        else:
            past = departures > after.departure
        tied = np.flatnonzero(departures == after.departure)
        if after.key is not None:
            beyond = keys[tied] < after.key if plan.descending else keys[tied] > after.key
        else:
            texts = [ids.decode(k) for k in keys[tied].tolist()]
            beyond = np.array(
                [
                    (t < after.flight_id) if plan.descending else (t > after.flight_id)
                    for t in texts
                ],
                np.bool_,
            )
        past[tied] = beyond
        return past


def _empty(capacity: int) -> FlightColumns:
    ints: dict[str, Int64Array] = {name: np.full(capacity, NULL, np.int64) for name in PACKED}
    codes: dict[str, Int32Array] = {name: np.full(capacity, -1, np.int32) for name in CODED}
    return FlightColumns(np.zeros(capacity, np.int64), np.zeros(capacity, np.int64), ints, codes)
