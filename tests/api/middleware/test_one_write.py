"""A response written in one piece is byte for byte what uvicorn writes in two.

Two real uvicorn servers on 127.0.0.1 run the same ASGI app, one with uvicorn's httptools
protocol and one with ``OneWriteResponses`` mixed in (alone, and as the servers run it);
raw HTTP/1.x exchanges over sockets (bodies, HEAD, streaming, 304, a failing app,
``Expect: 100-continue``, pipelining, HTTP/1.0) must read the same bytes from both.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from aeroflow.api.middleware.one_write import OneWriteResponses
from aeroflow.cli import ServerHttpProtocol

_BODY = bytes(range(256)) * 40


class _OneWrite(OneWriteResponses):
    """The mixin over uvicorn's protocol alone."""


async def _app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    path = scope["path"]
    length = [(b"content-length", str(len(_BODY)).encode())]
    if path == "/page":
        await send({"type": "http.response.start", "status": 200, "headers": length})
        await send(
            {"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else _BODY}
        )
    elif path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"one,", "more_body": True})
        await send({"type": "http.response.body", "body": b"two", "more_body": False})
    elif path == "/unchanged":
        await send({"type": "http.response.start", "status": 304, "headers": [(b"etag", b'"x"')]})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/echo":
        received = b""
        while True:
            message = await receive()
            received += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = [(b"content-length", str(len(received)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": received})
    elif path == "/fails-after-start":
        await send({"type": "http.response.start", "status": 200, "headers": length})
        raise RuntimeError("the app fails mid-response")
    else:
        raise LookupError(path)  # uvicorn answers 500


@contextmanager
def _server(protocol: type[HttpToolsProtocol]) -> Iterator[int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        _app,
        http=protocol,
        log_config=None,
        access_log=False,
        server_header=False,
        date_header=False,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive(), "uvicorn exited during start-up"
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@pytest.fixture(scope="module", params=[_OneWrite, ServerHttpProtocol], ids=["mixin", "served"])
def ports(request: pytest.FixtureRequest) -> Iterator[tuple[int, int]]:
    with _server(request.param) as ours, _server(HttpToolsProtocol) as theirs:
        yield ours, theirs


def _exchange(port: int, request: bytes, pause_after: bytes | None = None) -> bytes:
    """Everything the server sends until it closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        if pause_after is None:
            conn.sendall(request)
        else:  # the head, then wait for 100 Continue before the body
            head, _, body = request.partition(pause_after)
            conn.sendall(head + pause_after)
            interim = conn.recv(65536)
            conn.sendall(body)
            return interim + _read_all(conn)
        return _read_all(conn)


def _read_all(conn: socket.socket) -> bytes:
    received = b""
    while chunk := conn.recv(65536):
        received += chunk
    return received


_CLOSE = b"Host: x\r\nConnection: close\r\n\r\n"
_EXCHANGES = {
    "page": b"GET /page HTTP/1.1\r\n" + _CLOSE,
    "head": b"HEAD /page HTTP/1.1\r\n" + _CLOSE,
    "stream": b"GET /stream HTTP/1.1\r\n" + _CLOSE,
    "not-modified": b"GET /unchanged HTTP/1.1\r\n" + _CLOSE,
    "app-error": b"GET /nowhere HTTP/1.1\r\n" + _CLOSE,
    "fails-after-start": b"GET /fails-after-start HTTP/1.1\r\nHost: x\r\n\r\n",
    "http-1.0": b"GET /page HTTP/1.0\r\n\r\n",
    "pipelined": b"GET /page HTTP/1.1\r\nHost: x\r\n\r\nHEAD /page HTTP/1.1\r\nHost: x\r\n\r\n"
    b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\nGET /page HTTP/1.1\r\n" + _CLOSE,
    "post": b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
    b"Connection: close\r\n\r\nhello",
}


@pytest.mark.parametrize("name", sorted(_EXCHANGES))
def test_the_same_bytes_reach_the_client(ports: tuple[int, int], name: str) -> None:
    ours, theirs = (_exchange(port, _EXCHANGES[name]) for port in ports)
    assert ours == theirs
    assert ours.startswith(b"HTTP/1.1 ")


def test_continue_is_sent_before_the_body_is_read(ports: tuple[int, int]) -> None:
    request = (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n"
        b"Connection: close\r\n\r\nhello"
    )
    ours, theirs = (_exchange(port, request, pause_after=b"\r\n\r\n") for port in ports)
    assert ours == theirs
    assert ours.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n")
