"""Pure ASGI middleware: one server span and one access-log line per HTTP request.

Pure ASGI (not Starlette's ``BaseHTTPMiddleware``) so streaming responses pass through
untouched and the cost per request stays a few microseconds. It reads the route template that
the router leaves in ``scope["route"]`` after matching, so logs and spans are labelled like
the metrics: by template, never by raw path. Metrics are not recorded here (the API's own
middleware does that).
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aeroflow.observability.logging import log_request
from aeroflow.observability.tracing import (
    CLOUD_TRACE_HEADER,
    TRACEPARENT,
    TRACESTATE,
    extract_http_context,
    get_tracer,
)

UNMATCHED_ROUTE = "unmatched"
# Probes and scrapes arrive every few seconds: their lines are noise unless they fail.
DEFAULT_QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
# Key in scope["state"] where the API's access control leaves who called: an API key's
# fingerprint, "anonymous" or "unknown_key" (never a key).
API_CLIENT_STATE = "aeroflow.api_client"


def route_template(scope: Scope) -> str:
    """The matched route's path template, or ``unmatched`` (404s, before routing).

    Spelled as the API's metrics middleware spells its ``route`` label, so a log line and a
    metric series of the same request share the value.
    """
    route = scope.get("route")
    path = getattr(route, "path", None)
    if not isinstance(path, str):
        return UNMATCHED_ROUTE
    if isinstance(route, Mount):
        return f"{path}/{{path}}"
    return path


def _client_ip(headers: dict[str, str], scope: Scope) -> str | None:
    # Cloud Run's front end puts the caller first in X-Forwarded-For.
    forwarded = headers.get("x-forwarded-for")
    if forwarded:
        return forwarded.split(",", 1)[0].strip() or None
    client = scope.get("client")
    if client:
        return str(client[0])
    return None


def _query_keys(query_string: bytes) -> list[str]:
    keys: list[str] = []
    for part in query_string.split(b"&"):
        if part:
            keys.append(part.split(b"=", 1)[0].decode("latin-1")[:64])
    return keys


# The only request headers the line and the trace context are made of: decoding just these
# (the last of repeated ones wins, as in a dict of all headers) keeps the cost per request flat.
_READ_HEADERS = frozenset(
    {
        b"user-agent",
        b"x-forwarded-for",
        b"content-length",
        TRACEPARENT.encode(),
        TRACESTATE.encode(),
        CLOUD_TRACE_HEADER.encode(),
    }
)


_PROTOCOLS = {version: f"HTTP/{version}" for version in ("1.0", "1.1", "2")}


def _protocol(scope: Scope) -> str:
    version = scope.get("http_version", "1.1")
    return _PROTOCOLS.get(version) or f"HTTP/{version}"


def read_headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """The request headers the access line and the trace context are made of, by name."""
    headers: dict[str, str] = {}
    for name, value in raw:
        lowered = name.lower()
        if lowered in _READ_HEADERS:
            headers[lowered.decode("latin-1")] = value.decode("latin-1")
    return headers


class AccessLogMiddleware:
    """Wrap the whole app: ``app = AccessLogMiddleware(app)`` (outermost, so it times it all).

    ``trace_requests=False`` (no tracing SDK installed, ``tracing_exporter="none"``) starts no
    server span: with the API's no-op tracer a span records nothing, and the caller's trace
    context, when a request carries one, is still made current so log lines name its trace.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        quiet_paths: Collection[str] = DEFAULT_QUIET_PATHS,
        trace_requests: bool = True,
    ) -> None:
        self._app = app
        self._quiet_paths = frozenset(quiet_paths)
        self._trace_requests = trace_requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = read_headers(scope["headers"])
        method: str = scope["method"]
        status = 500
        response_size = 0

        async def send_wrapper(message: Message) -> None:
            nonlocal status, response_size
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body":
                response_size += len(message.get("body", b""))
            await send(message)

        def log() -> None:
            if status >= 400 or scope.get("path") not in self._quiet_paths:
                log_access(scope, headers, status, started, response_size)

        if not self._trace_requests:
            if TRACEPARENT not in headers and CLOUD_TRACE_HEADER not in headers:
                try:
                    await self._app(scope, receive, send_wrapper)
                finally:
                    log()
                return
            token = otel_context.attach(extract_http_context(headers))
            try:
                await self._app(scope, receive, send_wrapper)
            finally:
                try:
                    log()
                finally:
                    otel_context.detach(token)
            return

        token = otel_context.attach(extract_http_context(headers))
        try:
            with get_tracer().start_as_current_span(
                method, kind=SpanKind.SERVER, record_exception=True, set_status_on_exception=True
            ) as span:
                try:
                    await self._app(scope, receive, send_wrapper)
                finally:
                    if span.is_recording():
                        route = route_template(scope)
                        span.update_name(f"{method} {route}")
                        attributes: dict[str, Any] = {
                            "http.request.method": method,
                            "http.route": route,
                            "http.response.status_code": status,
                        }
                        span.set_attributes(attributes)
                        if status >= 500:
                            span.set_status(Status(StatusCode.ERROR))
                    log()
        finally:
            otel_context.detach(token)


def log_access(
    scope: Scope, headers: dict[str, str], status: int, started: float, response_size: int
) -> None:
    """The request's access line; ``headers`` as :func:`read_headers` reads them, ``started``
    the request's ``time.perf_counter()``."""
    log_request(
        method=scope["method"],
        route=route_template(scope),
        status=status,
        latency_seconds=time.perf_counter() - started,
        query_keys=_query_keys(scope.get("query_string", b"")),
        user_agent=headers.get("user-agent"),
        remote_ip=_client_ip(headers, scope),
        request_size=_int_or_none(headers.get("content-length")),
        response_size=response_size,
        protocol=_protocol(scope),
        api_client=_api_client(scope),
    )


def _api_client(scope: Scope) -> str | None:
    state = scope.get("state")
    client = state.get(API_CLIENT_STATE) if isinstance(state, dict) else None
    return client if isinstance(client, str) else None


def _int_or_none(value: str | None) -> int | None:
    if value is None or not value.isdigit():
        return None
    return int(value)
