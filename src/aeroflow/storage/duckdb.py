"""The embedded storage adapter: one DuckDB file, the default backend for local runs.

Writes: one transaction per batch. The batch is deduplicated by message id (inside itself and
against both ``flight_events`` and ``rejected_messages``), the new rows go in as Arrow tables,
and ``flights`` is upserted with the newest event per flight. Newest means the largest
(event_time, publish_time, message_id); the message id only makes exact ties deterministic, so
the final state never depends on arrival order.

Reads: SQL from ``storage.queries`` (the same builder the BigQuery adapter uses), each call on
its own cursor off one connection, which is how DuckDB's Python client is made thread-safe.
Writes are serialised by a lock as well: DuckDB allows one writer, and concurrent upserts of one
flight would otherwise fail with a transaction conflict instead of queueing.

Indexes: only the primary keys (DuckDB ART indexes), which serve ``get_flight`` and the
message-id checks. The list and stats filters (carrier, origin, destination, status, time range,
delay) are served by DuckDB's per-row-group min/max zone maps and vectorised scans: DuckDB does
not plan secondary ART indexes for range predicates or low-cardinality equality. Measured on
300,000 flights (DuckDB 2.0): an index on scheduled_departure left every list and stats query's
latency unchanged (3-12 ms per page, ~30 ms per stats query), while each one costs every upsert.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import duckdb
import pyarrow as pa

from aeroflow.domain.schema import FLIGHTS, TABLES
from aeroflow.observability.metrics import STORAGE_QUERY_DURATION, STORAGE_ROWS_RETURNED
from aeroflow.storage import queries
from aeroflow.storage.duckdb_config import (
    connection_config,
    loading_buffers,
    purge_freed_memory,
    write_checkpoints,
)
from aeroflow.storage.duckdb_rows import EventRows, RecencyKey, event_rows, rejected_rows
from aeroflow.storage.duckdb_rows import prepare as prepare_rows
from aeroflow.storage.port import (
    AcceptedMessage,
    DelayStats,
    Flight,
    FlightFilter,
    FlightPage,
    FlightPageJson,
    FlightQuery,
    GroupBy,
    Keyset,
    RejectedMessage,
    StorageUnavailableError,
    WriteBatch,
    WriteResult,
)
from aeroflow.storage.read_model import Tuning as ReadModelTuning
from aeroflow.storage.read_model import open_read_model
from aeroflow.storage.rows import delay_stats_from_row, flight_from_row

log = logging.getLogger(__name__)

# The read model answers in microseconds, so its metric children are looked up once, not per
# call (``labels()`` and a context manager cost as much as a point lookup itself).
_LIST_DURATION: Final = STORAGE_QUERY_DURATION.labels(query="list_flights")
_LIST_ROWS: Final = STORAGE_ROWS_RETURNED.labels(query="list_flights")
_GET_DURATION: Final = STORAGE_QUERY_DURATION.labels(query="get_flight")
_GET_ROWS: Final = STORAGE_ROWS_RETURNED.labels(query="get_flight")
_STATS_DURATION: Final = STORAGE_QUERY_DURATION.labels(query="delay_stats")
_STATS_ROWS: Final = STORAGE_ROWS_RETURNED.labels(query="delay_stats")

# duckdb errors that mean "the database cannot do this now" (disk, lock, memory, closed or
# invalidated database, transaction conflict). Everything else (binder, constraint, conversion
# errors) is a bug in aeroflow and must surface as such, not be retried forever.
_UNAVAILABLE_ERRORS: Final = (
    duckdb.OperationalError,
    duckdb.FatalException,
    duckdb.InterruptException,
    duckdb.PermissionException,
)

# Lookups by key: the keys go in as one list parameter (``= ANY(?)``), planned as a hash
# semi-join, ~4x less CPU than an IN list of 1,000 parameters (an OR chain per row).
# ``flights`` lookups also bound the local departure (see EventRows.local_departure_days), so
# the scan skips other days' row groups: 4 ms instead of 15 ms of CPU per 700 flights at 336 k.
# For a few flights (the committer's batches at 64 in flight hold ~50 events), a search of the
# list per remaining row beats building the hash table: ~3 ms less CPU per batch of 50 or 200
# events at 336 k flights; its cost grows with flights x rows in the days, hence the bound.
_RECENCY_COLUMNS: Final = (
    "SELECT flight_id, epoch_us(event_time), epoch_us(publish_time), message_id, rowid"
    " FROM flights WHERE scheduled_departure_local >= ? AND scheduled_departure_local < ?"
)
_RECENCY_SQL: Final = _RECENCY_COLUMNS + " AND flight_id = ANY(?)"
_RECENCY_FEW_SQL: Final = _RECENCY_COLUMNS + " AND list_contains(?::VARCHAR[], flight_id)"
_RECENCY_FEW: Final = 64
_IDS_IN_EVENTS_SQL: Final = "SELECT message_id FROM flight_events WHERE message_id = ANY(?)"
_IDS_IN_REJECTED_SQL: Final = "SELECT message_id FROM rejected_messages WHERE message_id = ANY(?)"
_IDS_IN_BOTH_SQL: Final = (
    "SELECT message_id FROM flight_events WHERE message_id = ANY($1)"
    " UNION ALL SELECT message_id FROM rejected_messages WHERE message_id = ANY($2)"
)
# ``{rows}`` names a local Arrow table of the calling method (a DuckDB replacement scan) and
# ``{table}`` one of the schema's tables: constants of this module, never caller text.
_INSERT_SQL: Final = "INSERT INTO {table} BY NAME SELECT * FROM {rows}"
# Flights a batch event beats are overwritten in place, found by the row id read in the same
# transaction: ~2.4 ms of CPU for 20 or 100 flights where delete-and-insert took 3.8 and 6.8
# (at 336 k flights), and the table keeps no deleted rows for scans to skip. flight_id, the
# primary key, is never set: it is what matched the row.
_UPDATE_FLIGHTS_SQL: Final = (
    "UPDATE flights SET "  # noqa: S608 - the schema's column names, no caller text
    + ", ".join(f"{name} = r.{name}" for name in FLIGHTS.column_names if name != "flight_id")
    + " FROM replacing AS r WHERE flights.rowid = r.row_id"
)


class NotAStoreError(Exception):
    """A file opened read-only is missing, not a DuckDB database, or lacks aeroflow's tables
    (a read-only open creates nothing)."""


class ReadOnlyStoreError(Exception):
    """A write through a store opened read-only."""


def _check_schema(connection: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Refuse a database without every column of aeroflow's tables, at open rather than at
    the first request."""
    columns = "SELECT table_name, column_name FROM information_schema.columns"
    rows = connection.execute(columns + " WHERE table_schema = 'main'").fetchall()
    present = {(table, column) for table, column in rows}
    missing = [
        f"{table.name}.{name}"
        for table in TABLES
        for name in table.column_names
        if (table.name, name) not in present
    ]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise NotAStoreError(f"{path} is not an aeroflow store (missing {shown})")


def _first_occurrences(
    batch: WriteBatch,
) -> tuple[list[AcceptedMessage], list[RejectedMessage]]:
    """The batch's messages without repeated message ids: the first occurrence wins, accepted
    messages counted before rejected ones; the rest are duplicates."""
    accepted, rejected = list(batch.accepted), list(batch.rejected)
    ids = [m.meta.message_id for m in accepted]
    ids += [m.meta.message_id for m in rejected]
    if len(set(ids)) == len(ids):
        return accepted, rejected  # the usual batch: no repeats, nothing to filter
    seen: set[str] = set()
    firsts: tuple[list[AcceptedMessage], list[RejectedMessage]] = ([], [])
    messages: list[AcceptedMessage | RejectedMessage] = [*accepted, *rejected]
    for message in messages:
        message_id = message.meta.message_id
        if message_id in seen:
            continue
        seen.add(message_id)
        if isinstance(message, AcceptedMessage):
            firsts[0].append(message)
        else:
            firsts[1].append(message)
    return firsts


@dataclass(frozen=True, slots=True)
class FlightWrites:
    """What a batch writes into ``flights``: each of its flights' newest event becomes the
    flight's row when no stored row is newer.

    Newest by (event_time, publish_time, message_id), compared here against the stored rows'
    keys; rows a batch event beats are overwritten in place by row id (``_UPDATE_FLIGHTS_SQL``
    over ``replacing``), new flights inserted (over ``new_flights``), in the batch's
    transaction. Measured at 300,000 flights, 80 per batch: ~7 ms, where one ``INSERT ... ON
    CONFLICT DO UPDATE ... WHERE newer`` took ~20 ms whether the flights were new or not; at
    336,000 flights and 2,000 events (~700 flights) per batch, the lookup, update and insert
    take ~4 + 2 + 3 ms of CPU, and ON CONFLICT ~30 ms.
    """

    # Every row written (the added ones, then the replacing ones), for the read model; None
    # when nothing is written.
    rows: pa.Table | None
    added: pa.Table | None
    # The replacing rows plus the ``row_id`` of the stored row each overwrites.
    replacing: pa.Table | None
    # Statements reading ``added`` as ``new_flights`` and ``replacing`` by its name.
    statements: list[str]

    @classmethod
    def of(
        cls,
        events: EventRows,
        newest: dict[str, tuple[RecencyKey, int]],
        stored_rows: list[tuple[str, int, int, str, int]],
    ) -> FlightWrites:
        """``newest``: the batch's newest event per flight; ``stored_rows``: the stored rows
        of those flights (at least of every one ``flights`` holds), as ``_RECENCY_SQL``
        selects them, in the batch's transaction."""
        stored = {row[0]: ((row[1], row[2], row[3]), row[4]) for row in stored_rows}
        added: list[int] = []
        beaten: list[int] = []
        row_ids: list[int] = []
        for flight_id, (key, position) in newest.items():
            current = stored.get(flight_id)
            if current is None:
                added.append(position)
            elif key[1:] > current[0]:
                beaten.append(position)
                row_ids.append(current[1])
        if not added and not beaten:
            return cls(None, None, None, [])
        rows = events.flights_rows(added + beaten)
        statements: list[str] = []
        replacing = None
        if beaten:
            # Read in this transaction under the write lock: nothing can move these rows.
            replacing = rows.slice(len(added)).append_column(
                "row_id", pa.array(row_ids, pa.int64())
            )
            statements.append(_UPDATE_FLIGHTS_SQL)
        new_flights = None
        if added:
            new_flights = rows.slice(0, len(added))
            statements.append(_INSERT_SQL.format(table="flights", rows="new_flights"))
        return cls(rows, new_flights, replacing, statements)


class DuckDBFlightStore:
    """``FlightStore`` over one DuckDB database file."""

    _TABLE = "flights"

    def __init__(
        self,
        path: Path,
        *,
        threads: int = 2,
        memory_limit: str | None = None,
        read_model: bool = True,
        read_model_tuning: ReadModelTuning | None = None,
        read_only: bool = False,
    ) -> None:
        """``read_only``: serve the file as a published snapshot (``aeroflow api``). DuckDB
        then takes a shared lock, so several processes may open the file at once (and none
        may write it); nothing is created or migrated, and ``write_batch`` is refused."""
        self._path = path
        self._read_only = read_only
        self._write_lock = threading.Lock()
        self._closed = False
        self._write_version = 0
        if read_only:
            if not path.is_file():
                raise NotAStoreError(f"no DuckDB database at {path} to serve read-only")
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = duckdb.connect(
                str(path), read_only=read_only, config=connection_config(threads, memory_limit)
            )
        except _UNAVAILABLE_ERRORS as exc:
            # Typically the file is locked by another process (or is no DuckDB file).
            raise StorageUnavailableError(f"cannot open DuckDB database {path}: {exc}") from exc
        try:
            with self._unavailable_on_error():
                purge_freed_memory(self._conn)
                if read_only:
                    _check_schema(self._conn, path)
                else:
                    write_checkpoints(self._conn, memory_limit)
                    for table in TABLES:
                        self._conn.execute(table.duckdb_ddl())
                # Write-path hints (see _known_ids); this process is the file's only writer.
                self._has_rejections = bool(
                    self._conn.execute("SELECT count(*) FROM rejected_messages").fetchall()[0][0]
                )
                # list_flights and get_flight from memory (storage/read_model), fed below.
                self._read_model = None
                if read_model:
                    with loading_buffers(self._conn, memory_limit):
                        self._read_model = open_read_model(self._conn, read_model_tuning)
        except BaseException:
            self._conn.close()
            raise
        self._expect_redeliveries = False
        self._write_cursor: duckdb.DuckDBPyConnection | None = None
        # Handed the rows each commit upserted into ``flights``, after the commit and before
        # the write version moves (the read model, when on). The rows are committed by then,
        # so it must not raise.
        self._flights_committed: Callable[[pa.Table], None] | None = (
            None if self._read_model is None else self._feed_read_model
        )

    @property
    def path(self) -> Path:
        return self._path

    @property
    def write_version(self) -> int:
        """Count of committed writes. Read it before a read query: a result computed at
        version v is current for as long as the version is still v (the API's response cache
        relies on this). Only this process can write the file, so no write goes uncounted."""
        return self._write_version

    # --- writes --------------------------------------------------------------------------

    def prepare_writes(self) -> None:
        """One-time set-up of the write path, for a writer to call before its first batch
        (see ``duckdb_rows.prepare``). Not in the port: optional, found by the committer."""
        prepare_rows()

    def write_batch(self, batch: WriteBatch) -> WriteResult:
        if self._read_only:
            raise ReadOnlyStoreError(f"DuckDB {self._path} is open read-only: writes are refused")
        with self._timed("write_batch"), self._write_lock, self._unavailable_on_error():
            return self._write(batch)

    def _write(self, batch: WriteBatch) -> WriteResult:
        accepted, rejected = _first_occurrences(batch)
        if not accepted and not rejected:
            return WriteResult(stored=0, duplicates=len(batch), rejected=0)

        events = event_rows(accepted)
        cursor = self._writer()
        existing, events_checked = self._known_ids(cursor, events, rejected)
        try:
            stored, kept = self._store(cursor, events, rejected, existing)
        except duckdb.ConstraintException:
            if events_checked:
                raise  # not a redelivery we failed to look up: a real bug
            # A message of the batch is in flight_events already (a redelivery), which the
            # optimistic insert does not look for: find them and write the rest.
            existing |= self._stored_ids(cursor, [key[3] for key in events.keys], [])
            events_checked = True
            stored, kept = self._store(cursor, events, rejected, existing)
        # Redeliveries come in runs (a replay, a backlog after an outage): while they do, look
        # them up first rather than fail an insert per batch.
        self._expect_redeliveries = events_checked and bool(existing)
        return WriteResult(
            stored=stored,
            duplicates=len(batch) - stored - kept,
            rejected=kept,
            # Ids stored by an earlier batch. A repeat inside this batch is counted as a
            # duplicate but not named: its id was stored, by its first occurrence.
            duplicate_ids=frozenset(existing),
        )

    def _writer(self) -> duckdb.DuckDBPyConnection:
        """The cursor all writes use, under the write lock. One for the store's life: every
        DuckDB call hands the GIL back and waits to retake it from the busy event loop, so the
        writer makes as few as it can (no cursor per batch, no unregistering)."""
        if self._write_cursor is None:
            self._write_cursor = self._conn.cursor()
        return self._write_cursor

    def _known_ids(
        self,
        cursor: duckdb.DuckDBPyConnection,
        events: EventRows,
        rejected: Sequence[RejectedMessage],
    ) -> tuple[set[str], bool]:
        """Ids of the batch stored by earlier batches, as far as worth looking up before
        writing; True when flight_events was searched for the accepted ones too.

        flight_events is not searched for accepted messages unless redeliveries are expected:
        its primary key refuses a duplicate anyway (then ``_write`` looks them up and retries).
        A lookup there scans the table, an insert probes its index. Whatever is searched, it
        is one statement: each DuckDB call costs ~0.5 ms of planning and a GIL round trip.
        """
        rejected_ids = [m.meta.message_id for m in rejected]
        event_ids = [key[3] for key in events.keys]
        check_events = bool(event_ids) and self._expect_redeliveries
        in_events = rejected_ids + event_ids if check_events else rejected_ids
        # rejected_messages is usually empty: searched for accepted ids only once it is not.
        in_rejected = rejected_ids + event_ids if self._has_rejections else rejected_ids
        return self._stored_ids(cursor, in_events, in_rejected), check_events

    def _store(
        self,
        cursor: duckdb.DuckDBPyConnection,
        events: EventRows,
        rejected: Sequence[RejectedMessage],
        existing: set[str],
    ) -> tuple[int, int]:
        """One transaction: the batch's messages not in ``existing``. (stored, kept) counts.

        The statements read the batch's Arrow tables by their local names here (DuckDB's
        replacement scans: no register call, no view in the catalog), in as few calls as the
        batch allows. A batch whose flights may be stored takes two: the opening inserts the
        rows and looks up the stored state of those flights (the only statement with
        parameters, so the last one); the closing replaces the flights the batch beats,
        inserts the new ones and commits. A batch of new flights only (the read model knows
        every stored flight, see ``_maybe_stored``) is one call: each costs a GIL round trip
        and planning.
        """
        new_events = events.without(existing) if existing else events
        new_rejected = [m for m in rejected if m.meta.message_id not in existing]
        if not new_events.keys and not new_rejected:
            return 0, 0  # a replay of stored messages: nothing to write
        # Read by name in the SQL below and in _upsert_flights.
        batch_rejected = rejected_rows(new_rejected) if new_rejected else None
        batch_events = new_events.table
        script = ["BEGIN TRANSACTION"]
        if new_rejected:
            script.append(_INSERT_SQL.format(table="rejected_messages", rows="batch_rejected"))
        writes: FlightWrites | None = None
        try:
            if new_events.keys:
                script.append(_INSERT_SQL.format(table="flight_events", rows="batch_events"))
                newest = new_events.newest_per_flight()
                maybe_stored = self._maybe_stored(newest)
                stored: list[tuple[str, int, int, str, int]] = []
                if maybe_stored:
                    first_day, after_last_day = new_events.local_departure_days()
                    script.append(
                        _RECENCY_SQL if len(maybe_stored) > _RECENCY_FEW else _RECENCY_FEW_SQL
                    )
                    stored = cursor.execute(
                        ";\n".join(script), [first_day, after_last_day, maybe_stored]
                    ).fetchall()
                    script = []
                writes = FlightWrites.of(new_events, newest, stored)
                self._upsert_flights(cursor, script, writes, batch_events, batch_rejected)
            else:
                cursor.execute(";\n".join([*script, "COMMIT"]))
            upserted = None if writes is None else writes.rows
            if upserted is not None and self._flights_committed is not None:
                self._flights_committed(upserted)
            if new_events.keys:
                # After the commit (a reader that saw the old version may have read the
                # old rows); only when ``flights`` may have changed: replays and rejected
                # messages leave cached reads valid.
                self._write_version += 1
        except BaseException:
            # Secondary errors while rolling back must not mask the first one.
            with contextlib.suppress(duckdb.Error):
                cursor.rollback()
            raise
        if new_rejected:
            self._has_rejections = True
        return len(new_events.keys), len(new_rejected)

    @staticmethod
    def _upsert_flights(
        cursor: duckdb.DuckDBPyConnection,
        script: list[str],
        writes: FlightWrites,
        batch_events: pa.Table,
        batch_rejected: pa.Table | None,
    ) -> None:
        """Run what is left of the batch's transaction: ``script`` (from its BEGIN when no
        lookup was needed, else empty), the flights ``writes``, and the commit. The tables
        are parameters so that the statements find them by name in this frame."""
        replacing = writes.replacing  # noqa: F841 - read by name in the SQL below
        new_flights = writes.added  # noqa: F841 - read by name in the SQL below
        cursor.execute(";\n".join([*script, *writes.statements, "COMMIT"]))

    def _maybe_stored(self, newest: dict[str, tuple[RecencyKey, int]]) -> list[str]:
        """The batch's flights that ``flights`` may hold: those the read model holds when it
        is on (it is fed every commit under the write lock, so it knows every stored flight;
        a superset, e.g. after rows were deleted behind the store, only costs a lookup), all
        of them when it is off or cannot key an id. ~0.9 ms of CPU for 700 flights at 336 k
        (growing with log n), where the lookup statement costs ~3-4 ms and a DuckDB call
        more: in a bulk load, where only a flight cut by the batch boundary is stored, 40 %
        of the batches of 2,000 skip the lookup and are written in one call."""
        flight_ids = list(newest)
        model = self._read_model
        if model is None or self._flights_committed != self._feed_read_model:
            return flight_ids  # the model is off, or not what the commits feed
        held = model.holds(pa.array(flight_ids, pa.string()))
        if held is None:
            return flight_ids
        return [flight_id for flight_id, h in zip(flight_ids, held.tolist(), strict=True) if h]

    @staticmethod
    def _stored_ids(
        cursor: duckdb.DuckDBPyConnection,
        in_events: list[str],
        in_rejected: list[str],
    ) -> set[str]:
        """Which of ``in_events`` flight_events holds and which of ``in_rejected``
        rejected_messages holds, in one statement (each side a scan: ~20 ms per 2,000 ids at
        1 M rows, so only searched when worth it, see ``_known_ids``)."""
        if not in_events and not in_rejected:
            return set()
        if not in_rejected:
            rows = cursor.execute(_IDS_IN_EVENTS_SQL, [in_events]).fetchall()
        elif not in_events:
            rows = cursor.execute(_IDS_IN_REJECTED_SQL, [in_rejected]).fetchall()
        else:
            rows = cursor.execute(_IDS_IN_BOTH_SQL, [in_events, in_rejected]).fetchall()
        return {row[0] for row in rows}

    # --- reads ---------------------------------------------------------------------------

    def _feed_read_model(self, rows: pa.Table) -> None:
        model = self._read_model
        if model is None:
            return
        try:
            model.apply(rows)
        except Exception:
            # The rows are committed: failing the write would have the caller retry it. DuckDB
            # has them, so reads go back to it for the rest of the store's life.
            log.exception("read model failed to apply a batch; reads now served by DuckDB")
            self._read_model = None
            self._flights_committed = None
            model.close()

    def list_flights(self, query: FlightQuery) -> FlightPage:
        model = self._read_model
        if model is not None:
            start = time.perf_counter()
            page = model.list_flights(query)
            _LIST_DURATION.observe(time.perf_counter() - start)
            # As many rows as the SQL fetches: the page plus the one telling a next exists.
            _LIST_ROWS.observe(len(page.flights) + (page.next is not None))
            return page
        sql = queries.build_list_flights(query, "duckdb", table=self._TABLE)
        rows = self._fetch("list_flights", sql)
        flights = [flight_from_row(row) for row in rows[: query.limit]]
        next_key = None
        if len(rows) > query.limit:
            last = flights[-1]
            next_key = Keyset(last.scheduled_departure, last.flight_id)
        return FlightPage(flights=flights, next=next_key)

    def list_flights_json(self, query: FlightQuery) -> FlightPageJson:
        """As ``list_flights``, written as JSON (``port.JsonPages``): the read model writes it
        without building ``Flight`` objects."""
        model = self._read_model
        if model is None:
            return FlightPageJson.of(self.list_flights(query))
        start = time.perf_counter()
        page = model.list_flights_json(query)
        _LIST_DURATION.observe(time.perf_counter() - start)
        _LIST_ROWS.observe(page.count + (page.next is not None))
        return page

    def get_flight(self, flight_id: str) -> Flight | None:
        model = self._read_model
        if model is not None:
            start = time.perf_counter()
            flight = model.get_flight(flight_id)
            _GET_DURATION.observe(time.perf_counter() - start)
            _GET_ROWS.observe(flight is not None)
            return flight
        rows = self._fetch(
            "get_flight", queries.build_get_flight(flight_id, "duckdb", table=self._TABLE)
        )
        return flight_from_row(rows[0]) if rows else None

    def delay_stats(self, group_by: GroupBy, flight_filter: FlightFilter) -> Sequence[DelayStats]:
        model = self._read_model
        if model is not None:
            start = time.perf_counter()
            found = model.delay_stats(group_by, flight_filter)
            # None (counts too big for memory) is decided before any scan: SQL answers, timed.
            if found is not None:
                _STATS_DURATION.observe(time.perf_counter() - start)
                _STATS_ROWS.observe(len(found))
                return found
        sql = queries.build_delay_stats(group_by, flight_filter, "duckdb", table=self._TABLE)
        return [delay_stats_from_row(row) for row in self._fetch("delay_stats", sql)]

    @property
    def reads_block(self) -> bool:
        # Only for list_flights and get_flight: delay_stats scans every flight even from the
        # model (~50-100 ms at 10 M), so callers always run it in a worker thread (port).
        return self._read_model is None

    def ping(self) -> None:
        with self._timed("ping"), self._unavailable_on_error(), self._cursor() as cursor:
            cursor.execute("SELECT 1").fetchall()

    def close(self) -> None:
        with self._write_lock:
            if self._closed:
                return
            self._closed = True
            if self._read_model is not None:
                # Reads of a closed store fail as DuckDB's do, not from memory.
                self._read_model.close()
                self._read_model = None
            if self._write_cursor is not None:
                self._write_cursor.close()
            if self._read_only:
                self._conn.close()  # nothing of ours to checkpoint
                return
            try:
                # Fold the WAL into the database file so the next open starts clean and fast.
                # Committed data is durable in the WAL either way, so a failure is only logged.
                self._conn.execute("CHECKPOINT")
            except duckdb.Error as exc:
                log.warning("checkpoint of %s on close failed: %s", self._path, exc)
            finally:
                self._conn.close()

    # --- helpers -------------------------------------------------------------------------

    def _fetch(self, kind: str, query: queries.SqlQuery) -> list[dict[str, object]]:
        with self._timed(kind), self._unavailable_on_error(), self._cursor() as cursor:
            result = cursor.execute(query.sql, query.params)
            names = [d[0] for d in result.description or ()]
            rows = [dict(zip(names, values, strict=True)) for values in result.fetchall()]
        STORAGE_ROWS_RETURNED.labels(query=kind).observe(len(rows))
        return rows

    @contextlib.contextmanager
    def _cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        cursor = self._conn.cursor()
        try:
            yield cursor
        finally:
            cursor.close()

    @contextlib.contextmanager
    def _unavailable_on_error(self) -> Iterator[None]:
        try:
            yield
        except _UNAVAILABLE_ERRORS as exc:
            raise StorageUnavailableError(f"DuckDB {self._path}: {exc}") from exc

    @staticmethod
    @contextlib.contextmanager
    def _timed(kind: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            STORAGE_QUERY_DURATION.labels(query=kind).observe(time.perf_counter() - start)
