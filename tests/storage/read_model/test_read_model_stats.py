"""Delay stats from the read model equal DuckDB's SQL to the last bit, whatever was written.

As in test_read_model_equivalence: two real stores get the same random writes, one answering
from SQL, the other from the read model tuned so that tiny batches freeze the tail into runs,
merge them and mask rows in them. After every write the model's figures for random groupings
and filters must equal the SQL's exactly (floats compared with ==, not approximately).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from storage_factories import accepted, flight_dataset, flight_filters, make_event

from aeroflow.domain.events import FlightStatus
from aeroflow.storage.duckdb import DuckDBFlightStore
from aeroflow.storage.port import DelayStats, FlightFilter, GroupBy, WriteBatch
from aeroflow.storage.read_model import FlightReadModel, Tuning, stats

CARRIERS = ("UA", "AA", "9E")
ORIGINS = ("EWR", "LAX", "NRT")
DESTINATIONS = ("IAH", "MIA", "ORD")
# Offsets on both sides of UTC and a half hour, so local months, days and hours differ from
# UTC's; local departures straddle a month and a year boundary.
OFFSETS = (-8, -5, 0, 5.5, 9)
FIRST_DAY = datetime(2013, 12, 30)


# Fifteen flights (carrier, number, origin, local day), so events often update a flight
# already frozen into a run: the stats must skip the rows masked there.
FLIGHTS = [
    (carrier, number, origin, day)
    for carrier, number, origin, day in itertools.product(CARRIERS, (1, 2), ORIGINS, (0, 2, 33, 60))
][::5]


@st.composite
def messages(draw: st.DrawFn) -> Any:
    """One accepted message for one of FLIGHTS."""
    carrier, number, origin, day = draw(st.sampled_from(FLIGHTS))
    departure = FIRST_DAY + timedelta(
        days=day, minutes=draw(st.sampled_from([0, 15, 330, 719, 1410, 1439]))
    )
    status = draw(st.sampled_from(list(FlightStatus)))
    dep_delay = draw(st.integers(-30, 20) | st.integers(-1440, 4320))
    event = make_event(
        carrier=carrier,
        flight_number=number,
        origin=origin,
        destination=draw(st.sampled_from(DESTINATIONS)),
        departure_local=departure,
        offset=timezone(timedelta(hours=draw(st.sampled_from(OFFSETS)))),
        duration=timedelta(minutes=draw(st.sampled_from([75, 200]))),
        status=status,
        dep_delay=dep_delay,
        arr_delay=max(-1440, min(4320, dep_delay + draw(st.integers(-20, 20)))),
        event_time=datetime(2013, 1, 1, tzinfo=UTC) + timedelta(hours=draw(st.integers(0, 3))),
    )
    return accepted(
        event,
        f"m{draw(st.integers(0, 80))}",
        publish_time=datetime(2013, 1, 1, tzinfo=UTC) + timedelta(seconds=draw(st.integers(0, 2))),
    )


instants = st.builds(
    lambda day, hour, offset: (
        datetime(2013, 12, 30, tzinfo=UTC) + timedelta(days=day, hours=hour)
    ).astimezone(timezone(timedelta(hours=offset))),
    st.integers(-1, 62),
    st.sampled_from([0, 5, 12, 23.5]),
    st.sampled_from([0, -5, 3]),
)
filters = flight_filters(
    carriers=[*CARRIERS, "ZZ"],
    origins=[*ORIGINS, "SFO"],
    destinations=[*DESTINATIONS, "XXX"],
    departures=instants,
    min_dep_delays=st.integers(-40, 100),
)
tunings = st.builds(
    Tuning,
    freeze_rows=st.integers(1, 8),
    merge_ratio=st.integers(1, 4),
    background_merges=st.just(False),
)

_counter = itertools.count()


def stores(root: Path, tuning: Tuning) -> Iterator[tuple[DuckDBFlightStore, DuckDBFlightStore]]:
    directory = root / f"example-{next(_counter)}"
    sql = DuckDBFlightStore(directory / "sql.duckdb", read_model=False)
    model = DuckDBFlightStore(directory / "model.duckdb", read_model=True, read_model_tuning=tuning)
    try:
        yield sql, model
    finally:
        sql.close()
        model.close()


def model_of(store: DuckDBFlightStore) -> FlightReadModel:
    model = store._read_model
    assert model is not None  # still on: had it given up, SQL would answer everything
    return model


def assert_same_stats(
    sql: DuckDBFlightStore, model: FlightReadModel, group_by: GroupBy, flight_filter: FlightFilter
) -> list[DelayStats]:
    try:
        expected = list(sql.delay_stats(group_by, flight_filter))
    except ValueError as exc:
        with pytest.raises(ValueError, match=re.escape(str(exc))):
            model.delay_stats(group_by, flight_filter)
        return []
    found = model.delay_stats(group_by, flight_filter)
    assert found is not None, "the model left the statement to SQL"
    # Dataclass equality: every float bit for bit, types included.
    assert found == expected, (group_by, flight_filter)
    for got, want in zip(found, expected, strict=True):
        for name in ("avg_dep_delay_minutes", "p50_dep_delay_minutes", "p95_dep_delay_minutes"):
            assert type(getattr(got, name)) is type(getattr(want, name))
    return expected


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    tuning=tunings,
    batches=st.lists(st.lists(messages(), min_size=1, max_size=12), min_size=1, max_size=5),
    asked=st.lists(
        st.tuples(st.sampled_from(list(GroupBy)), filters | st.just(FlightFilter())),
        min_size=3,
        max_size=3,
    ),
)
def test_model_stats_equal_duckdb_after_every_write(
    tmp_path: Path,
    tuning: Tuning,
    batches: list[list[Any]],
    asked: list[tuple[GroupBy, FlightFilter]],
) -> None:
    for sql, store in stores(tmp_path, tuning):
        for batch in batches:
            sql.write_batch(WriteBatch(accepted=batch))
            store.write_batch(WriteBatch(accepted=batch))
            model = model_of(store)
            for group_by in GroupBy:
                assert assert_same_stats(sql, model, group_by, FlightFilter())
            for group_by, flight_filter in asked:
                assert_same_stats(sql, model, group_by, flight_filter)
                # What the store answers is the model's figures.
                assert list(store.delay_stats(group_by, flight_filter)) == list(
                    sql.delay_stats(group_by, flight_filter)
                )


DATASET = flight_dataset(400, seed=29)
FILTERS = {
    "none": FlightFilter(),
    "carrier and window": FlightFilter(
        carrier="UA",
        departure_from=datetime(2013, 2, 1, tzinfo=UTC),
        departure_to=datetime(2013, 3, 20, tzinfo=UTC),
    ),
    "origin and delay": FlightFilter(origin="JFK", min_dep_delay=5),
    "destination and status": FlightFilter(destination="ORD", status=FlightStatus.ARRIVED),
    "cancelled": FlightFilter(status=FlightStatus.CANCELLED),
    "nothing": FlightFilter(carrier="ZZ"),
}


@pytest.fixture(scope="module")
def pair(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[DuckDBFlightStore, DuckDBFlightStore]]:
    root = tmp_path_factory.mktemp("stats")
    sql = DuckDBFlightStore(root / "sql.duckdb", read_model=False)
    # Small runs and a tail, with masked rows: every kind of source the stats read.
    store = DuckDBFlightStore(
        root / "model.duckdb",
        read_model_tuning=Tuning(freeze_rows=64, merge_ratio=4, background_merges=False),
    )
    for batch in DATASET.batches(37):
        sql.write_batch(batch)
        store.write_batch(batch)
    yield sql, store
    sql.close()
    store.close()


@pytest.mark.parametrize("group_by", list(GroupBy))
@pytest.mark.parametrize("name", list(FILTERS))
def test_model_stats_over_a_varied_dataset(
    pair: tuple[DuckDBFlightStore, DuckDBFlightStore], group_by: GroupBy, name: str
) -> None:
    sql, store = pair
    expected = assert_same_stats(sql, model_of(store), group_by, FILTERS[name])
    assert bool(expected) == (name != "nothing")


def test_counts_too_big_for_memory_are_left_to_sql(
    pair: tuple[DuckDBFlightStore, DuckDBFlightStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    sql, store = pair
    monkeypatch.setattr(stats, "_MAX_CELLS", 10)
    assert model_of(store).delay_stats(GroupBy.MONTH, FlightFilter()) is None
    expected = list(sql.delay_stats(GroupBy.MONTH, FlightFilter()))
    assert expected
    assert list(store.delay_stats(GroupBy.MONTH, FlightFilter())) == expected


def test_a_naive_datetime_is_refused_as_by_sql(
    pair: tuple[DuckDBFlightStore, DuckDBFlightStore],
) -> None:
    _, store = pair
    with pytest.raises(ValueError, match="departure_from must be timezone-aware"):
        store.delay_stats(GroupBy.CARRIER, FlightFilter(departure_from=datetime(2013, 1, 1)))
