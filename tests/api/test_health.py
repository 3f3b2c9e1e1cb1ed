"""/healthz, /readyz and /metrics."""

from __future__ import annotations

import random
import string

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from aeroflow.observability.metrics import HTTP_REQUEST_DURATION, HTTP_REQUESTS
from aeroflow.storage.port import (
    StorageUnavailableError,
)
from store_wrapper import DelegatingStore

from .support import AppFactory, StoreFactory, assert_error


def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_with_a_working_store(client: TestClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


class _UnreachableStore(DelegatingStore):
    """A real store whose ping fails as the port says an unreachable backend fails.

    Faked on purpose: "the backend stopped answering" cannot be produced on demand with an
    embedded DuckDB file (a closed store is covered separately, below, without a fake).
    """

    def ping(self) -> None:
        raise StorageUnavailableError("connection refused")


def test_readyz_is_503_when_the_store_does_not_answer(
    make_app: AppFactory, store_factory: StoreFactory
) -> None:
    with TestClient(make_app(_UnreachableStore(store_factory([])))) as client:
        response = client.get("/readyz")
        assert_error(response, 503, "unavailable")
        assert int(response.headers["retry-after"]) > 0
        assert client.get("/healthz").status_code == 200  # alive, just not ready


def test_readyz_is_503_when_the_store_was_closed(
    make_app: AppFactory, store_factory: StoreFactory
) -> None:
    store = store_factory([])
    with TestClient(make_app(store)) as client:
        assert client.get("/readyz").status_code == 200
        store.close()
        assert_error(client.get("/readyz"), 503, "unavailable")


def test_metrics_exposition_parses_and_counts_by_route_template(client: TestClient) -> None:
    client.get("/v1/flights/UA1545-EWR-20130101")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    requests = families["aeroflow_http_requests"]
    routes = {s.labels["route"] for s in requests.samples}
    assert "/v1/flights/{flight_id}" in routes
    assert not any("UA1545" in route for route in routes)
    assert "aeroflow_http_request_duration_seconds" in families


def _label_sets() -> tuple[int, int]:
    counter = {tuple(sorted(s.labels.items())) for m in HTTP_REQUESTS.collect() for s in m.samples}
    histogram = {
        tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
        for m in HTTP_REQUEST_DURATION.collect()
        for s in m.samples
    }
    return len(counter), len(histogram)


def _hit_everything(client: TestClient, rng: random.Random, rounds: int) -> None:
    letters = string.ascii_uppercase
    for _ in range(rounds):
        carrier = "".join(rng.choices(letters, k=2))
        number = rng.randint(1, 9999)
        origin = "".join(rng.choices(letters, k=3))
        client.get(f"/v1/flights/{carrier}{number:04d}-{origin}-2013{rng.randint(101, 1231)}")
        client.get(f"/v1/flights/bad-{rng.random()}")  # 422, same template
        client.get(f"/{''.join(rng.choices(letters, k=12))}/{rng.random()}")  # 404 unmatched
        client.request(rng.choice(["PROPFIND", "BREW", "M" + str(rng.random())]), "/v1/flights")
        client.get("/static/docs/" + "".join(rng.choices(letters, k=8)) + ".js")


def test_metric_label_sets_stay_bounded_under_distinct_ids_and_paths(client: TestClient) -> None:
    rng = random.Random(7)
    _hit_everything(client, rng, rounds=5)  # every kind of label set exists now
    before = _label_sets()
    _hit_everything(client, rng, rounds=200)  # 200 distinct flight ids, bogus paths, methods
    assert _label_sets() == before
