"""Pages written as JSON by the store (``port.JsonPages``): the same bytes as the page's flights
serialised, from the read model, from DuckDB without it, and from a store that has no writer of
its own; instants numpy cannot hold take the flights path."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
from storage_factories import flight_dataset
from test_read_model_flights import SCHEMA, table  # the flights table's Arrow shape

from aeroflow.storage.duckdb import DuckDBFlightStore
from aeroflow.storage.port import (
    Flight,
    FlightFilter,
    FlightPage,
    FlightPageJson,
    FlightQuery,
    FlightStore,
    JsonPages,
    SortOrder,
    flights_json,
    json_page_reader,
)
from aeroflow.storage.read_model import FlightReadModel, Tuning
from aeroflow.storage.read_model.columns import CODED, Dictionary, FlightColumns
from aeroflow.storage.read_model.run import Run

DATASET = flight_dataset(120, seed=11)


class _ListOnly:
    """A store with ``list_flights`` only, as the BigQuery adapter or a test wrapper."""

    def __init__(self, inner: DuckDBFlightStore) -> None:
        self.list_flights = inner.list_flights


def _queries() -> list[FlightQuery]:
    return [
        FlightQuery(sort=order, limit=limit) for order in SortOrder for limit in (1, 7, 50, 500)
    ]


def test_every_store_writes_the_pages_its_flights_make(tmp_path: Path) -> None:
    model = DuckDBFlightStore(tmp_path / "model.duckdb", read_model=True)
    sql = DuckDBFlightStore(tmp_path / "sql.duckdb", read_model=False)
    try:
        for batch in DATASET.batches(40):
            model.write_batch(batch)
            sql.write_batch(batch)
        plain: FlightStore = _ListOnly(sql)  # type: ignore[assignment]
        assert isinstance(model, JsonPages)
        assert not isinstance(plain, JsonPages)
        readers = [json_page_reader(model), json_page_reader(sql), json_page_reader(plain)]
        for query in _queries():
            expected = FlightPageJson.of(sql.list_flights(query))
            assert [read(query) for read in readers] == [expected] * 3
            assert orjson.loads(expected.data) == orjson.loads(
                orjson.dumps(list(sql.list_flights(query).flights), option=orjson.OPT_UTC_Z)
            )
    finally:
        model.close()
        sql.close()


def test_instants_orjson_cannot_write_from_numpy_are_written_through_flights() -> None:
    # orjson's datetime64 stops short of datetime.max (and then writes a truncated array
    # without raising): such a page goes the flights' way, same bytes.
    late = datetime(9999, 12, 30, 23, 0, tzinfo=UTC)
    flight = DATASET.expected[sorted(DATASET.expected)[0]]
    rows = [vars(flight) | {"updated_at": late, "status": flight.status.value}]
    model = FlightReadModel(Tuning(background_merges=False))
    try:
        model.apply(pa.Table.from_pylist(rows, schema=SCHEMA))
        query = FlightQuery(limit=5)
        written = model.list_flights_json(query)
        assert written == FlightPageJson.of(model.list_flights(query))
        assert written.data == flights_json([model.list_flights(query).flights[0]])
        assert b'"updated_at":"9999-12-30T23:00:00Z"' in written.data
    finally:
        model.close()


def test_a_page_of_nothing_is_an_empty_array() -> None:
    model = FlightReadModel(Tuning(background_merges=False))
    try:
        assert model.list_flights_json(FlightQuery()) == FlightPageJson(b"[]", 0, None)
        assert FlightPageJson.of(FlightPage([], None)) == FlightPageJson(b"[]", 0, None)
    finally:
        model.close()


def test_long_pages_and_values_new_since_the_last_page_are_written_as_their_flights() -> None:
    # Pages longer than the writer's chunk of rows (written in parts, then joined), from
    # several runs and the tail, with NULLs in every part; then carriers, airports and tail
    # numbers the dictionaries did not hold when the previous page was written.
    flights = sorted(DATASET.expected.values(), key=lambda f: f.flight_id)
    renamed = [
        dataclasses.replace(f, carrier="ZZ", destination="XNA", tail_number=f"N{at}NEW")
        for at, f in enumerate(flights[:30])
    ]
    model = FlightReadModel(Tuning(freeze_rows=25, background_merges=False))
    try:
        model.apply(table(flights[:70]))
        _assert_pages_match(model)
        model.apply(table(flights[70:]))
        _assert_pages_match(model)
        model.apply(table([dataclasses.replace(f, flight_id=_id_of(f)) for f in renamed]))
        assert len(model) == len(flights) + len(renamed)
        _assert_pages_match(model)
        assert b'"tail_number":"N29NEW"' in model.list_flights_json(FlightQuery(limit=1000)).data
    finally:
        model.close()


def _id_of(flight: Flight) -> str:
    # The same flight under another carrier: a new id of the domain's shape.
    return "ZZ" + flight.flight_id[2:]


def _assert_pages_match(model: FlightReadModel) -> None:
    for order in SortOrder:
        for limit in (99, 100, 101, 250, 1000):
            query = FlightQuery(sort=order, limit=limit)
            page = model.list_flights(query)
            assert any(f.tail_number is None for f in page.flights)
            assert model.list_flights_json(query) == FlightPageJson.of(page)


def test_a_run_vouches_for_its_instants_only_when_its_bounds_are_writable() -> None:
    # A run whose bounds keep every instant where orjson writes them from numpy spares the
    # page its own check; one instant past 9999-01-01 (relative to the departure or not) and
    # the run no longer does: its pages, even of its ordinary flights, are checked (same
    # bytes either way). Year 1 is writable: a datetime cannot be earlier.
    flights = sorted(DATASET.expected.values(), key=lambda f: f.flight_id)[:6]
    late = dataclasses.replace(flights[0], actual_arrival=datetime(9999, 12, 30, 23, tzinfo=UTC))
    updated = dataclasses.replace(flights[1], updated_at=datetime(9999, 6, 1, tzinfo=UTC))
    first = dataclasses.replace(flights[1], updated_at=datetime(1, 1, 1, tzinfo=UTC))
    dictionaries = {name: Dictionary() for name in {*CODED.values()}}
    sizes = dict.fromkeys(CODED, 1_000)

    def run_of(rows: list[Flight]) -> Run:
        return Run.build(FlightColumns.from_arrow(table(rows), dictionaries), sizes)

    every = np.arange(len(flights))
    assert run_of(flights).values(every).instants_writable
    assert not run_of([late, *flights[1:]]).values(every).instants_writable
    assert not run_of([updated, flights[0], *flights[2:]]).values(every).instants_writable
    assert run_of([first, flights[0], *flights[2:]]).values(every).instants_writable
    for outlier in (late, updated, first):
        rows = [outlier, *(f for f in flights if f.flight_id != outlier.flight_id)]
        model = FlightReadModel(Tuning(freeze_rows=1, background_merges=False))
        try:
            model.apply(table(rows))
            for query in (
                FlightQuery(limit=50),
                FlightQuery(filter=FlightFilter(carrier=flights[2].carrier), limit=50),
            ):
                expected = FlightPageJson.of(model.list_flights(query))
                assert model.list_flights_json(query) == expected
        finally:
            model.close()
