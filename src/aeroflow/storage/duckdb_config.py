"""The settings the embedded store opens DuckDB with, and why (bench/bench_memory.py measures
them; docs/performance.md has the figures)."""

from __future__ import annotations

import duckdb

Config = dict[str, str | bool | int | float | list[str]]


def connection_config(threads: int, memory_limit: str | None) -> Config:
    """``duckdb.connect``'s ``config`` for ``threads`` and an optional buffer pool limit.

    Other connections of the process to the same file must pass the same config (DuckDB
    refuses a second configuration of an open database), so only these two go here.
    """
    config: Config = {"threads": threads}
    if memory_limit is not None:
        # DuckDB's buffer pool defaults to 80 % of the machine's RAM and keeps what it has
        # read: at 10 M flights that alone passed 1 GiB of RSS. Over the limit it evicts (or
        # spills), so the process stays bounded whatever the store's size.
        config["memory_limit"] = memory_limit
    return config


def purge_freed_memory(connection: duckdb.DuckDBPyConnection) -> None:
    """Have DuckDB's allocator give freed pages back to the OS in the background.

    DuckDB allocates through its own jemalloc, which returns freed pages only when a thread
    allocates again, unless its background threads purge them. Building the read model frees
    hundreds of MiB of DuckDB's sort and scan buffers and an idle server then allocates
    nothing: at 10 M flights RSS stayed ~330 MiB above what the process used (1,225 -> 899
    MiB two seconds after turning them on). The threads sleep while there is nothing to
    purge. A setting of the process's allocator, not of the database: set, not configured.
    """
    connection.execute("SET allocator_background_threads = true")
