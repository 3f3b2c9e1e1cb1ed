"""Storage outage: the store's writes fail during ingestion -> 503, retries, full recovery.

The faults are real (see reliability_faults.py): the disk under the DuckDB file fills up, or
the server process may no longer write files. Push must answer 503 with Retry-After (not 2xx:
nothing is acknowledged that is not durable, and not 4xx: Pub/Sub must retry), aeroflow's own
PushPublisher must keep retrying, and once the disk is back everything must be stored exactly
once. Reads go on working throughout, as they do on a full disk.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from reliability_expected import Expected, api_mismatches, push_messages, sample_rows
from reliability_faults import DiskFull, FileSizeLimit, StorageFault
from reliability_harness import (
    AeroflowServer,
    PushMessage,
    TrackingSender,
    push_envelope,
    rfc3339,
    stored_counts,
    wait_for,
)

from aeroflow.ingest.publisher import OutgoingMessage, PublishReport, PushPublisher

pytestmark = pytest.mark.slow

CI_FLIGHTS = 600
HEALTHY_SHARE = 0.3
OUTAGE_SECONDS = 2.0


@pytest.fixture(params=["disk-full", "file-size-limit"])
def fault(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StorageFault]:
    made: StorageFault = (
        DiskFull(tmp_path / "tmpfs") if request.param == "disk-full" else FileSizeLimit(tmp_path)
    )
    yield made
    made.cleanup()


def _outgoing(message: PushMessage) -> OutgoingMessage:
    import base64

    return OutgoingMessage(
        data=base64.b64decode(message.data),
        attributes=message.attributes,
        ordering_key=message.ordering_key,
        message_id=message.message_id,
    )


def _post(server: AeroflowServer, message: PushMessage) -> httpx.Response:
    from datetime import UTC, datetime

    return httpx.post(
        server.push_url,
        content=push_envelope(message, rfc3339(datetime.now(UTC)), 1),
        headers={"content-type": "application/json"},
        timeout=30,
    )


def test_push_answers_503_during_an_outage_and_everything_is_stored_after_it(
    launch: Callable[..., AeroflowServer], fault: StorageFault, seed: int
) -> None:
    rows = sample_rows(CI_FLIGHTS, seed)
    expected = Expected.from_rows(rows)
    messages = push_messages(rows)
    random.Random(seed).shuffle(messages)
    healthy = int(len(messages) * HEALTHY_SHARE)

    server = launch(fault.database_dir() / "aeroflow.duckdb")
    before = TrackingSender(server.push_url, concurrency=16, seed=seed).run(messages[:healthy])
    assert before.answers() == {204: healthy}

    fault.inject(server.pid)
    # A full disk may still take a commit or two in the slack of the log's last page.
    for message in messages[healthy : healthy + 50]:
        probe = _post(server, message)
        if probe.status_code != 204:
            break
    assert probe.status_code == 503, probe.text
    assert probe.json()["error"]["code"] == "unavailable"
    assert int(probe.headers["Retry-After"]) > 0
    assert server.readyz() in (200, 503)  # answers either way; what it says: the test below

    reports: list[PublishReport] = []
    publisher = PushPublisher(server.push_url, concurrency=16, max_retries=12)
    rest = [_outgoing(m) for m in messages[healthy:]]
    thread = threading.Thread(target=lambda: reports.append(asyncio.run(publisher.publish(rest))))
    thread.start()
    wait_for(
        lambda: server.metric("aeroflow_ingest_messages_total", outcome="failed") >= 16,
        60,
        "the publisher's messages to fail to be written",
    )
    # Reads do not depend on the disk having room: the API keeps serving meanwhile.
    assert httpx.get(f"{server.base_url}/v1/flights?limit=5", timeout=30).status_code == 200
    threading.Event().wait(OUTAGE_SECONDS)
    assert thread.is_alive(), "the publisher finished during the outage: nothing was refused"

    fault.heal(server.pid)
    thread.join(timeout=180)
    assert not thread.is_alive()
    (report,) = reports
    assert (report.published, report.failed) == (len(rest), 0), report.failures
    assert report.retries > 0

    assert api_mismatches(server.base_url, expected) == []
    assert server.readyz() == 200
    server.stop()
    counts = stored_counts(server.db_path)
    assert counts.events == counts.distinct_event_ids == expected.events
    assert counts.flights == len(expected.flights)


def test_readyz_says_not_ready_while_writes_fail(
    launch: Callable[..., AeroflowServer], tmp_path: Path, seed: int
) -> None:
    fault = FileSizeLimit(tmp_path)
    rows = sample_rows(20, seed)
    messages = push_messages(rows)
    server = launch(fault.database_dir() / "aeroflow.duckdb")
    try:
        fault.inject(server.pid)
        assert _post(server, messages[0]).status_code == 503
        not_ready = server.readyz()
        fault.heal(server.pid)
        assert _post(server, messages[0]).status_code == 204
        assert server.readyz() == 200
    finally:
        fault.cleanup()
    assert not_ready == 503
