"""A minimal HTTP/1.1 client connection for PushPublisher: POST small bodies, keep-alive.

Why not aiohttp or httpx: the local push transport sends one request per message, tens of
thousands per second from one process, and the general clients' per-request bookkeeping
dominated the publisher. Measured here against a trivial server, 256 requests in flight:
aiohttp ~115 µs of client CPU per request, this ~15 µs (httpx ~3 ms). Responses are parsed by
httptools (llhttp, the parser uvicorn uses), so framing is exact: Content-Length, chunked,
keep-alive and ``Connection: close`` are all honoured.

One request at a time per connection (no pipelining); concurrency comes from many
connections, one per publishing task.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from typing import Final, cast
from urllib.parse import urlsplit

import httptools

_KEPT_HEADERS: Final = frozenset({b"retry-after", b"content-type"})
_MAX_RESPONSE_BODY: Final = 64 * 1024  # push answers are tiny; do not buffer a runaway one


class HttpError(OSError):
    """The connection failed or the server's answer could not be parsed."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: dict[str, str]  # lower-case names; only the few the publisher reads
    body: bytes


@dataclass(frozen=True, slots=True)
class Target:
    """Where to POST: parsed once, shared by all connections."""

    host: str
    port: int
    path: bytes
    tls: ssl.SSLContext | None
    head: bytes  # request line and fixed headers, up to the Content-Length value

    @classmethod
    def parse(cls, url: str, headers: dict[str, str]) -> Target:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        tls = ssl.create_default_context() if parts.scheme == "https" else None
        port = parts.port or (443 if tls else 80)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host_header = parts.netloc.rsplit("@", 1)[-1]
        lines = [f"POST {path} HTTP/1.1", f"host: {host_header}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        for line in lines:
            if "\r" in line or "\n" in line:
                raise ValueError("header names and values must not contain line breaks")
        head = ("\r\n".join(lines) + "\r\ncontent-length: ").encode("latin-1")
        return cls(parts.hostname, port, path.encode(), tls, head)


class Connection(asyncio.Protocol):
    """One keep-alive connection; ``post`` one request at a time."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[Response] | None = None
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._body_size = 0
        self._keep_alive = True
        self.closed = False
        # Loop time the request now waiting for its answer was sent; None while idle. A
        # caller's watchdog reads it (see ``abort``): cheaper than a timer per request.
        self.exchange_started: float | None = None

    @classmethod
    async def open(cls, target: Target) -> Connection:
        _, connection = await asyncio.get_running_loop().create_connection(
            cls,
            target.host,
            target.port,
            ssl=target.tls,
            server_hostname=target.host if target.tls else None,
        )
        return connection

    async def post(self, target: Target, body: bytes) -> Response:
        """Send one request and wait for its response (bound the wait with asyncio.timeout)."""
        if self._transport is None or self.closed:
            raise HttpError("connection is closed")
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Response] = loop.create_future()
        self._waiter = waiter
        self._transport.write(b"%s%d\r\n\r\n%s" % (target.head, len(body), body))
        self.exchange_started = loop.time()
        try:
            return await waiter
        except BaseException:
            # Timed out, aborted or cancelled mid-exchange: the connection's state is unknown.
            self.close()
            raise
        finally:
            self._waiter = None
            self.exchange_started = None

    def abort(self, exc: Exception) -> None:
        """Fail the exchange in progress with ``exc`` and close the connection."""
        self._fail(exc)
        self.close()

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()

    # --- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream connection; uvloop's transports do not subclass asyncio.Transport.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(HttpError(f"unparsable response: {exc}"))
            self.close()

    def eof_received(self) -> bool | None:
        # Push answers are always framed (Content-Length or chunked): an exchange still
        # waiting at EOF is cut short, never "the body ends here".
        self._fail(HttpError("server closed the connection"))
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(HttpError(f"connection lost: {exc}" if exc else "connection closed"))

    # --- httptools callbacks -------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._headers = {}
        self._body = []
        self._body_size = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        lower = name.lower()
        if lower in _KEPT_HEADERS:
            self._headers[lower.decode()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size <= _MAX_RESPONSE_BODY:
            self._body.append(body)

    def on_headers_complete(self) -> None:
        self._keep_alive = self._parser.should_keep_alive()

    def on_message_complete(self) -> None:
        status = self._parser.get_status_code()
        if not self._keep_alive:
            self.close()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(Response(status, self._headers, b"".join(self._body)))

    def _fail(self, exc: Exception) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
