"""The OpenAPI document, the docs pages (no CDN) and the security headers."""

from __future__ import annotations

import base64
import hashlib
import re
from html.parser import HTMLParser
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from openapi_spec_validator import validate

from aeroflow.api.params import LIST_PARAMS, STATS_PARAMS
from aeroflow.api.routes import flights, health, stats
from aeroflow.api.schemas import DelayStatsOut, FlightOut

from .flightdata import Dataset

EXPECTED_OPERATIONS = {
    ("get", "/v1/flights"),
    ("get", "/v1/flights/{flight_id}"),
    ("get", "/v1/stats/delays"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
}


@pytest.fixture(scope="module")
def openapi(client: TestClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return dict(response.json())


def test_openapi_document_is_valid(openapi: dict[str, Any]) -> None:
    validate(openapi)  # raises on any violation of the OpenAPI 3.1 schema


def test_openapi_lists_every_route(
    client: TestClient, dataset: Dataset, openapi: dict[str, Any]
) -> None:
    documented = {(m, p) for p, ops in openapi["paths"].items() for m in ops}
    assert documented == EXPECTED_OPERATIONS
    # Every route of the API's routers is documented ...
    served = {
        (method.lower(), route.path)
        for router in (flights.router, stats.router, health.router)
        for route in router.routes
        if isinstance(route, APIRoute) and route.include_in_schema
        for method in route.methods or ()
    }
    assert served == EXPECTED_OPERATIONS
    # ... and every documented operation is really served by the app.
    some_id = next(iter(dataset.current))
    for _, path in documented:
        url = path.replace("{flight_id}", some_id)
        params = {"group_by": "carrier"} if path == "/v1/stats/delays" else {}
        assert client.get(url, params=params).status_code == 200, url


@pytest.mark.parametrize(
    ("path", "allowed"),
    [("/v1/flights", LIST_PARAMS), ("/v1/stats/delays", STATS_PARAMS)],
)
def test_documented_query_parameters_are_exactly_the_accepted_ones(
    openapi: dict[str, Any], path: str, allowed: tuple[str, ...]
) -> None:
    # The unknown-parameter check has its own list; this keeps the two from drifting.
    parameters = openapi["paths"][path]["get"]["parameters"]
    assert {p["name"] for p in parameters if p["in"] == "query"} == set(allowed)


def test_documented_shapes_and_errors(openapi: dict[str, Any]) -> None:
    schemas = openapi["components"]["schemas"]
    assert set(schemas["FlightOut"]["properties"]) == set(FlightOut.model_fields)
    assert set(schemas["DelayStatsOut"]["properties"]) == set(DelayStatsOut.model_fields)
    listing = openapi["paths"]["/v1/flights"]["get"]["responses"]
    assert set(listing["200"]["content"]) == {"application/json", "text/csv"}
    for status in ("400", "406", "422", "503"):
        ref = listing[status]["content"]["application/json"]["schema"]["$ref"]
        assert ref.endswith("/ErrorOut")
    assert "HTTPValidationError" not in schemas  # FastAPI's default 422 shape is not ours


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in {"src", "href", "spec-url"} and value is not None:
                self.urls.append(value)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_reference_no_external_host(client: TestClient, page: str) -> None:
    response = client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    parser = _Links()
    parser.feed(response.text)
    assert parser.urls, "the page must load its assets"
    for url in parser.urls:
        assert url.startswith("/"), url
        assert not url.startswith("//"), url
        assert client.get(url).status_code == 200, url
    # No host anywhere in the page, not even in inline script.
    assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}", response.text, re.IGNORECASE)


def test_swagger_ui_inline_script_is_allowed_by_its_hash_only(client: TestClient) -> None:
    response = client.get("/docs")
    csp = response.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert "'unsafe-inline'" not in directives["script-src"]
    assert "'unsafe-eval'" not in directives["script-src"]
    assert directives["default-src"] == "'none'"
    assert directives["connect-src"] == "'self'"
    scripts = re.findall(r"<script>(.*?)</script>", response.text, re.DOTALL)
    assert len(scripts) == 1
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
    assert f"'sha256-{digest}'" in directives["script-src"]
    assert "validatorUrl" in scripts[0]  # the swagger.io validator badge is switched off


def test_docs_assets_are_cacheable(client: TestClient) -> None:
    response = client.get("/static/docs/swagger-ui-bundle.js")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=86400"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert client.get("/static/docs/../../../etc/passwd").status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/v1/flights?limit=1",
        "/v1/flights/UA1545-EWR-20130101",
        "/nowhere",
        "/healthz",
        "/metrics",
        "/openapi.json",
        "/v1/flights?x=1",
        "/docs",
    ],
)
def test_security_headers_on_every_response(client: TestClient, path: str) -> None:
    response = client.get(path)
    headers = response.headers
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert "default-src 'none'" in headers["content-security-policy"]
    assert headers["cache-control"] == "no-store"


def test_security_headers_on_middleware_responses(client: TestClient) -> None:
    response = client.get("/v1/flights?" + "x" * 5000)
    assert response.status_code == 414
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
