"""The request line's shortcuts produce exactly what the general logging path produces."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry import context as otel_context

from aeroflow.observability import logging as aeroflow_logging
from aeroflow.observability.logging import FIELDS, REQUEST_LOGGER, configure_logging, log_request
from aeroflow.observability.tracing import TraceIds, extract_http_context
from json_log_capture import captured_json_logs, json_lines

_TIMING = ("created", "msecs", "relativeCreated")


def _reference(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="microseconds")[:-6] + "Z"


@given(st.floats(min_value=-1e9, max_value=1e11, allow_nan=False))
def test_timestamps_match_datetime_whatever_the_second(timestamp: float) -> None:
    assert aeroflow_logging._rfc3339(timestamp) == _reference(timestamp)


@pytest.mark.parametrize(
    "fraction", [0.0, 5e-7, 1.5e-6, 0.4999995, 0.9999994, 0.9999995, 0.9999996]
)
def test_timestamps_round_like_datetime_at_the_edges(fraction: float) -> None:
    for second in (1_764_500_000, 1_764_500_001, -2):
        timestamp = second + fraction
        assert aeroflow_logging._rfc3339(timestamp) == _reference(timestamp)


@pytest.fixture
def configured() -> Iterator[None]:
    root = logging.getLogger()
    saved = list(root.handlers), root.level
    configure_logging("INFO", json=True, stream=open("/dev/null", "w"))  # noqa: SIM115
    try:
        yield
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
            handler.close()
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])


def test_the_request_record_is_the_record_make_record_builds(configured: None) -> None:
    assert aeroflow_logging._plain_records()
    args = ("GET", "/v1/flights", 200)
    fields = {"route": "/v1/flights"}
    built = aeroflow_logging._RequestRecord(logging.INFO, args, fields)
    made = logging.getLogger(REQUEST_LOGGER).makeRecord(
        REQUEST_LOGGER,
        logging.INFO,
        aeroflow_logging.__file__,
        0,
        "%s %s %d",
        args,
        None,
        func="log_request",
        extra={FIELDS: fields},
    )
    expected = {k: v for k, v in made.__dict__.items() if k not in _TIMING}
    assert {k: v for k, v in built.__dict__.items() if k not in _TIMING} == expected
    assert built.getMessage() == "GET /v1/flights 200"


def test_a_filter_adding_fields_still_gets_them_into_the_line(configured: None) -> None:
    class Tag(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            record.region = "europe-west1"
            return True

    handler = logging.getLogger().handlers[0]
    formatter = handler.formatter
    assert formatter is not None
    record = aeroflow_logging._RequestRecord(logging.INFO, ("GET", "/", 200), {})
    Tag().filter(record)
    assert '"region":"europe-west1"' in formatter.format(record)


_REQUESTS: list[dict[str, Any]] = [
    {"method": "GET", "route": "/v1/flights", "status": 200, "latency_seconds": 0.0012},
    {
        "method": "GET",
        "route": "/v1/flights/{flight_id}",
        "status": 404,
        "latency_seconds": 0.000031,
        "query_keys": ["b", "a", "b"],
        "user_agent": "wrk" * 100,
        "remote_ip": "203.0.113.9",
        "request_size": 12,
        "response_size": 981,
        "protocol": "HTTP/1.1",
        "api_client": "key-3f2a",
    },
    {
        "method": "POST",
        "route": "/pubsub/push",
        "status": 204,
        "latency_seconds": 0.5,
        "trace_ids": TraceIds("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", True),
    },
]


def _lines(through_records: bool) -> list[dict[str, Any]]:
    factory = logging.getLogRecordFactory()
    with captured_json_logs("INFO", project_id="proj-1") as stream:
        if through_records:
            # A factory of its own and a filter: lines take logging's general path, plain
            # LogRecords formatted by the general formatter.
            logging.setLogRecordFactory(lambda *args, **kwargs: logging.LogRecord(*args, **kwargs))
            logging.getLogger().handlers[0].addFilter(lambda record: True)
        context = extract_http_context({"traceparent": f"00-{'ab' * 16}-{'cd' * 8}-01"})
        try:
            for request in _REQUESTS:
                log_request(**request)
            token = otel_context.attach(context)
            try:
                log_request(**_REQUESTS[0])
            finally:
                otel_context.detach(token)
        finally:
            logging.setLogRecordFactory(factory)
        lines = json_lines(stream)
    for line in lines:  # the same keys in the same order; times differ
        line["time"] = "..." if line["time"] else ""
    return lines


def test_the_direct_line_is_the_line_logging_writes() -> None:
    direct, general = _lines(through_records=False), _lines(through_records=True)
    assert direct == general
    assert [list(line) for line in direct] == [list(line) for line in general]
    assert direct[3]["logging.googleapis.com/trace"] == f"projects/proj-1/traces/{'ab' * 16}"


def test_request_lines_still_reach_other_handlers(caplog: pytest.LogCaptureFixture) -> None:
    with captured_json_logs("INFO") as stream:
        caplog.set_level(logging.INFO, logger=REQUEST_LOGGER)
        logging.getLogger().addHandler(caplog.handler)
        log_request(**_REQUESTS[0])
        assert len(json_lines(stream, REQUEST_LOGGER)) == 1
    assert [record.getMessage() for record in caplog.records] == ["GET /v1/flights 200"]
