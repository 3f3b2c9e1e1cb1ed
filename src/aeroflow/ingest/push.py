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
* the push lane (``push_lane.py``, ``push_protocol.py``): under ``aeroflow serve``/``ingest``
  uvicorn runs ``PushHttpProtocol``, which hands a plain push request to the lane that
  ``PushFastPath`` publishes, outside ASGI altogether: the same ``PushEndpoint`` steps, the
  same bytes, recorded by ``PushFastPath.record``. The ASGI paths above answer the rest.
"""

from __future__ import annotations

import logging
import random
import time
from datetime import UTC, datetime
from typing import Final

from fastapi import APIRouter
from opentelemetry import context as otel_context
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client import Counter
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aeroflow.ingest.auth import PushAuthenticator, PushAuthError
from aeroflow.ingest.committer import (
    CommitterOverloadedError,
    GroupCommitter,
    Item,
    OutcomeCallback,
)
from aeroflow.ingest.envelope import EnvelopeError, decode_push
from aeroflow.ingest.push_answers import Headers, Refusal, error_body, error_headers
from aeroflow.ingest.push_lane import PushLane
from aeroflow.observability.logging import log_request
from aeroflow.observability.metrics import HTTP_REQUEST_DURATION, HTTP_REQUESTS
from aeroflow.observability.tracing import extract_http_context, get_tracer, trace_ids_from_headers
from aeroflow.storage.port import StorageUnavailableError

log = logging.getLogger(__name__)

PUSH_PATH: Final = "/pubsub/push"
# The lifespan state key under which PushFastPath publishes its push lane.
PUSH_LANE_STATE: Final = "aeroflow.push_lane"

_NO_CONTENT: Final = 204


class PushEndpoint:
    """``POST /pubsub/push`` as an ASGI app; ``handle`` also returns the status it sent.

    Answers: 204 once the message is durable, a duplicate, or a poison message durably kept;
    400 ``invalid_envelope``; 401 ``unauthenticated`` / 403 ``forbidden``; 413
    ``payload_too_large``; 429 ``overloaded`` (too many messages waiting for the writer); 503
    ``unavailable`` (storage down or shutting down). ``retry_after_seconds`` goes out with
    503s, 1 s with 429s: Pub/Sub ignores it and follows the subscription's retry policy, other
    senders such as PushPublisher honour it.

    The steps (``authenticate``, ``decode``, ``submit_callback``, ``refusal_for``) are public
    for the push lane (``push_lane.py``), which answers the same requests outside ASGI.
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
        self.max_body_bytes = max_body_bytes
        self._too_large = Refusal(
            413, "payload_too_large", f"request body exceeds {max_body_bytes} bytes"
        )
        self._overloaded_headers = ((b"retry-after", b"1"),)
        self._unavailable = Refusal(
            503,
            "unavailable",
            "storage is unavailable; retry later",
            ((b"retry-after", str(retry_after_seconds).encode()),),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.handle(scope, receive, send)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> int:
        authorization: bytes | None = None
        declared: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
            elif name == b"content-length":
                declared = value
        refusal = self.authenticate(authorization)
        if refusal is not None:
            return await _refuse(send, refusal)

        body = await self._read_body(receive, declared)
        if body is None:
            log.warning("push request body over %d bytes refused", self.max_body_bytes)
            return await _refuse(send, self._too_large)
        decoded = self.decode(body)
        if isinstance(decoded, Refusal):
            return await _refuse(send, decoded)
        try:
            await self._committer.submit_async(decoded)
        except StorageUnavailableError as exc:
            return await _refuse(send, self.refusal_for(exc))
        await send({"type": "http.response.start", "status": _NO_CONTENT, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return _NO_CONTENT

    def authenticate(self, authorization: bytes | None) -> Refusal | None:
        """None when the caller may push, else the 401/403 to answer."""
        try:
            self._authenticator.authenticate(
                None if authorization is None else authorization.decode("latin-1")
            )
        except PushAuthError as exc:
            code = "unauthenticated" if exc.status_code == 401 else "forbidden"
            return Refusal(exc.status_code, code, exc.message)
        return None

    def decode(self, body: bytes) -> Item | Refusal:
        """The message to store (poison included), or the 400 of a body that is no envelope."""
        try:
            return decode_push(body, datetime.now(UTC))
        except EnvelopeError as exc:
            log.warning("push request is not an envelope: %s", exc)
            return Refusal(400, "invalid_envelope", str(exc))

    def submit_callback(self, item: Item, callback: OutcomeCallback) -> None:
        """Queue ``item`` for the group commit (see ``GroupCommitter.submit_callback``)."""
        self._committer.submit_callback(item, callback)

    def refusal_for(self, exc: StorageUnavailableError) -> Refusal:
        """429 when the writer is behind, 503 when storage is down or ingest is stopping."""
        if isinstance(exc, CommitterOverloadedError):
            return Refusal(429, "overloaded", str(exc), self._overloaded_headers)
        # Not logged per message: the committer logs each failed batch once.
        return self._unavailable

    async def _read_body(self, receive: Receive, declared: bytes | None) -> bytes | None:
        """The body, or None as soon as it is known to exceed the limit."""
        limit = self.max_body_bytes
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

    ``lane``: the bare PushEndpoint inside ``endpoint`` and the headers ``endpoint``'s wrapping
    adds to every response. With it (and without tracing), ``push_lane`` is set and published
    in the lifespan state (``PUSH_LANE_STATE``), and a server running ``PushHttpProtocol``
    answers plain push requests in the protocol itself, recorded here the same way
    (``push_protocol.py``).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        endpoint: ASGIApp,
        access_log_sample_rate: float = 1.0,
        trace_requests: bool = False,
        lane: tuple[PushEndpoint, Headers] | None = None,
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
        self.push_lane: PushLane | None = None
        if lane is not None and not trace_requests:
            bare, response_headers = lane
            self.push_lane = PushLane(bare, response_headers, self.record)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PUSH_PATH or scope["method"] != "POST":
            if scope["type"] == "lifespan" and self.push_lane is not None and "state" in scope:
                # The lifespan state is what uvicorn hands every connection's protocol
                # (``app_state``): PushHttpProtocol finds the lane there, whatever layers
                # wrap this one.
                scope["state"][PUSH_LANE_STATE] = self.push_lane
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
        self._log(scope, status, latency, response_size)

    def record(self, scope: Scope, status: int, latency: float, response_size: int) -> None:
        """The metrics and (sampled) access log line of a push request answered elsewhere."""
        self._duration.observe(latency)
        self._count(status)
        self._log(scope, status, latency, response_size)

    def _log(self, scope: Scope, status: int, latency: float, response_size: int) -> None:
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


async def _refuse(send: Send, refusal: Refusal) -> int:
    return await _error(send, refusal.status, refusal.code, refusal.message, refusal.headers)


async def _error(
    send: Send, status_code: int, code: str, message: str, headers: Headers = ()
) -> int:
    body = error_body(code, message)
    await send(
        {
            "type": "http.response.start",
            "status": status_code,
            "headers": error_headers(body, headers),
        }
    )
    await send({"type": "http.response.body", "body": body})
    return status_code
