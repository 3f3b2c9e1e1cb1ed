"""Every request is counted once, by route template and status class, with its latency."""

from __future__ import annotations

from fastapi.testclient import TestClient

from aeroflow.observability.metrics import HTTP_REQUEST_DURATION, HTTP_REQUESTS


def _count(route: str, status_class: str) -> float:
    labels = {"route": route, "method": "GET", "status_class": status_class}
    for metric in HTTP_REQUESTS.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total") and sample.labels == labels:
                return float(sample.value)
    return 0.0


def _observations(route: str) -> float:
    for metric in HTTP_REQUEST_DURATION.collect():
        for sample in metric.samples:
            if sample.name.endswith("_count") and sample.labels == {
                "route": route,
                "method": "GET",
            }:
                return float(sample.value)
    return 0.0


def test_each_request_counts_once_per_route_and_status_class(client: TestClient) -> None:
    route = "/v1/flights/{flight_id}"
    before = (_count(route, "2xx"), _count(route, "4xx"), _observations(route))
    known = client.get("/v1/flights?limit=1").json()["data"][0]["flight_id"]
    for _ in range(3):  # the fast path and the route are counted alike
        assert client.get(f"/v1/flights/{known}").status_code == 200
    assert client.get("/v1/flights/UA9999-EWR-20130101").status_code == 404
    assert client.get("/v1/flights/not-an-id").status_code == 422
    after = (_count(route, "2xx"), _count(route, "4xx"), _observations(route))
    assert after[0] - before[0] == 3
    assert after[1] - before[1] == 2
    assert after[2] - before[2] == 5
