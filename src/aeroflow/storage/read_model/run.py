"""A run: an immutable, sorted block of flights with its own indexes.

Rows are ordered by (scheduled_departure, flight key), the API's order, so a departure window
or a keyset position is a binary search. Posting lists (row numbers per carrier, origin and
destination code, ascending, so also in that order) narrow a filtered page to a slice: a page
is two binary searches on the smallest slice plus a vectorised check of a few candidates,
never a pass over the run. A flight updated after the run was built is masked by ``dead``
(the only mutable part, written by the model under its lock); merges drop dead rows.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from aeroflow.storage.read_model import ids
from aeroflow.storage.read_model.columns import (
    ABSOLUTE_TIMES,
    CODED,
    DEPARTURE_LINE,
    INTEGERS,
    KEY_LINE,
    NULL,
    PACKED,
    RELATIVE_TIMES,
    WRITABLE_END,
    WRITABLE_FIRST,
    BoolArray,
    FlightColumns,
    Int64Array,
    IntArray,
    PackedInts,
    Row,
    RowValues,
    code_type,
)
from aeroflow.storage.read_model.memory import release_freed_memory
from aeroflow.storage.read_model.plan import After, Plan

_TIME_UNITS: Final = (60_000_000, 1_000_000, 1_000, 1)
_INTEGER_UNITS: Final = (1,)
# Candidates checked per step of a scan: enough for most pages at once, doubling after.
_FIRST_CHUNK: Final = 256
_MAX_CHUNK: Final = 65_536
# Up to this many keys are looked up one by one, more in one vectorised search.
_FEW_KEYS: Final = 8
# Runs from this many rows return freed memory to the OS while being built.
_BIG_RUN: Final = 1_000_000
# Rows per step of building posting lists: its scratch is ~16 B per row.
_POSTING_CHUNK: Final = 1 << 20
# ``key_order``: groups of about this many rows (at most _KEY_GROUPS, codes of an int16)
# are sorted one at a time.
_KEY_GROUP_ROWS: Final = 4_096
_KEY_GROUPS: Final = 32_000


@dataclass(frozen=True, slots=True)
class Postings:
    """Row numbers grouped by code (CSR): rows of code c are rows[starts[c]:starts[c + 1]]."""

    rows: IntArray
    starts: Int64Array

    @classmethod
    def build(
        cls, codes: IntArray, dictionary_size: int, *, chunk_rows: int = _POSTING_CHUNK
    ) -> Postings:
        """A counting sort of ``codes``, one chunk of rows at a time: a whole-column argsort
        made intp row numbers (and radix scratch) of 16 B per row, ~160 MiB at 10 M flights
        on top of the model while it was built; chunks keep that to one chunk's worth."""
        # Slot 0 counts NULL codes (-1), which sort first (no filter asks for them); slot
        # c + 1 counts code c.
        slots = dictionary_size + 1
        counts = np.zeros(slots, np.int64)
        for start in range(0, len(codes), chunk_rows):
            counts += np.bincount(_slots(codes, start, chunk_rows), minlength=slots)[:slots]
        bounds = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
        rows = np.empty(len(codes), _row_type(len(codes)))
        filled = bounds[:-1].copy()  # where each slot's next rows go
        for start in range(0, len(codes), chunk_rows):
            chunk = _slots(codes, start, chunk_rows)
            # Stable, so each code's rows stay ascending; numpy radix-sorts small integers.
            order = np.argsort(chunk, kind="stable")
            ends = np.cumsum(np.bincount(chunk, minlength=slots)[:slots])
            first = 0
            for slot in np.flatnonzero(np.diff(ends, prepend=0)).tolist():
                last = int(ends[slot])
                at = int(filled[slot])
                rows[at : at + last - first] = order[first:last] + start
                filled[slot] = at + last - first
                first = last
        return cls(rows, bounds[1:])

    def of(self, code: int) -> IntArray:
        if not 0 <= code < len(self.starts) - 1:
            return self.rows[:0]
        return self.rows[self.starts[code] : self.starts[code + 1]]

    @property
    def nbytes(self) -> int:
        return int(self.rows.nbytes + self.starts.nbytes)


_EMPTY: Final = np.empty(0, np.int64)


def _slots(codes: IntArray, start: int, count: int) -> npt.NDArray[np.intp]:
    """``Postings.build``'s slots of ``codes[start:start + count]``: code + 1, NULL 0."""
    chunk: npt.NDArray[np.intp] = codes[start : start + count].astype(np.intp)
    chunk += 1
    return chunk


@dataclass(slots=True)
class Part:
    """Rows on their way into a run: its columns without its indexes, in any order."""

    departures: Int64Array
    keys: Int64Array
    packed: dict[str, PackedInts]
    codes: dict[str, IntArray]

    @classmethod
    def of(cls, columns: FlightColumns) -> Part:
        departures = columns.departures
        packed = {}
        for name in PACKED:
            values = columns.ints[name]
            if name in RELATIVE_TIMES:
                values = np.where(values == NULL, NULL, values - departures)
            packed[name] = PackedInts.pack(values, _units(name))
        # Narrow already: at 10 M flights int32 codes would hold 150 MiB more while loading.
        codes = {name: _narrow_codes(c) for name, c in columns.codes.items()}
        return cls(departures, columns.keys, packed, codes)

    @classmethod
    def of_run(cls, run: Run, rows: IntArray | None) -> Part:
        if rows is None:
            return cls(run.departures, run.keys, dict(run.packed), dict(run.codes))
        return cls(
            run.departures[rows],
            run.keys[rows],
            {name: column.take(rows) for name, column in run.packed.items()},
            {name: codes[rows] for name, codes in run.codes.items()},
        )


def key_order(keys: Int64Array, *, group_rows: int = _KEY_GROUP_ROWS) -> IntArray:
    """Row numbers of ``keys`` in ascending key order (equal keys in row order).

    A whole-column argsort makes intp row numbers, 8 B per row beyond the int32 ones kept:
    ~80 MiB at 10 M flights, the top of the load's peak. Instead the rows are grouped by equal-
    width ranges of the key (a counting sort, ``Postings.build``) and each group is sorted
    alone, so the scratch is one group's. Keys lead with the carrier and flight number, so the
    groups stay small; skewed keys only make a group larger, never the order different.
    """
    count = len(keys)
    if count <= group_rows:
        return np.argsort(keys, kind="stable").astype(_row_type(count))
    low, high = int(keys.min()), int(keys.max())
    groups = min(_KEY_GROUPS, count // group_rows + 1)
    width = (high - low) // groups + 1
    group_of = np.empty(count, np.int16)
    for start in range(0, count, _POSTING_CHUNK):
        group_of[start : start + _POSTING_CHUNK] = (
            keys[start : start + _POSTING_CHUNK] - low
        ) // width
    grouped = Postings.build(group_of, groups)
    del group_of
    rows, starts = grouped.rows, grouped.starts.tolist()
    for first, last in itertools.pairwise(starts):
        if last - first > 1:
            members = rows[first:last]
            rows[first:last] = members[np.argsort(keys[members], kind="stable")]
    return rows


def _narrow_codes(codes: IntArray) -> IntArray:
    top = int(codes.max()) if len(codes) else 0
    narrowed: IntArray = codes.astype(code_type(top + 1), copy=False)
    return narrowed


def _drain(parts: list[Part], name: str) -> Int64Array:
    """The parts' int64 column ``name`` in one array, each part's released once copied."""
    total = sum(len(getattr(p, name)) for p in parts)
    out = np.empty(total, np.int64)
    start = 0
    for part in parts:
        values = getattr(part, name)
        out[start : start + len(values)] = values
        start += len(values)
        setattr(part, name, _EMPTY)
    return out


def _instants_writable(departures: Int64Array, packed: dict[str, PackedInts]) -> bool:
    """Whether every instant of the run lies where the page writer writes them from numpy
    (``columns.WRITABLE_FIRST``/``WRITABLE_END``), by the columns' bounds (conservative: a
    relative time's bounds are added to the departures'). Rows are sorted by departure."""
    if not len(departures):
        return True
    first, last = int(departures[0]), int(departures[-1])
    low, high = first, last
    for name in (*RELATIVE_TIMES, *ABSOLUTE_TIMES):
        column = packed[name]
        if column.high < column.low:
            continue  # NULL throughout
        base_low, base_high = (first, last) if name in RELATIVE_TIMES else (0, 0)
        low = min(low, base_low + column.low * column.unit)
        high = max(high, base_high + column.high * column.unit)
    return low >= WRITABLE_FIRST and high < WRITABLE_END


def _row_type(size: int) -> type[np.signedinteger]:
    return np.int32 if size < 2**31 else np.int64


def _units(name: str) -> Sequence[int]:
    return _INTEGER_UNITS if name in INTEGERS else _TIME_UNITS


class Run:
    """Flights sorted by (departure, key); see the module docstring."""

    def __init__(
        self,
        departures: Int64Array,
        keys: Int64Array,
        packed: dict[str, PackedInts],
        codes: dict[str, IntArray],
        dictionary_sizes: dict[str, int],
    ) -> None:
        self.departures = departures
        self.keys = keys
        self.packed = packed
        self.codes = codes
        # Per line of ``RowValues.lines``: unpacking a page is then a few matrix operations.
        self._packed_lines = [packed[name] for name in PACKED]
        self._page_columns = [
            keys,
            departures,
            *(packed[name].data for name in PACKED),
            *(codes[name] for name in CODED),
        ]
        self._row_items = [column.data for column in self._page_columns]
        self._lows = np.array([[packed[name].low] for name in PACKED], np.int64)
        self._units = np.array([[packed[name].unit] for name in PACKED], np.int64)
        # The indexes' scratch is freed into glibc's heap (chunk-sized blocks): for big runs it
        # is trimmed after each, or it piled up to ~160 MiB above the model at 10 M flights.
        big = len(keys) >= _BIG_RUN
        self.key_order = key_order(keys)
        self._key_items = keys.data
        self._order_items = self.key_order.data
        self.postings = {}
        for name in ("carrier", "origin", "destination"):
            if big:
                release_freed_memory()
            self.postings[name] = Postings.build(codes[name], dictionary_sizes[name])
        if big:
            release_freed_memory()
        # A page's binary searches run through memoryviews and Python ints (bisect): a numpy
        # call per bound cost more than the search itself, in a request's cold caches.
        self._departure_items = departures.data
        self._posting_items = {name: p.rows.data for name, p in self.postings.items()}
        self._posting_starts = {name: p.starts.tolist() for name, p in self.postings.items()}
        self._instants_writable = _instants_writable(departures, packed)
        # Allocated at the first update: a run nothing masks (the big one a restart loads,
        # until flights in it change) does without.
        self._dead: BoolArray | None = None
        self.dead_count = 0

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def nbytes(self) -> int:
        arrays = [self.departures, self.keys, self.key_order, *self.codes.values()]
        return (
            sum(int(a.nbytes) for a in arrays)
            + (0 if self._dead is None else int(self._dead.nbytes))
            + sum(p.nbytes for p in self.packed.values())
            + sum(p.nbytes for p in self.postings.values())
        )

    # --- building ----------------------------------------------------------------------

    @classmethod
    def build(cls, columns: FlightColumns, dictionary_sizes: dict[str, int]) -> Run:
        """A run of ``columns`` in any order."""
        return cls.assemble([Part.of(columns)], dictionary_sizes)

    @classmethod
    def combine(
        cls, parts: Sequence[tuple[Run, IntArray | None]], dictionary_sizes: dict[str, int]
    ) -> Run:
        """One run of the given rows of runs (all rows for None), without unpacking."""
        return cls.assemble([Part.of_run(run, rows) for run, rows in parts], dictionary_sizes)

    @classmethod
    def assemble(
        cls, parts: list[Part], dictionary_sizes: dict[str, int], *, presorted: bool = False
    ) -> Run:
        """One run of ``parts``, which it empties field by field as it goes.

        The parts' blocks are small, so freeing them only returns memory to glibc's heap: for
        big runs the heap is trimmed after every field, so at most about one field is held
        twice (at 10 M flights, holding it all twice would pass 1 GiB).
        ``presorted``: the parts follow each other in order (chunks of an ordered scan).
        """
        big = sum(len(p.keys) for p in parts) >= _BIG_RUN

        def released() -> None:
            if big:
                release_freed_memory()

        departures = _drain(parts, "departures")
        keys = _drain(parts, "keys")
        released()
        order = None if presorted else np.lexsort((keys, departures))
        if order is not None:
            departures, keys = departures[order], keys[order]
        packed = {}
        for name in PACKED:
            column = PackedInts.concat([p.packed.pop(name) for p in parts])
            packed[name] = column if order is None else column.take(order)
            released()
        codes = {}
        for name in CODED:
            merged = np.concatenate([p.codes.pop(name) for p in parts])
            merged = merged.astype(code_type(dictionary_sizes[name]), copy=False)
            codes[name] = merged if order is None else merged[order]
            released()
        return cls(departures, keys, packed, codes, dictionary_sizes)

    # --- reading -----------------------------------------------------------------------

    def mask(self, rows: IntArray) -> None:
        """Hide ``rows`` (live ones: their flights have a newer row elsewhere)."""
        if self._dead is None:
            self._dead = np.zeros(len(self), dtype=np.bool_)
        self._dead[rows] = True
        self.dead_count += len(rows)

    def dead_copy(self) -> BoolArray | None:
        """A copy of the dead rows' mask (None: no row is dead), for reads that run outside
        the model's lock and must not see later writes mask rows."""
        if self._dead is None or not self.dead_count:
            return None
        return self._dead.copy()

    def live_rows(self) -> IntArray | None:
        """The rows not masked, or None for all of them."""
        if self._dead is None or not self.dead_count:
            return None
        rows: IntArray = np.flatnonzero(~self._dead)
        return rows

    def find(self, keys: Int64Array) -> IntArray:
        """Row numbers of the live rows holding ``keys`` (keys not found are skipped)."""
        if not len(self):
            return np.empty(0, np.int64)
        if len(keys) <= _FEW_KEYS:
            at = np.array([self._key_position(k) for k in keys.tolist()], np.int64)
        else:
            at = self._key_positions(keys)
        rows = self.key_order[np.minimum(at, len(self) - 1)]
        hit = self.keys[rows] == keys
        if self._dead is not None:
            hit &= ~self._dead[rows]
        found: IntArray = rows[hit]
        return found

    def find_one(self, key: int) -> int | None:
        """The row number of the live row holding ``key``, if any."""
        at = self._key_position(key)
        if at == len(self):
            return None
        row: int = self._order_items[at]
        if self._key_items[row] != key or (self._dead is not None and self._dead[row]):
            return None
        return row

    # numpy's searchsorted checks a ``sorter`` argument whole, O(n) per call, which would
    # make a lookup cost a pass over the run: these binary searches go through key_order.

    def _key_position(self, key: int) -> int:
        # Through memoryviews: indexing one gives a Python int, without a numpy scalar.
        return bisect.bisect_left(self._order_items, key, key=self._key_items.__getitem__)

    def _key_positions(self, wanted: Int64Array) -> Int64Array:
        lo = np.zeros(len(wanted), np.int64)
        hi = np.full(len(wanted), len(self), np.int64)
        while True:
            open_ = lo < hi
            if not open_.any():
                return lo
            mid = (lo + hi) // 2
            below = self.keys[self.key_order[np.minimum(mid, len(self) - 1)]] < wanted
            lo = np.where(open_ & below, mid + 1, lo)
            hi = np.where(open_ & ~below, mid, hi)

    def order_keys(self, rows: IntArray) -> tuple[Int64Array, Int64Array]:
        """(departures, keys) of ``rows``: what orders them in a page."""
        return self.departures[rows], self.keys[rows]

    def values(self, rows: IntArray) -> RowValues:
        # ``take`` costs less per call than fancy indexing, and one ``np.array`` call converts
        # every column: per page, numpy's fixed costs are most of the work. Row numbers are
        # int32 here; converted once, not by each of the 18 takes.
        rows = rows.astype(np.intp, copy=False)
        lines = np.array([column.take(rows) for column in self._page_columns], np.int64)
        packed = lines[2 : 2 + len(PACKED)]
        nulls = packed < 0
        packed += self._lows
        packed *= self._units
        packed[: len(RELATIVE_TIMES)] += lines[DEPARTURE_LINE]
        packed[nulls] = 0
        return RowValues(lines, nulls, self._instants_writable)

    def row(self, row: int) -> Row:
        # Through memoryviews, as in _key_position: Python ints without numpy scalars.
        items = [column[row] for column in self._row_items]
        departure = items[DEPARTURE_LINE]
        ints: list[int | None] = []
        packed = items[2 : 2 + len(PACKED)]
        for at, (stored, column) in enumerate(zip(packed, self._packed_lines, strict=True)):
            if stored < 0:
                ints.append(None)
            else:
                relative = departure if at < len(RELATIVE_TIMES) else 0
                ints.append((stored + column.low) * column.unit + relative)
        return Row(items[KEY_LINE], departure, ints, items[2 + len(PACKED) :])

    def search(self, plan: Plan) -> IntArray:
        """Up to ``plan.want`` row numbers matching ``plan``, in the query's order."""
        candidates = self.candidates(plan)
        if candidates is None:
            return np.empty(0, np.int64)
        return self._scan(plan, *candidates)

    def candidates(self, plan: Plan) -> tuple[dict[str, int], IntArray | None, int, int] | None:
        """Where rows matching ``plan`` can be (None: nowhere): the equality checks still to
        make, the smallest posting list of an equality filter within the window (None: no
        such filter), and the positions [lo, hi) the departure window and keyset leave."""
        lo, hi = self._bounds(plan)
        if lo >= hi:
            return None
        posted = None
        checks = dict(plan.equal)
        for name, code in plan.equal.items():
            first, last = self._posted(name, code, lo, hi)
            if posted is None or last - first < len(posted):
                posted = self.postings[name].rows[first:last]
                chosen = name
        if posted is not None:
            del checks[chosen]
        return checks, posted, lo, hi

    def _posted(self, name: str, code: int, lo: int, hi: int) -> tuple[int, int]:
        """Where the rows in [lo, hi) of ``code`` sit in ``name``'s posting list (as
        ``Postings.of(code)`` then searched)."""
        starts = self._posting_starts[name]
        if not 0 <= code < len(starts) - 1:
            return 0, 0
        items, end = self._posting_items[name], starts[code + 1]
        first = bisect.bisect_left(items, lo, starts[code], end)
        return first, bisect.bisect_left(items, hi, first, end)

    def _bounds(self, plan: Plan) -> tuple[int, int]:
        """The positions [lo, hi) the departure window and the keyset leave."""
        lo, hi = 0, len(self)
        if plan.departure_from is not None:
            lo = bisect.bisect_left(self._departure_items, plan.departure_from)
        if plan.departure_to is not None:
            hi = bisect.bisect_left(self._departure_items, plan.departure_to)
        if plan.after is not None:
            split = self._split(plan.after, strictly_after=not plan.descending)
            if plan.descending:
                hi = min(hi, split)
            else:
                lo = max(lo, split)
        return lo, hi

    def _split(self, after: After, *, strictly_after: bool) -> int:
        """First position after the keyset row (ascending) or at/after it (descending)."""
        first, last = np.searchsorted(self.departures, (after.departure, after.departure + 1))
        group = self.keys[first:last]  # same departure: ascending keys
        if after.key is not None:
            side: Literal["left", "right"] = "right" if strictly_after else "left"
            return int(first + np.searchsorted(group, after.key, side))
        # Not a stored id's shape: compare as text, as the database compares VARCHARs.
        texts = [ids.decode(k) for k in group.tolist()]
        cut = bisect.bisect_right if strictly_after else bisect.bisect_left
        return int(first + cut(texts, after.flight_id))

    def _scan(
        self,
        plan: Plan,
        checks: dict[str, int],
        posted: IntArray | None,
        lo: int,
        hi: int,
    ) -> IntArray:
        """Check candidates chunk by chunk from the query's first row until enough match."""
        total = hi - lo if posted is None else len(posted)
        found: list[IntArray] = []
        count = 0
        done = 0
        chunk = max(_FIRST_CHUNK, 2 * plan.want)
        while done < total and count < plan.want:
            size = min(chunk, total - done)
            if plan.descending:
                start, stop = total - done - size, total - done
            else:
                start, stop = done, done + size
            if posted is None:
                rows: IntArray = np.arange(lo + start, lo + stop)
            else:
                rows = posted[start:stop]
            mask = self._matches(plan, checks, rows)
            matched = rows if mask is None else rows[mask]
            if plan.descending:
                matched = matched[::-1]
            found.append(matched)
            count += len(matched)
            done += size
            chunk = min(chunk * 2, _MAX_CHUNK)
        if not found:
            return np.empty(0, np.int64)
        # Usually the first chunk is enough.
        result: IntArray = (found[0] if len(found) == 1 else np.concatenate(found))[: plan.want]
        return result

    def _matches(self, plan: Plan, checks: dict[str, int], rows: IntArray) -> BoolArray | None:
        """Which of ``rows`` match; None when all of them do (no check to make)."""
        masks: list[BoolArray] = []
        if self._dead is not None:
            masks.append(~self._dead.take(rows))
        for name, code in checks.items():
            masks.append(self.codes[name].take(rows) == code)
        if plan.status is not None:
            masks.append(self.codes["status"].take(rows) == plan.status)
        if plan.min_dep_delay is not None:
            delays = self.packed["dep_delay_minutes"].unpack(rows)
            masks.append((delays != NULL) & (delays >= plan.min_dep_delay))
        if not masks:
            return None
        mask = masks[0]
        for other in masks[1:]:
            mask &= other
        return mask
