"""Step 4 of the emulator demo: publish sample events to the topic, then wait until the API
shows them, with a progress display.

Publishing goes through ``PubSubPublisher.from_settings`` (the client finds the emulator through
``PUBSUB_EMULATOR_HOST``). Pub/Sub then pushes every message to the server's ``/pubsub/push``.
Two things are watched on the running server, once a second:

* its ingest counter on ``/metrics`` (messages stored, or found stored already): every event
  pushed and written;
* the totals of ``/v1/stats/delays?group_by=carrier``: every flight visible through the API.

Loading is done when both reach the sample's counts. When neither moves for ``STALL_SECONDS``
the demo gives up and points at the logs (nothing is lost: the messages wait in the emulator).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import httpx
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from aeroflow.ingest.publisher import (
    OutgoingMessage,
    ProgressCallback,
    PublishReport,
    event_message,
)
from aeroflow.ingest.pubsub_publisher import PubSubPublisher
from aeroflow.ingest.samples import nycflights13_events
from aeroflow.settings import Settings

STALL_SECONDS: Final = 120.0
POLL_SECONDS: Final = 1.0
SAMPLE_ROWS: Final = 336_776
# What the ingest counter calls a message that needs no redelivery.
_HANDLED_OUTCOMES: Final = frozenset({"stored", "duplicate", "rejected"})


class LoadError(RuntimeError):
    """Loading did not finish; the message says what was seen last."""


@dataclass(frozen=True, slots=True)
class LoadResult:
    events: int
    flights: int
    seconds: float  # from the first publish to everything visible
    example_carrier: str
    example_flight_id: str


def load_sample(
    settings: Settings,
    *,
    base_url: str,
    limit: int,
    console: Console,
    server_alive: Callable[[], bool],
) -> LoadResult:
    """Publish the events of the first ``limit`` nycflights13 rows and wait until the server
    at ``base_url`` has stored them all and its API shows every flight."""
    events = list(nycflights13_events(limit))
    messages = [event_message(event) for event in events]
    flights = len({m.ordering_key for m in messages})
    console.print(
        "The Pub/Sub emulator pushes at most two messages at a time per subscription, and each"
        " push waits for its write to the BigQuery emulator (0.3-0.4 s): expect 2-5 events/s"
        " here (Pub/Sub keeps hundreds of pushes in flight). So this publishes the"
        f" first {limit:,} of the sample's {SAMPLE_ROWS:,} rows ({len(messages):,} events); the"
        " whole sample would take more than a day. --limit changes it"
        " (make demo-emulators DEMO_ARGS='--limit 500').",
        soft_wrap=True,
    )
    started = time.monotonic()
    with Progress(
        TextColumn("{task.description:<30}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as progress:
        published = progress.add_task("published to the topic", total=len(messages))
        stored = progress.add_task("pushed and stored (events)", total=len(messages))
        visible = progress.add_task("visible in the API (flights)", total=flights)
        report = asyncio.run(_publish(settings, messages, lambda n: progress.advance(published, n)))
        if report.failed:
            reasons = "; ".join(f.reason for f in report.failures[:3])
            raise LoadError(f"{report.failed} messages were not published: {reasons}")
        _wait_until_visible(
            base_url,
            progress,
            (stored, len(messages)),
            (visible, flights),
            server_alive,
        )
    return LoadResult(
        events=len(messages),
        flights=flights,
        seconds=time.monotonic() - started,
        example_carrier=events[0].carrier,
        example_flight_id=events[0].flight_id,
    )


async def _publish(
    settings: Settings, messages: Sequence[OutgoingMessage], progress: ProgressCallback
) -> PublishReport:
    publisher = PubSubPublisher.from_settings(settings)
    try:
        return await publisher.publish(messages, progress)
    finally:
        publisher.close()


def _wait_until_visible(
    base_url: str,
    progress: Progress,
    stored: tuple[TaskID, int],
    visible: tuple[TaskID, int],
    server_alive: Callable[[], bool],
) -> None:
    (stored_task, events), (visible_task, flights) = stored, visible
    last_seen = (-1, -1)
    last_change = time.monotonic()
    with httpx.Client(base_url=base_url, timeout=10.0, trust_env=False) as client:
        while True:
            if not server_alive():
                raise LoadError("aeroflow serve exited while loading")
            seen = (_handled_messages(client), _flights_shown(client))
            progress.update(stored_task, completed=min(seen[0], events))
            progress.update(visible_task, completed=seen[1])
            if seen[0] >= events and seen[1] >= flights:
                return
            now = time.monotonic()
            if seen != last_seen:
                last_seen, last_change = seen, now
            elif now - last_change > STALL_SECONDS:
                raise LoadError(
                    f"nothing moved for {STALL_SECONDS:.0f} s: {seen[0]:,} of {events:,} events"
                    f" stored, {seen[1]:,} of {flights:,} flights visible"
                )
            time.sleep(POLL_SECONDS)


def _handled_messages(client: httpx.Client) -> int:
    """Messages the server's ingest has stored (or found stored, or kept as rejected)."""
    try:
        response = client.get("/metrics")
    except httpx.HTTPError:
        return -1
    if response.status_code != 200:
        return -1
    total = 0.0
    for family in text_string_to_metric_families(response.text):
        if family.name != "aeroflow_ingest_messages":
            continue
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.labels.get("outcome") in _HANDLED_OUTCOMES:
                total += sample.value
    return int(total)


def _flights_shown(client: httpx.Client) -> int:
    """The sum of ``flights`` over the carriers of the delay statistics."""
    try:
        response = client.get("/v1/stats/delays", params={"group_by": "carrier"})
    except httpx.HTTPError:
        return -1
    if response.status_code != 200:
        return -1
    return sum(int(row["flights"]) for row in response.json()["data"])
