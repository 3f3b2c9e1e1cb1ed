"""Helpers of the security suite: settings, keys, apps and flight events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from fastapi import FastAPI
from hypothesis import assume
from hypothesis import strategies as st

from aeroflow.api.app import create_app
from aeroflow.api.auth import NewApiKey, new_api_key
from aeroflow.domain.events import FlightEvent, FlightStatus
from aeroflow.settings import Settings
from aeroflow.storage.port import AcceptedMessage, FlightStore, MessageMeta, WriteBatch

CURSOR_SECRET = "security-suite-cursor-secret"
WITH_DEPARTURE = {FlightStatus.DEPARTED, FlightStatus.ARRIVED, FlightStatus.DIVERTED}


def make_settings(**overrides: Any) -> Settings:
    """Test settings; ``_env_file=None`` so that a developer's .env cannot change them."""
    values: dict[str, Any] = {"environment": "test", "cursor_secret": CURSOR_SECRET}
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def make_keys(*names: str) -> tuple[list[NewApiKey], str]:
    """Fresh keys and the AEROFLOW_API_KEYS value that configures them."""
    keys = [new_api_key(name) for name in names]
    return keys, ",".join(key.config_line for key in keys)


def app_for(store: FlightStore, **overrides: Any) -> FastAPI:
    return create_app(make_settings(**overrides), store)


# --- flight events -------------------------------------------------------------------------


def _offsets() -> st.SearchStrategy[timezone]:
    # Real UTC offsets: -12:00 .. +14:00 in quarter hours.
    return st.integers(-48, 56).map(lambda q: timezone(timedelta(minutes=15 * q)))


_codes = st.from_regex(r"[A-Z]{3}", fullmatch=True)


@st.composite
def flight_events(draw: st.DrawFn) -> FlightEvent:
    """Any valid FlightEvent: every invariant of the domain model holds by construction."""
    departure = draw(
        st.datetimes(min_value=datetime(1951, 1, 1), max_value=datetime(2098, 12, 31))
    ).replace(tzinfo=draw(_offsets()))
    arrival = (departure + timedelta(minutes=draw(st.integers(1, 24 * 60)))).astimezone(
        draw(_offsets())
    )
    status = draw(st.sampled_from(list(FlightStatus)))
    actual_departure = actual_arrival = None
    if status in WITH_DEPARTURE:
        actual_departure = departure + timedelta(minutes=draw(st.integers(-24 * 60, 72 * 60)))
    if status is FlightStatus.ARRIVED or (status is FlightStatus.DIVERTED and draw(st.booleans())):
        actual_arrival = arrival + timedelta(minutes=draw(st.integers(-24 * 60, 72 * 60)))
        assert actual_departure is not None
        assume(actual_arrival > actual_departure)
    origin = draw(_codes)
    destination = draw(_codes.filter(lambda code: code != origin))
    return FlightEvent(
        carrier=draw(st.from_regex(r"[A-Z0-9]{2}", fullmatch=True)),
        flight_number=draw(st.integers(1, 9999)),
        origin=origin,
        destination=destination,
        scheduled_departure=departure,
        scheduled_arrival=arrival,
        status=status,
        actual_departure=actual_departure,
        actual_arrival=actual_arrival,
        tail_number=draw(st.none() | st.from_regex(r"[A-Z0-9-]{2,10}", fullmatch=True)),
        distance_miles=draw(st.integers(1, 20_000)),
        air_time_minutes=draw(st.none() | st.integers(1, 1440)),
        event_time=draw(
            st.datetimes(
                min_value=datetime(1951, 1, 1),
                max_value=datetime(2098, 12, 31),
                timezones=_offsets(),
            )
        ),
    )


def sample_events(count: int = 400) -> list[FlightEvent]:
    """A small deterministic set of arrived flights on two days, three carriers."""
    new_york = timezone(timedelta(hours=-5))
    events = []
    for i in range(count):
        departure = datetime(2013, 1, 1 + i % 2, 6 + i % 12, 5, tzinfo=new_york)
        actual = departure + timedelta(minutes=i % 40 - 5)
        events.append(
            FlightEvent(
                carrier=("UA", "AA", "B6")[i % 3],
                flight_number=100 + i,
                origin=("EWR", "JFK", "LGA")[i % 3],
                destination="IAH",
                scheduled_departure=departure,
                scheduled_arrival=departure + timedelta(hours=3),
                status=FlightStatus.ARRIVED,
                actual_departure=actual,
                actual_arrival=actual + timedelta(hours=3, minutes=i % 7),
                tail_number="N14228",
                distance_miles=1400,
                air_time_minutes=170,
                event_time=actual + timedelta(hours=4),
            )
        )
    return events


def seed_batch(events: list[FlightEvent]) -> WriteBatch:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return WriteBatch(
        accepted=[
            AcceptedMessage(
                meta=MessageMeta(message_id=f"security-{i}", publish_time=now),
                event=event,
                ingest_time=now,
            )
            for i, event in enumerate(events)
        ]
    )
