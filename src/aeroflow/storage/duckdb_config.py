"""The settings the embedded store opens DuckDB with, and why (bench/bench_memory.py measures
them; docs/performance.md has the figures)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Final

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


# The WAL size at which a commit folds the WAL into the database file (DuckDB's default is
# 16 MiB). A checkpoint recompresses every row group the WAL touched, the last, partly filled
# row group of ``flight_events`` whole, so much of its cost is fixed: ~0.2 s after a single
# batch of 2,000 events at 1 M events, and the writer (with every ack) waits for it. About four
# times the size, a quarter of the checkpoints: 420,000 events written in batches of 2,000 into
# the 1 M-event sample store took 28.8 -> 27.4 µs of CPU per message (three runs each, load
# 4.5-7), a fresh store (bench_ingest's write part) 24.2 -> 22.0; peak RSS and the longest
# stall (1.4-3.6 s against 2.1-5.0 s under that load) no worse. The cost: a crash replays up
# to 64MB of WAL at the next open (~1 s), and the WAL's rows are held by the buffer pool until
# the checkpoint, hence only with a pool of at least ``_POOL_PER_WAL`` times the threshold.
WRITE_CHECKPOINT_THRESHOLD: Final = "64MB"
_POOL_PER_WAL: Final = 8


def write_checkpoints(connection: duckdb.DuckDBPyConnection, memory_limit: str | None) -> None:
    """Checkpoint the writer's database at ``WRITE_CHECKPOINT_THRESHOLD`` of WAL, unless the
    buffer pool is too small to hold that much (then DuckDB's default stays)."""
    threshold = size_bytes(WRITE_CHECKPOINT_THRESHOLD)
    if memory_limit is not None and size_bytes(memory_limit) < _POOL_PER_WAL * threshold:
        return
    connection.execute("SET checkpoint_threshold = ?", [WRITE_CHECKPOINT_THRESHOLD])


# The buffer pool while the read model loads, and the limit that then empties it.
LOADING_LIMIT: Final = "128MB"
_EVICTING_LIMIT: Final = "1MB"
_SIZE = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([KMGT])(i?)B")


@contextlib.contextmanager
def loading_buffers(
    connection: duckdb.DuckDBPyConnection, memory_limit: str | None
) -> Iterator[None]:
    """A small buffer pool while the read model loads, emptied when it is done.

    The load reads every block of ``flights`` once, in departure ranges; DuckDB keeps what it
    reads up to its limit, so after a load at 512MB the pool still held 402 MiB of blocks
    nothing would read again (10 M flights), on top of the model. Each range's sort fits in
    ``LOADING_LIMIT`` (or spills to DuckDB's temporary files). Lowering the limit evicts the
    unpinned blocks at once; the configured limit is then put back, and the pool fills again
    only with what queries read.
    """
    loading = LOADING_LIMIT
    if memory_limit is not None and size_bytes(memory_limit) < size_bytes(loading):
        loading = memory_limit
    # Both lowerings are best effort: blocks DuckDB cannot evict (a replayed WAL's changes
    # before the first checkpoint, pinned index blocks) make it refuse a limit below them;
    # the load then runs with the configured pool, and the blocks are kept.
    with contextlib.suppress(duckdb.OutOfMemoryException):
        connection.execute("SET memory_limit = ?", [loading])
    try:
        yield
    finally:
        with contextlib.suppress(duckdb.OutOfMemoryException):
            connection.execute("SET memory_limit = ?", [_EVICTING_LIMIT])
        if memory_limit is None:
            connection.execute("RESET memory_limit")
        else:
            connection.execute("SET memory_limit = ?", [memory_limit])


def size_bytes(size: str) -> int:
    """Bytes of a DuckDB size such as ``512MB`` (10^6) or ``1.5GiB`` (2^30)."""
    match = _SIZE.fullmatch(size.strip())
    if match is None:
        raise ValueError(f"not a memory size: {size!r}")
    number, unit, binary = match.groups()
    base = 1024 if binary else 1000
    return int(float(number) * base ** ("KMGT".index(unit) + 1))
