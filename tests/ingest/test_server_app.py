"""``build_server_app``: what ``aeroflow serve``/``ingest`` hand to uvicorn.

The push fast path sits outside the whole app here, FastAPI's own layers and the proxy-headers
rewrite included; these tests pin down that nothing a client sees changes because of that.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from ingest_helpers import arrived_event, envelope, table_count

from aeroflow.bootstrap import Role, build_server_app
from aeroflow.ingest.push import PUSH_PATH
from aeroflow.ingest.wire import encode_event
from aeroflow.observability.logging import REQUEST_LOGGER, configure_logging
from aeroflow.settings import Settings
from loopback_server import serve
from published_store import publish_store

CLIENT_IP = "203.0.113.7"


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    stream = io.StringIO()
    configure_logging("INFO", json=True, project_id="proj-1", stream=stream)
    yield stream
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved_handlers:
        root.addHandler(handler)
    root.setLevel(saved_level)


def request_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    parsed = [orjson.loads(line) for line in stream.getvalue().splitlines() if line]
    return [entry for entry in parsed if entry["logger"] == REQUEST_LOGGER]


def test_push_and_reads_answer_as_through_the_app(tmp_path: Path, log_stream: io.StringIO) -> None:
    db_path = tmp_path / "aeroflow.duckdb"
    settings = Settings(duckdb_path=db_path, push_access_log_sample_rate=1.0)
    forwarded = {"x-forwarded-for": f"{CLIENT_IP}, 10.0.0.1"}
    with (
        serve(build_server_app(settings, Role.SERVE)) as base_url,
        httpx.Client(base_url=base_url, headers=forwarded) as client,
    ):
        stored = client.post(PUSH_PATH, content=envelope(encode_event(arrived_event())))
        not_envelope = client.post(PUSH_PATH, content=b"[]")
        wrong_method = client.get(PUSH_PATH)
        flight = client.get("/v1/flights/UA1545-EWR-20130101")

    assert stored.status_code == 204
    assert not_envelope.status_code == 400
    assert not_envelope.json()["error"]["code"] == "invalid_envelope"
    assert wrong_method.status_code == 405  # the app's router, in the app's error shape
    assert wrong_method.json()["error"]["code"] == "method_not_allowed"
    assert flight.status_code == 200
    assert flight.json()["flight_id"] == "UA1545-EWR-20130101"
    for response in (stored, not_envelope, wrong_method, flight):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"
    assert table_count(db_path, "flight_events") == 1
    # The proxy-headers layer still applies to the app's routes, and the fast path reads the
    # same client address for its own lines.
    lines = request_lines(log_stream)
    assert {line["httpRequest"]["remoteIp"] for line in lines} == {CLIENT_IP}
    assert sorted(line["httpRequest"]["status"] for line in lines) == [200, 204, 400, 405]


def test_api_role_has_no_push_endpoint(tmp_path: Path) -> None:
    settings = Settings(duckdb_path=publish_store(tmp_path / "aeroflow.duckdb"))
    with (
        serve(build_server_app(settings, Role.API)) as base_url,
        httpx.Client(base_url=base_url) as client,
    ):
        pushed = client.post(PUSH_PATH, content=envelope(encode_event(arrived_event())))
        health = client.get("/healthz")

    assert pushed.status_code == 404
    assert health.status_code == 200
