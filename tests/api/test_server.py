"""The app behind a real uvicorn server on 127.0.0.1, queried over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from aeroflow.storage.port import FlightStore
from loopback_server import serve

from .flightdata import Dataset, sort_key
from .support import AppFactory, assert_error


@pytest.fixture
def server_url(make_app: AppFactory, seeded_store: FlightStore) -> Iterator[str]:
    with serve(make_app(seeded_store)) as url:
        yield url


def test_served_over_real_http(server_url: str, dataset: Dataset) -> None:
    expected = [
        e.flight_id
        for e in sorted(dataset.current.values(), key=sort_key)
        if e.carrier == "UA" and e.destination == "IAH"
    ]
    assert len(expected) > 2
    with httpx.Client(base_url=server_url, timeout=10) as http:
        # The benchmark's request, paged by following Link headers.
        ids: list[str] = []
        url: str | None = "/v1/flights?carrier=UA&destination=IAH&limit=2"
        while url is not None:
            response = http.get(url)
            assert response.status_code == 200
            assert response.headers["x-content-type-options"] == "nosniff"
            ids += [row["flight_id"] for row in response.json()["data"]]
            link = response.headers.get("link")
            url = None if link is None else link[1 : link.index(">")]
        assert ids == expected

        csv = http.get("/v1/flights?carrier=UA&limit=3", headers={"Accept": "text/csv"})
        assert csv.headers["content-type"] == "text/csv; charset=utf-8"
        assert len(csv.text.strip().splitlines()) == 4

        # Bad input over the wire: right status, error body, and the server carries on.
        assert_error(http.get("/v1/flights?limit=0"), 422, "validation_error")
        assert_error(http.get("/v1/flights?carrier=UA'--"), 422, "validation_error")
        assert_error(http.get("/v1/flights?nope=1"), 400, "unknown_parameter")
        assert_error(http.get("/v1/flights?cursor=garbage"), 400, "invalid_cursor")
        assert_error(http.get("/v1/flights?x=" + "a" * 5000), 414, "uri_too_long")
        assert_error(http.get("/v1/flights/not-an-id"), 422, "validation_error")
        assert_error(http.get("/v1/flights/ZZ0001-ZZZ-20130101"), 404, "not_found")
        assert_error(http.post("/v1/flights"), 405, "method_not_allowed")
        assert http.get("/healthz").json() == {"status": "ok"}
        assert http.get("/readyz").json() == {"status": "ready"}
        assert http.get("/docs").status_code == 200
        assert "aeroflow_http_requests_total" in http.get("/metrics").text
