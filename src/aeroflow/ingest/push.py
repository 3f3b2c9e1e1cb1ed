"""``POST /pubsub/push``: the endpoint a Pub/Sub push subscription delivers to.

Status codes are what Pub/Sub acts on: any 2xx acks the message (sent only after its write is
durable, or for a poison message once it is durably kept in ``rejected_messages``); 429 and 5xx
make Pub/Sub back off and redeliver; other 4xx are also redelivered but point at a sender that
does not speak the push protocol, so they are logged here loudly.

The endpoint runs once per message, thousands of times per second, so it is a plain ASGI app
(``PushEndpoint``): no Request object, no body model, no dependency solving, and its waiters are
settled by the group committer in one event-loop callback per batch. It is served two ways:

* ``create_push_router``: as a route of the FastAPI app, behind the app's whole middleware
  stack (metrics, access log, security headers, ...). Not in the OpenAPI document: its
  contract is Google's push format, above.
* ``PushFastPath``: ahead of that stack, for ``aeroflow serve``/``ingest``. The stack's layers
  cost more CPU than the endpoint itself (about a third of a push request's server time was
  middleware). The fast path does what those layers do for this route, cheaply: the HTTP
  metrics under the same route label, the access log line (always for errors; for 2xx a
  sample, see ``access_log_sample_rate``), and, when tracing is on, the server span. The
  composition root wraps the endpoint in the API's header middleware, so responses carry the
  same headers either way.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Final

import orjson
from fastapi import APIRouter
from opentelemetry import context as otel_context
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client import Counter
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aeroflow.ingest.auth import PushAuthenticator, PushAuthError
from aeroflow.ingest.committer import CommitterOverloadedError, GroupCommitter
from aeroflow.ingest.envelope import EnvelopeError, decode_push
from aeroflow.observability.logging import log_request
from aeroflow.observability.metrics import HTTP_REQUEST_DURATION, HTTP_REQUESTS
from aeroflow.observability.tracing import extract_http_context, get_tracer, trace_ids_from_headers
from aeroflow.storage.port import StorageUnavailableError

log = logging.getLogger(__name__)

PUSH_PATH: Final = "/pubsub/push"

_NO_CONTENT: Final = 204
_JSON: Final = (b"content-type", b"application/json")
Headers = Sequence[tuple[bytes, bytes]]


class PushEndpoint:
    """``POST /pubsub/push`` as an ASGI app; ``handle`` also returns the status it sent.

    Answers: 204 once the message is durable, a duplicate, or a poison message durably kept;
    400 ``invalid_envelope``; 401 ``unauthenticated`` / 403 ``forbidden``; 413
    ``payload_too_large``; 429 ``overloaded`` (too many messages waiting for the writer); 503
    ``unavailable`` (storage down or shutting down). ``retry_after_seconds`` goes out with
    503s, 1 s with 429s: Pub/Sub ignores it and follows the subscription's retry policy, other
    senders such as PushPublisher honour it.
    """

    def __init__(
        self,
        committer: GroupCommitter,
        authenticator: PushAuthenticator,
        *,
        max_body_bytes: int,
        retry_after_seconds: int = 5,
    ) -> None:
        self._committer = committer
        self._authenticator = authenticator
        self._max_body = max_body_bytes
        self._retry_unavailable = ((b"retry-after", str(retry_after_seconds).encode()),)
        self._retry_overloaded = ((b"retry-after", b"1"),)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.handle(scope, receive, send)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> int:
        authorization: str | None = None
        declared: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"content-length":
                declared = value
        try:
            self._authenticator.authenticate(authorization)
        except PushAuthError as exc:
            code = "unauthenticated" if exc.status_code == 401 else "forbidden"
            return await _error(send, exc.status_code, code, exc.message)

        body = await self._read_body(receive, declared)
        if body is None:
            log.warning("push request body over %d bytes refused", self._max_body)
            message = f"request body exceeds {self._max_body} bytes"
            return await _error(send, 413, "payload_too_large", message)
        try:
            item = decode_push(body, datetime.now(UTC))
        except EnvelopeError as exc:
            log.warning("push request is not an envelope: %s", exc)
            return await _error(send, 400, "invalid_envelope", str(exc))

        try:
            await self._committer.submit_async(item)
        except CommitterOverloadedError as exc:
            return await _error(send, 429, "overloaded", str(exc), self._retry_overloaded)
        except StorageUnavailableError:
            # Not logged per message: the committer logs each failed batch once.
            message = "storage is unavailable; retry later"
            return await _error(send, 503, "unavailable", message, self._retry_unavailable)
        await send({"type": "http.response.start", "status": _NO_CONTENT, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return _NO_CONTENT

    async def _read_body(self, receive: Receive, declared: bytes | None) -> bytes | None:
        """The body, or None as soon as it is known to exceed the limit."""
        limit = self._max_body
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return None
        message = await receive()
        body: bytes = message.get("body", b"")
        if not message.get("more_body", False):  # the usual case: one chunk
            return body if len(body) <= limit else None
        chunks = [body]
        size = len(body)
        while message.get("more_body", False):
            message = await receive()
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
        return b"".join(chunks)


def create_push_router(
    committer: GroupCommitter,
    authenticator: PushAuthenticator,
    *,
    max_body_bytes: int,
    retry_after_seconds: int = 5,
) -> APIRouter:
    """Serve ``POST /pubsub/push`` (see ``PushEndpoint``) as a route of a FastAPI app."""
    endpoint = PushEndpoint(
        committer,
        authenticator,
        max_body_bytes=max_body_bytes,
        retry_after_seconds=retry_after_seconds,
    )
    return push_router(endpoint)


def push_router(endpoint: ASGIApp) -> APIRouter:
    """A router with ``endpoint`` at ``POST /pubsub/push``; other methods get the app's 405."""
    router = APIRouter(tags=["ingest"])
    # An ASGI app as the endpoint (not a function): Starlette passes the request through as is.
    router.routes.append(Route(PUSH_PATH, endpoint, methods=["POST"], name="pubsub_push"))
    return router


class PushFastPath:
    """Serve ``POST /pubsub/push`` ahead of ``app``'s middleware; everything else goes to ``app``.

    ``endpoint`` is the push endpoint, usually wrapped in the header middleware the app's other
    responses get. Records the request like the app's metrics middleware (same series, route
    label ``/pubsub/push``) and access log: every error, and a ``access_log_sample_rate`` share
    of the 2xx (0 = none, 1 = all; Cloud Run's own request log has every request anyway).
    ``trace_requests``: open a server span per push request, as the access log middleware does
    for other routes (only worth it when a tracing exporter is configured).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        endpoint: ASGIApp,
        access_log_sample_rate: float = 1.0,
        trace_requests: bool = False,
    ) -> None:
        if not 0.0 <= access_log_sample_rate <= 1.0:
            raise ValueError("access_log_sample_rate must be within 0..1")
        self._app = app
        self._endpoint = endpoint
        self._sample_rate = access_log_sample_rate
        self._trace = trace_requests
        self._duration = HTTP_REQUEST_DURATION.labels(PUSH_PATH, "POST")
        # Series by status class, created on first use as the metrics middleware does.
        self._requests: dict[int, Counter] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PUSH_PATH or scope["method"] != "POST":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        response_size = 0

        async def send_and_note(message: Message) -> None:
            nonlocal status, response_size
            if message["type"] == "http.response.start":
                status = message["status"]
            else:
                response_size += len(message.get("body", b""))
            await send(message)

        try:
            if self._trace:
                await self._traced(scope, receive, send_and_note)
            else:
                await self._endpoint(scope, receive, send_and_note)
        except Exception:
            # What the app's catch-all middleware would do: a logged 500 with the error body.
            log.exception("unhandled error", extra={"method": "POST", "path": PUSH_PATH})
            if status == 500 and response_size == 0:
                await _error(send, 500, "internal", "internal server error")
        finally:
            latency = time.perf_counter() - started
            self._duration.observe(latency)
            self._count(status)
        if status >= 400 or (self._sample_rate and random.random() < self._sample_rate):  # noqa: S311
            _log_push(scope, status, latency, response_size)

    def _count(self, status: int) -> None:
        status_class = status // 100
        counter = self._requests.get(status_class)
        if counter is None:
            label = f"{status_class}xx" if 1 <= status_class <= 5 else "5xx"
            counter = self._requests[status_class] = HTTP_REQUESTS.labels(PUSH_PATH, "POST", label)
        counter.inc()

    async def _traced(self, scope: Scope, receive: Receive, send: Send) -> None:
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        headers = _text_headers(scope)
        token = otel_context.attach(extract_http_context(headers))
        try:
            with get_tracer().start_as_current_span(
                f"POST {PUSH_PATH}",
                kind=SpanKind.SERVER,
                record_exception=True,
                set_status_on_exception=True,
            ) as span:
                await self._endpoint(scope, receive, send_and_note)
                span.set_attributes(
                    {
                        "http.request.method": "POST",
                        "http.route": PUSH_PATH,
                        "http.response.status_code": status,
                    }
                )
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))
        finally:
            otel_context.detach(token)


def _text_headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def _log_push(scope: Scope, status: int, latency: float, response_size: int) -> None:
    headers = _text_headers(scope)
    client = scope.get("client")
    forwarded = headers.get("x-forwarded-for")
    length = headers.get("content-length")
    log_request(
        method="POST",
        route=PUSH_PATH,
        status=status,
        latency_seconds=latency,
        user_agent=headers.get("user-agent"),
        remote_ip=forwarded.split(",", 1)[0].strip() if forwarded else client and str(client[0]),
        request_size=int(length) if length is not None and length.isdigit() else None,
        response_size=response_size,
        protocol=f"HTTP/{scope.get('http_version', '1.1')}",
        trace_ids=trace_ids_from_headers(headers),
    )


async def _error(
    send: Send,
    status_code: int,
    code: str,
    message: str,
    headers: Headers = (),
    details: Collection[object] = (),
) -> int:
    """The service-wide error shape: ``{"error": {"code", "message", "details"}}``."""
    body = orjson.dumps({"error": {"code": code, "message": message, "details": list(details)}})
    await send(
        {
            "type": "http.response.start",
            "status": status_code,
            "headers": [_JSON, (b"content-length", str(len(body)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})
    return status_code
