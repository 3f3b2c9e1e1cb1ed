"""The fast read path answers exactly as the FastAPI routes do, and only for plain requests.

Differential: every request goes to two apps over the same seeded store, one as built by
``create_app`` and one with the fast path taken out, and must get the same status, headers (in
order) and body. Requests mix plain queries with every spelling the fast path leaves to the
route (non-canonical numbers, lower-case codes, naive times, repeated or unknown names,
tampered cursors, odd Accept headers), so both sides of its decision are compared.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.types import Receive, Scope, Send

from aeroflow.api.cursor import CursorCodec
from aeroflow.api.fast_reads import FastReads, parse_list_query
from aeroflow.api.middleware.access import leaf_routes
from aeroflow.storage.port import FlightStore

from .flightdata import CARRIERS, DESTINATIONS, ORIGINS
from .support import AppFactory

_VALUES: dict[str, list[str]] = {
    "carrier": [*CARRIERS, "ua", "U", "UAX", "", "U%41", "ZZ"],
    "origin": [*ORIGINS, "ewr", "EW", "", "E1R"],
    "destination": [*DESTINATIONS, "iah", "IAHX", ""],
    "status": ["scheduled", "departed", "arrived", "cancelled", "ARRIVED", "landed", ""],
    "departure_from": [
        "2013-01-01",
        "2013-01-02T00:00:00Z",
        "2013-01-01T10:00:00+05:00",
        "2013-01-01T10:00:00",
        "2013-02-30",
        "1800-01-01",
        "2013-01-01t06:00:00z",
        "",
    ],
    "departure_to": ["2013-01-03", "2013-04-15T12:00:00-04:00", "2013-01-01", "2013-13-01"],
    "min_dep_delay": ["0", "15", "-5", "-0", "+5", "05", " 5", "1.5", "100000", "100001", ""],
    "sort": ["asc", "desc", "ASC", "random", ""],
    "limit": ["1", "3", "50", "1000", "1001", "0", "07", "-1", "x", ""],
    "cursor": ["", "garbage", "A" * 600],
    "carier": ["UA"],
    "": ["x"],
}
_ACCEPTS = [None, "application/json", "text/csv", "text/*;q=0.5, */*", "image/png", "*/*;q=0"]


@pytest.fixture(scope="module")
def apps(
    make_app: AppFactory, seeded_store: FlightStore
) -> Iterator[tuple[TestClient, TestClient]]:
    fast = make_app(seeded_store)
    slow = make_app(seeded_store)
    slow.user_middleware = [m for m in slow.user_middleware if cast(object, m.cls) is not FastReads]
    assert len(slow.user_middleware) == len(fast.user_middleware) - 1
    with TestClient(fast) as fast_client, TestClient(slow) as slow_client:
        yield fast_client, slow_client


def _same(apps: tuple[TestClient, TestClient], url: str, accept: str | None = None) -> None:
    headers = {} if accept is None else {"Accept": accept}
    fast, slow = (client.get(url, headers=headers) for client in apps)
    assert fast.status_code == slow.status_code, (url, fast.text, slow.text)
    assert fast.headers.multi_items() == slow.headers.multi_items(), url
    assert fast.content == slow.content, url


@st.composite
def _queries(draw: st.DrawFn) -> str:
    names = draw(st.lists(st.sampled_from(sorted(_VALUES)), max_size=5))
    pairs = [(name, draw(st.sampled_from(_VALUES[name]))) for name in names]
    return urlencode(pairs)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(query=_queries(), accept=st.sampled_from(_ACCEPTS))
def test_list_answers_match_the_route(
    apps: tuple[TestClient, TestClient], query: str, accept: str | None
) -> None:
    _same(apps, f"/v1/flights?{query}", accept)


def test_pages_followed_by_cursor_match_the_route(apps: tuple[TestClient, TestClient]) -> None:
    for start in ("limit=7", "carrier=UA&limit=2&sort=desc", "origin=EWR&limit=5&cursor=x"):
        url: str | None = f"/v1/flights?{start}"
        pages = 0
        while url is not None and pages < 6:
            _same(apps, url)
            response = apps[0].get(url)
            link = response.headers.get("link")
            url = None if link is None else link[1 : link.index(">")]
            pages += 1
            if url is not None:
                # A cursor reused with other filters, or tampered with, is the route's to refuse.
                _same(apps, url.replace("limit=", "min_dep_delay=0&limit="))
                _same(apps, url[:-3] + "AAA")


@pytest.mark.parametrize(
    "path",
    [
        "/v1/flights/{known}",
        "/v1/flights/{known}?x=1",
        "/v1/flights/{known}?",
        "/v1/flights/UA9999-EWR-20130101",
        "/v1/flights/ua1545-EWR-20130101",
        "/v1/flights/not-an-id",
        "/v1/flights/",
        "/v1/flights",
    ],
)
def test_item_answers_match_the_route(apps: tuple[TestClient, TestClient], path: str) -> None:
    known = apps[0].get("/v1/flights?limit=1").json()["data"][0]["flight_id"]
    _same(apps, path.format(known=known))


@pytest.mark.parametrize(
    ("query", "plain"),
    [
        ("", True),
        ("carrier=UA&destination=IAH&limit=50", True),
        ("departure_from=2013-01-01T06%3A00%3A00Z&departure_to=2013-01-08&sort=desc", True),
        ("status=arrived&min_dep_delay=-15&origin=JFK&limit=1000", True),
        ("limit=05", False),
        ("limit=1001", False),
        ("carrier=ua", False),
        ("carrier=UA&carrier=AA", False),
        ("carier=UA", False),
        ("carrier=", False),
        ("departure_from=2013-01-02&departure_to=2013-01-01", False),
        ("departure_from=2013-01-01T06:00:00", False),
    ],
)
def test_only_plain_queries_take_the_fast_path(query: str, plain: bool) -> None:
    assert (parse_list_query(query.encode()) is not None) is plain


def test_plain_reads_never_reach_the_router(
    make_app: AppFactory, seeded_store: FlightStore
) -> None:
    """In front of a router that fails every request: plain reads are answered, others not."""

    async def no_router(scope: Scope, receive: Receive, send: Send) -> None:
        raise LookupError(f"routed: {scope['path']}?{scope['query_string'].decode()}")

    routes = list(leaf_routes(make_app(seeded_store).router.routes))
    fast = FastReads(no_router, store=seeded_store, codec=CursorCodec(b"secret"), routes=routes)
    client = TestClient(fast)  # no lifespan: the stand-in router would refuse it too
    page = client.get("/v1/flights?carrier=UA&limit=2&sort=desc")
    assert page.status_code == 200
    assert [f["carrier"] for f in page.json()["data"]] == ["UA", "UA"]
    assert client.get(page.headers["link"][1:].partition(">")[0]).status_code == 200
    flight_id = page.json()["data"][0]["flight_id"]
    assert client.get(f"/v1/flights/{flight_id}").json()["flight_id"] == flight_id
    # A well-formed id that is not stored is still the fast path's answer: 404.
    assert client.get("/v1/flights/UA9999-EWR-20130101").status_code == 404
    for refused in ("/v1/flights?limit=0", "/v1/flights/x", f"/v1/flights/{flight_id}?a=1"):
        with pytest.raises(LookupError, match="routed"):
            client.get(refused)
