from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator

import orjson
import pytest
from opentelemetry import context as otel_context

from aeroflow.observability.logging import (
    BATCH_LOGGER,
    SPAN_KEY,
    TRACE_KEY,
    configure_logging,
    log_batch,
    log_request,
    request_url,
)
from aeroflow.observability.tracing import TraceIds, extract_http_context
from json_log_capture import captured_json_logs, json_lines

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    with captured_json_logs("INFO", project_id="proj-1") as stream:
        yield stream


def test_a_record_is_one_json_line_in_cloud_logging_shape(log_stream: io.StringIO) -> None:
    logging.getLogger("aeroflow.test").warning("disk %s", "slow", extra={"attempt": 2})

    [entry] = json_lines(log_stream)
    assert entry["severity"] == "WARNING"
    assert entry["message"] == "disk slow"
    assert entry["attempt"] == 2
    assert entry["logger"] == "aeroflow.test"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", entry["time"])
    assert entry["logging.googleapis.com/sourceLocation"]["function"].startswith("test_a_record")
    assert TRACE_KEY not in entry  # no active trace, no trace key


def test_exceptions_land_in_stack_trace(log_stream: io.StringIO) -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("aeroflow.test").exception("failed")
    [entry] = json_lines(log_stream)
    assert entry["severity"] == "ERROR"
    assert "ValueError: boom" in entry["stack_trace"]


def test_the_active_trace_context_is_attached(log_stream: io.StringIO) -> None:
    ctx = extract_http_context({"traceparent": f"00-{TRACE_ID}-{SPAN_ID}-01"})
    token = otel_context.attach(ctx)
    try:
        logging.getLogger("aeroflow.test").info("inside")
    finally:
        otel_context.detach(token)
    [entry] = json_lines(log_stream)
    assert entry[TRACE_KEY] == f"projects/proj-1/traces/{TRACE_ID}"
    assert entry[SPAN_KEY] == SPAN_ID
    assert entry["logging.googleapis.com/trace_sampled"] is True


def test_request_line_has_http_request_without_query_values(log_stream: io.StringIO) -> None:
    log_request(
        method="GET",
        route="/v1/flights/{flight_id}",
        status=200,
        latency_seconds=0.0123456,
        query_keys=["limit", "cursor", "limit"],
        user_agent="curl/8",
        remote_ip="203.0.113.9",
        response_size=512,
        trace_ids=TraceIds(TRACE_ID, SPAN_ID, sampled=False),
    )
    [entry] = json_lines(log_stream)
    assert entry["severity"] == "INFO"
    assert entry["httpRequest"] == {
        "requestMethod": "GET",
        "requestUrl": "/v1/flights/{flight_id}?cursor&limit",
        "status": 200,
        "latency": "0.012346s",
        "userAgent": "curl/8",
        "remoteIp": "203.0.113.9",
        "responseSize": "512",
    }
    assert entry[TRACE_KEY] == f"projects/proj-1/traces/{TRACE_ID}"
    assert entry["logging.googleapis.com/trace_sampled"] is False


def test_server_errors_log_at_error(log_stream: io.StringIO) -> None:
    log_request(method="GET", route="/v1/flights", status=503, latency_seconds=0.5)
    [entry] = json_lines(log_stream)
    assert entry["severity"] == "ERROR"


def test_batch_lines_carry_counts_and_never_payloads(log_stream: io.StringIO) -> None:
    log_batch(source="push", messages=10, stored=7, duplicate=2, rejected=1, duration_seconds=0.004)
    log_batch(
        source="pull",
        messages=3,
        stored=0,
        duplicate=0,
        rejected=0,
        duration_seconds=1.5,
        error=OSError("database is locked"),
    )
    ok, failed = json_lines(log_stream)
    assert ok["logger"] == BATCH_LOGGER
    assert ok["severity"] == "INFO"
    assert ok["batch"] == {
        "source": "push",
        "messages": 10,
        "stored": 7,
        "duplicate": 2,
        "rejected": 1,
        "duration_seconds": 0.004,
    }
    assert failed["severity"] == "ERROR"
    assert failed["error"] == {"type": "OSError", "message": "database is locked"}


def test_console_format_is_plain_text() -> None:
    root = logging.getLogger()
    saved = list(root.handlers)
    stream = io.StringIO()
    try:
        configure_logging("DEBUG", json=False, stream=stream)
        log_request(method="GET", route="/v1/flights", status=200, latency_seconds=0.001)
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved:
            root.addHandler(handler)
    text = stream.getvalue()
    assert "GET /v1/flights 200" in text
    assert "requestUrl=/v1/flights" in text
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(text)


def test_configure_logging_twice_keeps_one_handler(log_stream: io.StringIO) -> None:
    configure_logging("INFO", json=True, project_id="proj-1", stream=log_stream)
    logging.getLogger("aeroflow.test").info("once")
    assert len(json_lines(log_stream)) == 1
    assert logging.getLogger("uvicorn.access").disabled


def test_request_url_is_the_template_plus_sorted_names() -> None:
    assert request_url("/v1/flights") == "/v1/flights"
    assert request_url("/v1/flights", ["b", "a", "", "a"]) == "/v1/flights?a&b"
