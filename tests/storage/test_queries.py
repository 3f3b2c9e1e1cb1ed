"""The query builder on its own: both dialects render, parse, bind every parameter they use,
and never put a caller's value into the SQL text."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime, timedelta, timezone

import duckdb
import pytest
import sqlglot
from hypothesis import given
from hypothesis import strategies as st

from aeroflow.domain.events import FlightStatus
from aeroflow.storage.port import FlightFilter, FlightQuery, GroupBy, Keyset, SortOrder
from aeroflow.storage.queries import (
    DELAY_STATS_COLUMNS,
    FLIGHT_COLUMNS,
    Dialect,
    SqlQuery,
    bigquery_param_type,
    build_delay_stats,
    build_get_flight,
    build_list_flights,
    quote_table,
)

DIALECTS: tuple[Dialect, ...] = ("duckdb", "bigquery")
TABLE: dict[Dialect, str] = {"duckdb": "flights", "bigquery": "my-project.aeroflow.flights"}
MARKER: dict[Dialect, str] = {"duckdb": "$", "bigquery": "@"}

FULL_FILTER = FlightFilter(
    carrier="UA",
    origin="EWR",
    destination="IAH",
    status=FlightStatus.ARRIVED,
    departure_from=datetime(2013, 1, 1, tzinfo=UTC),
    departure_to=datetime(2013, 2, 1, tzinfo=UTC),
    min_dep_delay=15,
)
AFTER = Keyset(datetime(2013, 1, 5, 10, tzinfo=UTC), "UA1545-EWR-20130105")


def all_queries(dialect: Dialect) -> list[SqlQuery]:
    table = TABLE[dialect]
    queries = [build_get_flight("UA1545-EWR-20130101", dialect, table=table)]
    for sort in SortOrder:
        for after in (None, AFTER):
            for flight_filter in (FlightFilter(), FULL_FILTER):
                query = FlightQuery(flight_filter, sort, limit=100, after=after)
                queries.append(build_list_flights(query, dialect, table=table))
    for group_by in GroupBy:
        for flight_filter in (FlightFilter(), FULL_FILTER):
            queries.append(build_delay_stats(group_by, flight_filter, dialect, table=table))
    return queries


def markers(sql: str, dialect: Dialect) -> set[str]:
    return set(re.findall(re.escape(MARKER[dialect]) + r"([A-Za-z_]\w*)", sql))


@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_query_parses_in_its_dialect(dialect: Dialect) -> None:
    for query in all_queries(dialect):
        (tree,) = sqlglot.parse(query.sql, read=dialect)
        assert tree is not None


@pytest.mark.parametrize("dialect", DIALECTS)
def test_markers_and_params_correspond_one_to_one(dialect: Dialect) -> None:
    for query in all_queries(dialect):
        assert markers(query.sql, dialect) == set(query.params), query.sql
        other = "@" if dialect == "duckdb" else "$"
        assert other not in query.sql


def test_full_filter_binds_typed_values() -> None:
    query = build_list_flights(FlightQuery(FULL_FILTER, after=AFTER), "bigquery", table="d.t")
    assert query.params == {
        "carrier": "UA",
        "origin": "EWR",
        "destination": "IAH",
        "status": "arrived",
        "departure_from": datetime(2013, 1, 1, tzinfo=UTC),
        "departure_to": datetime(2013, 2, 1, tzinfo=UTC),
        "min_dep_delay": 15,
        "after_departure": AFTER.scheduled_departure,
        "after_flight_id": AFTER.flight_id,
        "limit": 101,
    }
    assert {name: bigquery_param_type(v) for name, v in query.params.items()} == {
        "carrier": "STRING",
        "origin": "STRING",
        "destination": "STRING",
        "status": "STRING",
        "departure_from": "TIMESTAMP",
        "departure_to": "TIMESTAMP",
        "min_dep_delay": "INT64",
        "after_departure": "TIMESTAMP",
        "after_flight_id": "STRING",
        "limit": "INT64",
    }


def test_bigquery_param_type_refuses_booleans() -> None:
    with pytest.raises(TypeError):
        bigquery_param_type(True)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_list_selects_the_flight_columns_and_one_extra_row(dialect: Dialect) -> None:
    query = build_list_flights(FlightQuery(limit=25), dialect, table=TABLE[dialect])
    (tree,) = sqlglot.parse(query.sql, read=dialect)
    assert tree is not None
    assert tuple(e.alias_or_name for e in tree.expressions) == FLIGHT_COLUMNS
    assert query.params == {"limit": 26}
    assert "WHERE" not in query.sql


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(("sort", "op"), [(SortOrder.ASC, ">"), (SortOrder.DESC, "<")])
def test_keyset_condition_follows_the_sort_order(
    dialect: Dialect, sort: SortOrder, op: str
) -> None:
    query = build_list_flights(FlightQuery(sort=sort, after=AFTER), dialect, table=TABLE[dialect])
    m = MARKER[dialect]
    assert (
        f"(scheduled_departure {op} {m}after_departure OR (scheduled_departure ="
        f" {m}after_departure AND flight_id {op} {m}after_flight_id))"
    ) in query.sql
    direction = sort.value.upper()
    assert f"ORDER BY scheduled_departure {direction}, flight_id {direction}" in query.sql


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("group_by", list(GroupBy))
def test_delay_stats_columns(dialect: Dialect, group_by: GroupBy) -> None:
    query = build_delay_stats(group_by, FlightFilter(), dialect, table=TABLE[dialect])
    (tree,) = sqlglot.parse(query.sql, read=dialect)
    assert tree is not None
    assert tuple(e.alias_or_name for e in tree.expressions) == DELAY_STATS_COLUMNS


def test_percentiles_use_each_dialects_own_construct() -> None:
    duck = build_delay_stats(GroupBy.CARRIER, FlightFilter(), "duckdb", table="flights").sql
    big = build_delay_stats(GroupBy.CARRIER, FlightFilter(), "bigquery", table="d.flights").sql
    # DuckDB: from the counted delay distribution, not by gathering every value per group.
    assert "GROUP BY grp_key, dep_delay_minutes" in duck
    assert "quantile" not in duck.lower()
    assert "PERCENTILE_CONT" not in duck
    # GoogleSQL's PERCENTILE_CONT is analytic only: it must appear with an OVER clause.
    assert "PERCENTILE_CONT(dep_delay_minutes, 0.95) OVER (PARTITION BY grp_key)" in big
    assert "quantile" not in big.lower()
    (tree,) = sqlglot.parse(big, read="bigquery")
    assert tree is not None
    for function in tree.find_all(sqlglot.exp.PercentileCont):
        assert isinstance(function.parent, sqlglot.exp.Window)


# --- injection -------------------------------------------------------------------------------

_SQL_PIECES = ["'", '"', ";", "`", "$", "@", "\\", "--", "/*", "*/", "%", "(", ")", "=", "\n", " "]
_nasty = st.lists(
    st.sampled_from([*_SQL_PIECES, "DROP TABLE flights", "OR 1=1", "x"]), min_size=1, max_size=12
).map("".join) | st.text(min_size=1, max_size=30)


@pytest.mark.parametrize("dialect", DIALECTS)
@given(value=_nasty)
def test_caller_values_only_ever_reach_params(dialect: Dialect, value: str) -> None:
    table = TABLE[dialect]
    text_filter = FlightFilter(carrier=value, origin=value, destination=value)
    baseline_filter = FlightFilter(carrier="x", origin="x", destination="x")
    after = Keyset(AFTER.scheduled_departure, value)
    pairs = [
        (
            build_list_flights(FlightQuery(text_filter, after=after), dialect, table=table),
            build_list_flights(
                FlightQuery(baseline_filter, after=Keyset(AFTER.scheduled_departure, "x")),
                dialect,
                table=table,
            ),
        ),
        (
            build_get_flight(value, dialect, table=table),
            build_get_flight("x", dialect, table=table),
        ),
        (
            build_delay_stats(GroupBy.HOUR, text_filter, dialect, table=table),
            build_delay_stats(GroupBy.HOUR, baseline_filter, dialect, table=table),
        ),
    ]
    for query, baseline in pairs:
        # The SQL text does not depend on the value at all; the value is a parameter.
        assert query.sql == baseline.sql
        assert value in query.params.values()


@pytest.mark.parametrize(
    ("dialect", "name"),
    [
        ("duckdb", "flights; DROP TABLE flights"),
        ("duckdb", 'flights" --'),
        ("duckdb", "a.b.c"),
        ("duckdb", ""),
        ("duckdb", "1flights"),
        ("bigquery", "flights"),  # no dataset
        ("bigquery", "proj.ds.flights`; DROP"),
        ("bigquery", "Proj.ds.flights"),  # project ids are lowercase
        ("bigquery", "p.ds.flights"),  # project id too short
        ("bigquery", "my-project.ds-with-hyphen.flights"),
        ("bigquery", "a.b.c.d"),
    ],
)
def test_bad_table_names_are_refused(dialect: Dialect, name: str) -> None:
    with pytest.raises(ValueError, match=r"table name|project id"):
        quote_table(name, dialect)
    with pytest.raises(ValueError, match=r"table name|project id"):
        build_get_flight("x", dialect, table=name)


@pytest.mark.parametrize(
    ("dialect", "name", "quoted"),
    [
        ("duckdb", "flights", '"flights"'),
        ("duckdb", "main.flights", '"main"."flights"'),
        ("bigquery", "aeroflow.flights", "`aeroflow.flights`"),
        (
            "bigquery",
            "my-project-123.aeroflow_dev.flights",
            "`my-project-123.aeroflow_dev.flights`",
        ),
    ],
)
def test_table_names_are_quoted(dialect: Dialect, name: str, quoted: str) -> None:
    assert quote_table(name, dialect) == quoted


# --- input checks -------------------------------------------------------------------------------


def test_unknown_dialect_is_refused() -> None:
    with pytest.raises(ValueError, match="dialect"):
        build_get_flight("x", "postgres", table="flights")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "flight_filter",
    [
        FlightFilter(departure_from=datetime(2013, 1, 1)),
        FlightFilter(departure_to=datetime(2013, 1, 1)),
    ],
)
def test_naive_datetimes_are_refused(flight_filter: FlightFilter) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        build_list_flights(FlightQuery(flight_filter), "duckdb", table="flights")
    with pytest.raises(ValueError, match="timezone-aware"):
        build_delay_stats(GroupBy.CARRIER, flight_filter, "bigquery", table="d.flights")


def test_naive_keyset_is_refused() -> None:
    query = FlightQuery(after=Keyset(datetime(2013, 1, 1), "x"))
    with pytest.raises(ValueError, match="timezone-aware"):
        build_list_flights(query, "duckdb", table="flights")


def test_offset_datetimes_are_bound_as_utc() -> None:
    eastern = datetime(2013, 1, 1, 5, 15, tzinfo=timezone(timedelta(hours=-5)))
    query = build_list_flights(
        FlightQuery(FlightFilter(departure_from=eastern)), "duckdb", table="flights"
    )
    bound = query.params["departure_from"]
    assert bound == eastern
    assert isinstance(bound, datetime)
    assert bound.utcoffset() == timedelta(0)


@pytest.mark.parametrize("limit", [0, -1])
def test_limit_must_be_positive(limit: int) -> None:
    with pytest.raises(ValueError, match="limit"):
        build_list_flights(FlightQuery(limit=limit), "duckdb", table="flights")


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("group_by", list(GroupBy))
def test_group_labels_are_made_once_per_group_not_per_row(
    dialect: Dialect, group_by: GroupBy
) -> None:
    query = build_delay_stats(group_by, FULL_FILTER, dialect, table=TABLE[dialect])
    (tree,) = sqlglot.parse(query.sql, read=dialect)
    assert tree is not None
    (per_row,) = [cte for cte in tree.find_all(sqlglot.exp.CTE) if cte.alias == "filtered"]
    text = per_row.this.sql(dialect=dialect).lower()
    for formatting in ("strftime", "format", "printf", "cast("):
        assert formatting not in text, text
    assert tree.args["order"].sql(dialect=dialect) == "ORDER BY grp_key"


def test_duckdb_percentiles_equal_quantile_cont_on_awkward_distributions() -> None:
    """Every size from 1 to 40 (each floor/ceiling position), ties, negative delays and NULLs,
    one group each: the counted-distribution percentiles equal DuckDB's own quantile_cont."""
    query = build_delay_stats(GroupBy.CARRIER, FlightFilter(), "duckdb", table="flights")
    rng = random.Random(7)
    rows = [
        (f"{size:02d}", rng.choice([None, rng.randint(-30, 300), rng.randint(-2, 2)]))
        for size in range(1, 41)
        for _ in range(size)
    ]
    with duckdb.connect() as conn:
        conn.execute(
            "CREATE TABLE flights (carrier VARCHAR, status VARCHAR, dep_delay_minutes BIGINT,"
            " arr_delay_minutes BIGINT)"
        )
        conn.executemany(
            "INSERT INTO flights VALUES (?, 'arrived', ?, ?)", [(c, d, d) for c, d in rows]
        )
        got = conn.execute(query.sql, query.params).fetchall()
        want = conn.execute(
            "SELECT carrier, quantile_cont(dep_delay_minutes, 0.5),"
            " quantile_cont(dep_delay_minutes, 0.95), avg(dep_delay_minutes)"
            " FROM flights GROUP BY carrier ORDER BY carrier"
        ).fetchall()
    assert [row[0] for row in got] == [row[0] for row in want]
    for row, expected in zip(got, want, strict=True):
        for value, wanted in zip((row[4], row[5], row[3]), expected[1:], strict=True):
            # Equal up to the last bit or two of the DOUBLE interpolation.
            assert value == (None if wanted is None else pytest.approx(wanted, rel=1e-14, abs=0))
