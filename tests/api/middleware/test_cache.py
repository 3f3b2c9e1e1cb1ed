"""The response cache and ETags, against a real DuckDB store written through write_batch.

Whether the store was queried is read from the store's own Prometheus histogram
(``aeroflow_storage_query_duration_seconds_count``), so "served from the cache" is observed,
not assumed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from aeroflow.api.app import create_app
from aeroflow.api.middleware.cache import CachedResponse, _LruBytes, etag_matches, make_etag
from aeroflow.domain.events import FlightEvent, FlightStatus
from aeroflow.settings import Settings
from aeroflow.storage.duckdb import DuckDBFlightStore
from aeroflow.storage.port import AcceptedMessage, MessageMeta, WriteBatch

from ..flightdata import Dataset

PAGE = "/v1/flights?carrier=UA&limit=5"


def _queries(kind: str) -> float:
    value = REGISTRY.get_sample_value(
        "aeroflow_storage_query_duration_seconds_count", {"query": kind}
    )
    return value or 0.0


def _requests(route: str) -> float:
    value = REGISTRY.get_sample_value(
        "aeroflow_http_requests_total", {"route": route, "method": "GET", "status_class": "2xx"}
    )
    return value or 0.0


@pytest.fixture
def store(tmp_path: Path, dataset: Dataset) -> Iterator[DuckDBFlightStore]:
    opened = DuckDBFlightStore(tmp_path / "cache.duckdb")
    for batch in dataset.batches:
        opened.write_batch(batch)
    yield opened
    opened.close()


def _settings(cache_mib: int = 64) -> Settings:
    return Settings(
        environment="test", cursor_secret="cache-test-secret", response_cache_mib=cache_mib
    )


@pytest.fixture
def client(store: DuckDBFlightStore) -> Iterator[TestClient]:
    with TestClient(create_app(_settings(), store)) as test_client:
        yield test_client


def _early_ua_flight(number: int) -> AcceptedMessage:
    """A UA flight departing before every flight of the data set: first on the page."""
    departure = datetime(2012, 12, 1, 6, 0, tzinfo=UTC)
    event = FlightEvent(
        carrier="UA",
        flight_number=number,
        origin="EWR",
        destination="IAH",
        scheduled_departure=departure,
        scheduled_arrival=departure + timedelta(hours=3),
        status=FlightStatus.SCHEDULED,
        actual_departure=None,
        actual_arrival=None,
        tail_number="N12UA",
        distance_miles=1400,
        air_time_minutes=None,
        event_time=departure - timedelta(days=1),
    )
    meta = MessageMeta(
        message_id=f"cache-test-{number}", publish_time=datetime.now(UTC), ordering_key="x"
    )
    return AcceptedMessage(meta=meta, event=event, ingest_time=datetime.now(UTC))


def test_repeated_reads_are_served_from_the_cache_and_never_stale_after_a_write(
    client: TestClient, store: DuckDBFlightStore
) -> None:
    before = _queries("list_flights")
    first = client.get(PAGE)
    second = client.get(PAGE)
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    assert first.headers == second.headers
    assert _queries("list_flights") == before + 1

    message = _early_ua_flight(9001)
    version = store.write_version
    store.write_batch(WriteBatch(accepted=[message]))
    assert store.write_version == version + 1

    third = client.get(PAGE)
    assert third.json()["data"][0]["flight_id"] == message.event.flight_id
    assert _queries("list_flights") == before + 2


def test_point_lookups_and_stats_are_cached_but_errors_are_not(client: TestClient) -> None:
    flight_id = client.get(PAGE).json()["data"][0]["flight_id"]
    for kind, url in (
        ("get_flight", f"/v1/flights/{flight_id}"),
        ("delay_stats", "/v1/stats/delays?group_by=carrier"),
    ):
        before = _queries(kind)
        assert client.get(url).content == client.get(url).content
        assert _queries(kind) == before + 1

    before = _queries("get_flight")
    for _ in range(2):
        assert client.get("/v1/flights/ZZ0001-ZZZ-20130101").status_code == 404
    assert _queries("get_flight") == before + 2
    for _ in range(2):
        assert client.get("/v1/flights?limit=0").status_code == 422


def test_hits_are_counted_under_their_route_like_any_request(client: TestClient) -> None:
    client.get(PAGE)
    before = _requests("/v1/flights")
    client.get(PAGE)
    assert _requests("/v1/flights") == before + 1
    # ...and still get the security headers added outside the cache.
    assert client.get(PAGE).headers["x-content-type-options"] == "nosniff"


def test_each_accept_header_and_parameter_order_has_its_own_entry(client: TestClient) -> None:
    as_json = client.get(PAGE)
    as_csv = client.get(PAGE, headers={"Accept": "text/csv"})
    assert as_json.headers["content-type"] == "application/json"
    assert as_csv.headers["content-type"] == "text/csv; charset=utf-8"
    assert client.get(PAGE).content == as_json.content
    assert client.get(PAGE, headers={"Accept": "text/csv"}).content == as_csv.content

    # The Link header repeats the request's parameters in the request's order.
    reordered = client.get("/v1/flights?limit=5&carrier=UA")
    assert reordered.headers["link"].startswith("</v1/flights?limit=5&carrier=UA&cursor=")
    assert as_json.headers["link"].startswith("</v1/flights?carrier=UA&limit=5&cursor=")


@pytest.mark.parametrize("cache_mib", [64, 0])
def test_etag_and_if_none_match(store: DuckDBFlightStore, cache_mib: int) -> None:
    with TestClient(create_app(_settings(cache_mib), store)) as client:
        first = client.get(PAGE)
        etag = first.headers["etag"]
        assert etag == make_etag(first.content).decode()

        for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
            again = client.get(PAGE, headers={"If-None-Match": header})
            assert again.status_code == 304, header
            assert again.content == b""
            assert again.headers["etag"] == etag
            assert again.headers["cache-control"] == "no-store"
            assert "content-type" not in again.headers

        assert client.get(PAGE, headers={"If-None-Match": '"other"'}).status_code == 200

        store.write_batch(WriteBatch(accepted=[_early_ua_flight(9002)]))
        changed = client.get(PAGE, headers={"If-None-Match": etag})
        assert changed.status_code == 200
        assert changed.headers["etag"] != etag


def test_cache_off_queries_every_time(store: DuckDBFlightStore) -> None:
    with TestClient(create_app(_settings(0), store)) as client:
        before = _queries("list_flights")
        client.get(PAGE)
        client.get(PAGE)
        assert _queries("list_flights") == before + 2


def test_concurrent_identical_requests_share_one_query(store: DuckDBFlightStore) -> None:
    app = create_app(_settings(), store)
    url = "/v1/stats/delays?group_by=month"

    async def fetch_all() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            return list(await asyncio.gather(*(http.get(url) for _ in range(20))))

    before = _queries("delay_stats")
    responses = asyncio.run(fetch_all())
    assert {r.status_code for r in responses} == {200}
    assert len({r.content for r in responses}) == 1
    assert _queries("delay_stats") == before + 1


# --- the LRU under its byte budget -----------------------------------------------------------


def _entry(body: bytes, version: int = 1) -> CachedResponse:
    return CachedResponse(version, (), body, make_etag(body), None)


def test_lru_keeps_within_its_byte_budget_and_drops_old_versions() -> None:
    lru = _LruBytes(max_bytes=250, max_entry_bytes=200)
    keys = [(f"/p{i}", b"", b"") for i in range(4)]
    for key in keys[:2]:
        lru.put(key, _entry(b"x" * 100))
    assert lru.get(keys[0], 1) is not None  # now the most recently used
    lru.put(keys[2], _entry(b"y" * 100))
    assert lru.get(keys[1], 1) is None  # least recently used: evicted
    assert lru.get(keys[0], 1) is not None
    assert lru.size == 200

    lru.put(keys[3], _entry(b"z" * 201))  # larger than one entry may be
    assert lru.get(keys[3], 1) is None

    assert lru.get(keys[0], 2) is None  # written since: dropped, not served
    assert len(lru) == 1
    assert lru.size == 100

    replaced = replace(_entry(b"w" * 50), version=2)
    lru.put(keys[2], replaced)
    assert lru.get(keys[2], 2) == replaced
    assert lru.size == 50


def test_if_none_match_comparison() -> None:
    tag = b'"abc"'
    assert etag_matches(b'"abc"', tag)
    assert etag_matches(b' W/"abc" ', tag)
    assert etag_matches(b'"x", "abc"', tag)
    assert etag_matches(b"*", tag)
    assert not etag_matches(b'"abcd"', tag)
    assert not etag_matches(b"abc", tag)
