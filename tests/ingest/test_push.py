"""The push route served by a real uvicorn server, fed by the real PushPublisher."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from ingest_helpers import BearerToken, SwitchableStore, arrived_event, envelope, table_count
from prometheus_client import REGISTRY

from aeroflow.bootstrap import Role, build_app
from aeroflow.domain.events import FlightEvent
from aeroflow.ingest.auth import NoPushAuthentication, PushAuthenticator
from aeroflow.ingest.committer import GroupCommitter
from aeroflow.ingest.publisher import OutgoingMessage, PushPublisher, event_message
from aeroflow.ingest.push import PUSH_PATH, create_push_router
from aeroflow.ingest.samples import nycflights13_events
from aeroflow.ingest.wire import encode_event
from aeroflow.observability.logging import REQUEST_LOGGER
from aeroflow.settings import Settings
from aeroflow.storage.port import FlightStore
from loopback_server import serve

MAX_BODY = 1024 * 1024  # the Settings default


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "ingest.duckdb"


@pytest.fixture
def duck(db_path: Path) -> Iterator[SwitchableStore]:
    store = SwitchableStore(db_path)
    yield store
    store.close()


@contextmanager
def ingest_server(
    store: FlightStore,
    authenticator: PushAuthenticator | None = None,
    *,
    retry_after_seconds: int = 5,
) -> Iterator[str]:
    """A push endpoint like the composition root builds it; yields the push URL."""
    committer = GroupCommitter(store, max_batch=500, max_wait_seconds=0.005)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        committer.start()
        yield
        await asyncio.to_thread(committer.drain, 5)

    app = FastAPI(lifespan=lifespan)
    app.include_router(
        create_push_router(
            committer,
            authenticator or NoPushAuthentication(),
            max_body_bytes=MAX_BODY,
            retry_after_seconds=retry_after_seconds,
        )
    )
    with serve(app) as base_url:
        yield base_url + PUSH_PATH


def counter(outcome: str, reason: str = "none") -> float:
    value = REGISTRY.get_sample_value(
        "aeroflow_ingest_messages_total", {"outcome": outcome, "reason": reason}
    )
    return value or 0.0


@pytest.fixture(scope="module")
def sample_events() -> list[FlightEvent]:
    return list(nycflights13_events(limit=120))


def test_sample_events_are_stored_once_and_a_replay_adds_nothing(
    duck: SwitchableStore, db_path: Path, sample_events: list[FlightEvent]
) -> None:
    messages = [event_message(e) for e in sample_events]
    stored_before, duplicates_before = counter("stored"), counter("duplicate")
    progress: list[int] = []

    with ingest_server(duck) as url:
        publisher = PushPublisher(url, concurrency=16)
        first = asyncio.run(publisher.publish(messages, progress.append))
        replay = asyncio.run(publisher.publish(iter(messages)))

        # The current state is the last event of each flight, whatever the arrival order.
        last = {e.flight_id: e for e in sample_events}
        for flight_id, event in last.items():
            flight = duck.get_flight(flight_id)
            assert flight is not None
            assert flight.status is event.status
            assert flight.dep_delay_minutes == event.dep_delay_minutes
            assert flight.arr_delay_minutes == event.arr_delay_minutes

    assert (first.published, first.failed, first.retries) == (len(messages), 0, 0)
    assert sum(progress) == len(messages)
    assert (replay.published, replay.failed) == (len(messages), 0)
    assert counter("stored") - stored_before == len(messages)
    assert counter("duplicate") - duplicates_before == len(messages)
    duck.close()
    assert table_count(db_path, "flight_events") == len(messages)
    assert table_count(db_path, "flights") == 120


def test_oversized_bodies_get_413_and_the_server_keeps_serving(
    duck: SwitchableStore, db_path: Path
) -> None:
    ten_mb = b'{"message": {"data": "' + b"A" * (10 * 1024 * 1024) + b'"}}'

    def chunked() -> Iterator[bytes]:  # no Content-Length: the size is counted while reading
        for _ in range(4):
            yield b"B" * (512 * 1024)

    with ingest_server(duck) as url, httpx.Client(timeout=30) as client:
        for content in (ten_mb, chunked()):
            response = client.post(url, content=content)
            assert response.status_code == 413
            assert response.headers["content-type"] == "application/json"
            error = response.json()["error"]
            assert error["code"] == "payload_too_large"
            assert error["details"] == []
            assert str(MAX_BODY) in error["message"]

            healthy = client.post(url, content=envelope(encode_event(arrived_event())))
            assert healthy.status_code == 204

    duck.close()
    assert table_count(db_path, "flight_events") == 1


def test_not_an_envelope_is_400_and_poison_is_acked_and_kept(
    duck: SwitchableStore, db_path: Path
) -> None:
    with ingest_server(duck) as url, httpx.Client() as client:
        response = client.post(url, content=b'{"message": {"data": "e30="}}')
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_envelope"
        assert "messageId" in response.json()["error"]["message"]

        poison = client.post(url, content=envelope(b"\xff not an event", message_id="bad-1"))
        assert poison.status_code == 204
        assert poison.content == b""

    duck.close()
    assert table_count(db_path, "rejected_messages") == 1
    assert table_count(db_path, "flight_events") == 0


def test_authentication_comes_before_anything_else(duck: SwitchableStore, db_path: Path) -> None:
    auth = BearerToken()
    good = envelope(encode_event(arrived_event()))
    with ingest_server(duck, auth) as url, httpx.Client(timeout=30) as client:
        # Neither a huge body nor garbage is looked at before the caller is known.
        huge = client.post(url, content=b"x" * (2 * MAX_BODY))
        assert huge.status_code == 401
        assert huge.json()["error"]["code"] == "unauthenticated"
        garbage = client.post(url, content=b"x", headers={"Authorization": "Bearer other"})
        assert garbage.status_code == 403
        assert garbage.json()["error"]["code"] == "forbidden"
        ok = client.post(url, content=good, headers={"Authorization": "Bearer good"})
        assert ok.status_code == 204
    assert auth.calls == 3
    duck.close()
    assert table_count(db_path, "flight_events") == 1


def test_storage_outage_answers_503_and_the_publisher_retries(
    duck: SwitchableStore, db_path: Path, sample_events: list[FlightEvent]
) -> None:
    store = duck
    store.failures_left = 1
    messages = [event_message(e) for e in sample_events[:20]]
    with ingest_server(store, retry_after_seconds=1) as url:
        with httpx.Client() as client:
            response = client.post(url, content=envelope(encode_event(arrived_event())))
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert response.json()["error"]["code"] == "unavailable"

        store.failures_left = 1  # the first batch of the publisher's messages fails too
        started = time.monotonic()
        report = asyncio.run(
            PushPublisher(url, concurrency=4, backoff_initial_seconds=0.01).publish(messages)
        )
        elapsed = time.monotonic() - started

    assert (report.published, report.failed) == (20, 0)
    assert report.retries >= 1
    assert elapsed >= 1.0  # Retry-After was honoured
    duck.close()
    # The 503'd message was never acked and never stored; the retried ones were, once.
    assert table_count(db_path, "flight_events") == 20


def test_the_publisher_gives_up_loudly(
    duck: SwitchableStore, sample_events: list[FlightEvent], caplog: pytest.LogCaptureFixture
) -> None:
    messages = [event_message(e) for e in sample_events[:5]]
    store = duck
    store.failures_left = 10**6
    with ingest_server(store, retry_after_seconds=0) as url:
        wrong_path = asyncio.run(PushPublisher(url + "/nope", concurrency=2).publish(messages))
        outage = asyncio.run(
            PushPublisher(url, concurrency=2, max_retries=2, backoff_initial_seconds=0.001)
            .publish(messages)
        )  # fmt: skip

    assert (wrong_path.published, wrong_path.failed, wrong_path.retries) == (0, 5, 0)
    assert not wrong_path.ok
    assert "HTTP 404" in wrong_path.failures[0].reason
    assert (outage.published, outage.failed, outage.retries) == (0, 5, 10)
    assert "HTTP 503" in outage.failures[0].reason
    assert "after 3 attempts" in outage.failures[0].reason
    assert any("were not delivered" in r.message for r in caplog.records)


def test_unreachable_target_fails_after_retries() -> None:
    messages = [event_message(arrived_event())]
    publisher = PushPublisher(
        "http://127.0.0.1:9/pubsub/push", max_retries=1, backoff_initial_seconds=0.001
    )
    report = asyncio.run(publisher.publish(messages))
    assert (report.published, report.failed, report.retries) == (0, 1, 1)
    assert "ConnectionRefusedError" in report.failures[0].reason


def test_async_message_sources_are_supported(duck: SwitchableStore) -> None:
    async def messages() -> AsyncIterator[OutgoingMessage]:
        for number in range(1, 31):
            await asyncio.sleep(0)
            yield event_message(arrived_event(flight_number=number))

    with ingest_server(duck) as url:
        report = asyncio.run(PushPublisher(url, concurrency=8).publish(messages()))
    assert (report.published, report.failed) == (30, 0)
    assert report.failures == ()


# --- the fast path ahead of the app's middleware (what `aeroflow serve` runs) -----------------


def http_requests(status_class: str) -> float:
    value = REGISTRY.get_sample_value(
        "aeroflow_http_requests_total",
        {"route": PUSH_PATH, "method": "POST", "status_class": status_class},
    )
    return value or 0.0


@contextmanager
def composed_server(db_path: Path, **settings: Any) -> Iterator[str]:
    """``aeroflow serve``'s app, from the composition root, behind a real uvicorn."""
    app = build_app(Settings(duckdb_path=db_path, **settings), Role.SERVE)
    with serve(app) as base_url:
        yield base_url


def test_push_requests_take_the_fast_path_with_the_apps_headers_metrics_and_errors(
    db_path: Path,
) -> None:
    ok_before, bad_before = http_requests("2xx"), http_requests("4xx")
    with composed_server(db_path) as base_url, httpx.Client(base_url=base_url) as client:
        stored = client.post(PUSH_PATH, content=envelope(encode_event(arrived_event())))
        not_envelope = client.post(PUSH_PATH, content=b"[]")
        too_big = client.post(PUSH_PATH, content=b"x" * (MAX_BODY + 1))
        wrong_method = client.get(PUSH_PATH)
        flight = client.get("/v1/flights/UA1545-EWR-20130101")

    assert stored.status_code == 204
    assert stored.content == b""
    for response in (stored, not_envelope, too_big, wrong_method):
        # The headers the app's middleware gives every other response.
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"
    assert not_envelope.status_code == 400
    assert not_envelope.json()["error"]["code"] == "invalid_envelope"
    assert too_big.status_code == 413
    assert too_big.json() == {
        "error": {
            "code": "payload_too_large",
            "message": f"request body exceeds {MAX_BODY} bytes",
            "details": [],
        }
    }
    # Not POST: the app itself answers, in its error shape.
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["code"] == "method_not_allowed"
    assert flight.status_code == 200  # the read API sees what the fast path stored
    # Counted under the same series the app's metrics middleware uses for every route.
    assert http_requests("2xx") - ok_before == 1
    assert http_requests("4xx") - bad_before == 2
    assert table_count(db_path, "flight_events") == 1


@pytest.mark.parametrize("rate", [0.0, 1.0])
def test_access_log_samples_successes_and_keeps_every_error(
    db_path: Path, rate: float, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=REQUEST_LOGGER)
    with (
        composed_server(db_path, push_access_log_sample_rate=rate) as base_url,
        httpx.Client(base_url=base_url) as client,
    ):
        for number in range(1, 21):
            body = envelope(
                encode_event(arrived_event(flight_number=number)), message_id=f"m{number}"
            )
            assert client.post(PUSH_PATH, content=body).status_code == 204
        assert client.post(PUSH_PATH, content=b"{}").status_code == 400

    lines = [r for r in caplog.records if r.name == REQUEST_LOGGER and PUSH_PATH in r.getMessage()]
    statuses = [r.getMessage().rsplit(" ", 1)[1] for r in lines]
    assert statuses.count("400") == 1
    assert statuses.count("204") == (20 if rate == 1.0 else 0)
