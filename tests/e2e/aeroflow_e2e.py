"""The post-deploy end-to-end check, as a library the one e2e test drives.

It treats aeroflow as a black box: it knows the documented contracts (the Pub/Sub topic schema
in ``infra/terraform/schemas/pubsub/flight_event.avsc``, the push envelope Pub/Sub sends, the
HTTP API's JSON) and nothing of aeroflow's Python code, so the same program can be pointed at a
local process or at a Cloud Run revision. Configuration, from the environment:

``AEROFLOW_E2E_BASE_URL``
    Base URL of the API, e.g. a Cloud Run revision's tag URL. Absent: the test starts a local
    ``aeroflow serve`` itself.
``AEROFLOW_E2E_PUBLISH``
    ``push:<url>`` posts a Pub/Sub push envelope to aeroflow's push endpoint;
    ``pubsub:projects/<p>/topics/<t>`` publishes with google-cloud-pubsub's PublisherClient
    (Application Default Credentials, or the emulator when ``PUBSUB_EMULATOR_HOST`` is set).
``AEROFLOW_E2E_API_KEY`` (+ ``AEROFLOW_E2E_API_KEY_HEADER``, default ``X-API-Key``)
    API key for an API behind keys. ``AEROFLOW_E2E_BEARER_TOKEN``: ID token for an IAM-only one.
``AEROFLOW_E2E_TIMEOUT_SECONDS``
    How long to wait for the flight to appear (default 120).
"""

from __future__ import annotations

import base64
import json
import os
import random
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any, Final, TypeVar
from unittest import mock

import httpx

ROOT: Final = Path(__file__).resolve().parents[2]
TOPIC_SCHEMA: Final = ROOT / "infra" / "terraform" / "schemas" / "pubsub" / "flight_event.avsc"

# "ZZ" is not an airline anyone flies; with a date seventy years out and random numbers, a
# marked flight cannot collide with real data or with an earlier run.
MARK_CARRIER: Final = "ZZ"
MARK_ATTRIBUTE: Final = "aeroflow_e2e_run"
DEFAULT_TIMEOUT_SECONDS: Final = 120.0
POLL_INTERVAL_SECONDS: Final = 0.5

T = TypeVar("T")


class E2EFailure(AssertionError):
    """The deployment did not do what it must; the message says what was seen last."""


@dataclass(frozen=True)
class Target:
    base_url: str
    publish: str  # "push:<url>" or "pubsub:projects/<p>/topics/<t>"
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    emulator_host: str | None = None  # a local Pub/Sub emulator for the pubsub: path

    def __post_init__(self) -> None:
        if not self.publish.startswith(("push:", "pubsub:projects/")):
            raise ValueError(
                f"AEROFLOW_E2E_PUBLISH must be push:<url> or pubsub:projects/...: {self.publish!r}"
            )


def target_from_env(env: Mapping[str, str] = os.environ) -> Target | None:
    base_url = env.get("AEROFLOW_E2E_BASE_URL", "").strip()
    if not base_url:
        return None
    publish = env.get("AEROFLOW_E2E_PUBLISH", "").strip()
    if not publish:
        raise ValueError("AEROFLOW_E2E_BASE_URL is set but AEROFLOW_E2E_PUBLISH is not")
    return Target(
        base_url=base_url.rstrip("/"),
        publish=publish,
        headers=auth_headers(env),
        timeout_seconds=float(env.get("AEROFLOW_E2E_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS)),
    )


def auth_headers(env: Mapping[str, str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    if key := env.get("AEROFLOW_E2E_API_KEY"):
        headers[env.get("AEROFLOW_E2E_API_KEY_HEADER") or "X-API-Key"] = key
    if token := env.get("AEROFLOW_E2E_BEARER_TOKEN"):
        headers["Authorization"] = f"Bearer {token}"
    return headers


# --- the marked flight -----------------------------------------------------------------------


@dataclass(frozen=True)
class MarkedFlight:
    run_id: str
    event: dict[str, Any]  # FlightEvent fields as JSON values
    flight_id: str
    departure_day: date
    dep_delay_minutes: int
    arr_delay_minutes: int

    def expected_api_fields(self) -> dict[str, Any]:
        """The Flight the API must return, with datetimes as aware or naive datetimes."""
        e = self.event
        return {
            "flight_id": self.flight_id,
            "carrier": e["carrier"],
            "flight_number": e["flight_number"],
            "origin": e["origin"],
            "destination": e["destination"],
            "scheduled_departure": _utc(e["scheduled_departure"]),
            "scheduled_arrival": _utc(e["scheduled_arrival"]),
            "scheduled_departure_local": datetime.fromisoformat(e["scheduled_departure"]).replace(
                tzinfo=None
            ),
            "status": e["status"],
            "actual_departure": _utc(e["actual_departure"]),
            "actual_arrival": _utc(e["actual_arrival"]),
            "dep_delay_minutes": self.dep_delay_minutes,
            "arr_delay_minutes": self.arr_delay_minutes,
            "tail_number": e["tail_number"],
            "distance_miles": e["distance_miles"],
            "air_time_minutes": e["air_time_minutes"],
            "event_time": _utc(e["event_time"]),
        }


def marked_flight(rng: random.Random | None = None, now: datetime | None = None) -> MarkedFlight:
    """An arrived flight, late enough to count as not on time (> 15 minutes)."""
    rng = rng or random.SystemRandom()
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    day = date(2090, 1, 1) + timedelta(days=rng.randrange(3650))
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    origin = "Q" + "".join(rng.choice(letters) for _ in range(2))
    destination = "Z" + "".join(rng.choice(letters) for _ in range(2))
    number = rng.randint(1, 9999)
    local = timezone(timedelta(hours=-5))  # the origin's offset; the flight id uses its date
    scheduled_departure = datetime.combine(day, time(10, 15), local)
    scheduled_arrival = scheduled_departure + timedelta(minutes=185)
    dep_delay = rng.randint(30, 90)
    arr_delay = dep_delay - rng.randint(0, 10)
    actual_departure = scheduled_departure + timedelta(minutes=dep_delay)
    actual_arrival = scheduled_arrival + timedelta(minutes=arr_delay)
    event = {
        "carrier": MARK_CARRIER,
        "flight_number": number,
        "origin": origin,
        "destination": destination,
        "scheduled_departure": scheduled_departure.isoformat(),
        "scheduled_arrival": scheduled_arrival.isoformat(),
        "status": "arrived",
        "actual_departure": actual_departure.isoformat(),
        "actual_arrival": actual_arrival.isoformat(),
        "tail_number": "E2E" + "".join(rng.choice("0123456789") for _ in range(4)),
        "distance_miles": 1000 + rng.randrange(1000),
        "air_time_minutes": 160 + rng.randrange(20),
        "event_time": now.isoformat(),
    }
    return MarkedFlight(
        run_id=uuid.uuid4().hex,
        event=event,
        # The documented id: carrier, 4-digit number, origin, local departure date.
        flight_id=f"{MARK_CARRIER}{number:04d}-{origin}-{day:%Y%m%d}",
        departure_day=day,
        dep_delay_minutes=dep_delay,
        arr_delay_minutes=arr_delay,
    )


def _utc(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value).astimezone(UTC)


# --- the wire format of the topic ------------------------------------------------------------


def topic_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(TOPIC_SCHEMA.read_text(encoding="utf-8"))
    return schema


def avro_json(event: Mapping[str, Any], schema: Mapping[str, Any]) -> bytes:
    """Avro's JSON encoding of ``event``, which a topic with this schema accepts: every field
    present, a non-null union value wrapped in its branch name (``{"string": "N1"}``)."""
    body: dict[str, Any] = {}
    for spec in schema["fields"]:
        name, kind = spec["name"], spec["type"]
        value = event.get(name)
        if isinstance(kind, list):
            branches = [branch for branch in kind if branch != "null"]
            if len(branches) != 1:
                raise ValueError(f"{name}: only [null, T] unions are expected, not {kind}")
            body[name] = None if value is None else {branches[0]: value}
        elif value is None:
            raise ValueError(f"{name} is required by the topic schema")
        else:
            body[name] = value
    unknown = set(event) - set(body)
    if unknown:
        raise ValueError(f"fields the topic schema does not know: {sorted(unknown)}")
    return json.dumps(body, separators=(",", ":")).encode()


# --- publishing ------------------------------------------------------------------------------


def publish(target: Target, data: bytes, attributes: Mapping[str, str]) -> str:
    """Publish one message the way ``target.publish`` says; returns its message id."""
    kind, _, where = target.publish.partition(":")
    if kind == "push":
        return _post_push_envelope(where, data, attributes, target.headers)
    return _publish_to_topic(where, data, attributes, target.emulator_host)


def _post_push_envelope(
    url: str, data: bytes, attributes: Mapping[str, str], headers: Mapping[str, str]
) -> str:
    message_id = str(uuid.uuid4())
    published = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    # What a Pub/Sub push subscription POSTs (both spellings of id and time, as Google sends).
    envelope = {
        "message": {
            "data": base64.b64encode(data).decode(),
            "attributes": dict(attributes),
            "messageId": message_id,
            "message_id": message_id,
            "publishTime": published,
            "publish_time": published,
        },
        "subscription": "projects/aeroflow-e2e/subscriptions/e2e-push",
    }
    response = httpx.post(url, json=envelope, headers=dict(headers), timeout=30)
    if response.status_code != 204:
        raise E2EFailure(
            f"push endpoint {url} answered {response.status_code}, not 204: {response.text[:500]}"
        )
    return message_id


def _publish_to_topic(
    topic: str, data: bytes, attributes: Mapping[str, str], emulator_host: str | None
) -> str:
    from google.cloud import pubsub_v1

    with _emulator(emulator_host):
        publisher = pubsub_v1.PublisherClient()
    try:
        future = publisher.publish(topic, data, **attributes)
        return str(future.result(timeout=60))
    finally:
        publisher.stop()


@contextmanager
def _emulator(host: str | None) -> Iterator[None]:
    # The client picks the emulator up from the environment while it is built; scoping the
    # variable to construction keeps it away from every other test in the session.
    if host is None:
        yield
        return
    with mock.patch.dict(os.environ, {"PUBSUB_EMULATOR_HOST": host}):
        yield


# --- reading it back -------------------------------------------------------------------------


@dataclass
class Observation:
    """The last thing seen, for a failure message that shows what the API actually said."""

    description: str = "nothing yet"


def poll(
    check: Callable[[Observation], T | None],
    *,
    timeout: float,
    what: str,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> T:
    """Call ``check`` until it returns a value or ``timeout`` seconds have passed."""
    seen = Observation()
    deadline = clock() + timeout
    while True:
        result = check(seen)
        if result is not None:
            return result
        if clock() >= deadline:
            raise E2EFailure(f"{what} not seen within {timeout:.0f} s; last: {seen.description}")
        sleep(POLL_INTERVAL_SECONDS)


def flight_mismatches(body: Mapping[str, Any], expected: Mapping[str, Any]) -> list[str]:
    """Differences between the API's Flight JSON and the expected values."""
    problems = []
    for name, want in expected.items():
        if name not in body:
            problems.append(f"{name} missing")
            continue
        got = body[name]
        if isinstance(want, datetime) and got is not None:
            try:
                got = _parse_api_time(got, aware=want.tzinfo is not None)
            except ValueError as error:
                problems.append(f"{name}: {error}")
                continue
        if got != want:
            problems.append(f"{name}: {body[name]!r} != expected {want!r}")
    if not isinstance(body.get("updated_at"), str):
        problems.append(f"updated_at: {body.get('updated_at')!r} is not a timestamp")
    return problems


def _parse_api_time(value: object, *, aware: bool) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a string")
    parsed = datetime.fromisoformat(value)
    if aware and not value.endswith("Z"):
        raise ValueError(f"{value!r} is not RFC 3339 UTC with Z")
    if not aware and parsed.tzinfo is not None:
        raise ValueError(f"{value!r} should carry no offset")
    return parsed


def stats_group(body: Mapping[str, Any], group: str) -> dict[str, Any] | None:
    for row in body.get("data", []):
        if isinstance(row, dict) and row.get("group") == group:
            return row
    return None
