"""Request count and latency per route template, method and status class.

Labels come from the matched route's template (``/v1/flights/{flight_id}``), never from the raw
path, and methods outside the standard set collapse to ``OTHER``: no client can create new
label sets, so the series count stays bounded whatever traffic arrives.
"""

from __future__ import annotations

from time import perf_counter

from prometheus_client import Counter, Histogram
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aeroflow.observability.metrics import HTTP_REQUEST_DURATION, HTTP_REQUESTS

UNMATCHED = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def route_label(scope: Scope) -> str:
    route = scope.get("route")
    if route is None:
        return UNMATCHED
    path = getattr(route, "path", None)
    if not isinstance(path, str):
        return UNMATCHED
    if isinstance(route, Mount):
        return f"{path}/{{path}}"
    return path


class RequestMetrics:
    """The request count and latency series, their children kept by label values: labels()
    takes a lock and hashes its arguments on every call. Bounded like the label sets (routes x
    methods x classes)."""

    def __init__(self) -> None:
        self._requests: dict[tuple[str, str, int], Counter] = {}
        self._durations: dict[tuple[str, str], Histogram] = {}

    def record(self, scope: Scope, status: int, seconds: float) -> None:
        route = route_label(scope)
        method = scope["method"] if scope["method"] in _METHODS else "OTHER"
        status_class = status // 100
        counter = self._requests.get((route, method, status_class))
        if counter is None:
            counter = HTTP_REQUESTS.labels(route, method, f"{status_class}xx")
            self._requests[(route, method, status_class)] = counter
        counter.inc()
        duration = self._durations.get((route, method))
        if duration is None:
            duration = self._durations[(route, method)] = HTTP_REQUEST_DURATION.labels(
                route, method
            )
        duration.observe(seconds)


class MetricsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._metrics = RequestMetrics()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = perf_counter()
        status = 500  # what the client sees if the app fails before starting a response

        async def send_and_record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record_status)
        finally:
            # The router fills scope["route"] in place while handling the request.
            self._metrics.record(scope, status, perf_counter() - started)
