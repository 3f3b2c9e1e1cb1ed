"""The access-log middleware on a real uvicorn server: one line per request, no query values."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import httpx
import pytest
from fastapi import FastAPI, HTTPException
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from starlette.types import ASGIApp

from aeroflow.observability.access_log import UNMATCHED_ROUTE, AccessLogMiddleware
from aeroflow.observability.logging import REQUEST_LOGGER, TRACE_KEY
from aeroflow.observability.tracing import configure_tracing, shutdown_tracing
from aeroflow.settings import Settings
from json_log_capture import captured_json_logs, json_lines

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"
Serve = Callable[[ASGIApp], AbstractContextManager[str]]


def build_app(*, trace_requests: bool = True) -> ASGIApp:
    app = FastAPI()

    @app.get("/v1/flights/{flight_id}")
    async def get_flight(flight_id: str) -> dict[str, str]:
        logging.getLogger("aeroflow.api").info("looking up a flight")
        return {"flight_id": flight_id}

    @app.get("/v1/broken")
    async def broken() -> None:
        raise HTTPException(status_code=503, detail="storage down")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return AccessLogMiddleware(app, trace_requests=trace_requests)


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    with captured_json_logs("INFO", project_id="proj-1") as stream:
        yield stream


def test_one_line_per_request_with_template_and_trace(
    serve: Serve, log_stream: io.StringIO
) -> None:
    with serve(build_app()) as base, httpx.Client(base_url=base) as client:
        response = client.get(
            "/v1/flights/UA-1545-EWR-20130101",
            params={"cursor": "SECRET-CURSOR", "fields": "x"},
            headers={"traceparent": f"00-{TRACE_ID}-{SPAN_ID}-01", "user-agent": "pytest"},
        )
        assert response.status_code == 200
        client.get("/healthz")  # quiet path: no line
        assert client.get("/nowhere").status_code == 404
        assert client.get("/v1/broken").status_code == 503

    text = log_stream.getvalue()
    assert "SECRET-CURSOR" not in text
    assert "UA-1545-EWR-20130101" not in text
    ok, missing, broken = json_lines(log_stream, REQUEST_LOGGER)
    assert ok["httpRequest"]["requestUrl"] == "/v1/flights/{flight_id}?cursor&fields"
    assert ok["httpRequest"]["status"] == 200
    assert ok["httpRequest"]["userAgent"] == "pytest"
    assert ok["httpRequest"]["remoteIp"] == "127.0.0.1"
    assert ok["httpRequest"]["latency"].endswith("s")
    assert float(ok["httpRequest"]["latency"][:-1]) > 0
    assert ok[TRACE_KEY] == f"projects/proj-1/traces/{TRACE_ID}"
    # A line logged by the handler carries the same trace: the context was active inside.
    [inner] = json_lines(log_stream, "aeroflow.api")
    assert inner[TRACE_KEY] == ok[TRACE_KEY]
    assert missing["route"] == UNMATCHED_ROUTE
    assert missing["httpRequest"]["status"] == 404
    assert broken["severity"] == "ERROR"
    assert broken["httpRequest"]["status"] == 503


def test_server_spans_continue_the_callers_trace(serve: Serve, log_stream: io.StringIO) -> None:
    exporter = InMemorySpanExporter()
    configure_tracing(
        Settings(tracing_sample_ratio=1.0),
        processor=SimpleSpanProcessor(exporter),
        set_global=False,
    )
    try:
        with serve(build_app()) as base:
            httpx.get(
                f"{base}/v1/flights/X1",
                headers={"x-cloud-trace-context": f"{TRACE_ID}/1;o=1"},
            )
    finally:
        shutdown_tracing()
    [span] = exporter.get_finished_spans()
    assert span.name == "GET /v1/flights/{flight_id}"
    assert span.kind is SpanKind.SERVER
    assert span.context is not None
    assert f"{span.context.trace_id:032x}" == TRACE_ID
    assert span.parent is not None
    assert span.parent.span_id == 1
    assert span.attributes is not None
    assert span.attributes["http.response.status_code"] == 200
    [line] = json_lines(log_stream, REQUEST_LOGGER)
    assert line["logging.googleapis.com/spanId"] == f"{span.context.span_id:016x}"


def test_lines_are_the_same_without_a_server_span(serve: Serve, log_stream: io.StringIO) -> None:
    """With no tracing SDK, skipping the (no-op) span changes nothing in the lines."""
    requests: list[dict[str, str]] = [
        {
            "traceparent": f"00-{TRACE_ID}-{SPAN_ID}-01",
            "user-agent": "a",
            "x-forwarded-for": "10.1.2.3",
        },
        {"x-cloud-trace-context": f"{TRACE_ID}/1;o=1"},
        {"user-agent": "b", "User-Agent": "c"},
        {},
    ]
    lines = []
    for trace_requests in (True, False):
        with (
            serve(build_app(trace_requests=trace_requests)) as base,
            httpx.Client(base_url=base) as client,
        ):
            for headers in requests:
                client.get("/v1/flights/X1?limit=1", headers=headers)
            client.get("/nowhere")
        lines.append(
            json_lines(log_stream, REQUEST_LOGGER) + json_lines(log_stream, "aeroflow.api")
        )
        log_stream.seek(0)
        log_stream.truncate()
    for line in (*lines[0], *lines[1]):
        line.pop("time")
        line.get("httpRequest", {}).pop("latency", None)
    assert lines[0] == lines[1]
    assert lines[1][0][TRACE_KEY] == f"projects/proj-1/traces/{TRACE_ID}"
    assert lines[1][0]["logging.googleapis.com/spanId"] == SPAN_ID
    assert lines[1][0]["httpRequest"]["remoteIp"] == "10.1.2.3"
    assert TRACE_KEY not in lines[1][3]
