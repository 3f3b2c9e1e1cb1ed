"""The request line's shortcuts produce exactly what the general logging path produces."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aeroflow.observability import logging as aeroflow_logging
from aeroflow.observability.logging import FIELDS, REQUEST_LOGGER, configure_logging

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
