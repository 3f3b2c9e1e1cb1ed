"""The BigQuery statements' logic, executed: transpiled to DuckDB by sqlglot and run against the
same data as the DuckDB statements, they must return the same rows.

This checks what the BigQuery dialect computes (the window-then-aggregate percentile shape, the
ISO weekday arithmetic, keyset pagination), not GoogleSQL syntax or types; those are exercised
against the BigQuery emulator by tests/storage/test_bigquery*.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlglot
from storage_factories import flight_dataset, query_db

from aeroflow.domain.events import FlightStatus
from aeroflow.storage.duckdb import DuckDBFlightStore
from aeroflow.storage.port import FlightFilter, FlightQuery, GroupBy, Keyset, SortOrder
from aeroflow.storage.queries import SqlQuery, build_delay_stats, build_list_flights

DATASET = flight_dataset(300, seed=7)

# BigQuery's EXTRACT(DAYOFWEEK) counts 1 (Sunday) .. 7; DuckDB's counts 0 (Sunday) .. 6, and
# sqlglot keeps the expression as is. Restore BigQuery's meaning before running on DuckDB.
_DAYOFWEEK = "EXTRACT(DAYOFWEEK FROM scheduled_departure_local)"

FILTERS = {
    "none": FlightFilter(),
    "carrier+range": FlightFilter(
        carrier="UA",
        departure_from=datetime(2013, 1, 20, tzinfo=UTC),
        departure_to=datetime(2013, 4, 1, tzinfo=UTC),
    ),
    "origin+delay": FlightFilter(origin="JFK", min_dep_delay=0),
    "status": FlightFilter(status=FlightStatus.ARRIVED),
}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DuckDBFlightStore]:
    duck = DuckDBFlightStore(tmp_path_factory.mktemp("xcheck") / "x.duckdb")
    for batch in DATASET.batches(200):
        duck.write_batch(batch)
    yield duck
    duck.close()


def run_as_bigquery(store: DuckDBFlightStore, query: SqlQuery) -> list[tuple[object, ...]]:
    (duck_sql,) = sqlglot.transpile(query.sql, read="bigquery", write="duckdb")
    duck_sql = duck_sql.replace(_DAYOFWEEK, f"({_DAYOFWEEK} + 1)")
    return query_db(store.path, duck_sql, query.params)


def run_as_duckdb(store: DuckDBFlightStore, query: SqlQuery) -> list[tuple[object, ...]]:
    return query_db(store.path, query.sql, query.params)


@pytest.mark.parametrize("group_by", list(GroupBy))
@pytest.mark.parametrize("name", list(FILTERS))
def test_bigquery_delay_stats_compute_what_duckdb_computes(
    store: DuckDBFlightStore, group_by: GroupBy, name: str
) -> None:
    flight_filter = FILTERS[name]
    bigquery = build_delay_stats(group_by, flight_filter, "bigquery", table="main.flights")
    if group_by is GroupBy.WEEKDAY:
        assert _DAYOFWEEK in sqlglot.transpile(bigquery.sql, read="bigquery", write="duckdb")[0]
    duck = build_delay_stats(group_by, flight_filter, "duckdb", table="flights")

    expected = run_as_duckdb(store, duck)
    actual = run_as_bigquery(store, bigquery)

    assert expected
    assert [row[0] for row in actual] == [row[0] for row in expected]
    for got, want in zip(actual, expected, strict=True):
        assert got[:3] == want[:3]  # group, flights, cancelled
        for value, wanted in zip(got[3:7], want[3:7], strict=True):
            assert value == (None if wanted is None else pytest.approx(wanted, rel=1e-9))


@pytest.mark.parametrize("sort", list(SortOrder))
@pytest.mark.parametrize("name", list(FILTERS))
def test_bigquery_list_pages_like_duckdb(
    store: DuckDBFlightStore, sort: SortOrder, name: str
) -> None:
    flights = sorted(DATASET.expected.values(), key=lambda f: (f.scheduled_departure, f.flight_id))
    middle = flights[len(flights) // 2]
    for after in (None, Keyset(middle.scheduled_departure, middle.flight_id)):
        query = FlightQuery(FILTERS[name], sort, limit=17, after=after)
        expected = run_as_duckdb(store, build_list_flights(query, "duckdb", table="flights"))
        actual = run_as_bigquery(store, build_list_flights(query, "bigquery", table="main.flights"))
        assert expected
        assert actual == expected
