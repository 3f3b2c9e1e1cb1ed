"""PushPublisher on uvloop, whose transports are not asyncio.Transport subclasses."""

from __future__ import annotations

from itertools import islice

import uvloop
from starlette.types import Receive, Scope, Send

from aeroflow.ingest.publisher import PushPublisher
from aeroflow.ingest.samples import nycflights13_messages
from loopback_server import serve


class CountingEndpoint:
    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        self.bodies.append((await receive())["body"])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def test_publishes_on_a_uvloop_event_loop() -> None:
    endpoint = CountingEndpoint()
    messages = list(islice(nycflights13_messages(), 40))
    with serve(endpoint) as base_url:
        publisher = PushPublisher(f"{base_url}/pubsub/push", concurrency=8)
        report = uvloop.run(publisher.publish(messages))

    assert (report.published, report.failed, report.retries) == (40, 0, 0)
    assert len(endpoint.bodies) == 40
