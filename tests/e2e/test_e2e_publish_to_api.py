"""Publish one uniquely marked flight event; the API must serve exactly that flight, and the
delay statistics must count it. The same test is CI's end-to-end test (local aeroflow, push and
Pub/Sub emulator) and the deploy pipeline's post-deploy test (new Cloud Run revision, real
topic); docs/testing.md explains why passing it means the API exposes the database.
"""

from __future__ import annotations

import json
import random
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aeroflow_e2e import (
    MARK_ATTRIBUTE,
    MARK_CARRIER,
    E2EFailure,
    Observation,
    Target,
    avro_json,
    flight_mismatches,
    marked_flight,
    poll,
    publish,
    stats_group,
    topic_schema,
)


@pytest.mark.slow
def test_a_published_flight_is_served_by_the_api(e2e_target: Target) -> None:
    flight = marked_flight()
    expected = flight.expected_api_fields()
    with httpx.Client(
        base_url=e2e_target.base_url, headers=dict(e2e_target.headers), timeout=30
    ) as api:
        ready = api.get("/readyz")
        assert ready.status_code == 200, f"/readyz: {ready.status_code} {ready.text[:300]}"
        # Unique by construction; if it were already there, seeing it would prove nothing.
        absent = api.get(f"/v1/flights/{flight.flight_id}")
        assert absent.status_code == 404, f"{flight.flight_id} exists before publishing"
        marked_before = _marked_flights(api)

        publish(
            e2e_target, avro_json(flight.event, topic_schema()), {MARK_ATTRIBUTE: flight.run_id}
        )

        def flight_served(seen: Observation) -> dict[str, Any] | None:
            response = api.get(f"/v1/flights/{flight.flight_id}")
            seen.description = f"HTTP {response.status_code} {response.text[:1000]}"
            if response.status_code != 200:
                return None
            body: dict[str, Any] = response.json()
            if mismatches := flight_mismatches(body, expected):
                seen.description += f"; differs: {'; '.join(mismatches)}"
                return None
            return body

        _poll(flight_served, e2e_target, f"flight {flight.flight_id} with the published values")

        def carrier_counted(seen: Observation) -> int | None:
            count = _marked_flights(api)
            seen.description = f"{count} {MARK_CARRIER} flights, {marked_before} before"
            return count if count == marked_before + 1 else None

        _poll(carrier_counted, e2e_target, f"the {MARK_CARRIER} flight count to grow by one")

        # The flight alone: its origin, carrier and departure day select nothing else.
        day = flight.departure_day.isoformat()
        params = {
            "group_by": "origin",
            "carrier": MARK_CARRIER,
            "departure_from": day,
            "departure_to": day,
        }
        response = api.get("/v1/stats/delays", params=params)
        assert response.status_code == 200, response.text[:500]
        row = stats_group(response.json(), flight.event["origin"])
        assert row is not None, f"no {flight.event['origin']} group in {response.text[:500]}"
        delay = float(flight.dep_delay_minutes)
        assert row["flights"] == 1
        assert row["cancelled"] == 0
        assert row["avg_dep_delay_minutes"] == pytest.approx(delay)
        assert row["p50_dep_delay_minutes"] == pytest.approx(delay)
        assert row["p95_dep_delay_minutes"] == pytest.approx(delay)
        assert flight.arr_delay_minutes > 15
        assert row["on_time_rate"] == pytest.approx(0.0)  # arrived more than 15 minutes late


def _marked_flights(api: httpx.Client) -> int:
    response = api.get("/v1/stats/delays", params={"group_by": "carrier", "carrier": MARK_CARRIER})
    assert response.status_code == 200, f"stats: {response.status_code} {response.text[:500]}"
    row = stats_group(response.json(), MARK_CARRIER)
    return 0 if row is None else int(row["flights"])


def _poll(check: Any, target: Target, what: str) -> Any:
    return poll(
        check, timeout=target.timeout_seconds, what=what, sleep=time.sleep, clock=time.monotonic
    )


# --- the program's own parts, without a server ----------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_marked_flight_is_valid_avro_json_for_the_topic(seed: int) -> None:
    flight = marked_flight(random.Random(seed), datetime(2026, 11, 30, 12, tzinfo=UTC))
    body = json.loads(avro_json(flight.event, topic_schema()))
    assert set(body) == {spec["name"] for spec in topic_schema()["fields"]}
    assert body["tail_number"] == {"string": flight.event["tail_number"]}
    assert body["air_time_minutes"] == {"long": flight.event["air_time_minutes"]}
    assert body["carrier"] == MARK_CARRIER
    assert flight.flight_id.startswith(f"{MARK_CARRIER}{flight.event['flight_number']:04d}-")
    assert flight.flight_id.endswith(flight.departure_day.strftime("%Y%m%d"))


def test_avro_json_refuses_what_the_topic_would() -> None:
    flight = marked_flight(random.Random(7))
    with pytest.raises(ValueError, match="does not know"):
        avro_json({**flight.event, "gate": "B12"}, topic_schema())
    with pytest.raises(ValueError, match="required"):
        avro_json({**flight.event, "carrier": None}, topic_schema())


def test_mismatches_name_the_field_and_both_values() -> None:
    flight = marked_flight(random.Random(3))
    expected = flight.expected_api_fields()
    body = {
        name: (value.isoformat().replace("+00:00", "Z") if isinstance(value, datetime) else value)
        for name, value in expected.items()
    }
    body["updated_at"] = "2026-11-30T12:00:00Z"
    assert flight_mismatches(body, expected) == []
    body["dep_delay_minutes"] = 0
    body["scheduled_departure"] = body["scheduled_departure"].replace("Z", "+00:00")
    assert flight_mismatches(body, expected) == [
        f"scheduled_departure: {body['scheduled_departure']!r} is not RFC 3339 UTC with Z",
        f"dep_delay_minutes: 0 != expected {flight.dep_delay_minutes}",
    ]


def test_poll_gives_up_with_the_last_observation() -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    def never(seen: Observation) -> None:
        seen.description = f"HTTP 404 at t={now[0]:.1f}"

    with pytest.raises(E2EFailure, match=r"flight X not seen within 3 s; last: HTTP 404 at t=3\.0"):
        poll(never, timeout=3, what="flight X", sleep=sleep, clock=lambda: now[0])
