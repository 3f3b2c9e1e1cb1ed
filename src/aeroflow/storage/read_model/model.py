"""The read model: ``flights`` held in memory, organised for the API's two reads.

Layout, like a small LSM tree: a list of immutable sorted runs (``run.Run``), oldest and
largest first, plus a mutable tail (``tail.Tail``) of the flights written since the last run was
built. Each live flight has exactly one row: a write masks the flight's row in a run (``dead``)
and puts the new one in the tail. Past ``freeze_rows`` the tail becomes a run, and runs of
similar size are merged, dropping dead rows, so there are few runs (about log base
``merge_ratio`` of the flights over ``freeze_rows``). Merges build the new run without the lock
(reads go on with the old runs) in a background thread and swap it in under the lock,
replaying the flights masked meanwhile.

Fed by ``DuckDBFlightStore`` with the rows each commit upserted into ``flights``, before the
store's write version moves: a read that sees the new version sees the write. One lock guards
the whole structure; reads hold it for a page's worth of work (tens of microseconds) and the
writer for a batch's (about a millisecond per thousand rows).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

import duckdb
import numpy as np
import pyarrow as pa

from aeroflow.storage.port import (
    DelayStats,
    Flight,
    FlightFilter,
    FlightPage,
    FlightPageJson,
    FlightQuery,
    GroupBy,
    Keyset,
)
from aeroflow.storage.read_model import ids, stats
from aeroflow.storage.read_model.columns import (
    CODED,
    DEPARTURE_LINE,
    KEY_LINE,
    LINE_COUNT,
    PACKED,
    BoolArray,
    Dictionary,
    FlightColumns,
    Int64Array,
    IntArray,
    RowValues,
    UnsupportedRowsError,
    flight_keys,
)
from aeroflow.storage.read_model.flights import to_flight, to_flights
from aeroflow.storage.read_model.load import sorted_batches
from aeroflow.storage.read_model.memory import release_freed_memory
from aeroflow.storage.read_model.page_json import CodeTexts, fragments_of, to_json
from aeroflow.storage.read_model.plan import Plan
from aeroflow.storage.read_model.run import Part, Run
from aeroflow.storage.read_model.tail import Tail

log = logging.getLogger(__name__)

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)
_NO_ROWS: Final = RowValues(np.empty((LINE_COUNT, 0), np.int64), np.empty((len(PACKED), 0), bool))


# Exactly the fields of port.Flight, in its order (``flights`` also keeps the recency columns,
# which the model does not need: DuckDB orders the writes).
_COLUMNS: Final = tuple(field.name for field in dataclasses.fields(Flight))


@dataclass(frozen=True, slots=True)
class Tuning:
    # Tail rows before the tail becomes a run: each query scans the tail whole (~10 µs per
    # 8 k rows here), and each freeze sorts it (~1 ms).
    freeze_rows: int = 8_192
    # A run is merged into the one before it once it holds 1/merge_ratio of its rows.
    merge_ratio: int = 8
    # False: merges run in the writer's thread, inside ``apply`` (deterministic, for tests).
    background_merges: bool = True
    load_chunk_rows: int = 262_144
    # Flights per departure range DuckDB sorts at a time while loading (see ``load``).
    load_range_rows: int = 524_288


class FlightReadModel:
    def __init__(self, tuning: Tuning = Tuning()) -> None:
        self._freeze_rows = tuning.freeze_rows
        self._merge_ratio = tuning.merge_ratio
        self._dictionaries = {name: Dictionary() for name in {*CODED.values()}}
        self._code_texts = CodeTexts(fragments_of(self._dictionaries))
        self._lock = threading.Lock()
        self._runs: list[Run] = []
        self._tail = Tail()
        # The pair of runs a merge is building from, and the keys masked in them since.
        self._merging: tuple[Run, Run] | None = None
        self._masked_while_merging: list[Int64Array] = []
        self._closed = False
        self._wake = threading.Condition(self._lock)
        self._merger: threading.Thread | None = None
        if tuning.background_merges:
            self._merger = threading.Thread(
                target=self._merge_forever, name="read-model-merge", daemon=True
            )
            self._merger.start()

    @classmethod
    def load(
        cls, connection: duckdb.DuckDBPyConnection, tuning: Tuning = Tuning()
    ) -> FlightReadModel:
        """The model of the ``flights`` table, read in chunks.

        Raises ``columns.UnsupportedFlightIdError`` when a stored id is not in the domain's
        shape.
        """
        model = cls(tuning)
        cursor = connection.cursor()
        try:
            # Ordered by DuckDB, so the chunks arrive as one sorted run: sorting in numpy
            # instead peaked ~400 MiB higher at 10 M flights (lexsort's temporaries).
            batches = sorted_batches(
                cursor,
                _COLUMNS,
                range_rows=tuning.load_range_rows,
                batch_rows=tuning.load_chunk_rows,
            )
            parts = []
            for batch in batches:
                parts.append(Part.of(FlightColumns.from_arrow(batch, model._dictionaries)))
                release_freed_memory()
        finally:
            cursor.close()
        if parts:
            model._runs = [Run.assemble(parts, model._sizes(), presorted=True)]
        release_freed_memory()
        return model

    # --- the write side ----------------------------------------------------------------

    def apply(self, rows: pa.Table) -> None:
        """Make ``rows`` (full ``flights`` rows, at most one per flight) the flights' state."""
        batch = FlightColumns.from_arrow(rows, self._dictionaries)
        if len(np.unique(batch.keys)) != len(batch):
            raise ValueError("a batch of flights rows holds a flight twice")
        with self._lock:
            for run in self._runs:
                masked = run.find(batch.keys)
                if len(masked):
                    run.mask(masked)
                    if self._merging is not None and run in self._merging:
                        self._masked_while_merging.append(run.keys[masked])
            self._tail.upsert(batch)
            froze = len(self._tail) >= self._freeze_rows
            if froze:
                self._runs.append(Run.build(self._tail.contents(), self._sizes()))
                self._tail = Tail()
                self._wake.notify()
        if froze and self._merger is None:
            self.merge_pending()

    def holds(self, flight_ids: pa.Array) -> BoolArray | None:
        """Which of ``flight_ids`` are flights the model holds, or None when one of
        them is not in the domain's shape (the model cannot say, so the caller must ask SQL).

        The store asks this under its write lock, where the model reflects every committed
        flight: a flight it does not hold is not in ``flights``, so the store need not look it
        up there before inserting it.
        """
        try:
            keys = flight_keys(flight_ids)
        except UnsupportedRowsError:
            return None
        with self._lock:
            found = [run.keys[run.find(keys)] for run in self._runs]
            in_tail = [k for k in keys.tolist() if self._tail.find(k) is not None]
        found.append(np.array(in_tail, np.int64))
        held: BoolArray = np.isin(keys, np.concatenate(found))
        return held

    def merge_pending(self) -> None:
        """Do the merges due now, in this thread."""
        while self._merge_once():
            pass

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._wake.notify()
        if self._merger is not None:
            self._merger.join()

    def _merge_forever(self) -> None:
        while True:
            with self._lock:
                while not self._closed and self._due() is None:
                    self._wake.wait()
                if self._closed:
                    return
            try:
                self._merge_once()
            except Exception:
                # Reads stay right without the merge (more runs only cost time); retrying a
                # merge that failed would fail again.
                log.exception("read model merge failed; merges stop")
                return

    def _due(self) -> tuple[Run, Run] | None:
        """The two newest runs when the newer is big enough to merge into the older."""
        if len(self._runs) < 2:
            return None
        older, newer = self._runs[-2], self._runs[-1]
        if len(newer) * self._merge_ratio < len(older):
            return None
        return older, newer

    def _merge_once(self) -> bool:
        with self._lock:
            due = self._due()
            if due is None:
                return False
            older = due[0]
            parts: list[tuple[Run, IntArray | None]] = [(run, run.live_rows()) for run in due]
            sizes = self._sizes()
            self._merging = due
            self._masked_while_merging = []
        try:
            merged = Run.combine(parts, sizes)
        except BaseException:
            with self._lock:
                self._merging = None
            raise
        with self._lock:
            if self._masked_while_merging:
                masked = merged.find(np.concatenate(self._masked_while_merging))
                merged.mask(masked)
            # Only merges remove runs and only this one runs now: the pair is still adjacent.
            at = self._runs.index(older)
            self._runs[at : at + 2] = [merged]
            self._merging = None
            self._masked_while_merging = []
        return True

    def _sizes(self) -> dict[str, int]:
        return {name: len(self._dictionaries[d]) for name, d in CODED.items()}

    # --- the read side -----------------------------------------------------------------

    def list_flights(self, query: FlightQuery) -> FlightPage:
        rows, next_key = self._select(query)
        return FlightPage(flights=to_flights(rows, self._dictionaries), next=next_key)

    def list_flights_json(self, query: FlightQuery) -> FlightPageJson:
        """``FlightPageJson.of(self.list_flights(query))``, without the ``Flight`` objects."""
        rows, next_key = self._select(query)
        data = to_json(rows, self._code_texts, self._to_flights)
        return FlightPageJson(data, len(rows), next_key)

    def _to_flights(self, rows: RowValues) -> list[Flight]:
        return to_flights(rows, self._dictionaries)

    def _select(self, query: FlightQuery) -> tuple[RowValues, Keyset | None]:
        """The page's rows, in order, and the keyset of its last row if a next page exists."""
        plan = Plan.of(query, self._dictionaries)
        if plan.impossible:
            return _NO_ROWS, None
        with self._lock:
            # An empty tail (nothing written since the last freeze) has nothing to search.
            tail = self._tail
            sources: Sequence[Run | Tail] = [*self._runs, tail] if len(tail) else self._runs
            hits = [source.search(plan) for source in sources]
            rows, more = self._page(plan, sources, hits, query.limit)
        # Turned into Python objects outside the lock: the rows are copies, and dictionaries
        # only grow, so the writer need not wait for that.
        if not more:
            return rows, None
        departure, key = rows.lines[(DEPARTURE_LINE, KEY_LINE), -1].tolist()
        return rows, Keyset(_EPOCH + _MICROSECOND * departure, ids.decode(key))

    def _page(
        self, plan: Plan, sources: Sequence[Run | Tail], hits: list[IntArray], limit: int
    ) -> tuple[RowValues, bool]:
        """The first ``limit`` of every source's hits (up to ``plan.want`` each), in the
        query's order, and whether more hits follow them."""
        counts = [len(h) for h in hits]
        filled = [i for i, c in enumerate(counts) if c]
        if not filled:
            return _NO_ROWS, False
        if len(filled) == 1:
            # One source (usually so: the big run, an empty tail) is in order already.
            index = filled[0]
            hit = hits[index]
            more = len(hit) > limit
            return sources[index].values(hit[:limit] if more else hit), more
        owner = np.repeat(np.arange(len(sources)), counts)
        rows = np.concatenate(hits)
        departures = np.empty(len(rows), np.int64)
        keys = np.empty(len(rows), np.int64)
        start = 0
        for source, hit in zip(sources, hits, strict=True):
            stop = start + len(hit)
            departures[start:stop], keys[start:stop] = source.order_keys(hit)
            start = stop
        order = np.lexsort((keys, departures))
        if plan.descending:
            order = order[::-1]
        more = len(order) > limit
        order = order[:limit]
        # Each source's chosen rows in page order, side by side, then put in place.
        positions = []
        values = []
        for index in filled:
            picked = np.flatnonzero(owner[order] == index)
            if len(picked):
                positions.append(picked)
                values.append(sources[index].values(rows[order[picked]]))
        place = np.argsort(np.concatenate(positions))
        lines = np.concatenate([v.lines for v in values], axis=1)[:, place]
        nulls = np.concatenate([v.nulls for v in values], axis=1)[:, place]
        return RowValues(lines, nulls, all(v.instants_writable for v in values)), more

    def delay_stats(
        self, group_by: GroupBy, flight_filter: FlightFilter
    ) -> list[DelayStats] | None:
        """``port.FlightStore.delay_stats`` from memory (see ``stats``), or None when the
        counts would take too much memory (then SQL must answer).

        Under the lock only the runs' dead masks and the tail are copied (~1-2 ms for a run
        of 10 M rows with any masked); the scan, ~50-100 ms of CPU over 10 M flights, runs
        outside it, over the runs as they were: runs are immutable but for their masks, and
        a merge replaces runs rather than changing them. The caller runs this in a worker
        thread."""
        with self._lock:
            sources = [stats.Source(run, run.dead_copy()) for run in self._runs]
            tail = self._tail.contents() if len(self._tail) else None
            sizes = self._sizes()
        if tail is not None:
            sources.append(stats.Source(Run.build(tail, sizes), None))
        return stats.delay_stats(sources, self._dictionaries, sizes, group_by, flight_filter)

    def get_flight(self, flight_id: str) -> Flight | None:
        key = ids.encode(flight_id)
        if key is None:
            return None  # the model holds no such id (see ids)
        with self._lock:
            row = self._tail.find(key)
            if row is not None:
                return to_flight(self._tail.row(row), self._dictionaries)
            for run in reversed(self._runs):
                found = run.find_one(key)
                if found is not None:
                    return to_flight(run.row(found), self._dictionaries)
            return None

    # --- introspection -----------------------------------------------------------------

    def __len__(self) -> int:
        with self._lock:
            runs = sum(len(r) - r.dead_count for r in self._runs)
            return runs + len(self._tail)

    @property
    def run_sizes(self) -> list[int]:
        with self._lock:
            return [len(r) for r in self._runs]

    @property
    def nbytes(self) -> int:
        """Bytes held in runs' arrays (the tail and dictionaries are small and not counted)."""
        with self._lock:
            return sum(r.nbytes for r in self._runs)
