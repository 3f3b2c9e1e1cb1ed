"""Routes read pages and flights inline from a non-blocking store, in a worker thread otherwise.

The store here is the real seeded store behind a wrapper that only changes what it says about
``reads_block`` and notes, per call, whether it ran on the event loop's thread: answers must
be the same either way, only the thread differs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from fastapi.testclient import TestClient

from aeroflow.api.reads import read
from aeroflow.storage.port import (
    DelayStats,
    Flight,
    FlightFilter,
    FlightPage,
    FlightQuery,
    FlightStore,
    GroupBy,
)
from store_wrapper import DelegatingStore

from .support import AppFactory


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class _ThreadNotingStore(DelegatingStore):
    def __init__(self, store: FlightStore, *, reads_block: bool) -> None:
        super().__init__(store)
        self._reads_block = reads_block
        self.on_loop: dict[str, bool] = {}

    @property
    def reads_block(self) -> bool:
        return self._reads_block

    def list_flights(self, query: FlightQuery) -> FlightPage:
        self.on_loop["list_flights"] = _on_event_loop()
        return super().list_flights(query)

    def get_flight(self, flight_id: str) -> Flight | None:
        self.on_loop["get_flight"] = _on_event_loop()
        return super().get_flight(flight_id)

    def delay_stats(self, group_by: GroupBy, flight_filter: FlightFilter) -> Sequence[DelayStats]:
        self.on_loop["delay_stats"] = _on_event_loop()
        return super().delay_stats(group_by, flight_filter)

    def ping(self) -> None:
        self.on_loop["ping"] = _on_event_loop()
        super().ping()


def _requests(client: TestClient) -> dict[str, Any]:
    page = client.get("/v1/flights", params={"limit": 2})
    assert page.status_code == 200, page.text
    flight_id = page.json()["data"][0]["flight_id"]
    return {
        "page": page.json(),
        "page_cursor": client.get(
            "/v1/flights", params={"limit": 2, "cursor": page.json()["next_cursor"]}
        ).json(),
        "flight": client.get(f"/v1/flights/{flight_id}").json(),
        "stats": client.get("/v1/stats/delays", params={"group_by": "carrier"}).json(),
        "ready": client.get("/readyz").json(),
    }


@pytest.mark.parametrize("reads_block", [True, False], ids=["blocking", "in-memory"])
def test_reads_run_inline_only_when_the_store_does_not_block(
    make_app: AppFactory, seeded_store: FlightStore, reads_block: bool
) -> None:
    store = _ThreadNotingStore(seeded_store, reads_block=reads_block)
    with TestClient(make_app(store)) as client:
        _requests(client)
    assert store.on_loop == {
        "list_flights": not reads_block,
        "get_flight": not reads_block,
        # Aggregates and the ping query the engine whatever serves pages: always a thread.
        "delay_stats": False,
        "ping": False,
    }


def test_answers_do_not_depend_on_where_the_store_runs(
    make_app: AppFactory, seeded_store: FlightStore
) -> None:
    answers = []
    for reads_block in (True, False):
        store = _ThreadNotingStore(seeded_store, reads_block=reads_block)
        with TestClient(make_app(store)) as client:
            answers.append(_requests(client))
    assert answers[0] == answers[1]


def test_read_passes_arguments_and_returns_the_result(seeded_store: FlightStore) -> None:
    for reads_block in (True, False):
        store = _ThreadNotingStore(seeded_store, reads_block=reads_block)
        page = asyncio.run(read(store, store.list_flights, FlightQuery(limit=3)))
        assert len(page.flights) == 3
        assert store.on_loop["list_flights"] is not reads_block
