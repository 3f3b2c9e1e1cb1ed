"""The read lane answers plain flight reads exactly as the layers it skips would.

Differential: two servers as ``aeroflow serve`` builds them (``build_server_app``), each on
its own copy of one seeded DuckDB file under a real uvicorn on 127.0.0.1, one with the lane
(answering in the app, or in the servers' protocol as ``aeroflow serve`` runs it) and one
without. Every request goes to both, in the same order, and must get the same status,
headers (in order) and body, write the same access line (but for its time and latency) and
move the same request metrics. The requests cover what the lane answers (pages, lookups,
cache hits, ETag revalidation, 404s) and what it must leave to the stack (non-canonical
queries, trace context, oversized headers or query strings, an empty X-Forwarded-For, other
routes).
"""

from __future__ import annotations

import io
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from starlette.types import Receive, Scope, Send

from aeroflow.api.app import create_app
from aeroflow.api.middleware.lane import ReadLane
from aeroflow.bootstrap import Role, build_server_app
from aeroflow.cli import ServerHttpProtocol
from aeroflow.observability.logging import REQUEST_LOGGER
from aeroflow.settings import Settings
from aeroflow.storage.duckdb import DuckDBFlightStore
from aeroflow.storage.port import Flight
from json_log_capture import captured_json_logs, json_lines
from loopback_server import serve
from store_wrapper import DelegatingStore

from ..flightdata import Dataset

_REQUEST_SERIES = ("aeroflow_http_requests_total", "aeroflow_http_request_duration_seconds_count")
_TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture(scope="module")
def seeded_file(tmp_path_factory: pytest.TempPathFactory, dataset: Dataset) -> Path:
    path = tmp_path_factory.mktemp("lane") / "seed.duckdb"
    store = DuckDBFlightStore(path)
    for batch in dataset.batches:
        store.write_batch(batch)
    store.close()
    return path


def _settings(path: Path, cache_mib: int) -> Settings:
    return Settings(
        environment="test",
        cursor_secret="lane-test-secret",  # pragma: allowlist secret
        duckdb_path=path,
        response_cache_mib=cache_mib,
    )


@pytest.fixture(
    params=[(64, "httptools"), (0, "httptools"), (64, ServerHttpProtocol), (0, ServerHttpProtocol)],
    ids=["cache-asgi", "no-cache-asgi", "cache-protocol", "no-cache-protocol"],
)
def servers(
    request: pytest.FixtureRequest, seeded_file: Path, tmp_path: Path
) -> Iterator[tuple[httpx.Client, httpx.Client, io.StringIO]]:
    """The lane answering in the app (uvicorn's protocol) or in the servers' protocol; the
    stack under uvicorn's protocol."""
    cache_mib, protocol = request.param
    paths = [tmp_path / "lane.duckdb", tmp_path / "stack.duckdb"]
    for path in paths:
        shutil.copyfile(seeded_file, path)
    with captured_json_logs("INFO") as stream:
        lane_app = build_server_app(_settings(paths[0], cache_mib), Role.SERVE)
        stack_app = build_server_app(_settings(paths[1], cache_mib), Role.SERVE, read_lane=False)
        with (
            serve(lane_app, http=protocol) as lane_url,
            serve(stack_app) as stack_url,
            httpx.Client(base_url=lane_url) as lane,
            httpx.Client(base_url=stack_url) as stack,
        ):
            yield lane, stack, stream


def _counts() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    counts = {}
    for family in REGISTRY.collect():
        for sample in family.samples:
            if sample.name in _REQUEST_SERIES:
                counts[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return counts


def _moved(before: dict[Any, float], after: dict[Any, float]) -> dict[Any, float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)}


def _access_lines(stream: io.StringIO, skip: int) -> list[dict[str, Any]]:
    lines = json_lines(stream)[skip:]
    for line in lines:
        line.pop("time")
        if line["logger"] == REQUEST_LOGGER:
            line["httpRequest"].pop("latency")
    return lines


def _same(
    servers: tuple[httpx.Client, httpx.Client, io.StringIO],
    url: str,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    lane, stack, stream = servers
    answers, lines, moves = [], [], []
    for client in (lane, stack):
        before, seen = _counts(), len(json_lines(stream))
        answers.append(client.get(url, headers=headers))
        _wait_for_access_line(stream, seen)
        moves.append(_moved(before, _counts()))
        lines.append(_access_lines(stream, seen))
    ours, theirs = answers
    assert ours.status_code == theirs.status_code, (url, ours.text, theirs.text)
    assert _headers(ours) == _headers(theirs), url
    assert ours.content == theirs.content, url
    assert lines[0] == lines[1], url
    assert moves[0] == moves[1], url
    return ours


def _wait_for_access_line(stream: io.StringIO, seen: int) -> None:
    """The server writes a request's line (after its metrics) once the answer is sent."""
    deadline = time.monotonic() + 10
    while not any(line["logger"] == REQUEST_LOGGER for line in json_lines(stream)[seen:]):
        assert time.monotonic() < deadline, "no access line"
        time.sleep(0.001)


def _headers(response: httpx.Response) -> list[tuple[str, str]]:
    return [(k, v) for k, v in response.headers.multi_items() if k != "date"]


_PAGES = [
    "/v1/flights",
    "/v1/flights?carrier=UA&limit=5",
    "/v1/flights?carrier=UA&limit=2&sort=desc",
    "/v1/flights?origin=EWR&departure_from=2013-01-01T06%3A00%3A00Z&departure_to=2013-01-08"
    "&limit=3",
    "/v1/flights?status=arrived&min_dep_delay=-15&limit=4",
    # Left to the route: non-canonical, unknown or repeated parameters, an empty range.
    "/v1/flights?limit=07",
    "/v1/flights?carrier=ua",
    "/v1/flights?carier=UA",
    "/v1/flights?carrier=UA&carrier=AA",
    "/v1/flights?departure_from=2013-01-02&departure_to=2013-01-01",
    "/v1/flights/",
    "/v1/flights/not-an-id",
    "/v1/flights/UA9999-EWR-20130101",
    "/v1/stats/delays?group_by=carrier",
]


def test_every_request_gets_the_stacks_answer_line_and_metrics(
    servers: tuple[httpx.Client, httpx.Client, io.StringIO],
) -> None:
    lane = servers[0]
    known = lane.get("/v1/flights?limit=1").json()["data"][0]["flight_id"]
    for _ in range(2):  # the second round finds the cache's entries
        for url in [*_PAGES, f"/v1/flights/{known}", f"/v1/flights/{known}?x=1"]:
            page = _same(servers, url)
            etag = page.headers.get("etag")
            for accept in ("text/csv", "image/png", "application/json, text/csv;q=0.5"):
                _same(servers, url, {"Accept": accept})
            if etag is not None:
                for tag in (etag, f"W/{etag}", f'"nope", {etag}', "*", '"nope"'):
                    _same(servers, url, {"If-None-Match": tag})
            link = page.headers.get("link")
            if link is not None:
                _same(servers, link[1 : link.index(">")])


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Forwarded-For": "203.0.113.9, 10.0.0.1", "User-Agent": "lane-test/1"},
        {"X-Forwarded-For": ""},
        {"traceparent": _TRACEPARENT},
        {"X-Cloud-Trace-Context": "4bf92f3577b34da6a3ce929d0e0e4736/1;o=1"},
        {"Content-Length": "0"},
        {"X-Padding": "x" * 40_000},
    ],
)
def test_headers_the_layers_read_are_read_alike(
    servers: tuple[httpx.Client, httpx.Client, io.StringIO], headers: dict[str, str]
) -> None:
    _same(servers, "/v1/flights?carrier=AA&limit=2", headers)


def test_an_overlong_query_string_is_the_stacks_to_refuse(
    servers: tuple[httpx.Client, httpx.Client, io.StringIO],
) -> None:
    _same(servers, "/v1/flights?carrier=UA&limit=5&" + "x" * 5000)


def test_plain_reads_never_reach_the_app(tmp_path: Path, seeded_file: Path) -> None:
    """In front of an app that fails every request: plain reads are answered, others not."""
    path = tmp_path / "alone.duckdb"
    shutil.copyfile(seeded_file, path)

    async def no_app(scope: Scope, receive: Receive, send: Send) -> None:
        raise LookupError(f"reached the app: {scope['path']}")

    store = DuckDBFlightStore(path)
    try:
        parts = create_app(_settings(path, 64), store).state.read_lane
        client = TestClient(ReadLane(no_app, parts=parts, trace_requests=False))
        page = client.get("/v1/flights?carrier=UA&limit=2")
        assert page.status_code == 200
        assert client.get("/v1/flights?carrier=UA&limit=2").content == page.content  # cached
        revalidated = client.get("/v1/flights?carrier=UA&limit=2", headers={"If-None-Match": "*"})
        assert revalidated.status_code == 304
        assert client.get("/v1/flights/UA9999-EWR-20130101").status_code == 404
        for refused in ("/v1/flights?limit=0", "/v1/stats/delays?group_by=carrier"):
            with pytest.raises(LookupError, match="reached the app"):
                client.get(refused)
        with pytest.raises(LookupError, match="reached the app"):
            client.get("/v1/flights", headers={"traceparent": _TRACEPARENT})
        tracing = TestClient(ReadLane(no_app, parts=parts, trace_requests=True))
        with pytest.raises(LookupError, match="reached the app"):
            tracing.get("/v1/flights?carrier=UA&limit=2")
    finally:
        store.close()


class _FailingLookups(DelegatingStore):
    """Answers from memory (as the read model does) but every lookup fails unexpectedly."""

    lookups = 0

    @property
    def reads_block(self) -> bool:
        return False

    def get_flight(self, flight_id: str) -> Flight | None:
        self.lookups += 1
        raise RuntimeError("a bug in the store")


def test_a_failing_read_is_answered_by_the_stack(tmp_path: Path, seeded_file: Path) -> None:
    """The lane gives up on the request; the stack reads again and answers its standard 500."""
    path = tmp_path / "failing.duckdb"
    shutil.copyfile(seeded_file, path)
    inner = DuckDBFlightStore(path)
    try:
        store = _FailingLookups(inner)
        app = create_app(_settings(path, 64), store)
        lane = ReadLane(app, parts=app.state.read_lane, trace_requests=False)
        with TestClient(lane) as client:
            answer = client.get("/v1/flights/UA1545-EWR-20130101")
        assert answer.status_code == 500
        assert answer.json()["error"]["code"] == "internal"
        assert store.lookups == 2  # the lane's read, then the stack's
    finally:
        inner.close()
