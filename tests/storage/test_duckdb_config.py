"""DuckDBFlightStore's engine settings: the buffer-pool limit that bounds the process's RSS."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from aeroflow.bootstrap import build_store
from aeroflow.settings import Settings
from aeroflow.storage.duckdb import DuckDBFlightStore


def _limit(store: DuckDBFlightStore) -> str:
    row = store._conn.execute("SELECT current_setting('memory_limit')").fetchone()
    assert row is not None
    return str(row[0])


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
