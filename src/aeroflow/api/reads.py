"""How request handlers call the store: inline when it answers from memory, else in a thread.

A store that waits on a query engine or the network (``reads_block``) must never run on the
event loop, which would stall every other request. A store answering from memory in
microseconds is called inline: the hop to a worker thread and back costs more than the read.

Only the page and lookup reads (``list_flights``, ``get_flight``) go through :func:`read`.
``delay_stats`` and ``ping`` always run in a worker thread: ``reads_block`` speaks for pages
and lookups only. The ping queries DuckDB, and an aggregate scans every matching flight,
whether DuckDB or the read model answers it (tens of milliseconds over millions of rows from
the model, more from SQL): the thread hop is noise next to that, and the loop must not stall.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar

from starlette.concurrency import run_in_threadpool

from aeroflow.storage.port import FlightStore

P = ParamSpec("P")
T = TypeVar("T")


async def read(store: FlightStore, call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``call(*args, **kwargs)``, where ``call`` is a method of ``store``."""
    if store.reads_block:
        return await run_in_threadpool(call, *args, **kwargs)
    return call(*args, **kwargs)
