"""Epoch-microsecond reads (storage/duckdb_rows.py) build exactly the Flights the generic
row conversion (storage/rows.py) builds from DuckDB's own datetimes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb

from aeroflow.domain.events import FlightStatus
from aeroflow.ingest.publisher import event_message_id
from aeroflow.ingest.samples import nycflights13_events
from aeroflow.storage import queries
from aeroflow.storage.duckdb import DuckDBFlightStore
from aeroflow.storage.duckdb_rows import flight_from_epoch_row, wrap_flight_query
from aeroflow.storage.port import (
    AcceptedMessage,
    FlightFilter,
    FlightQuery,
    MessageMeta,
    SortOrder,
    WriteBatch,
)
from aeroflow.storage.rows import flight_from_row


def test_epoch_reads_equal_the_generic_conversion(tmp_path: Path) -> None:
    # Microseconds in ingest_time (-> updated_at) and cancelled flights (null instants).
    ingest_time = datetime(2026, 3, 1, 12, 0, 0, 123457, tzinfo=UTC)
    messages = [
        AcceptedMessage(
            meta=MessageMeta(message_id=event_message_id(e), publish_time=ingest_time),
            event=e,
            ingest_time=ingest_time,
        )
        for e in nycflights13_events(limit=3000)
    ]
    path = tmp_path / "rows.duckdb"
    store = DuckDBFlightStore(path)
    try:
        store.write_batch(WriteBatch(accepted=messages))
        for sort in SortOrder:
            page = store.list_flights(FlightQuery(FlightFilter(carrier="UA"), sort, 1000))
            sql = queries.build_list_flights(
                FlightQuery(FlightFilter(carrier="UA"), sort, 1000), "duckdb", table="flights"
            )
            cursor = store._conn.cursor()
            result = cursor.execute(sql.sql, sql.params)
            names = [d[0] for d in result.description or ()]
            reference = [
                flight_from_row(dict(zip(names, r, strict=True))) for r in result.fetchall()
            ]
            assert list(page.flights) == reference[:1000]
            assert len(page.flights) == 1000 or page.next is None
        statuses = {f.status for f in store.list_flights(FlightQuery(limit=1000)).flights}
        assert FlightStatus.CANCELLED in statuses or FlightStatus.ARRIVED in statuses
        one = reference[0]
        assert store.get_flight(one.flight_id) == one
        assert one.updated_at == ingest_time
        assert one.updated_at.tzinfo is UTC
        assert one.scheduled_departure_local.tzinfo is None
    finally:
        store.close()


def test_wrapping_keeps_the_order_and_nulls() -> None:
    conn = duckdb.connect()
    conn.execute(
        "CREATE TABLE flights AS SELECT * FROM (VALUES"  # noqa: S608 - constants only
        " ('B', 'UA', 1, 'EWR', 'IAH', TIMESTAMPTZ '2013-01-01 10:00:00+00',"
        "  TIMESTAMPTZ '2013-01-01 13:00:00+00', TIMESTAMP '2013-01-01 05:00:00', 'cancelled',"
        "  NULL::TIMESTAMPTZ, NULL::TIMESTAMPTZ, NULL::BIGINT, NULL::BIGINT, NULL, 1400,"
        "  NULL::BIGINT, TIMESTAMPTZ '2013-01-01 09:00:00+00',"
        "  TIMESTAMPTZ '2026-01-01 00:00:00.5+00'),"
        " ('A', 'UA', 2, 'EWR', 'IAH', TIMESTAMPTZ '2013-01-01 10:00:00+00',"
        "  TIMESTAMPTZ '2013-01-01 13:00:00+00', TIMESTAMP '2013-01-01 05:00:00', 'scheduled',"
        "  NULL, NULL, NULL, NULL, 'N1', 1400, NULL, TIMESTAMPTZ '2013-01-01 09:00:00+00',"
        "  TIMESTAMPTZ '2026-01-01 00:00:00+00')"
        f") AS t({', '.join(queries.FLIGHT_COLUMNS)})"
    )
    for sort, expected in ((SortOrder.ASC, ["A", "B"]), (SortOrder.DESC, ["B", "A"])):
        sql = queries.build_list_flights(FlightQuery(sort=sort, limit=5), "duckdb", table="flights")
        rows = conn.execute(wrap_flight_query(sql.sql, sort), sql.params).fetchall()
        flights = [flight_from_epoch_row(r) for r in rows]
        assert [f.flight_id for f in flights] == expected
    cancelled = next(f for f in flights if f.flight_id == "B")
    assert cancelled.actual_departure is None
    assert cancelled.updated_at == datetime(2026, 1, 1, 0, 0, 0, 500000, tzinfo=UTC)
