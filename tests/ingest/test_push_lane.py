"""The push lane (PushHttpProtocol) against uvicorn's own protocol, on real servers.

Every test sends the same raw HTTP/1.1 bytes to two uvicorn servers running the same app, one
with uvicorn's stock protocol (the ASGI path: PushFastPath, PushEndpoint) and one with
PushHttpProtocol (the lane), and holds the lane to the same answers, byte for byte but for the
Date header, and to the same stored rows.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from pathlib import Path

import httptools
import pytest
from fastapi import FastAPI
from ingest_helpers import BearerToken, SwitchableStore, arrived_event, envelope, table_count
from prometheus_client import REGISTRY

from aeroflow.api.middleware.headers import SecurityHeadersMiddleware, with_security_headers
from aeroflow.bootstrap import Role, build_server_app
from aeroflow.ingest.auth import PushAuthenticator
from aeroflow.ingest.committer import GroupCommitter
from aeroflow.ingest.push import PUSH_PATH, PushEndpoint, PushFastPath, push_router
from aeroflow.ingest.push_lane import Exchange, PushLane
from aeroflow.ingest.push_protocol import PushHttpProtocol
from aeroflow.ingest.wire import encode_event
from aeroflow.observability.logging import REQUEST_LOGGER
from aeroflow.settings import Settings
from aeroflow.storage.duckdb import DuckDBFlightStore
from aeroflow.storage.port import WriteBatch, WriteResult
from loopback_server import serve

MAX_BODY = 1024 * 1024
STOCK, LANE = "stock", "lane"
# uvicorn.Config options as `aeroflow serve` sets them (cli._server_options), but the protocol.
SERVER_OPTIONS = {"proxy_headers": False, "server_header": False}


def push(body: bytes, *headers: bytes) -> bytes:
    """A raw POST /pubsub/push request with a Content-Length."""
    head = b"".join(h + b"\r\n" for h in headers)
    return (
        b"POST /pubsub/push HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n"
        + head
        + b"content-length: %d\r\n\r\n" % len(body)
        + body
    )


def stored_body(flight_number: int = 1545) -> bytes:
    event = arrived_event(flight_number=flight_number)
    return envelope(encode_event(event), message_id=f"m{flight_number}")


class Responses:
    """Reads whole HTTP/1.1 responses off a socket (framed by httptools, as a client would)."""

    def __init__(self) -> None:
        self.complete = 0

    def on_message_complete(self) -> None:
        self.complete += 1


def exchange(port: int, raw: bytes, responses: int = 1) -> bytes:
    """Send ``raw`` on a fresh connection; the bytes of the first ``responses`` answers, Date
    headers blanked (the two servers' clocks tick apart)."""
    counter = Responses()
    parser = httptools.HttpResponseParser(counter)
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(raw)
        while counter.complete < responses:
            data = sock.recv(65536)
            if not data:
                break
            received += data
            parser.feed_data(data)
    return re.sub(rb"\r\ndate: [^\r]*", b"\r\ndate: -", received)


@contextmanager
def both_servers(build: object) -> Iterator[dict[str, int]]:
    """Ports of the stock and the lane server, each running ``build(kind)``'s app."""
    with ExitStack() as stack:
        ports = {}
        for kind, protocol in ((STOCK, "httptools"), (LANE, PushHttpProtocol)):
            app = build(kind)  # type: ignore[operator]
            base_url = stack.enter_context(serve(app, http=protocol, **SERVER_OPTIONS))
            ports[kind] = int(base_url.rsplit(":", 1)[1])
        yield ports


def same_answers(ports: dict[str, int], raw: bytes, responses: int = 1) -> bytes:
    stock = exchange(ports[STOCK], raw, responses)
    lane = exchange(ports[LANE], raw, responses)
    assert lane == stock
    return lane


def http_requests(status_class: str) -> float:
    labels = {"route": PUSH_PATH, "method": "POST", "status_class": status_class}
    return REGISTRY.get_sample_value("aeroflow_http_requests_total", labels) or 0.0


# --- through the composition root, as `aeroflow serve` runs it ------------------------------


@pytest.mark.parametrize("exporter", ["none", "otlp"])
def test_the_served_app_hands_push_requests_to_the_lane(
    tmp_path: Path, exporter: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    handled = []
    handle = PushLane.handle

    def spy(lane: PushLane, exchange: Exchange) -> None:
        handled.append(exchange)
        handle(lane, exchange)

    monkeypatch.setattr(PushLane, "handle", spy)
    # Spans are only made, not exported: tracing is configured by the CLI, not here.
    settings = Settings(duckdb_path=tmp_path / "a.duckdb", tracing_exporter=exporter)
    app = build_server_app(settings, Role.SERVE)
    with serve(app, http=PushHttpProtocol, **SERVER_OPTIONS) as base_url:
        port = int(base_url.rsplit(":", 1)[1])
        answer = exchange(port, push(stored_body()))
    assert answer.startswith(b"HTTP/1.1 204 ")
    # A span per push request is PushFastPath's job: with tracing on, no lane.
    assert len(handled) == (1 if exporter == "none" else 0)


def test_the_lane_answers_as_the_asgi_path_does(tmp_path: Path) -> None:
    def build(kind: str) -> object:
        settings = Settings(duckdb_path=tmp_path / f"{kind}.duckdb")
        return build_server_app(settings, Role.SERVE)

    ok_before, bad_before = http_requests("2xx"), http_requests("4xx")
    with both_servers(build) as ports:
        stored = same_answers(ports, push(stored_body()))
        duplicate = same_answers(ports, push(stored_body()))
        poison = same_answers(ports, push(envelope(b"not json", message_id="p1")))
        not_envelope = same_answers(ports, push(b"[]"))
        not_json = same_answers(ports, push(b"{"))
        empty = same_answers(ports, push(b""))
        # Left to the ASGI path by the lane: the answers are the same anyway.
        with_query = same_answers(
            ports, push(stored_body(1)).replace(b"push HTTP", b"push?a=1 HTTP")
        )
        too_big = same_answers(ports, push(b"x" * (MAX_BODY + 1)))
        closing = same_answers(ports, push(stored_body(2), b"connection: close"))
        continuing = same_answers(ports, push(stored_body(3), b"expect: 100-continue"), 2)
        chunk = stored_body(4)
        chunked = same_answers(
            ports,
            b"POST /pubsub/push HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n"
            + b"%x\r\n%s\r\n0\r\n\r\n" % (len(chunk), chunk),
        )

    for answer in (stored, duplicate, poison, with_query, closing, chunked):
        assert answer.startswith(b"HTTP/1.1 204 No Content\r\n")
        assert b"\r\nx-content-type-options: nosniff\r\n" in answer
    assert b"\r\nconnection: close\r\n" in closing
    assert continuing.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 ")
    assert not_envelope.startswith(b"HTTP/1.1 400 ")
    assert not_envelope.endswith(
        b'{"error":{"code":"invalid_envelope","message":"request body must be a JSON object",'
        b'"details":[]}}'
    )
    assert not_json.startswith(b"HTTP/1.1 400 ")
    assert empty.startswith(b"HTTP/1.1 400 ")
    assert too_big.startswith(b"HTTP/1.1 413 ")
    # Both servers counted each request under the push route's series.
    assert http_requests("2xx") - ok_before == 2 * 7
    assert http_requests("4xx") - bad_before == 2 * 4
    for kind in (STOCK, LANE):
        db = tmp_path / f"{kind}.duckdb"
        assert table_count(db, "flight_events") == 5
        assert table_count(db, "rejected_messages") == 1


def test_pipelined_requests_are_answered_in_order(tmp_path: Path) -> None:
    def build(kind: str) -> object:
        return build_server_app(Settings(duckdb_path=tmp_path / f"{kind}.duckdb"), Role.SERVE)

    health = b"GET /healthz HTTP/1.1\r\nhost: t\r\n\r\n"
    with both_servers(build) as ports:
        answers = same_answers(
            ports,
            push(stored_body(1)) + health + push(stored_body(2)) + push(b"[]") + health,
            responses=5,
        )
    statuses = re.findall(rb"HTTP/1.1 (\d+) ", answers)
    assert statuses == [b"204", b"200", b"204", b"400", b"200"]
    for kind in (STOCK, LANE):
        assert table_count(tmp_path / f"{kind}.duckdb", "flight_events") == 2


def test_the_lane_keeps_the_access_log(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=REQUEST_LOGGER)
    settings = Settings(duckdb_path=tmp_path / "a.duckdb", push_access_log_sample_rate=1.0)
    with serve(build_server_app(settings, Role.SERVE), http=PushHttpProtocol) as base_url:
        port = int(base_url.rsplit(":", 1)[1])
        exchange(port, push(stored_body(), b"user-agent: lane-test"))
        exchange(port, push(b"{}"))
    lines = [r.getMessage() for r in caplog.records if r.name == REQUEST_LOGGER]
    assert [line.rsplit(" ", 1)[1] for line in lines if PUSH_PATH in line] == ["204", "400"]


# --- hand-composed: authentication and a storage outage -----------------------------------


def composed(store: DuckDBFlightStore, authenticator: PushAuthenticator) -> PushFastPath:
    """The push parts as the composition root wires them, around a given store and
    authenticator."""
    committer = GroupCommitter(store, max_batch=100, max_wait_seconds=0.001)
    endpoint = PushEndpoint(
        committer, authenticator, max_body_bytes=MAX_BODY, retry_after_seconds=7
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        committer.start()
        yield
        committer.drain(5)

    app = FastAPI(lifespan=lifespan)
    app.include_router(push_router(SecurityHeadersMiddleware(endpoint)))
    return PushFastPath(
        app,
        endpoint=SecurityHeadersMiddleware(endpoint),
        lane=(endpoint, with_security_headers(())),
    )


def test_refusals_and_outages_answer_as_the_asgi_path(tmp_path: Path) -> None:
    stores = {kind: SwitchableStore(tmp_path / f"{kind}.duckdb") for kind in (STOCK, LANE)}
    try:
        with both_servers(lambda kind: composed(stores[kind], BearerToken())) as ports:
            anonymous = same_answers(ports, push(stored_body()))
            forbidden = same_answers(ports, push(stored_body(), b"authorization: Bearer bad"))
            for store in stores.values():
                store.failures_left = 1
            outage = same_answers(ports, push(stored_body(), b"authorization: Bearer good"))
            retried = same_answers(ports, push(stored_body(), b"authorization: Bearer good"))
    finally:
        for store in stores.values():
            store.close()

    assert anonymous.startswith(b"HTTP/1.1 401 ")
    assert b'"code":"unauthenticated"' in anonymous
    assert forbidden.startswith(b"HTTP/1.1 403 ")
    assert outage.startswith(b"HTTP/1.1 503 ")
    assert b"\r\nretry-after: 7\r\n" in outage
    assert retried.startswith(b"HTTP/1.1 204 ")
    for kind in (STOCK, LANE):
        assert table_count(tmp_path / f"{kind}.duckdb", "flight_events") == 1


class GatedStore(DuckDBFlightStore):
    """The real DuckDB store whose batch writes wait for the test to open the gate."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.gate = threading.Event()
        self.writing = threading.Event()

    def write_batch(self, batch: WriteBatch) -> WriteResult:
        self.writing.set()
        self.gate.wait(10)
        return super().write_batch(batch)


def test_a_client_gone_before_its_answer_changes_nothing_for_others(tmp_path: Path) -> None:
    store = GatedStore(tmp_path / "lane.duckdb")
    try:
        with serve(composed(store, BearerToken()), http=PushHttpProtocol, **SERVER_OPTIONS) as url:
            port = int(url.rsplit(":", 1)[1])
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(push(stored_body(1), b"authorization: Bearer good"))
                assert store.writing.wait(10)
            store.gate.set()  # its commit completes after the connection is gone
            answer = exchange(port, push(stored_body(2), b"authorization: Bearer good"))
    finally:
        store.close()
    assert answer.startswith(b"HTTP/1.1 204 ")
    # Written although nobody heard the ack: the redelivery Pub/Sub sends is a duplicate.
    assert table_count(tmp_path / "lane.duckdb", "flight_events") == 2
