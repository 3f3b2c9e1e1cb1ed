"""The one query builder for the read side, in two dialects: ``duckdb`` and ``bigquery``.

Hand-written rather than built with sqlglot. There are three queries, and the dialects differ in
exactly four places: parameter markers (``$name`` / ``@name``), identifier quoting, the
date-part functions the time groupings use, and continuous percentiles. The last one is not a
translation problem: DuckDB has the aggregate ``quantile_cont`` while GoogleSQL only has
``PERCENTILE_CONT`` as an analytic function, so the BigQuery statement has a different shape (a
window per group, then the aggregation). Transpiling one dialect into the other would hide that
difference instead of stating it; explicit fragments keep both statements readable. sqlglot
still earns its place in the tests: they parse both dialects with it, and run the BigQuery
statements, transpiled, on DuckDB to check they compute what the DuckDB ones compute.

Injection safety by construction: every value a caller supplies goes into ``SqlQuery.params``
under a name chosen here; the SQL text is assembled only from constants of this module and
table names that passed ``quote_table`` (caller configuration, validated, never request text).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal, get_args

from aeroflow.domain.events import FlightStatus
from aeroflow.storage.port import Flight, FlightFilter, FlightQuery, GroupBy, SortOrder

Dialect = Literal["duckdb", "bigquery"]
DIALECTS: Final[tuple[str, ...]] = get_args(Dialect)

# What a parameter can hold. BigQuery adapters map: str -> STRING, int -> INT64,
# float -> FLOAT64, datetime (always aware UTC here) -> TIMESTAMP; see ``bigquery_param_type``.
ParamValue = str | int | float | datetime

# Columns of ``flights`` that make up a port.Flight, in dataclass order.
FLIGHT_COLUMNS: Final[tuple[str, ...]] = tuple(f.name for f in dataclasses.fields(Flight))

# Names of the delay-stats result columns, equal to the fields of port.DelayStats, plus
# ``group_order`` (the sort key, of a dialect-specific type, so callers may ignore it).
DELAY_STATS_COLUMNS: Final[tuple[str, ...]] = (
    "group",
    "flights",
    "cancelled",
    "avg_dep_delay_minutes",
    "p50_dep_delay_minutes",
    "p95_dep_delay_minutes",
    "on_time_rate",
    "group_order",
)

# On time = arrival delay <= 15 minutes, as port.DelayStats defines it (after the US DOT).
ON_TIME_THRESHOLD_MINUTES: Final = 15


@dataclass(frozen=True, slots=True)
class SqlQuery:
    sql: str
    params: dict[str, ParamValue]


# --- identifiers ---------------------------------------------------------------------------

_PLAIN_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
# GCP project ids: 6-30 lowercase letters, digits and hyphens (legacy domain-scoped ids such as
# "example.com:proj" are not supported).
_BIGQUERY_PROJECT = re.compile(r"[a-z][a-z0-9-]{4,28}[a-z0-9]")


def quote_table(name: str, dialect: Dialect) -> str:
    """Validate a table reference from configuration and quote it for ``dialect``.

    DuckDB: ``table`` or ``schema.table``. BigQuery: ``dataset.table`` or
    ``project.dataset.table``. Anything else raises ValueError: a table name is configuration,
    and a malformed one is a bug to surface, not text to escape.
    """
    _check_dialect(dialect)
    parts = name.split(".")
    if dialect == "duckdb":
        if not 1 <= len(parts) <= 2 or not all(_PLAIN_IDENTIFIER.fullmatch(p) for p in parts):
            raise ValueError(f"not a DuckDB table name: {name!r}")
        return ".".join(f'"{p}"' for p in parts)
    if len(parts) == 3:
        project, *rest = parts
        if not _BIGQUERY_PROJECT.fullmatch(project):
            raise ValueError(f"not a BigQuery project id: {project!r}")
    elif len(parts) == 2:
        rest = parts
    else:
        raise ValueError(f"not a BigQuery table name (dataset.table): {name!r}")
    if not all(_PLAIN_IDENTIFIER.fullmatch(p) for p in rest):
        raise ValueError(f"not a BigQuery table name: {name!r}")
    return f"`{name}`"


def bigquery_param_type(value: ParamValue) -> str:
    """The GoogleSQL type of a parameter value, for ``ScalarQueryParameter``."""
    # bool is an int subclass; no query here takes one, so refuse rather than guess.
    if isinstance(value, bool):
        raise TypeError("boolean parameters are not used by these queries")
    if isinstance(value, str):
        return "STRING"
    if isinstance(value, int):
        return "INT64"
    if isinstance(value, float):
        return "FLOAT64"
    return "TIMESTAMP"


# --- dialect fragments -----------------------------------------------------------------------


class _Params:
    """Collects parameter values and renders their markers."""

    def __init__(self, dialect: Dialect) -> None:
        self._marker = "$" if dialect == "duckdb" else "@"
        self.values: dict[str, ParamValue] = {}

    def add(self, name: str, value: ParamValue) -> str:
        if name in self.values:
            raise ValueError(f"parameter {name!r} bound twice")
        self.values[name] = value
        return f"{self._marker}{name}"


def _quote_column(name: str, dialect: Dialect) -> str:
    return f'"{name}"' if dialect == "duckdb" else f"`{name}`"


@dataclass(frozen=True, slots=True)
class _Grouping:
    """How delay stats group: ``key`` is computed per row and grouped by, then sorted by;
    ``label`` turns a group's key (``grp_key``) into the STRING the caller sees.

    Keys are plain columns, integers or a truncated datetime because they are evaluated once
    per row: over 10 M flights ``strftime(..., '%Y-%m')`` per row cost ~500 ms of CPU where
    ``year * 100 + month`` costs ~100 ms. Formatting happens once per group, after aggregation.
    """

    key: str
    label: str = "grp_key"


# Over scheduled_departure_local, the wall-clock departure at the origin.
_LOCAL = "scheduled_departure_local"
_AS_TEXT: Final[Mapping[Dialect, str]] = {
    "duckdb": "CAST(grp_key AS VARCHAR)",
    "bigquery": "CAST(grp_key AS STRING)",
}
_GROUPINGS: Final[Mapping[Dialect, Mapping[GroupBy, _Grouping]]] = {
    "duckdb": {
        GroupBy.CARRIER: _Grouping("carrier"),
        GroupBy.ORIGIN: _Grouping("origin"),
        GroupBy.DESTINATION: _Grouping("destination"),
        # YYYYMM as an integer (years are 1950..2099 by the domain's bounds: four digits).
        GroupBy.MONTH: _Grouping(
            f"year({_LOCAL}) * 100 + month({_LOCAL})",
            "printf('%04d-%02d', grp_key // 100, grp_key % 100)",
        ),
        GroupBy.WEEKDAY: _Grouping(f"isodow({_LOCAL})", _AS_TEXT["duckdb"]),
        GroupBy.HOUR: _Grouping(f"hour({_LOCAL})", _AS_TEXT["duckdb"]),
    },
    "bigquery": {
        GroupBy.CARRIER: _Grouping("carrier"),
        GroupBy.ORIGIN: _Grouping("origin"),
        GroupBy.DESTINATION: _Grouping("destination"),
        GroupBy.MONTH: _Grouping(
            f"DATETIME_TRUNC({_LOCAL}, MONTH)", "FORMAT_DATETIME('%Y-%m', grp_key)"
        ),
        # DAYOFWEEK is 1 = Sunday .. 7 = Saturday; shift to ISO 1 = Monday .. 7 = Sunday.
        GroupBy.WEEKDAY: _Grouping(
            f"MOD(EXTRACT(DAYOFWEEK FROM {_LOCAL}) + 5, 7) + 1", _AS_TEXT["bigquery"]
        ),
        GroupBy.HOUR: _Grouping(f"EXTRACT(HOUR FROM {_LOCAL})", _AS_TEXT["bigquery"]),
    },
}


def _check_dialect(dialect: str) -> None:
    # Dialect often comes from settings strings; a typo must not silently pick one.
    if dialect not in DIALECTS:
        raise ValueError(f"unknown SQL dialect {dialect!r}; expected one of {DIALECTS}")


def _aware_utc(name: str, value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
    return value.astimezone(UTC)


def _where(flight_filter: FlightFilter, params: _Params) -> list[str]:
    f = flight_filter
    conditions: list[str] = []
    if f.carrier is not None:
        conditions.append(f"carrier = {params.add('carrier', f.carrier)}")
    if f.origin is not None:
        conditions.append(f"origin = {params.add('origin', f.origin)}")
    if f.destination is not None:
        conditions.append(f"destination = {params.add('destination', f.destination)}")
    if f.status is not None:
        conditions.append(f"status = {params.add('status', f.status.value)}")
    if f.departure_from is not None:
        value = _aware_utc("departure_from", f.departure_from)
        conditions.append(f"scheduled_departure >= {params.add('departure_from', value)}")
    if f.departure_to is not None:
        value = _aware_utc("departure_to", f.departure_to)
        conditions.append(f"scheduled_departure < {params.add('departure_to', value)}")
    if f.min_dep_delay is not None:
        conditions.append(f"dep_delay_minutes >= {params.add('min_dep_delay', f.min_dep_delay)}")
    return conditions


def _where_clause(conditions: list[str], indent: str = "") -> str:
    if not conditions:
        return ""
    return f"{indent}WHERE " + f"\n{indent}  AND ".join(conditions)


# --- the queries ---------------------------------------------------------------------------


def build_list_flights(query: FlightQuery, dialect: Dialect, *, table: str) -> SqlQuery:
    """One page of flights in (scheduled_departure, flight_id) order, keyset-paginated.

    Selects ``query.limit + 1`` rows: the extra row only tells the caller a next page exists.
    """
    _check_dialect(dialect)
    if query.limit < 1:
        raise ValueError("limit must be at least 1")
    params = _Params(dialect)
    conditions = _where(query.filter, params)
    descending = query.sort is SortOrder.DESC
    if query.after is not None:
        after_departure = params.add(
            "after_departure",
            _aware_utc("after.scheduled_departure", query.after.scheduled_departure),
        )
        after_id = params.add("after_flight_id", query.after.flight_id)
        op = "<" if descending else ">"
        # Expanded row comparison: GoogleSQL has no (a, b) > (x, y).
        conditions.append(
            f"(scheduled_departure {op} {after_departure}"
            f" OR (scheduled_departure = {after_departure} AND flight_id {op} {after_id}))"
        )
    direction = "DESC" if descending else "ASC"
    limit = params.add("limit", query.limit + 1)
    sql = "\n".join(
        part
        for part in (
            f"SELECT {', '.join(FLIGHT_COLUMNS)}",
            f"FROM {quote_table(table, dialect)}",
            _where_clause(conditions),
            f"ORDER BY scheduled_departure {direction}, flight_id {direction}",
            f"LIMIT {limit}",
        )
        if part
    )
    return SqlQuery(sql, params.values)


def build_get_flight(flight_id: str, dialect: Dialect, *, table: str) -> SqlQuery:
    _check_dialect(dialect)
    params = _Params(dialect)
    sql = (
        f"SELECT {', '.join(FLIGHT_COLUMNS)}\n"
        f"FROM {quote_table(table, dialect)}\n"
        f"WHERE flight_id = {params.add('flight_id', flight_id)}"
    )
    return SqlQuery(sql, params.values)


def build_delay_stats(
    group_by: GroupBy, flight_filter: FlightFilter, dialect: Dialect, *, table: str
) -> SqlQuery:
    """Delay figures per group over the current state of the filtered flights.

    Result columns: ``DELAY_STATS_COLUMNS``. Rows come in the group's natural order: text
    groups and months alphabetically, weekdays and hours numerically (the group itself is a
    string, so "10" would otherwise sort before "2"). The rows are grouped by a cheap key and
    labelled once per group (see ``_Grouping``).
    """
    _check_dialect(dialect)
    params = _Params(dialect)
    grouping = _GROUPINGS[dialect][GroupBy(group_by)]
    filtered = "\n".join(
        part
        for part in (
            f"  SELECT {grouping.key} AS grp_key,",
            "    status, dep_delay_minutes, arr_delay_minutes",
            f"  FROM {quote_table(table, dialect)}",
            _where_clause(_where(flight_filter, params), indent="  "),
        )
        if part
    )
    grouped = _DUCKDB_GROUPED if dialect == "duckdb" else _BIGQUERY_GROUPED
    sql = (
        f"WITH filtered AS (\n{filtered}\n),\n"
        f"{grouped}\n"
        f"SELECT {grouping.label} AS {_quote_column('group', dialect)},\n"
        "  flights,\n"
        "  cancelled,\n"
        "  avg_dep_delay_minutes,\n"
        "  p50_dep_delay_minutes,\n"
        "  p95_dep_delay_minutes,\n"
        "  on_time_rate,\n"
        "  grp_key AS group_order\n"
        "FROM grouped\n"
        "ORDER BY grp_key"
    )
    return SqlQuery(sql, params.values)


_CANCELLED = f"status = '{FlightStatus.CANCELLED.value}'"
_ON_TIME = f"arr_delay_minutes <= {ON_TIME_THRESHOLD_MINUTES}"


def _percentile(name: str) -> str:
    """Linear between the delays at the floor and the ceiling of the position, in DOUBLE and
    in the form quantile_cont uses (low * (1 - f) + high * f), so the results are equal to
    the last bit."""
    fraction = f"({name}_at - floor({name}_at))"
    return f"{name}_low * (1 - {fraction}) + {name}_high * {fraction}"


# DuckDB: the exact delay distribution first, one row per (group, delay), then every figure
# from it. Delays are whole minutes with a few hundred distinct values per group, so the
# percentiles come from a few thousand counted rows instead of quantile_cont gathering and
# selecting among every value of the group: over 10 M flights this halves a query's CPU
# (~370 -> ~170 ms by carrier, ~390 -> ~220 ms by hour, ~390 -> ~330 ms by month).
# Percentile q sits at position q * (n - 1) among a group's n known delays in order, as in
# quantile_cont; the delay at sorted position i is the smallest one with more than i known
# delays at or below it.
_DUCKDB_GROUPED: Final = f"""cells AS (
  SELECT grp_key, dep_delay_minutes AS delay,
    COUNT(*) AS flights,
    COUNTIF({_CANCELLED}) AS cancelled,
    COUNT(arr_delay_minutes) AS arrivals,
    COUNTIF({_ON_TIME}) AS on_time
  FROM filtered
  GROUP BY grp_key, dep_delay_minutes
),
distribution AS (
  SELECT *,
    SUM(flights) FILTER (WHERE delay IS NOT NULL)
      OVER (PARTITION BY grp_key ORDER BY delay ROWS UNBOUNDED PRECEDING) AS at_or_below,
    SUM(flights) FILTER (WHERE delay IS NOT NULL) OVER (PARTITION BY grp_key) AS known
  FROM cells
),
positioned AS (
  SELECT *,
    CAST(known - 1 AS DOUBLE) * 0.5 AS p50_at,
    CAST(known - 1 AS DOUBLE) * 0.95 AS p95_at
  FROM distribution
),
bounded AS (
  SELECT grp_key,
    SUM(flights) AS flights,
    SUM(cancelled) AS cancelled,
    SUM(delay * flights) / ANY_VALUE(known) AS avg_dep_delay_minutes,
    SUM(on_time) / NULLIF(SUM(arrivals), 0) AS on_time_rate,
    ANY_VALUE(p50_at) AS p50_at,
    MIN(delay) FILTER (WHERE at_or_below > floor(p50_at)) AS p50_low,
    MIN(delay) FILTER (WHERE at_or_below > ceil(p50_at)) AS p50_high,
    ANY_VALUE(p95_at) AS p95_at,
    MIN(delay) FILTER (WHERE at_or_below > floor(p95_at)) AS p95_low,
    MIN(delay) FILTER (WHERE at_or_below > ceil(p95_at)) AS p95_high
  FROM positioned
  GROUP BY grp_key
),
grouped AS (
  SELECT grp_key, flights, cancelled, avg_dep_delay_minutes,
    {_percentile("p50")} AS p50_dep_delay_minutes,
    {_percentile("p95")} AS p95_dep_delay_minutes,
    on_time_rate
  FROM bounded
)"""  # noqa: S608 - module constants only

# GoogleSQL: PERCENTILE_CONT is analytic-only, so it is computed once per group over a window
# (NULLs are ignored, as by quantile_cont), then carried through the GROUP BY.
_BIGQUERY_GROUPED: Final = f"""with_percentiles AS (
  SELECT grp_key, status, dep_delay_minutes, arr_delay_minutes,
    PERCENTILE_CONT(dep_delay_minutes, 0.5) OVER (PARTITION BY grp_key) AS p50,
    PERCENTILE_CONT(dep_delay_minutes, 0.95) OVER (PARTITION BY grp_key) AS p95
  FROM filtered
),
grouped AS (
  SELECT grp_key,
    COUNT(*) AS flights,
    COUNTIF({_CANCELLED}) AS cancelled,
    AVG(dep_delay_minutes) AS avg_dep_delay_minutes,
    MAX(p50) AS p50_dep_delay_minutes,
    MAX(p95) AS p95_dep_delay_minutes,
    AVG(CASE WHEN {_ON_TIME} THEN 1.0 WHEN arr_delay_minutes IS NOT NULL THEN 0.0 END)
      AS on_time_rate
  FROM with_percentiles
  GROUP BY grp_key
)"""  # noqa: S608 - module constants only
