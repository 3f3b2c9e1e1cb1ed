"""``POST /pubsub/push`` answered straight onto the connection, outside ASGI: the push lane.

``PushHttpProtocol`` (``push_protocol.py``) hands a plain push request to the lane once its
body is read. The lane runs the endpoint's own steps (``PushEndpoint.authenticate``,
``decode``, ``submit_callback``, ``refusal_for``) and writes the answer's bytes to the
transport when the group committer settles the message. What it saves per message, on the
event loop: an asyncio task and its coroutines, a future, the ASGI receive and the two sends
through three wrappers, and uvicorn's header checks of the same fixed headers every time (the
204's bytes are built once per second, when uvicorn's Date header changes).

A client sees what the ASGI path (``PushFastPath`` in front of ``PushEndpoint``) sends, byte
for byte, and the request is recorded by the same ``PushFastPath.record`` (metrics, sampled
access log); tests/ingest/test_push_lane.py compares the two paths' answers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, Protocol

from starlette.types import Scope
from uvicorn.protocols.http.httptools_impl import STATUS_LINE

from aeroflow.ingest.committer import Item, Outcome
from aeroflow.ingest.push_answers import Headers, Refusal, error_body, error_headers
from aeroflow.storage.port import StorageUnavailableError

if TYPE_CHECKING:
    from aeroflow.ingest.push import PushEndpoint

log = logging.getLogger(__name__)

_NO_CONTENT: Final = 204
_CONNECTION_CLOSE: Final = b"connection: close\r\n"

# PushFastPath.record: (scope, status, latency in seconds, response body size).
Recorder = Callable[[Scope, int, float, int], None]


class ServerState(Protocol):
    """What the lane reads of uvicorn's server state: its Date (and Server) headers."""

    default_headers: list[tuple[bytes, bytes]]


class _NoEvent:
    """uvicorn sets its cycle's message event when the connection is lost; nobody waits here."""

    __slots__ = ()

    def set(self) -> None:
        return None


_NO_EVENT: Final = _NoEvent()


class Exchange:
    """One push request in the lane.

    It stands in for uvicorn's RequestResponseCycle as the protocol's current ``cycle``, so
    uvicorn's own code keeps working around it: ``response_complete`` (a pipelined request
    waits for it), ``keep_alive`` (cleared by a graceful shutdown), ``disconnected`` and
    ``message_event`` (touched when the connection is lost).
    """

    __slots__ = (
        "authorization",
        "chunks",
        "disconnected",
        "keep_alive",
        "lane",
        "message_event",
        "on_response",
        "response_complete",
        "scope",
        "server_state",
        "started",
        "transport",
    )

    def __init__(
        self,
        lane: PushLane,
        *,
        transport: asyncio.Transport,
        scope: Scope,
        server_state: ServerState,
        on_response: Callable[[], None],
        authorization: bytes | None,
    ) -> None:
        self.lane = lane
        self.transport = transport
        self.scope = scope
        self.server_state = server_state
        self.on_response = on_response
        self.authorization = authorization
        self.started = time.perf_counter()
        self.chunks: list[bytes] = []
        self.response_complete = False
        self.keep_alive = True
        self.disconnected = False
        self.message_event: Any = _NO_EVENT

    @property
    def path(self) -> str:
        path: str = self.scope["path"]
        return path

    def settle(self, result: Outcome | BaseException) -> None:
        """The group committer's callback: the message is durable, or its batch failed."""
        self.lane.settled(self, result)


class PushLane:
    def __init__(self, endpoint: PushEndpoint, response_headers: Headers, record: Recorder) -> None:
        """``response_headers``: what the app adds to every answer (security headers)."""
        self._endpoint = endpoint
        self._extra = b"".join(b"%s: %s\r\n" % (name, value) for name, value in response_headers)
        self._record = record
        self.max_body_bytes = endpoint.max_body_bytes
        # The 204's bytes for the default headers (uvicorn's Date) they were built with.
        self._defaults: list[tuple[bytes, bytes]] | None = None
        self._no_content = b""

    def handle(self, exchange: Exchange) -> None:
        """The request's body has been read: answer at once, or once the commit settles."""
        endpoint = self._endpoint
        try:
            refusal = endpoint.authenticate(exchange.authorization)
            if refusal is None:
                body = (
                    exchange.chunks[0] if len(exchange.chunks) == 1 else b"".join(exchange.chunks)
                )
                exchange.chunks = []
                decoded: Item | Refusal = endpoint.decode(body)
                if not isinstance(decoded, Refusal):
                    try:
                        endpoint.submit_callback(decoded, exchange.settle)
                    except StorageUnavailableError as exc:
                        refusal = endpoint.refusal_for(exc)
                    else:
                        return
                else:
                    refusal = decoded
            self._refuse(exchange, refusal)
        except Exception:
            log.exception("unhandled error", extra={"method": "POST", "path": exchange.path})
            self._internal_error(exchange)

    def settled(self, exchange: Exchange, result: Outcome | BaseException) -> None:
        if not isinstance(result, BaseException):
            self._answer(exchange, _NO_CONTENT, self._no_content_head(exchange), b"")
        elif isinstance(result, StorageUnavailableError):
            self._refuse(exchange, self._endpoint.refusal_for(result))
        else:
            # What PushFastPath does with an error escaping the endpoint.
            extra = {"method": "POST", "path": exchange.path}
            log.error("unhandled error", exc_info=result, extra=extra)
            self._internal_error(exchange)

    # --- writing answers ---------------------------------------------------------------

    def _no_content_head(self, exchange: Exchange) -> bytes:
        defaults = exchange.server_state.default_headers
        if not exchange.keep_alive:
            return self._head(exchange, _NO_CONTENT, defaults, (), self._extra)
        if defaults is not self._defaults:
            self._no_content = self._head(exchange, _NO_CONTENT, defaults, (), self._extra)
            self._defaults = defaults
        return self._no_content

    def _refuse(self, exchange: Exchange, refusal: Refusal) -> None:
        body = error_body(refusal.code, refusal.message)
        headers = error_headers(body, refusal.headers)
        defaults = exchange.server_state.default_headers
        head = self._head(exchange, refusal.status, defaults, headers, self._extra)
        self._answer(exchange, refusal.status, head, body)

    def _internal_error(self, exchange: Exchange) -> None:
        if exchange.response_complete:
            return
        # As PushFastPath's 500: sent past the endpoint's wrapping, so without its headers.
        body = error_body("internal", "internal server error")
        head = self._head(
            exchange, 500, exchange.server_state.default_headers, error_headers(body), b""
        )
        self._answer(exchange, 500, head, body)

    @staticmethod
    def _head(
        exchange: Exchange,
        status: int,
        defaults: Headers,
        headers: Headers,
        extra: bytes,
    ) -> bytes:
        """Status line and headers as uvicorn writes them: its defaults, the answer's, then
        the app's (``extra``)."""
        parts = [STATUS_LINE[status]]
        for name, value in (*defaults, *headers):
            parts += (name, b": ", value, b"\r\n")
        parts.append(extra)
        if not exchange.keep_alive:
            parts.append(_CONNECTION_CLOSE)
        parts.append(b"\r\n")
        return b"".join(parts)

    def _answer(self, exchange: Exchange, status: int, head: bytes, body: bytes) -> None:
        transport = exchange.transport
        # Closing without ``disconnected`` set: lost while a pipelined request was current.
        gone = exchange.disconnected or transport.is_closing()
        if not gone:
            transport.write(head + body if body else head)
        exchange.response_complete = True
        if not exchange.keep_alive:
            transport.close()
        if not gone:
            exchange.on_response()  # uvicorn: keep-alive timer, resume reading, next request
        self._record(exchange.scope, status, time.perf_counter() - exchange.started, len(body))
