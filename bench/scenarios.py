"""The read scenarios, spelled for each system: aeroflow, Datasette, ROAPI and the raw ceiling.

Request lists are generated once per dataset from the data itself (seeded, so runs compare):

* ``single``: ``carrier=UA&destination=IAH&limit=50``, one URL.
* ``random``: a random carrier->destination pair present in the data and a random 7-day
  departure window starting on a random hour, page of 50. Tens of thousands of distinct URLs,
  so a response cache sees almost no repeats within a run.
* ``point``: one flight by id, ids drawn at random from the data.
* ``stats_carrier`` / ``stats_month``: delay statistics grouped by carrier / by month, no filter.
* ``deep``: page 200 (50 rows a page) of a carrier's flights, reached by walking the pages
  first; one URL per big carrier.

The peers answer the same questions with their own means: Datasette's table API with ``_sort``
and ``_next`` tokens over an indexed SQLite table (count and facets off) and its SQL API for
stats (SQLite has no percentile function: count, cancelled, average and on-time rate only);
ROAPI's REST filters over Parquet and its SQL API for stats (approximate percentiles) and deep
pages (OFFSET: its REST API has no cursor).
"""

from __future__ import annotations

import json
import random
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
from harness import http_get, http_post, log

SCENARIOS = ("single", "random", "point", "stats_carrier", "stats_month", "deep")
PAGE = 50
DEEP_PAGE = 200
RANDOM_URLS = 60_000
POINT_URLS = 60_000
DEEP_CARRIERS = ("UA", "B6", "EV")
WINDOW = timedelta(days=7)


@dataclass(frozen=True)
class Workload:
    """What the request lists are drawn from (read once from a store)."""

    pairs: list[tuple[str, str]]
    first_departure: datetime
    last_departure: datetime
    flight_ids: list[str]
    # Deep-page URLs walked on aeroflow once per store, reused by every run on it.
    deep_urls: dict[str, list[str]] = field(default_factory=dict)


def workload(db: Path, seed: int = 13) -> Workload:
    with duckdb.connect(str(db), read_only=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        pairs = [
            (str(c), str(d))
            for c, d in conn.execute(
                "SELECT carrier, destination FROM flights GROUP BY ALL ORDER BY ALL"
            ).fetchall()
        ]
        bounds = conn.execute(
            "SELECT min(scheduled_departure), max(scheduled_departure) FROM flights"
        ).fetchone()
        if bounds is None or bounds[0] is None:
            raise RuntimeError(f"{db} has no flights")
        ids = [
            str(r[0])
            for r in conn.execute(
                f"SELECT flight_id FROM flights USING SAMPLE {POINT_URLS} ROWS"  # noqa: S608
                f" (reservoir, {seed})"
            ).fetchall()
        ]
    return Workload(pairs, bounds[0].astimezone(UTC), bounds[1].astimezone(UTC), ids)


def _windows(w: Workload, count: int, rng: random.Random) -> list[tuple[datetime, datetime]]:
    hours = int((w.last_departure - w.first_departure - WINDOW).total_seconds() // 3600)
    start = w.first_departure.replace(minute=0, second=0, microsecond=0)
    out = []
    for _ in range(count):
        begin = start + timedelta(hours=rng.randrange(max(hours, 1)))
        out.append((begin, begin + WINDOW))
    return out


def _z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _random_pairs(w: Workload, rng: random.Random) -> list[tuple[str, str, datetime, datetime]]:
    windows = _windows(w, RANDOM_URLS, rng)
    return [(*rng.choice(w.pairs), a, b) for a, b in windows]


# --- aeroflow ------------------------------------------------------------------------------


def aeroflow_requests(w: Workload, base_url: str, seed: int = 13) -> dict[str, list[str]]:
    rng = random.Random(seed)
    q = urllib.parse.urlencode
    lists = {
        "single": ["/v1/flights?carrier=UA&destination=IAH&limit=50"],
        "random": [
            "/v1/flights?"
            + q(
                {
                    "carrier": c,
                    "destination": d,
                    "departure_from": _z(a),
                    "departure_to": _z(b),
                    "limit": PAGE,
                }
            )
            for c, d, a, b in _random_pairs(w, rng)
        ],
        "point": [f"/v1/flights/{i}" for i in w.flight_ids],
        "stats_carrier": ["/v1/stats/delays?group_by=carrier"],
        "stats_month": ["/v1/stats/delays?group_by=month"],
        "deep": w.deep_urls.get("aeroflow") or [],
    }
    if not lists["deep"]:
        lists["deep"] = w.deep_urls["aeroflow"] = [
            _aeroflow_deep(base_url, c) for c in DEEP_CARRIERS
        ]
    return lists


def _aeroflow_deep(base_url: str, carrier: str) -> str:
    url = f"/v1/flights?carrier={carrier}&limit={PAGE}"
    for _ in range(DEEP_PAGE - 1):
        status, body = http_get(base_url + url)
        cursor = json.loads(body)["next_cursor"] if status == 200 else None
        if cursor is None:
            raise RuntimeError(f"aeroflow: {carrier} has fewer than {DEEP_PAGE} pages")
        url = f"/v1/flights?carrier={carrier}&limit={PAGE}&cursor={cursor}"
    return url


# --- Datasette ------------------------------------------------------------------------------

_DS_OPTS = "_nocount=1&_nofacet=1&_nosuggest=1&_shape=objects"
_DS_STATS = """SELECT {group} AS grp, count(*) AS flights,
  sum(status = 'cancelled') AS cancelled, avg(dep_delay_minutes) AS avg_dep_delay_minutes,
  avg(CASE WHEN arr_delay_minutes <= 15 THEN 1.0 WHEN arr_delay_minutes IS NOT NULL THEN 0.0 END)
    AS on_time_rate
FROM flights GROUP BY grp ORDER BY grp"""


def datasette_requests(w: Workload, base_url: str, seed: int = 13) -> dict[str, list[str]]:
    rng = random.Random(seed)
    table = "/flights/flights.json"
    q = urllib.parse.urlencode
    sort = f"_sort=scheduled_departure&_size={PAGE}&{_DS_OPTS}"
    return {
        "single": [f"{table}?carrier=UA&destination=IAH&{sort}"],
        "random": [
            f"{table}?"
            + q(
                {
                    "carrier": c,
                    "destination": d,
                    "scheduled_departure__gte": _z(a),
                    "scheduled_departure__lt": _z(b),
                }
            )
            + f"&{sort}"
            for c, d, a, b in _random_pairs(w, rng)
        ],
        "point": [f"/flights/flights/{i}.json?_shape=objects" for i in w.flight_ids],
        "stats_carrier": [
            "/flights.json?" + q({"sql": _DS_STATS.format(group="carrier"), "_shape": "objects"})
        ],
        "stats_month": [
            "/flights.json?"
            + q(
                {
                    "sql": _DS_STATS.format(group="substr(scheduled_departure_local, 1, 7)"),
                    "_shape": "objects",
                }
            )
        ],
        "deep": [_datasette_deep(base_url, f"{table}?carrier={c}&{sort}") for c in DEEP_CARRIERS],
    }


def _datasette_deep(base_url: str, first: str) -> str:
    url = first
    for _ in range(DEEP_PAGE - 1):
        status, body = http_get(base_url + url)
        token = json.loads(body).get("next") if status == 200 else None
        if token is None:
            raise RuntimeError(f"datasette: fewer than {DEEP_PAGE} pages for {first}")
        url = f"{first}&_next={urllib.parse.quote(str(token))}"
    return url


# --- ROAPI ----------------------------------------------------------------------------------

_ROAPI_STATS = """SELECT {group} AS grp, count(*) AS flights,
  sum(CASE WHEN status = 'cancelled' THEN 1 ELSE 0 END) AS cancelled,
  avg(dep_delay_minutes) AS avg_dep_delay_minutes,
  approx_percentile_cont(dep_delay_minutes, 0.5) AS p50_dep_delay_minutes,
  approx_percentile_cont(dep_delay_minutes, 0.95) AS p95_dep_delay_minutes,
  avg(CASE WHEN arr_delay_minutes <= 15 THEN 1.0 WHEN arr_delay_minutes IS NOT NULL THEN 0.0 END)
    AS on_time_rate
FROM flights GROUP BY grp ORDER BY grp"""


def _post(path: str, sql: str) -> str:
    return f"POST\t{path}\t{' '.join(sql.split())}"


def roapi_requests(w: Workload, base_url: str, seed: int = 13) -> dict[str, list[str]]:
    rng = random.Random(seed)
    table = "/api/tables/flights"
    sort = f"sort=scheduled_departure,flight_id&limit={PAGE}"

    def lit(value: str) -> str:
        return urllib.parse.quote(f"'{value}'")

    return {
        "single": [f"{table}?filter[carrier]={lit('UA')}&filter[destination]={lit('IAH')}&{sort}"],
        "random": [
            f"{table}?filter[carrier]={lit(c)}&filter[destination]={lit(d)}"
            f"&filter[scheduled_departure]gte={lit(_z(a))}"
            f"&filter[scheduled_departure]lt={lit(_z(b))}&{sort}"
            for c, d, a, b in _random_pairs(w, rng)
        ],
        "point": [f"{table}?filter[flight_id]={lit(i)}" for i in w.flight_ids],
        "stats_carrier": [_post("/api/sql", _ROAPI_STATS.format(group="carrier"))],
        "stats_month": [
            _post(
                "/api/sql",
                _ROAPI_STATS.format(group="to_char(scheduled_departure_local, '%Y-%m')"),
            )
        ],
        "deep": [
            _post(
                "/api/sql",
                f"SELECT * FROM flights WHERE carrier = '{c}' "  # noqa: S608 - our constants
                f"ORDER BY scheduled_departure, flight_id "
                f"LIMIT {PAGE} OFFSET {PAGE * (DEEP_PAGE - 1)}",
            )
            for c in DEEP_CARRIERS
        ],
    }


RequestBuilder = Callable[[Workload, str, int], dict[str, list[str]]]
BUILDERS: dict[str, RequestBuilder] = {
    "aeroflow": aeroflow_requests,
    "datasette": datasette_requests,
    "roapi": roapi_requests,
}


def check_requests(system: str, base_url: str, lists: dict[str, list[str]]) -> dict[str, Any]:
    """Every scenario's first request answers 200 with a body; returns body sizes."""
    sizes: dict[str, Any] = {}
    for scenario, lines in lists.items():
        line = lines[0]
        if line.startswith("POST\t"):
            _, path, body = line.split("\t", 2)
            status, content = http_post(base_url + path, body.encode())
        else:
            status, content = http_get(base_url + line)
        if status != 200:
            raise RuntimeError(f"{system} {scenario}: HTTP {status}: {content[:300]!r}")
        sizes[scenario] = len(content)
    log(f"{system}: every scenario answers 200 ({sizes})")
    return sizes
