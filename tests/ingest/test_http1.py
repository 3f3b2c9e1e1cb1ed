"""The publisher's HTTP/1.1 connection against a real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from aeroflow.ingest.http1 import Connection, HttpError, Target
from loopback_server import serve


class Recorder:
    """An ASGI app whose answer depends on the path; notes the client port of each request."""

    def __init__(self) -> None:
        self.client_ports: list[int] = []
        self.bodies: list[bytes] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        self.client_ports.append(scope["client"][1])
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.bodies.append(body)
        path = scope["path"]
        if path == "/slow":
            await asyncio.sleep(2)
        if path == "/chunked":  # no Content-Length: uvicorn sends it chunked
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"first,", "more_body": True})
            await send({"type": "http.response.body", "body": b"second"})
            return
        status, headers, content = 204, [], b""
        if path == "/retry":
            status, content = 503, b'{"error": "later"}'
            headers = [(b"retry-after", b"7"), (b"content-type", b"application/json")]
        if path == "/close":
            headers = [(b"connection", b"close")]
        headers.append((b"content-length", str(len(content)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, Recorder]]:
    recorder = Recorder()
    with serve(recorder) as base_url:  # type: ignore[arg-type]
        yield base_url, recorder


def post_all(url: str, bodies: list[bytes]) -> list[tuple[int, dict[str, str], bytes]]:
    """POST the bodies one after another over one connection, reopening it when closed."""

    async def run() -> list[tuple[int, dict[str, str], bytes]]:
        target = Target.parse(url, {"content-type": "application/json"})
        connection = await Connection.open(target)
        answers = []
        for body in bodies:
            if connection.closed:
                connection = await Connection.open(target)
            response = await connection.post(target, body)
            answers.append((response.status, response.headers, response.body))
        connection.close()
        return answers

    return asyncio.run(run())


def test_requests_share_one_kept_alive_connection(server: tuple[str, Recorder]) -> None:
    base_url, recorder = server
    before = len(recorder.client_ports)
    answers = post_all(f"{base_url}/ok", [b'{"n": 1}', b'{"n": 2}', b"{}" * 5000])
    assert [status for status, _, _ in answers] == [204, 204, 204]
    assert recorder.bodies[before:] == [b'{"n": 1}', b'{"n": 2}', b"{}" * 5000]
    assert len(set(recorder.client_ports[before:])) == 1


def test_chunked_bodies_and_headers_are_read(server: tuple[str, Recorder]) -> None:
    base_url, _ = server
    status, _, body = post_all(f"{base_url}/chunked", [b"{}"])[0]
    assert (status, body) == (200, b"first,second")
    retry = post_all(f"{base_url}/retry", [b"{}"])[0]
    headers = {"retry-after": "7", "content-type": "application/json"}
    assert retry == (503, headers, b'{"error": "later"}')


def test_a_connection_the_server_closes_is_marked_closed(server: tuple[str, Recorder]) -> None:
    base_url, recorder = server
    before = len(recorder.client_ports)
    answers = post_all(f"{base_url}/close", [b"{}", b"{}"])
    assert [status for status, _, _ in answers] == [204, 204]
    # The server said "Connection: close": the second request needed a new connection.
    assert len(set(recorder.client_ports[before:])) == 2


def test_failures_surface_as_exceptions() -> None:
    async def refused() -> None:
        await Connection.open(Target.parse("http://127.0.0.1:9/x", {}))

    with pytest.raises(OSError, match="Connect call failed"):
        asyncio.run(refused())
    with pytest.raises(ValueError, match="not an http"):
        Target.parse("ftp://127.0.0.1/x", {})
    with pytest.raises(ValueError, match="line breaks"):
        Target.parse("http://127.0.0.1/x", {"x-evil": "a\r\nb: c"})


def test_a_timed_out_exchange_closes_its_connection(server: tuple[str, Recorder]) -> None:
    base_url, _ = server

    async def run() -> Connection:
        target = Target.parse(f"{base_url}/slow", {})
        connection = await Connection.open(target)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await connection.post(target, b"{}")
        return connection

    connection = asyncio.run(run())
    assert connection.closed  # its late answer must never be taken for the next request's

    async def reuse() -> None:
        with pytest.raises(HttpError):
            await connection.post(Target.parse(f"{base_url}/ok", {}), b"{}")

    asyncio.run(reuse())
