"""GET /v1/stats/delays against an independent computation over the inserted data."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from aeroflow.domain.events import FlightEvent, FlightStatus

from .flightdata import Dataset

GROUP_KEYS: dict[str, Callable[[FlightEvent], str]] = {
    "carrier": lambda e: e.carrier,
    "origin": lambda e: e.origin,
    "destination": lambda e: e.destination,
    "month": lambda e: e.scheduled_departure_local.strftime("%Y-%m"),
    "weekday": lambda e: str(e.scheduled_departure_local.isoweekday()),
    "hour": lambda e: str(e.scheduled_departure_local.hour),
}
NUMERIC_GROUPS = {"weekday", "hour"}


def _percentile(values: list[int], q: float) -> float:
    """Continuous percentile with linear interpolation (numpy's default, PERCENTILE_CONT)."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _expected_stats(events: list[FlightEvent], group_by: str) -> list[dict[str, Any]]:
    groups: dict[str, list[FlightEvent]] = defaultdict(list)
    for event in events:
        groups[GROUP_KEYS[group_by](event)].append(event)
    numeric = group_by in NUMERIC_GROUPS
    rows = []
    for group in sorted(groups, key=lambda g: (int(g), "") if numeric else (0, g)):
        members = groups[group]
        delays = [e.dep_delay_minutes for e in members if e.dep_delay_minutes is not None]
        arrivals = [e.arr_delay_minutes for e in members if e.arr_delay_minutes is not None]
        rows.append(
            {
                "group": group,
                "flights": len(members),
                "cancelled": sum(e.status is FlightStatus.CANCELLED for e in members),
                "avg_dep_delay_minutes": sum(delays) / len(delays) if delays else None,
                "p50_dep_delay_minutes": _percentile(delays, 0.5) if delays else None,
                "p95_dep_delay_minutes": _percentile(delays, 0.95) if delays else None,
                "on_time_rate": (
                    sum(a <= 15 for a in arrivals) / len(arrivals) if arrivals else None
                ),
            }
        )
    return rows


def _assert_rows_equal(actual: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    assert [r["group"] for r in actual] == [r["group"] for r in expected]
    for got, want in zip(actual, expected, strict=True):
        assert set(got) == set(want)
        for key, value in want.items():
            if isinstance(value, float):
                assert got[key] == pytest.approx(value, rel=1e-9), (want["group"], key)
            else:
                assert got[key] == value, (want["group"], key)


@pytest.mark.parametrize("group_by", list(GROUP_KEYS))
def test_delay_stats_per_group_match_an_independent_computation(
    client: TestClient, dataset: Dataset, group_by: str
) -> None:
    response = client.get("/v1/stats/delays", params={"group_by": group_by})
    assert response.status_code == 200
    body = response.json()
    assert body["group_by"] == group_by
    expected = _expected_stats(list(dataset.current.values()), group_by)
    assert len(expected) > 1
    _assert_rows_equal(body["data"], expected)


def test_delay_stats_with_filters(client: TestClient, dataset: Dataset) -> None:
    start, end = datetime(2013, 1, 1, tzinfo=UTC), datetime(2013, 2, 1, tzinfo=UTC)
    params = {
        "group_by": "origin",
        "carrier": "UA",
        "departure_from": "2013-01-01",
        "departure_to": "2013-01-31",
    }
    events = [
        e
        for e in dataset.current.values()
        if e.carrier == "UA" and start <= e.scheduled_departure.astimezone(UTC) < end
    ]
    body = client.get("/v1/stats/delays", params=params).json()
    _assert_rows_equal(body["data"], _expected_stats(events, "origin"))


def test_groups_without_known_delays_have_null_figures(
    client: TestClient, dataset: Dataset
) -> None:
    params = {"group_by": "carrier", "status": "cancelled"}
    body = client.get("/v1/stats/delays", params=params).json()
    cancelled = [e for e in dataset.current.values() if e.status is FlightStatus.CANCELLED]
    assert body["data"], "the data set must contain cancelled flights"
    for row in body["data"]:
        assert row["cancelled"] == row["flights"]
        assert row["avg_dep_delay_minutes"] is None
        assert row["p50_dep_delay_minutes"] is None
        assert row["on_time_rate"] is None
    assert sum(r["flights"] for r in body["data"]) == len(cancelled)


def test_no_matching_flights_is_an_empty_list(client: TestClient) -> None:
    body = client.get("/v1/stats/delays", params={"group_by": "hour", "carrier": "ZZ"}).json()
    assert body == {"group_by": "hour", "data": []}


def test_group_by_is_required_and_checked(client: TestClient) -> None:
    assert client.get("/v1/stats/delays").status_code == 422
    assert client.get("/v1/stats/delays", params={"group_by": "tail_number"}).status_code == 422
