"""DuckDBFlightStore's engine settings: the buffer-pool limit that bounds the process's RSS."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from pydantic import ValidationError
from storage_factories import flight_dataset

from aeroflow.bootstrap import build_store
from aeroflow.settings import Settings
from aeroflow.storage.duckdb import DuckDBFlightStore
from aeroflow.storage.duckdb_config import (
    LOADING_LIMIT,
    WRITE_CHECKPOINT_THRESHOLD,
    loading_buffers,
    size_bytes,
)


def _limit(store: DuckDBFlightStore) -> str:
    return _setting(store._conn)


def _setting(conn: duckdb.DuckDBPyConnection) -> str:
    return str(conn.execute("SELECT current_setting('memory_limit')").fetchall()[0][0])


def test_memory_limit_is_applied_and_defaults_to_duckdbs_own(tmp_path: Path) -> None:
    limited = DuckDBFlightStore(tmp_path / "a.duckdb", memory_limit="64MB")
    default = DuckDBFlightStore(tmp_path / "b.duckdb")
    try:
        assert _limit(limited) in {"64.0 MB", "61.0 MiB"}
        assert _limit(default) != _limit(limited)
    finally:
        limited.close()
        default.close()


def test_the_setting_reaches_the_store_and_is_validated(tmp_path: Path) -> None:
    settings = Settings(duckdb_path=tmp_path / "c.duckdb", duckdb_memory_limit="96MB")
    store = build_store(settings)
    try:
        assert isinstance(store, DuckDBFlightStore)
        assert _limit(store) in {"96.0 MB", "91.5 MiB"}
    finally:
        store.close()
    assert Settings().duckdb_memory_limit == "512MB"
    with pytest.raises(ValidationError):
        Settings(duckdb_memory_limit="a lot")


def test_duckdbs_allocator_purges_freed_memory_in_the_background(tmp_path: Path) -> None:
    # Without its background threads, DuckDB's jemalloc kept the buffers the read model's load
    # freed: ~330 MiB of RSS at 10 M flights for an idle server.
    store = DuckDBFlightStore(tmp_path / "d.duckdb", memory_limit="64MB")
    try:
        row = store._conn.execute(
            "SELECT current_setting('allocator_background_threads')"
        ).fetchone()
        assert row is not None
        assert row[0] is True
    finally:
        store.close()


def test_the_blocks_read_while_loading_leave_the_buffer_pool(tmp_path: Path) -> None:
    path = tmp_path / "e.duckdb"
    with duckdb.connect(str(path)) as conn:
        conn.execute("CREATE TABLE t AS SELECT range AS i, hash(range) AS h FROM range(2000000)")
    with duckdb.connect(str(path), config={"memory_limit": "256MB"}) as conn:

        def table_mib() -> float:
            row = conn.execute(
                "SELECT coalesce(sum(memory_usage_bytes), 0) / 2**20 FROM duckdb_memory()"
                " WHERE tag = 'BASE_TABLE'"
            ).fetchall()
            return float(row[0][0])

        with loading_buffers(conn, "256MB"):
            assert conn.execute("SELECT sum(h) FROM t").fetchall()
            read = table_mib()
            assert _setting(conn) in {"128.0 MB", "122.0 MiB"}
        assert read > 10  # what a load leaves: a pool full of blocks nothing reads again
        assert table_mib() < 1
        assert _setting(conn) in {"256.0 MB", "244.1 MiB"}


def test_blocks_duckdb_cannot_evict_are_kept_and_the_limit_still_restored(
    tmp_path: Path,
) -> None:
    # Uncheckpointed rows behind a primary key (what a replayed WAL leaves after a crash) pin
    # blocks: DuckDB refuses the tiny evicting limit, which must not stop the store opening.
    path = tmp_path / "pinned.duckdb"
    with duckdb.connect(str(path), config={"checkpoint_threshold": "10GB"}) as conn:
        conn.execute("CREATE TABLE t (i BIGINT PRIMARY KEY, s VARCHAR)")
        conn.execute("INSERT INTO t SELECT range, repeat('x', 50) FROM range(300000)")
        with loading_buffers(conn, "256MB"):
            pass
        assert _setting(conn) in {"256.0 MB", "244.1 MiB"}
        assert conn.execute("SELECT count(*) FROM t").fetchall() == [(300_000,)]


def test_a_store_opens_with_its_configured_limit_after_the_load(tmp_path: Path) -> None:
    path = tmp_path / "g.duckdb"
    writer = DuckDBFlightStore(path, read_model=False)
    for batch in flight_dataset(50, seed=3).batches(50):
        writer.write_batch(batch)
    writer.close()
    store = DuckDBFlightStore(path, memory_limit="256MB")
    try:
        assert not store.reads_block  # the model loaded
        assert _limit(store) in {"256.0 MB", "244.1 MiB"}
    finally:
        store.close()


@pytest.mark.parametrize(
    ("size", "expected"),
    [("512MB", 512 * 10**6), ("1.5GiB", 3 * 2**29), ("64 KB", 64_000), ("2TiB", 2 * 2**40)],
)
def test_sizes_are_read_as_duckdb_reads_them(size: str, expected: int) -> None:
    assert size_bytes(size) == expected


def test_a_smaller_configured_limit_also_bounds_the_load(tmp_path: Path) -> None:
    store = DuckDBFlightStore(tmp_path / "f.duckdb", memory_limit="32MB")
    try:
        assert size_bytes("32MB") < size_bytes(LOADING_LIMIT)
        assert _limit(store) in {"32.0 MB", "30.5 MiB"}
    finally:
        store.close()


def _checkpoint_threshold(store: DuckDBFlightStore) -> str:
    row = store._conn.execute("SELECT current_setting('checkpoint_threshold')").fetchone()
    assert row is not None
    return str(row[0])


def test_the_writer_checkpoints_less_often_when_the_pool_can_hold_the_wal(
    tmp_path: Path,
) -> None:
    default_pool = DuckDBFlightStore(tmp_path / "w.duckdb")
    settings_pool = DuckDBFlightStore(tmp_path / "x.duckdb", memory_limit="512MB")
    small_pool = DuckDBFlightStore(tmp_path / "y.duckdb", memory_limit="256MB")
    try:
        assert size_bytes(WRITE_CHECKPOINT_THRESHOLD) == 64 * 10**6
        assert _checkpoint_threshold(default_pool) in {"64.0 MB", "61.0 MiB"}
        assert _checkpoint_threshold(settings_pool) in {"64.0 MB", "61.0 MiB"}
        # Too small a pool for 64MB of uncheckpointed rows: DuckDB's default (16MB) stays.
        assert _checkpoint_threshold(small_pool) in {"16.0 MiB", "16.0 MB"}
    finally:
        for store in (default_pool, settings_pool, small_pool):
            store.close()
