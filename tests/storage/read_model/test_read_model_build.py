"""How runs are built: posting lists, and the model read from the store in departure ranges."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from storage_factories import flight_dataset

from aeroflow.storage.duckdb import DuckDBFlightStore
from aeroflow.storage.port import Flight, FlightQuery
from aeroflow.storage.read_model import Tuning
from aeroflow.storage.read_model.load import sorted_batches
from aeroflow.storage.read_model.run import Postings, key_order


def _reference(codes: np.ndarray, size: int) -> tuple[list[int], list[int]]:
    """Posting lists as a whole-column stable argsort makes them (the former build)."""
    rows = np.argsort(codes, kind="stable")
    counts = np.bincount(codes[codes >= 0], minlength=size)
    nulls = int((codes < 0).sum())
    starts = np.concatenate(([0], np.cumsum(counts))) + nulls
    return rows.tolist(), starts.tolist()


@settings(max_examples=200)
@given(
    st.integers(1, 40).flatmap(
        lambda size: st.tuples(
            st.just(size), st.lists(st.integers(-1, size - 1), max_size=300), st.integers(1, 64)
        )
    )
)
def test_postings_built_in_chunks_equal_a_whole_argsort(
    case: tuple[int, list[int], int],
) -> None:
    size, values, chunk_rows = case
    codes = np.array(values, np.int8)
    built = Postings.build(codes, size, chunk_rows=chunk_rows)
    rows, starts = _reference(codes, size)
    assert built.rows.tolist() == rows
    assert built.starts.tolist() == starts
    assert built.rows.dtype == np.int32
    for code in range(size):
        assert built.of(code).tolist() == np.flatnonzero(codes == code).tolist()


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store file holding 300 flights, some departing at the same instant."""
    path = tmp_path_factory.mktemp("build") / "store.duckdb"
    store = DuckDBFlightStore(path, read_model=False)
    for batch in flight_dataset(300, seed=11).batches(60):
        store.write_batch(batch)
    store.close()
    return path


@pytest.mark.parametrize("range_rows", [1, 17, 299, 300, 10_000])
def test_departure_ranges_read_the_same_rows_in_the_same_order(
    stored: Path, range_rows: int
) -> None:
    columns = ("flight_id", "scheduled_departure", "carrier", "tail_number")
    with duckdb.connect(str(stored), read_only=True) as conn:
        whole = conn.execute(
            f"SELECT {', '.join(columns)} FROM flights"  # noqa: S608 - constants
            " ORDER BY scheduled_departure, flight_id"
        ).fetchall()
        batches = list(sorted_batches(conn, columns, range_rows=range_rows, batch_rows=7))
    assert all(batch.num_rows <= 7 for batch in batches)
    ranged = [tuple(row.values()) for batch in batches for row in batch.to_pylist()]
    assert ranged == whole
    assert len({row[0] for row in ranged}) == 300


def test_a_model_loaded_in_many_ranges_answers_as_sql_does(stored: Path) -> None:
    tuning = Tuning(load_chunk_rows=13, load_range_rows=40, background_merges=False)
    with_model = DuckDBFlightStore(stored, read_model=True, read_model_tuning=tuning)
    try:
        assert not with_model.reads_block  # the model loaded
        ranged = _every_flight(with_model)
        singles = [with_model.get_flight(f.flight_id) for f in ranged]
    finally:
        with_model.close()
    from_sql = DuckDBFlightStore(stored, read_model=False)
    try:
        assert ranged == _every_flight(from_sql)
        assert singles == ranged
    finally:
        from_sql.close()
    assert len(ranged) == 300


def _every_flight(store: DuckDBFlightStore) -> list[Flight]:
    """Every flight, walked in pages of 9 by keyset."""
    found: list[Flight] = []
    query = FlightQuery(limit=9)
    while True:
        page = store.list_flights(query)
        found.extend(page.flights)
        if page.next is None:
            return found
        query = FlightQuery(limit=9, after=page.next)


@settings(max_examples=200)
@given(
    st.lists(st.integers(0, 2**60), max_size=400).flatmap(
        lambda keys: st.tuples(st.just(keys), st.integers(1, 50))
    ),
    st.booleans(),
)
def test_key_order_in_groups_equals_a_whole_argsort(
    case: tuple[list[int], int], clustered: bool
) -> None:
    values, group_rows = case
    if clustered:  # most keys in one group: the skew real carriers make
        values = [v % 1000 for v in values[:-1]] + values[-1:]
    keys = np.array(values, np.int64)
    order = key_order(keys, group_rows=group_rows)
    assert order.tolist() == np.argsort(keys, kind="stable").tolist()
    assert order.dtype == np.int32
