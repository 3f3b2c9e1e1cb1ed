"""GET /v1/flights and /v1/flights/{id} against a real store seeded through write_batch."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from aeroflow.api.schemas import FlightOut
from aeroflow.domain.events import FlightEvent, FlightStatus

from .flightdata import Dataset, expected_json, sort_key

Predicate = Callable[[FlightEvent], bool]


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _ids(events: list[FlightEvent], *, descending: bool = False) -> list[str]:
    return [e.flight_id for e in sorted(events, key=sort_key, reverse=descending)]


def _get_all(client: TestClient, params: dict[str, Any]) -> list[dict[str, Any]]:
    response = client.get("/v1/flights", params={**params, "limit": 1000})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["next_cursor"] is None
    return list(body["data"])


def test_list_returns_every_current_flight_in_order_with_the_contract_shape(
    client: TestClient, dataset: Dataset
) -> None:
    rows = _get_all(client, {})
    assert [r["flight_id"] for r in rows] == _ids(list(dataset.current.values()))
    for row in rows:
        assert list(row) == list(FlightOut.model_fields)  # exactly the documented fields
        updated_at = row.pop("updated_at")
        assert updated_at.endswith("Z")
        assert row == expected_json(dataset.current[row["flight_id"]])


def test_current_state_is_the_latest_event_not_the_last_write(
    client: TestClient, dataset: Dataset
) -> None:
    # The data set writes an older "scheduled" event after the final event of some flights.
    stale = dataset.batches[1].accepted
    assert stale, "the data set must contain out-of-order events"
    for message in stale[:10]:
        response = client.get(f"/v1/flights/{message.event.flight_id}")
        assert response.status_code == 200
        final = dataset.current[message.event.flight_id]
        assert response.json()["status"] == final.status.value
        assert response.json()["event_time"] == expected_json(final)["event_time"]


# A few fixed instants for the time filters.
_JAN_2_UTC = datetime(2013, 1, 2, tzinfo=UTC)
_JAN_3_UTC = datetime(2013, 1, 3, tzinfo=UTC)

FILTER_CASES: list[tuple[str, dict[str, Any], Predicate]] = [
    ("carrier", {"carrier": "UA"}, lambda e: e.carrier == "UA"),
    ("carrier-digit", {"carrier": "9E"}, lambda e: e.carrier == "9E"),
    ("origin", {"origin": "JFK"}, lambda e: e.origin == "JFK"),
    ("destination", {"destination": "IAH"}, lambda e: e.destination == "IAH"),
    (
        "status",
        {"status": "cancelled"},
        lambda e: e.status is FlightStatus.CANCELLED,
    ),
    (
        "from-date",
        {"departure_from": "2013-01-02"},
        lambda e: _utc(e.scheduled_departure) >= _JAN_2_UTC,
    ),
    (
        "to-date-includes-the-whole-utc-day",
        {"departure_to": "2013-01-02"},
        lambda e: _utc(e.scheduled_departure) < _JAN_3_UTC,
    ),
    (
        "one-utc-day",
        {"departure_from": "2013-01-02", "departure_to": "2013-01-02"},
        lambda e: _JAN_2_UTC <= _utc(e.scheduled_departure) < _JAN_3_UTC,
    ),
    (
        "datetimes-with-offsets",
        {"departure_from": "2013-01-01T19:45:00-05:00", "departure_to": "2013-01-02T11:00:00Z"},
        lambda e: (
            datetime(2013, 1, 2, 0, 45, tzinfo=UTC)
            <= _utc(e.scheduled_departure)
            < datetime(2013, 1, 2, 11, 0, tzinfo=UTC)
        ),
    ),
    (
        "min-dep-delay",
        {"min_dep_delay": 15},
        lambda e: e.dep_delay_minutes is not None and e.dep_delay_minutes >= 15,
    ),
    (
        "negative-min-dep-delay",
        {"min_dep_delay": -3},
        lambda e: e.dep_delay_minutes is not None and e.dep_delay_minutes >= -3,
    ),
    (
        "all-combined",
        {
            "carrier": "UA",
            "origin": "EWR",
            "status": "arrived",
            "departure_from": "2013-01-01",
            "departure_to": "2013-03-31",
            "min_dep_delay": 0,
        },
        lambda e: (
            e.carrier == "UA"
            and e.origin == "EWR"
            and e.status is FlightStatus.ARRIVED
            and datetime(2013, 1, 1, tzinfo=UTC) <= _utc(e.scheduled_departure)
            and _utc(e.scheduled_departure) < datetime(2013, 4, 1, tzinfo=UTC)
            and e.dep_delay_minutes is not None
            and e.dep_delay_minutes >= 0
        ),
    ),
]


@pytest.mark.parametrize(
    ("params", "predicate"), [pytest.param(p, f, id=name) for name, p, f in FILTER_CASES]
)
def test_each_filter_matches_an_independent_evaluation(
    client: TestClient, dataset: Dataset, params: dict[str, Any], predicate: Predicate
) -> None:
    expected = [e for e in dataset.current.values() if predicate(e)]
    assert expected, "a filter case that matches nothing proves little"
    assert len(expected) < len(dataset.current), "a filter case that matches all proves little"
    assert [r["flight_id"] for r in _get_all(client, params)] == _ids(expected)


def test_bare_date_filters_use_the_utc_day_not_the_local_day(
    client: TestClient, dataset: Dataset
) -> None:
    # A 21:30 departure at UTC-5 on Jan 1 is on Jan 2 in UTC; its flight id says 20130101.
    late = [
        e
        for e in dataset.current.values()
        if e.scheduled_departure_local.date() == date(2013, 1, 1)
        and _utc(e.scheduled_departure).date() == date(2013, 1, 2)
    ]
    assert late, "the data set must have a flight whose local and UTC dates differ"
    jan_1 = {r["flight_id"] for r in _get_all(client, {"departure_to": "2013-01-01"})}
    jan_2 = {
        r["flight_id"]
        for r in _get_all(client, {"departure_from": "2013-01-02", "departure_to": "2013-01-02"})
    }
    for event in late:
        assert event.flight_id.endswith("-20130101")
        assert event.flight_id not in jan_1
        assert event.flight_id in jan_2


def _walk(
    client: TestClient, params: dict[str, Any], *, follow_link: bool = False
) -> tuple[list[str], int]:
    """Every page of a listing; returns the flight ids in order and the number of pages."""
    ids: list[str] = []
    pages = 0
    url: str | None = "/v1/flights"
    query: dict[str, Any] | None = params
    while url is not None:
        response = client.get(url, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        pages += 1
        assert len(body["data"]) <= params["limit"]
        ids.extend(row["flight_id"] for row in body["data"])
        cursor = body["next_cursor"]
        link = response.headers.get("link")
        if cursor is None:
            assert link is None
            url = None
            continue
        assert body["data"], "a page with a next cursor must not be empty"
        assert link is not None
        assert link.endswith('>; rel="next"')
        assert f"cursor={cursor}" in link
        if follow_link:
            url, query = link[1 : link.index(">")], None
        else:
            query = {**params, "cursor": cursor}
        assert pages <= 1000, "pagination does not terminate"
    return ids, pages


@pytest.mark.parametrize("sort", ["asc", "desc"])
@pytest.mark.parametrize("limit", [7, 50])
def test_pagination_walks_every_row_exactly_once(
    client: TestClient, dataset: Dataset, sort: str, limit: int
) -> None:
    ids, pages = _walk(client, {"sort": sort, "limit": limit})
    expected = _ids(list(dataset.current.values()), descending=sort == "desc")
    assert ids == expected
    assert len(set(ids)) == len(ids)
    assert pages == -(-len(expected) // limit)  # no empty trailing page


@pytest.mark.parametrize("sort", ["asc", "desc"])
def test_pagination_with_filters_by_following_the_link_header(
    client: TestClient, dataset: Dataset, sort: str
) -> None:
    params = {"carrier": "UA", "departure_from": "2013-01-01", "sort": sort, "limit": 4}
    ids, _ = _walk(client, params, follow_link=True)
    expected = [e for e in dataset.current.values() if e.carrier == "UA"]
    assert ids == _ids(expected, descending=sort == "desc")


def test_pagination_across_equal_departure_times_uses_the_flight_id_tiebreak(
    client: TestClient, dataset: Dataset
) -> None:
    by_departure: dict[datetime, int] = {}
    for event in dataset.current.values():
        key = _utc(event.scheduled_departure)
        by_departure[key] = by_departure.get(key, 0) + 1
    assert max(by_departure.values()) >= 3, "the data set must have departure-time ties"
    ids, _ = _walk(client, {"limit": 1})
    assert ids == _ids(list(dataset.current.values()))


def test_the_limit_may_change_between_pages(client: TestClient, dataset: Dataset) -> None:
    first = client.get("/v1/flights", params={"limit": 3}).json()
    rest = _get_all(client, {"cursor": first["next_cursor"]})
    ids = [r["flight_id"] for r in first["data"] + rest]
    assert ids == _ids(list(dataset.current.values()))


def test_default_limit_is_100(client: TestClient) -> None:
    body = client.get("/v1/flights").json()
    assert len(body["data"]) == 100
    assert body["next_cursor"] is not None


def test_get_one_flight(client: TestClient, dataset: Dataset) -> None:
    event = sorted(dataset.current.values(), key=sort_key)[17]
    response = client.get(f"/v1/flights/{event.flight_id}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    body.pop("updated_at")
    assert body == expected_json(event)


def test_unknown_flight_is_404_not_found(client: TestClient) -> None:
    response = client.get("/v1/flights/ZZ9999-XXX-20130101")
    assert response.status_code == 404
    assert response.json() == {
        "error": {
            "code": "not_found",
            "message": "flight ZZ9999-XXX-20130101 not found",
            "details": [],
        }
    }


# --- content negotiation -----------------------------------------------------------------


def test_csv_has_the_same_rows_as_json(client: TestClient) -> None:
    params = {"carrier": "B6", "limit": 20}
    as_json = client.get("/v1/flights", params=params).json()
    response = client.get("/v1/flights", params=params, headers={"Accept": "text/csv"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert "Accept" in response.headers["vary"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert list(rows[0]) == list(FlightOut.model_fields)
    assert len(rows) == len(as_json["data"])
    for csv_row, json_row in zip(rows, as_json["data"], strict=True):
        assert csv_row == {k: "" if v is None else str(v) for k, v in json_row.items()}
    if as_json["next_cursor"] is not None:  # CSV carries the next page in the Link header
        assert f"cursor={as_json['next_cursor']}" in response.headers["link"]


@pytest.mark.parametrize(
    ("accept", "media_type"),
    [
        ("application/json", "application/json"),
        ("*/*", "application/json"),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "application/json"),
        ("text/csv", "text/csv; charset=utf-8"),
        ("text/*", "text/csv; charset=utf-8"),
        ("application/json;q=0.4, text/csv;q=0.9", "text/csv; charset=utf-8"),
        ("text/csv;q=0.5, application/json", "application/json"),
        ("TEXT/CSV", "text/csv; charset=utf-8"),
    ],
)
def test_accept_header_negotiation(client: TestClient, accept: str, media_type: str) -> None:
    response = client.get("/v1/flights", params={"limit": 1}, headers={"Accept": accept})
    assert response.status_code == 200
    assert response.headers["content-type"] == media_type


@pytest.mark.parametrize(
    "accept",
    ["application/xml", "text/html", "image/png, text/plain", "application/json;q=0, text/csv;q=0"],
)
def test_unsupported_accept_is_406_with_the_error_body(client: TestClient, accept: str) -> None:
    response = client.get("/v1/flights", headers={"Accept": accept})
    assert response.status_code == 406
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["code"] == "not_acceptable"


def test_all_departure_times_of_the_data_set_are_utc_z(client: TestClient) -> None:
    # Guards the serialiser: an instant with another zone object must still end in Z.
    for row in _get_all(client, {"departure_to": "2013-01-05"}):
        for name in ("scheduled_departure", "scheduled_arrival", "event_time", "updated_at"):
            assert row[name].endswith("Z")
            parsed = datetime.fromisoformat(row[name])
            assert parsed.utcoffset() == timedelta(0)
        assert "+" not in row["scheduled_departure_local"]
