"""DuckDBFlightStore reads against a real DuckDB file holding a varied data set of 400 flights
delivered out of order with redeliveries: every filter, keyset pagination, statistics."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from storage_factories import accepted, flight_dataset, flight_filters, make_event

from aeroflow.domain.events import FlightStatus
from aeroflow.storage.duckdb import DuckDBFlightStore
from aeroflow.storage.port import (
    DelayStats,
    Flight,
    FlightFilter,
    FlightPage,
    FlightQuery,
    GroupBy,
    SortOrder,
    WriteBatch,
)

DATASET = flight_dataset()
FLIGHTS = list(DATASET.expected.values())


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DuckDBFlightStore]:
    store = DuckDBFlightStore(tmp_path_factory.mktemp("reads") / "reads.duckdb")
    for batch in DATASET.batches(97):
        store.write_batch(batch)
    yield store
    store.close()


def ordered(flights: list[Flight], sort: SortOrder) -> list[str]:
    keyed = sorted(flights, key=lambda f: (f.scheduled_departure, f.flight_id))
    if sort is SortOrder.DESC:
        keyed.reverse()
    return [f.flight_id for f in keyed]


def matches(flight: Flight, f: FlightFilter) -> bool:
    """The filter semantics, written independently of the SQL."""
    delay = flight.dep_delay_minutes
    return (
        (f.carrier is None or flight.carrier == f.carrier)
        and (f.origin is None or flight.origin == f.origin)
        and (f.destination is None or flight.destination == f.destination)
        and (f.status is None or flight.status is f.status)
        and (f.departure_from is None or flight.scheduled_departure >= f.departure_from)
        and (f.departure_to is None or flight.scheduled_departure < f.departure_to)
        and (f.min_dep_delay is None or (delay is not None and delay >= f.min_dep_delay))
    )


def all_pages(store: DuckDBFlightStore, query: FlightQuery) -> list[FlightPage]:
    pages = [store.list_flights(query)]
    while pages[-1].next is not None:
        assert len(pages) <= len(FLIGHTS) + 1, "pagination does not terminate"
        query = FlightQuery(query.filter, query.sort, query.limit, after=pages[-1].next)
        pages.append(store.list_flights(query))
    return pages


# --- rows come back whole --------------------------------------------------------------------


def test_current_state_of_every_flight_round_trips(loaded: DuckDBFlightStore) -> None:
    page = loaded.list_flights(FlightQuery(limit=1000))
    assert page.next is None
    assert {f.flight_id: f for f in page.flights} == DATASET.expected


def test_get_flight_returns_the_current_state(loaded: DuckDBFlightStore) -> None:
    for flight in FLIGHTS[:40]:
        assert loaded.get_flight(flight.flight_id) == flight


def test_instants_are_aware_utc_and_local_time_is_naive(loaded: DuckDBFlightStore) -> None:
    for flight in loaded.list_flights(FlightQuery(limit=1000)).flights:
        for instant in (flight.scheduled_departure, flight.event_time, flight.updated_at):
            assert instant.tzinfo is UTC
        for optional in (flight.actual_departure, flight.actual_arrival):
            assert optional is None or optional.tzinfo is UTC
        assert flight.scheduled_departure_local.tzinfo is None


@pytest.mark.parametrize(
    "flight_id", ["UA9999-EWR-20130101", "' OR '1'='1", "x'; DROP TABLE flights; --", ""]
)
def test_unknown_flight_is_none(loaded: DuckDBFlightStore, flight_id: str) -> None:
    assert loaded.get_flight(flight_id) is None
    assert loaded.list_flights(FlightQuery(limit=1000)).flights  # and the table is still there


# --- pagination ----------------------------------------------------------------------------


@pytest.mark.parametrize("sort", list(SortOrder))
@pytest.mark.parametrize("limit", [7, 64, 399, 400, 1000])
def test_pagination_yields_every_flight_once_in_order(
    loaded: DuckDBFlightStore, sort: SortOrder, limit: int
) -> None:
    # Half-hour departure slots make many flights share scheduled_departure, so the
    # flight_id tie-breaker of the keyset is exercised on most page boundaries.
    assert len({f.scheduled_departure for f in FLIGHTS}) < len(FLIGHTS) * 0.9
    pages = all_pages(loaded, FlightQuery(sort=sort, limit=limit))

    ids = [f.flight_id for page in pages for f in page.flights]
    assert ids == ordered(FLIGHTS, sort)
    assert all(len(page.flights) == limit for page in pages[:-1])
    assert 1 <= len(pages[-1].flights) <= limit
    assert pages[-1].next is None


def test_keyset_points_after_the_last_row(loaded: DuckDBFlightStore) -> None:
    page = loaded.list_flights(FlightQuery(limit=5))
    assert page.next is not None
    last = page.flights[-1]
    assert (page.next.scheduled_departure, page.next.flight_id) == (
        last.scheduled_departure,
        last.flight_id,
    )


def test_empty_result_has_no_next_page(loaded: DuckDBFlightStore) -> None:
    page = loaded.list_flights(FlightQuery(FlightFilter(carrier="ZZ")))
    assert page.flights == []
    assert page.next is None


# --- filters -------------------------------------------------------------------------------

_SOME_DEPARTURES = sorted({f.scheduled_departure for f in FLIGHTS})[::37]
_filters = flight_filters(
    carriers=["UA", "AA", "B6", "DL", "9E", "ZZ"],
    origins=["EWR", "JFK", "LGA", "LAX"],
    destinations=["IAH", "MIA", "ORD", "ATL", "BOS"],
    # Exact departure instants of stored flights: the inclusive/exclusive bounds matter.
    departures=st.sampled_from(_SOME_DEPARTURES),
    min_dep_delays=st.sampled_from([-30, -5, 0, 15, 60, 240]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flight_filter=_filters, sort=st.sampled_from(list(SortOrder)))
def test_filters_match_an_independent_implementation(
    loaded: DuckDBFlightStore, flight_filter: FlightFilter, sort: SortOrder
) -> None:
    expected = ordered([f for f in FLIGHTS if matches(f, flight_filter)], sort)
    pages = all_pages(loaded, FlightQuery(flight_filter, sort, limit=23))
    assert [f.flight_id for page in pages for f in page.flights] == expected


@pytest.mark.parametrize(
    ("flight_filter", "predicate"),
    [
        (FlightFilter(carrier="B6"), lambda f: f.carrier == "B6"),
        (FlightFilter(origin="LAX"), lambda f: f.origin == "LAX"),
        (FlightFilter(destination="BOS"), lambda f: f.destination == "BOS"),
        (FlightFilter(status=FlightStatus.DIVERTED), lambda f: f.status is FlightStatus.DIVERTED),
        (
            FlightFilter(min_dep_delay=30),
            lambda f: f.dep_delay_minutes is not None and f.dep_delay_minutes >= 30,
        ),
        (
            FlightFilter(departure_from=datetime(2013, 3, 1, tzinfo=UTC)),
            lambda f: f.scheduled_departure >= datetime(2013, 3, 1, tzinfo=UTC),
        ),
        (
            FlightFilter(departure_to=datetime(2013, 2, 1, tzinfo=UTC)),
            lambda f: f.scheduled_departure < datetime(2013, 2, 1, tzinfo=UTC),
        ),
    ],
    ids=["carrier", "origin", "destination", "status", "min_dep_delay", "from", "to"],
)
def test_each_filter_alone(
    loaded: DuckDBFlightStore,
    flight_filter: FlightFilter,
    predicate: Callable[[Flight], bool],
) -> None:
    expected = {f.flight_id for f in FLIGHTS if predicate(f)}
    # Each filter must actually select something and leave something out.
    assert 0 < len(expected) < len(FLIGHTS)
    page = loaded.list_flights(FlightQuery(flight_filter, limit=1000))
    assert {f.flight_id for f in page.flights} == expected


def test_departure_bounds_are_inclusive_then_exclusive(loaded: DuckDBFlightStore) -> None:
    instant = FLIGHTS[0].scheduled_departure
    at_instant = {f.flight_id for f in FLIGHTS if f.scheduled_departure == instant}
    exactly = FlightFilter(departure_from=instant, departure_to=instant + timedelta(microseconds=1))
    empty = FlightFilter(departure_from=instant, departure_to=instant)
    assert {f.flight_id for f in loaded.list_flights(FlightQuery(exactly)).flights} == at_instant
    assert loaded.list_flights(FlightQuery(empty)).flights == []


def test_departure_bounds_compare_instants_not_wall_clocks(loaded: DuckDBFlightStore) -> None:
    instant = FLIGHTS[0].scheduled_departure
    for zone in (timezone(timedelta(hours=-5)), ZoneInfo("Asia/Tokyo")):
        bound = instant.astimezone(zone)
        page = loaded.list_flights(FlightQuery(FlightFilter(departure_from=bound), limit=1000))
        assert {f.flight_id for f in page.flights} == {
            f.flight_id for f in FLIGHTS if f.scheduled_departure >= instant
        }


def test_sql_metacharacters_in_filter_values_are_just_values(loaded: DuckDBFlightStore) -> None:
    for value in ("UA' OR '1'='1", 'UA" OR 1=1 --', "UA; DELETE FROM flights"):
        assert loaded.list_flights(FlightQuery(FlightFilter(carrier=value))).flights == []
        assert loaded.delay_stats(GroupBy.CARRIER, FlightFilter(origin=value)) == []
    assert len(loaded.list_flights(FlightQuery(limit=1000)).flights) == len(FLIGHTS)


# --- statistics ----------------------------------------------------------------------------


def group_key(flight: Flight, group_by: GroupBy) -> tuple[object, str]:
    """(sort key, group label) computed in Python from the local departure time."""
    local = flight.scheduled_departure_local
    match group_by:
        case GroupBy.CARRIER:
            return flight.carrier, flight.carrier
        case GroupBy.ORIGIN:
            return flight.origin, flight.origin
        case GroupBy.DESTINATION:
            return flight.destination, flight.destination
        case GroupBy.MONTH:
            return f"{local:%Y-%m}", f"{local:%Y-%m}"
        case GroupBy.WEEKDAY:
            return local.isoweekday(), str(local.isoweekday())
        case GroupBy.HOUR:
            return local.hour, str(local.hour)
    raise AssertionError(group_by)


def expected_stats(group_by: GroupBy, flight_filter: FlightFilter) -> list[DelayStats]:
    groups: dict[tuple[object, str], list[Flight]] = defaultdict(list)
    for flight in FLIGHTS:
        if matches(flight, flight_filter):
            groups[group_key(flight, group_by)].append(flight)
    result = []
    for (_, label), members in sorted(groups.items(), key=lambda item: item[0][0]):  # type: ignore[arg-type, return-value]
        dep = [f.dep_delay_minutes for f in members if f.dep_delay_minutes is not None]
        arr = [f.arr_delay_minutes for f in members if f.arr_delay_minutes is not None]
        result.append(
            DelayStats(
                group=label,
                flights=len(members),
                cancelled=sum(f.status is FlightStatus.CANCELLED for f in members),
                avg_dep_delay_minutes=float(np.mean(dep)) if dep else None,
                # numpy's default "linear" method is the continuous percentile.
                p50_dep_delay_minutes=float(np.percentile(dep, 50)) if dep else None,
                p95_dep_delay_minutes=float(np.percentile(dep, 95)) if dep else None,
                on_time_rate=sum(a <= 15 for a in arr) / len(arr) if arr else None,
            )
        )
    return result


def assert_stats_equal(actual: list[DelayStats], expected: list[DelayStats]) -> None:
    assert [s.group for s in actual] == [s.group for s in expected]
    for got, want in zip(actual, expected, strict=True):
        assert (got.flights, got.cancelled) == (want.flights, want.cancelled), got.group
        for name in (
            "avg_dep_delay_minutes",
            "p50_dep_delay_minutes",
            "p95_dep_delay_minutes",
            "on_time_rate",
        ):
            value, wanted = getattr(got, name), getattr(want, name)
            assert (value is None) == (wanted is None), (got.group, name)
            if wanted is not None:
                assert value == pytest.approx(wanted, rel=1e-9), (got.group, name)


STATS_FILTERS = {
    "all": FlightFilter(),
    "carrier": FlightFilter(carrier="UA"),
    "range": FlightFilter(
        departure_from=datetime(2013, 2, 1, tzinfo=UTC),
        departure_to=datetime(2013, 3, 15, tzinfo=UTC),
    ),
    "delayed from JFK": FlightFilter(origin="JFK", min_dep_delay=10),
    "no delays known": FlightFilter(status=FlightStatus.SCHEDULED),
}


@pytest.mark.parametrize("group_by", list(GroupBy))
@pytest.mark.parametrize("name", list(STATS_FILTERS))
def test_delay_stats_match_a_pure_python_computation(
    loaded: DuckDBFlightStore, group_by: GroupBy, name: str
) -> None:
    flight_filter = STATS_FILTERS[name]
    expected = expected_stats(group_by, flight_filter)
    assert expected  # the case must not be vacuous
    assert_stats_equal(list(loaded.delay_stats(group_by, flight_filter)), expected)


def test_stats_of_flights_without_known_delays_are_null(loaded: DuckDBFlightStore) -> None:
    stats = loaded.delay_stats(GroupBy.CARRIER, FlightFilter(status=FlightStatus.CANCELLED))
    assert stats
    for row in stats:
        assert row.cancelled == row.flights > 0
        assert row.avg_dep_delay_minutes is None
        assert row.p50_dep_delay_minutes is None
        assert row.on_time_rate is None


def test_hours_and_weekdays_sort_numerically(loaded: DuckDBFlightStore) -> None:
    hours = [s.group for s in loaded.delay_stats(GroupBy.HOUR, FlightFilter())]
    assert hours == sorted(hours, key=int)
    assert "9" in hours
    assert "10" in hours
    weekdays = [s.group for s in loaded.delay_stats(GroupBy.WEEKDAY, FlightFilter())]
    assert weekdays == ["1", "2", "3", "4", "5", "6", "7"]


def test_local_hour_is_the_origin_wall_clock(tmp_path: Path) -> None:
    # 07:30 in Los Angeles is 15:30 UTC and 10:30 in New York: the group is "7".
    store = DuckDBFlightStore(tmp_path / "h.duckdb")
    try:
        event = make_event(
            origin="LAX",
            departure_local=datetime(2013, 7, 1, 7, 30),
            offset=timezone(timedelta(hours=-7)),  # PDT
        )
        store.write_batch(WriteBatch(accepted=[accepted(event, "m-1")]))
        (row,) = store.delay_stats(GroupBy.HOUR, FlightFilter())
        assert row.group == "7"
        (row,) = store.delay_stats(GroupBy.WEEKDAY, FlightFilter())
        assert row.group == "1"  # 2013-07-01 was a Monday
        (row,) = store.delay_stats(GroupBy.MONTH, FlightFilter())
        assert row.group == "2013-07"
    finally:
        store.close()


# --- concurrency ---------------------------------------------------------------------------


def test_reads_run_concurrently_with_a_writer(tmp_path: Path) -> None:
    store = DuckDBFlightStore(tmp_path / "c.duckdb")
    batches = DATASET.batches(50)
    done = threading.Event()

    def write() -> int:
        try:
            return sum(store.write_batch(b).stored for b in batches)
        finally:
            done.set()

    def read() -> int:
        reads = 0
        while not done.is_set() or reads < 5:
            page = store.list_flights(FlightQuery(limit=50))
            assert len({f.flight_id for f in page.flights}) == len(page.flights)
            store.delay_stats(GroupBy.CARRIER, FlightFilter())
            store.ping()
            reads += 1
        return reads

    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            writer = pool.submit(write)
            readers = [pool.submit(read) for _ in range(3)]
            unique = {m.meta.message_id for m in DATASET.deliveries}
            assert writer.result(timeout=120) == len(unique)
            assert all(r.result(timeout=120) >= 5 for r in readers)
        assert len(store.list_flights(FlightQuery(limit=1000)).flights) == len(FLIGHTS)
    finally:
        store.close()
