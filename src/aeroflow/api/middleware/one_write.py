"""Each response's head leaves with its body, in one write to the socket.

uvicorn writes a response's status line and headers when the app sends
``http.response.start``, and its body when the app sends ``http.response.body``: two writes,
and with ``TCP_NODELAY`` (uvloop sets it) two segments, each a system call that on loopback
also carries the segment through the kernel to the client and wakes it. Profiled under wrk
on the sample, those two writes were a third of the server's samples for point lookups, more
than everything aeroflow does for them. ``OneWriteResponses`` (an uvicorn ``HttpToolsProtocol``
to mix in before it) holds the head written during the start message and writes it together
with the first body bytes; the head also leaves on its own if the response ends, or the
connection is closed, before any body is written (HEAD requests, a failing app).

The client receives the same bytes in the same order; only a streaming response's head waits
for its first chunk. Writes outside the start message (``100 Continue``) are never held.
tests/api/middleware/test_one_write.py compares the bytes with uvicorn's own protocol.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from uvicorn._types import ASGISendEvent
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle


class _HeldHead:
    """A cycle's transport, holding what is written while ``holding`` until the next write."""

    __slots__ = ("_head", "_transport", "holding")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._head: bytes | None = None
        self.holding = False

    def write(self, data: bytes) -> None:
        if self.holding:
            self._head = data if self._head is None else self._head + data
            return
        head = self._head
        if head is not None:
            self._head = None
            data = head + data
        self._transport.write(data)

    def flush(self) -> None:
        head = self._head
        if head is not None:
            self._head = None
            self._transport.write(head)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class OneWriteResponses(HttpToolsProtocol):
    def on_headers_complete(self) -> None:
        previous = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        # Only a cycle of uvicorn's made for this request (not an upgrade's leftover, nor a
        # request another lane answers); its task has not started, so nothing was written.
        if cycle is previous or type(cycle) is not RequestResponseCycle:
            return
        held = _HeldHead(cycle.transport)
        cycle.transport = held  # type: ignore[assignment]
        cycle.send = _holding_start(cycle.send, held)  # type: ignore[method-assign,assignment]
        cycle.on_response = _flushing(cycle.on_response, held)


def _holding_start(
    send: Callable[[ASGISendEvent], Any], held: _HeldHead
) -> Callable[[ASGISendEvent], Any]:
    async def send_start_held(message: ASGISendEvent) -> None:
        if message["type"] != "http.response.start":
            await send(message)
            return
        held.holding = True
        try:
            await send(message)
        finally:
            held.holding = False

    return send_start_held


def _flushing(on_response: Callable[[], None], held: _HeldHead) -> Callable[[], None]:
    def flush_then_complete() -> None:
        # Before uvicorn moves to the connection's next request (a pipelined one).
        held.flush()
        on_response()

    return flush_then_complete
