"""Request deadlines kept by one timer for all requests: each request still gets its own.

Driven through the middleware in-process (httpx's ASGI transport): the app below is the
slow part, sleeping on the event loop, so no store or server is needed to make it slow.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from aeroflow.api.middleware.timeout import RequestTimeoutMiddleware

DEADLINE = 0.2


async def _slow_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Sleeps as long as ``?sleep=`` says, then answers 200."""
    seconds = float(scope["query_string"].decode().partition("=")[2] or 0)
    await asyncio.sleep(seconds)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"done"})


def _client(app: RequestTimeoutMiddleware) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


def test_overlapping_requests_each_keep_their_own_deadline() -> None:
    app = RequestTimeoutMiddleware(_slow_app, seconds=DEADLINE)

    async def scenario() -> list[int]:
        async with _client(app) as client:
            calls = []
            # Staggered arrivals: slow ones past their deadline, quick ones well within it,
            # and a quick one arriving after the first deadline has fired.
            for sleep, start in ((30, 0.0), (0, 0.05), (30, 0.1), (0.01, 0.15), (0, 0.3)):
                calls.append(asyncio.create_task(_get_after(client, start, f"/v1/x?sleep={sleep}")))
            return [response.status_code for response in await asyncio.gather(*calls)]

    assert asyncio.run(scenario()) == [503, 200, 503, 200, 200]


async def _get_after(client: httpx.AsyncClient, delay: float, url: str) -> httpx.Response:
    await asyncio.sleep(delay)
    return await client.get(url)


def test_the_answer_past_the_deadline_is_the_error_shape_with_retry_after() -> None:
    app = RequestTimeoutMiddleware(_slow_app, seconds=DEADLINE)

    async def scenario() -> httpx.Response:
        async with _client(app) as client:
            return await client.get("/v1/x?sleep=30")

    response = asyncio.run(scenario())
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert json.loads(response.content)["error"]["code"] == "unavailable"


def test_paths_outside_the_prefix_have_no_deadline() -> None:
    app = RequestTimeoutMiddleware(_slow_app, seconds=0.05)

    async def scenario() -> int:
        async with _client(app) as client:
            return (await client.get("/healthz?sleep=0.2")).status_code

    assert asyncio.run(scenario()) == 200


def test_a_cancellation_from_elsewhere_stays_a_cancellation() -> None:
    app = RequestTimeoutMiddleware(_slow_app, seconds=DEADLINE)

    async def scenario() -> None:
        async with _client(app) as client:
            request = asyncio.create_task(client.get("/v1/x?sleep=30"))
            await asyncio.sleep(0.05)
            request.cancel()  # e.g. the server shutting down: not turned into a 503
            await request

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(scenario())


def test_the_same_app_keeps_deadlines_across_event_loops() -> None:
    """Test clients run each app in a loop of their own, one after another."""
    app = RequestTimeoutMiddleware(_slow_app, seconds=DEADLINE)

    async def scenario() -> list[int]:
        async with _client(app) as client:
            slow, quick = await asyncio.gather(
                client.get("/v1/x?sleep=30"), client.get("/v1/x?sleep=0")
            )
            return [slow.status_code, quick.status_code]

    assert asyncio.run(scenario()) == [503, 200]
    assert asyncio.run(scenario()) == [503, 200]
