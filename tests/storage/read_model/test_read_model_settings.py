"""AEROFLOW_READ_MODEL: on by default for DuckDB, off on request; DuckDB's buffer pool is
configured as without the model."""

from __future__ import annotations

from pathlib import Path

from aeroflow.bootstrap import build_store
from aeroflow.settings import Settings
from aeroflow.storage.duckdb import DuckDBFlightStore


def _opened(settings: Settings) -> tuple[bool, str]:
    """(reads from the model, DuckDB's memory limit) of the store the settings build."""
    store = build_store(settings)
    try:
        assert isinstance(store, DuckDBFlightStore)
        row = store._conn.execute("SELECT current_setting('memory_limit')").fetchone()
        assert row is not None
        return not store.reads_block, str(row[0])
    finally:
        store.close()


def test_the_model_is_on_by_default(tmp_path: Path) -> None:
    assert _opened(Settings(duckdb_path=tmp_path / "a.duckdb")) == (True, "488.2 MiB")


def test_a_smaller_buffer_pool_can_be_configured_with_it(tmp_path: Path) -> None:
    settings = Settings(duckdb_path=tmp_path / "b.duckdb", duckdb_memory_limit="192MB")
    assert _opened(settings) == (True, "183.1 MiB")


def test_the_model_can_be_turned_off(tmp_path: Path) -> None:
    settings = Settings(duckdb_path=tmp_path / "c.duckdb", read_model=False)
    assert _opened(settings) == (False, "488.2 MiB")
