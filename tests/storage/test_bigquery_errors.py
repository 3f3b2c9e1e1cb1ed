"""Transient BigQuery failures become StorageUnavailableError; real errors stay what they are.

The emulator cannot be made to answer 503 or 429, so these tests put the real client in front
of a tiny HTTP server on 127.0.0.1 that answers every request with one fixed BigQuery error body
(a fake of the BigQuery front end, the one boundary that cannot fail on demand here), or in
front of a port where nothing listens.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from google.api_core import exceptions as api_exceptions
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery
from storage_factories import accepted, make_event

from aeroflow.storage.bigquery import BigQueryFlightStore
from aeroflow.storage.bigquery_errors import is_transient
from aeroflow.storage.port import (
    FlightFilter,
    FlightQuery,
    GroupBy,
    StorageUnavailableError,
    WriteBatch,
)

TIMEOUT = 1.0  # the store's job timeout; retries of transient errors must stop near it


def _store(endpoint: str) -> BigQueryFlightStore:
    client = bigquery.Client(
        project="aeroflow-test",
        credentials=AnonymousCredentials(),
        client_options=ClientOptions(api_endpoint=endpoint),
    )
    return BigQueryFlightStore(
        client,
        dataset="aeroflow",
        location="EU",
        max_bytes_billed=10 * 1024**2,
        job_timeout_seconds=TIMEOUT,
    )


@pytest.fixture
def error_server() -> Iterator[Callable[[int, str], str]]:
    """Start a server answering every request with (status, reason); returns its URL."""
    servers: list[ThreadingHTTPServer] = []

    def start(status: int, reason: str) -> str:
        body = json.dumps({
            "error": {"code": status, "message": f"{reason} (test)",
                      "errors": [{"reason": reason, "message": f"{reason} (test)"}]}
        }).encode()  # fmt: skip

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

            def log_message(self, format: str, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # closed on exit: connections are refused


CALLS: dict[str, Callable[[BigQueryFlightStore], object]] = {
    "write_batch": lambda s: s.write_batch(WriteBatch(accepted=[accepted(make_event(), "m-1")])),
    "list_flights": lambda s: s.list_flights(FlightQuery()),
    "get_flight": lambda s: s.get_flight("UA1545-EWR-20130101"),
    "delay_stats": lambda s: s.delay_stats(GroupBy.CARRIER, FlightFilter()),
    "ping": lambda s: s.ping(),
}


def _assert_unavailable_soon(store: BigQueryFlightStore, call: str) -> None:
    started = time.monotonic()
    with pytest.raises(StorageUnavailableError):
        CALLS[call](store)
    # Bounded by the job timeout (a few calls each), not by the client's default 10 minutes.
    assert time.monotonic() - started < 8 * TIMEOUT + 2


@pytest.mark.parametrize("call", list(CALLS))
def test_an_unreachable_endpoint_is_storage_unavailable(call: str) -> None:
    _assert_unavailable_soon(_store(f"http://127.0.0.1:{_closed_port()}"), call)


@pytest.mark.parametrize(
    ("status", "reason"),
    [(503, "backendError"), (500, "internalError"), (429, "rateLimitExceeded"),
     (403, "quotaExceeded")],
)  # fmt: skip
def test_overload_and_outage_answers_are_storage_unavailable(
    error_server: Callable[[int, str], str], status: int, reason: str
) -> None:
    _assert_unavailable_soon(_store(error_server(status, reason)), "list_flights")


def test_a_write_during_an_outage_is_storage_unavailable(
    error_server: Callable[[int, str], str],
) -> None:
    _assert_unavailable_soon(_store(error_server(503, "backendError")), "write_batch")


@pytest.mark.parametrize(
    ("status", "reason", "error"),
    [(400, "invalidQuery", api_exceptions.BadRequest), (404, "notFound", api_exceptions.NotFound),
     (403, "accessDenied", api_exceptions.Forbidden)],
)  # fmt: skip
def test_configuration_errors_are_not_disguised_as_outages(
    error_server: Callable[[int, str], str],
    status: int,
    reason: str,
    error: type[Exception],
) -> None:
    store = _store(error_server(status, reason))
    with pytest.raises(error):
        store.list_flights(FlightQuery())
    with pytest.raises(error):
        store.write_batch(WriteBatch(accepted=[accepted(make_event(), "m-1")]))


def test_a_transaction_conflict_between_writers_is_transient() -> None:
    # What BigQuery answers when two writers' transactions touch the same table; the emulator
    # serialises everything, so the message is taken from BigQuery's documentation.
    conflict = api_exceptions.BadRequest(
        "Transaction is aborted due to concurrent update against table p.d.flights.",
        errors=[{"reason": "invalidQuery"}],
    )
    assert is_transient(conflict)
    assert not is_transient(api_exceptions.BadRequest("Syntax error: Unexpected keyword"))
