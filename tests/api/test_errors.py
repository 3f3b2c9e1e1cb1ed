"""One error shape everywhere: framework errors, routers added by the caller, failures."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

import pytest
from fastapi import APIRouter, HTTPException
from fastapi.testclient import TestClient
from pydantic import BaseModel

from aeroflow.storage.port import (
    DelayStats,
    Flight,
    FlightFilter,
    FlightPage,
    FlightQuery,
    FlightStore,
    GroupBy,
    StorageUnavailableError,
)
from store_wrapper import DelegatingStore

from .support import AppFactory, StoreFactory, assert_error


class _Body(BaseModel):
    name: str
    count: int


def _extra_router() -> APIRouter:
    """Stands in for routers the composition root adds (e.g. the push endpoint)."""
    router = APIRouter()

    @router.post("/extra/too-large")
    async def too_large() -> None:
        raise HTTPException(413, "body larger than 1024 bytes")

    @router.get("/extra/teapot")
    async def teapot() -> None:
        raise HTTPException(418, {"not": "a string"})

    @router.get("/extra/boom")
    async def boom() -> None:
        raise RuntimeError("secret internal detail")

    @router.post("/extra/body")
    async def body(payload: _Body) -> dict[str, str]:
        return {"name": payload.name}

    return router


@pytest.fixture
def extra_client(make_app: AppFactory, seeded_store: FlightStore) -> Iterator[TestClient]:
    app = make_app(seeded_store, routers=[_extra_router()])
    with TestClient(app) as client:
        yield client


def test_unknown_route_is_404(client: TestClient) -> None:
    assert_error(client.get("/nowhere"), 404, "not_found")


def test_wrong_method_is_405(client: TestClient) -> None:
    response = client.delete("/v1/flights/UA1545-EWR-20130101")
    assert_error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "GET"


def test_http_exceptions_of_added_routers_get_the_shape(extra_client: TestClient) -> None:
    error = assert_error(extra_client.post("/extra/too-large"), 413, "payload_too_large")
    assert error["message"] == "body larger than 1024 bytes"
    # Non-string detail: the standard phrase, never the raw object.
    assert assert_error(extra_client.get("/extra/teapot"), 418, "bad_request")["message"] == (
        "I'm a Teapot"
    )


def test_body_validation_errors_are_reshaped_without_echoing_input(
    extra_client: TestClient,
) -> None:
    response = extra_client.post("/extra/body", json={"name": "x" * 10_000, "count": "many"})
    error = assert_error(response, 422, "validation_error")
    assert error["details"] == [
        {
            "loc": ["body", "count"],
            "msg": "Input should be a valid integer, unable to parse string as an integer",
            "type": "int_parsing",
        }
    ]
    assert "many" not in response.text
    junk = extra_client.post(
        "/extra/body", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert_error(junk, 422, "validation_error")


def test_unhandled_exceptions_are_logged_500_without_details(
    extra_client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        response = extra_client.get("/extra/boom")
    error = assert_error(response, 500, "internal")
    assert error == {"code": "internal", "message": "internal server error", "details": []}
    assert "secret internal detail" not in response.text
    logged = [
        r for r in caplog.records if r.exc_info and "secret internal detail" in str(r.exc_info[1])
    ]
    assert len(logged) == 1, "logged exactly once, with the traceback"
    # ... and the service carries on.
    assert extra_client.get("/healthz").status_code == 200


class _StoreWithBrokenReads(DelegatingStore):
    """The real store, except that reads fail the way the port says an outage fails.

    A fake, on purpose: an outage of the backend cannot be produced on demand with an embedded
    DuckDB file, and what the API must do depends only on the port's contract
    (StorageUnavailableError means "retry later"), which this wrapper raises at that boundary.
    """

    def __init__(self, store: FlightStore, error: Exception) -> None:
        super().__init__(store)
        self._error = error

    def list_flights(self, query: FlightQuery) -> FlightPage:
        raise self._error

    def get_flight(self, flight_id: str) -> Flight | None:
        raise self._error

    def delay_stats(self, group_by: GroupBy, flight_filter: FlightFilter) -> Sequence[DelayStats]:
        raise self._error


@pytest.mark.parametrize(
    "path",
    ["/v1/flights", "/v1/flights/UA1545-EWR-20130101", "/v1/stats/delays?group_by=hour"],
)
def test_storage_unavailable_is_503_with_retry_after(
    make_app: AppFactory, store_factory: StoreFactory, path: str
) -> None:
    store = _StoreWithBrokenReads(store_factory([]), StorageUnavailableError("disk on fire"))
    with TestClient(make_app(store)) as client:
        response = client.get(path)
        error = assert_error(response, 503, "unavailable")
        assert "disk on fire" not in error["message"]
        assert int(response.headers["retry-after"]) > 0


def test_a_bug_in_the_store_is_500_not_a_leak(
    make_app: AppFactory, store_factory: StoreFactory
) -> None:
    store = _StoreWithBrokenReads(store_factory([]), TypeError("column flight_id: got bytes"))
    with TestClient(make_app(store)) as client:
        response = client.get("/v1/flights")
        assert_error(response, 500, "internal")
        assert "flight_id" not in response.text
