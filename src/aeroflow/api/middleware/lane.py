"""Plain flight reads answered ahead of every layer they would pass, with those layers' effects.

A ``GET /v1/flights`` page or ``/v1/flights/{id}`` lookup goes through about fifteen ASGI
layers (uvicorn's proxy headers, FastAPI's and Starlette's own, the access log, metrics,
security headers, the size limits, API keys, the deadline, the catch-all, the response cache,
the fast reads): each one's frame and send wrapper, a sixth of the CPU of a point lookup once
the store answers from memory. This lane, the outermost layer of the served app, answers
such a read itself when none of the layers it skips would do more than it reproduces:

* the store answers inline (``reads_block`` is False), so nothing awaits before the answer is
  complete, and no CORS layer is configured (it adds headers to every answer);
* API keys are neither configured nor required and no anonymous rate limit is set;
* no server span is recorded and the request carries no trace context (the access log would
  make it current), and its ``X-Forwarded-For`` is absent or not empty;
* the query string and the headers are within the size limits.

What it reproduces, in the stack's order: the response cache's entries, single flight and
ETag/304 (the same ``ResponseCache``), the fast reads' answers (the same ``FastReads``), the
deadline (the same timer: a send still blocked at the deadline ends as it would), the
security headers, the request metrics and the access line. Anything else (a request the fast
reads leave to the route, an identical request in flight, a store that fails) goes down the
stack untouched, which answers it from the start; reads have no side effects.

The answer is computed synchronously (``ReadLane.prepare``), so the servers' protocol can
also ask for it before uvicorn builds a request cycle (``read_protocol.py``); this layer is
then the path of requests that protocol does not take (HTTP/1.0, a body, pipelining behind a
request still running). tests/api/middleware/test_read_lane.py holds both paths to the
stack's statuses, headers, bodies, metrics and access lines.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass
from time import perf_counter
from typing import Any, Final, NamedTuple

from starlette.types import ASGIApp, Receive, Scope, Send

from aeroflow.api.fast_reads import LIST_PATH, Answer, FastReads
from aeroflow.api.middleware.cache import (
    CacheKey,
    Hit,
    ResponseCache,
    completed,
    not_modified,
    not_modified_headers,
)
from aeroflow.api.middleware.errors import logger as internal_error_logger
from aeroflow.api.middleware.headers import with_security_headers
from aeroflow.api.middleware.metrics import RequestMetrics
from aeroflow.api.middleware.timeout import Deadlines
from aeroflow.observability.access_log import log_access, read_headers
from aeroflow.observability.tracing import CLOUD_TRACE_HEADER, TRACEPARENT
from aeroflow.storage.port import FlightStore

_ACCEPT: Final = b"accept"
_IF_NONE_MATCH: Final = b"if-none-match"
_FORWARDED_FOR: Final = "x-forwarded-for"


@dataclass(frozen=True)
class LaneParts:
    """The pieces of an app that its read lane shares (built by ``create_app``)."""

    reads: FastReads
    cache: ResponseCache
    deadlines: Deadlines
    store: FlightStore
    max_query_bytes: int
    max_header_bytes: int
    # False when anything between the lane and the reads would act on a plain read: API keys
    # or rate limits to check, a CORS layer.
    plain_access: bool


READ_LANE_STATE: Final = "aeroflow.read_lane"


class Prepared(NamedTuple):
    """An answer ready to send: status, headers (the security headers added), body, and what
    its access line needs (the request headers it reads, the request's perf_counter start)."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    request_headers: dict[str, str]
    started: float


class ReadLane:
    """``ReadLane(app, parts=..., trace_requests=...)``: outermost; every request it does not
    answer goes to ``app``. It also publishes itself in the lifespan state
    (``READ_LANE_STATE``), where the server's protocol finds it to answer the same requests
    without an ASGI cycle (aeroflow.api.middleware.read_protocol)."""

    def __init__(self, app: ASGIApp, *, parts: LaneParts, trace_requests: bool) -> None:
        self._app = app
        self._parts = parts
        # With spans to record, every request takes the access log's traced path.
        self._on = parts.plain_access and not trace_requests
        self._metrics = RequestMetrics()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            try:
                prepared = self.prepare(scope)
            except Exception:  # the stack answers it from the start, with its catch-all
                scope.pop("route", None)
                prepared = None
            if prepared is not None:
                await self._send(scope, send, prepared)
                return
        elif scope["type"] == "lifespan" and self._on:
            state = scope.get("state")
            if isinstance(state, dict):
                state[READ_LANE_STATE] = self
        await self._app(scope, receive, send)

    def prepare(self, scope: Scope) -> Prepared | None:
        """The answer to the request, computed at once (the store does not block), or None
        having changed nothing but ``scope["route"]``'s absence: the stack's to answer."""
        parts = self._parts
        if (
            not self._on
            or scope["method"] != "GET"
            or not scope["path"].startswith(LIST_PATH)
            or parts.store.reads_block
            or len(scope["query_string"]) > parts.max_query_bytes
        ):
            return None
        started = perf_counter()
        size = 0
        accept = b""
        if_none_match = None
        for name, value in scope["headers"]:
            size += len(name) + len(value) + 4
            lowered = name.lower()
            if lowered == _ACCEPT:
                accept = value
            elif lowered == _IF_NONE_MATCH:
                if_none_match = value
        if size > parts.max_header_bytes:
            return None
        headers = read_headers(scope["headers"])
        if (
            TRACEPARENT in headers
            or CLOUD_TRACE_HEADER in headers
            or headers.get(_FORWARDED_FOR) == ""  # uvicorn's proxy layer would pick the client
        ):
            return None

        cache = parts.cache
        lru, versioned = cache.lru, cache.store
        key: CacheKey | None = None
        version = -1
        hit: Hit | None = None
        if lru is not None and versioned is not None:
            version = versioned.write_version
            key = (scope["path"], scope["query_string"], accept)
            hit = lru.lookup(key, version)
            if hit is None and (key, version) in cache.in_flight:
                return None  # the stack's cache layer follows it
        if hit is None:
            try:
                answer = _inline(parts.reads.answer(scope))
            except Exception:
                scope.pop("route", None)
                return None  # the stack answers it again, with its catch-all
            if answer is None:
                return None
            if answer.status_code != 200:  # an error: the cache layer passes it as it is
                raw = with_security_headers(answer.raw_headers)
                return Prepared(answer.status_code, raw, bytes(answer.body), headers, started)
            hit = completed(answer.raw_headers, bytes(answer.body), scope.get("route"))
            if key is not None and lru is not None:
                # Kept before it is sent: nothing can ask for it in between otherwise.
                lru.keep(key, version, hit.headers, hit.body, hit.etag, hit.route)
        else:
            scope["route"] = hit.route
        if not_modified(hit, if_none_match):
            return Prepared(
                304, with_security_headers(not_modified_headers(hit)), b"", headers, started
            )
        return Prepared(200, with_security_headers(hit.headers), hit.body, headers, started)

    def record(self, scope: Scope, prepared: Prepared, response_size: int) -> None:
        """The request metrics and access line of an answer sent (``response_size`` bytes of
        its body passed on)."""
        self._metrics.record(scope, prepared.status, perf_counter() - prepared.started)
        log_access(
            scope, prepared.request_headers, prepared.status, prepared.started, response_size
        )

    async def _send(self, scope: Scope, send: Send, prepared: Prepared) -> None:
        """Sends the answer under the request's deadline, then its metrics and access line."""
        deadlines = self._parts.deadlines
        task = asyncio.current_task()
        watched = None if task is None else deadlines.watch(task)
        response_size = 0
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": prepared.status,
                    "headers": prepared.headers,
                }
            )
            response_size = len(prepared.body)
            await send({"type": "http.response.body", "body": prepared.body})
        except asyncio.CancelledError as exc:
            # As the deadline layer: a cancellation of its own, none other pending, is the
            # deadline's; the response has started, so it ends the connection as the
            # catch-all leaves it to the server, logged once.
            if watched is None or not watched.expired or watched.settle() > watched.cancelling:
                raise
            try:
                raise TimeoutError from exc
            except TimeoutError:
                internal_error_logger.exception(
                    "unhandled error", extra={"method": scope["method"], "path": scope["path"]}
                )
                raise
        finally:
            if watched is not None:
                deadlines.release(watched)
                if watched.expired:
                    watched.settle()
            self.record(scope, prepared, response_size)


def _inline(answering: Coroutine[Any, Any, Answer | None]) -> Answer | None:
    """The coroutine's result, run to its end at once: ``FastReads.answer`` awaits nothing
    when the store's reads do not block (``aeroflow.api.reads.read``), which ``prepare``
    checks first."""
    try:
        answering.send(None)
    except StopIteration as done:
        result: Answer | None = done.value
        return result
    answering.close()
    raise RuntimeError("a read suspended although the store's reads do not block")
