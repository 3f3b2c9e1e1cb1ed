"""Reading ``flights`` in the read model's order, one departure range at a time.

One ``ORDER BY`` over the whole table makes DuckDB sort every row before the first comes out,
and hold the sort (up to its memory limit, spilling the rest) while the model's columns grow
beside it: at 10 M flights that was the process's peak. Ranges of about ``range_rows``
flights, cut at approximate quantiles of the departure, are sorted one after the other, so
DuckDB holds one range's sort at a time; concatenated in order they are the same sequence.
When the table is clustered by departure (filled in time order), DuckDB's zone maps skip the
row groups outside each range, so the ranges cost little more than one scan.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from datetime import datetime

import duckdb
import pyarrow as pa

_ORDER = " ORDER BY scheduled_departure, flight_id"


def sorted_batches(
    connection: duckdb.DuckDBPyConnection,
    columns: Sequence[str],
    *,
    range_rows: int,
    batch_rows: int,
) -> Iterator[pa.RecordBatch]:
    """Batches of ``flights``' ``columns`` ordered by (scheduled_departure, flight_id).

    The ranges are separate queries: the store reads them while it opens, before anything can
    write to the file (DuckDB lets one process open it for writing).
    """
    select = f"SELECT {', '.join(columns)} FROM flights"  # noqa: S608 - the model's columns
    edges: list[datetime | None] = [None, *_cuts(connection, range_rows), None]
    for low, high in itertools.pairwise(edges):
        where: list[str] = []
        params: list[datetime] = []
        if low is not None:
            where.append("scheduled_departure >= ?")
            params.append(low)
        if high is not None:
            where.append("scheduled_departure < ?")
            params.append(high)
        sql = select + (" WHERE " + " AND ".join(where) if where else "") + _ORDER
        # A relation's reader streams; one from ``execute`` would copy every row first.
        relation = connection.sql(sql, params=params)
        yield from relation.to_arrow_reader(batch_size=batch_rows)


def _cuts(connection: duckdb.DuckDBPyConnection, range_rows: int) -> list[datetime]:
    """Departures that split the table into ranges of about ``range_rows`` rows (none when it
    is one range), ascending and distinct."""
    # fetchall, not fetchone: the connection refuses other work until a result is finished.
    count = int(connection.execute("SELECT count(*) FROM flights").fetchall()[0][0])
    ranges = math.ceil(count / range_rows) if count else 0
    if ranges <= 1:
        return []
    quantiles = [i / ranges for i in range(1, ranges)]
    found = connection.execute(
        "SELECT approx_quantile(scheduled_departure, ?::FLOAT[]) FROM flights", [quantiles]
    ).fetchall()
    values: list[datetime] = found[0][0] or []
    return sorted(set(values))
