"""Request limits over real HTTP: header, body and query-string sizes, deadlines, CORS."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from security_support import app_for, make_keys, make_settings

from aeroflow.api.middleware.header_limit import MAX_HEADER_BYTES
from aeroflow.bootstrap import Role, build_app
from aeroflow.storage.port import FlightPage, FlightQuery, FlightStore
from loopback_server import serve
from store_wrapper import DelegatingStore

FLIGHT = "/v1/flights?limit=1"


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    assert "Traceback" not in response.text


@pytest.fixture(scope="module")
def composed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real composition (read API + push ingest, every middleware) behind uvicorn."""
    settings = make_settings(
        duckdb_path=Path(tmp_path_factory.mktemp("composed")) / "aeroflow.duckdb",
        push_max_body_bytes=64 * 1024,
    )
    with serve(build_app(settings, Role.SERVE)) as url:
        yield url


def test_oversized_headers_are_431_and_the_server_carries_on(composed: str) -> None:
    with httpx.Client(base_url=composed, timeout=30) as http:
        big = "a" * (MAX_HEADER_BYTES + 1)
        assert_error(
            http.get(FLIGHT, headers={"X-Big": big}), 431, "request_header_fields_too_large"
        )
        many = [(f"X-H{i}", "v" * 40) for i in range(2000)]
        assert_error(http.get("/healthz", headers=many), 431, "request_header_fields_too_large")
        # Megabytes of header: refused, not a 5xx, and nothing echoed back.
        huge = http.get(FLIGHT, headers={"X-Huge": "b" * 4_000_000})
        assert huge.status_code == 431
        assert len(huge.content) < 1000
        assert http.get(FLIGHT).status_code == 200


def test_oversized_push_bodies_are_413_declared_or_streamed(composed: str) -> None:
    with httpx.Client(base_url=composed, timeout=30) as http:
        body = b"{" + b" " * (2 * 1024 * 1024) + b"}"
        declared = http.post("/pubsub/push", content=body)
        assert declared.status_code == 413
        assert declared.json()["error"]["code"] == "payload_too_large"

        def chunks() -> Iterator[bytes]:  # no Content-Length: the limit must hold while reading
            for _ in range(64):
                yield b" " * 32 * 1024

        streamed = http.post("/pubsub/push", content=chunks())
        assert streamed.status_code == 413
        assert http.get("/healthz").status_code == 200


def test_bodies_sent_to_the_read_api_are_never_read(composed: str) -> None:
    with httpx.Client(base_url=composed, timeout=30) as http:
        assert_error(
            http.post("/v1/flights", content=b"x" * (8 * 1024 * 1024)), 405, "method_not_allowed"
        )
        response = http.request("GET", FLIGHT, content=b"y" * (1024 * 1024))
        assert response.status_code == 200


def test_over_long_query_strings_are_414(composed: str) -> None:
    with httpx.Client(base_url=composed, timeout=30) as http:
        assert_error(http.get("/v1/flights?carrier=UA&x=" + "a" * 5000), 414, "uri_too_long")


class SlowStore(DelegatingStore):
    """A real DuckDB store whose list reads take ``delay`` seconds.

    A fake only in its timing: nothing local makes a real query slow on demand. A subclass of
    DelegatingStore, not a ``__getattr__`` proxy, so optional port methods (a store's own JSON
    pages) are not handed through around the slow ``list_flights``.
    """

    def __init__(self, store: FlightStore, delay: float) -> None:
        super().__init__(store)
        self._delay = delay

    def list_flights(self, query: FlightQuery) -> FlightPage:
        time.sleep(self._delay)
        return super().list_flights(query)


def test_requests_past_their_deadline_are_503_with_retry_after(store: FlightStore) -> None:
    slow = SlowStore(store, delay=1.5)
    app = app_for(slow, api_request_timeout_seconds=0.3)
    with TestClient(app) as client:
        started = time.monotonic()
        response = client.get(FLIGHT)
        elapsed = time.monotonic() - started
        assert_error(response, 503, "unavailable")
        assert response.headers["retry-after"] == "5"
        assert elapsed < 1.2  # answered at the deadline, not when the query finished
        # Other endpoints are not bound by the /v1 deadline and keep working.
        assert client.get("/healthz").status_code == 200
        assert client.get("/v1/flights/UA0100-EWR-20130101").status_code == 200


# --- CORS ---------------------------------------------------------------------------------------

ORIGIN = "https://dashboard.example"
PREFLIGHT = {"Origin": ORIGIN, "Access-Control-Request-Method": "GET"}


def test_no_cors_headers_unless_configured(store: FlightStore) -> None:
    with TestClient(app_for(store)) as client:
        response = client.get(FLIGHT, headers={"Origin": ORIGIN})
        assert response.status_code == 200
        assert not [h for h in response.headers if h.lower().startswith("access-control-")]
        preflight = client.options(FLIGHT, headers=PREFLIGHT)
        assert preflight.status_code == 405
        assert "access-control-allow-origin" not in preflight.headers


def test_cors_only_for_the_configured_origins(store: FlightStore) -> None:
    (key,), config = make_keys("browser-app")
    app = app_for(store, api_keys=config, cors_allow_origins=f"{ORIGIN}, https://b.example")
    with TestClient(app) as client:
        # Preflights carry no key, so they are answered before the key check.
        preflight = client.options(
            FLIGHT, headers={**PREFLIGHT, "Access-Control-Request-Headers": "X-API-Key"}
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == ORIGIN
        assert "x-api-key" in preflight.headers["access-control-allow-headers"].lower()
        assert "access-control-allow-credentials" not in preflight.headers

        ok = client.get(FLIGHT, headers={"Origin": ORIGIN, "X-API-Key": key.key})
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == ORIGIN
        assert "link" in ok.headers["access-control-expose-headers"].lower()
        # A refusal must be readable by the page too.
        refused = client.get(FLIGHT, headers={"Origin": ORIGIN})
        assert refused.status_code == 401
        assert refused.headers["access-control-allow-origin"] == ORIGIN

        other = client.get(FLIGHT, headers={"Origin": "https://evil.example", "X-API-Key": key.key})
        assert "access-control-allow-origin" not in other.headers
        bad_preflight = client.options(
            FLIGHT, headers={**PREFLIGHT, "Origin": "https://evil.example"}
        )
        assert "access-control-allow-origin" not in bad_preflight.headers


def test_cors_origins_accept_a_json_list() -> None:
    settings = make_settings(cors_allow_origins='["https://a.example", "https://b.example"]')
    assert settings.cors_allow_origins == ["https://a.example", "https://b.example"]
