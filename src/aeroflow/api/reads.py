"""How request handlers call the store: inline when it answers from memory, else in a thread.

A store that waits on a query engine or the network (``reads_block``) must never run on the
event loop, which would stall every other request. A store answering from memory in
microseconds is called inline: the hop to a worker thread and back costs more than the read.
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
