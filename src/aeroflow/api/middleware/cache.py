"""Read responses: an in-process cache invalidated by the store's write version, and ETags.

Pure ASGI, placed innermost (inside the key check, rate limits, metrics and security headers),
so a cached answer is still authorised, limited, counted and decorated like any other; it only
skips routing, validation, the thread-pool hop, the query and serialisation.

Never stale: every entry is tagged with the store's ``write_version`` read *before* the
request ran, and is served only while the version is unchanged. A store bumps the version
after each committed write, so an answer computed before a commit is never served after it.
Stores without a write version (BigQuery: other processes write to it) get no cache at all,
only ETags. Keys are the exact path, raw query string and ``Accept`` header: a request that
would be answered differently (other parameter order changes the ``Link`` header) has another
key, and only complete 200 responses are kept.

Concurrent identical requests at the same version share one computation (single flight): after
a write, 32 clients polling one URL cost one query, not 32.

ETags: every 200 of a cacheable route carries a strong ETag of its body, and a matching
``If-None-Match`` gets 304 without a body, with or without the cache.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple, Protocol, runtime_checkable

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from xxhash import xxh3_128_hexdigest

# Routes whose answers depend only on the request and the stored data.
CACHEABLE_PREFIXES: Final = ("/v1/flights", "/v1/stats/")
_ACCEPT: Final = b"accept"
_IF_NONE_MATCH: Final = b"if-none-match"
_ETAG: Final = b"etag"
# Headers a 304 repeats from the 200 it stands for (RFC 9110, section 15.4.5).
_NOT_MODIFIED_HEADERS: Final = frozenset({b"etag", b"vary", b"cache-control", b"link"})

CacheKey = tuple[str, bytes, bytes]


@runtime_checkable
class VersionedStore(Protocol):
    """A store that counts its committed writes (e.g. ``DuckDBFlightStore``)."""

    @property
    def write_version(self) -> int: ...


@dataclass(frozen=True, slots=True)
class CachedResponse:
    version: int
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes
    etag: bytes
    route: Any  # the matched route, for the metrics and access log labels


# An entry as the LRU holds it, flat: (version, body, etag, route slot, name, value, name, ...).
# The collector stops tracking a tuple of ints and bytes at the first young collection that
# sees it (a nested tuple would take one more collection per level, long enough to be promoted),
# so entries are never promoted nor walked by full collections, whose pauses otherwise grow
# with the number of entries and set the p99 of uncacheable workloads.
_Stored = tuple[Any, ...]
_VERSION, _BODY, _ETAG_AT, _ROUTE, _HEADERS = range(5)


class Hit(NamedTuple):
    """A kept answer as it is sent: the 200's headers (ETag last), body, ETag and route."""

    headers: list[tuple[bytes, bytes]]
    body: bytes
    etag: bytes
    route: Any


class _LruBytes:
    """Least-recently-used entries under a byte budget (bodies dominate the size)."""

    def __init__(self, max_bytes: int, max_entry_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.max_entry_bytes = max_entry_bytes
        self.size = 0
        self._entries: OrderedDict[CacheKey, _Stored] = OrderedDict()
        # Routes are objects the collector tracks: entries name them by slot instead. Bounded
        # by the app's routes; the list keeps each one alive, so an id is never reused.
        self._routes: list[Any] = []
        self._route_slots: dict[int, int] = {}

    def get(self, key: CacheKey, version: int) -> CachedResponse | None:
        hit = self.lookup(key, version)
        if hit is None:
            return None
        return CachedResponse(version, tuple(hit.headers), hit.body, hit.etag, hit.route)

    def lookup(self, key: CacheKey, version: int) -> Hit | None:
        """The entry of ``key`` if it was kept at ``version`` (an older one is dropped)."""
        stored = self._entries.get(key)
        if stored is None:
            return None
        if stored[_VERSION] != version:
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        headers = list(zip(stored[_HEADERS::2], stored[_HEADERS + 1 :: 2], strict=True))
        return Hit(headers, stored[_BODY], stored[_ETAG_AT], self._routes[stored[_ROUTE]])

    def put(self, key: CacheKey, entry: CachedResponse) -> None:
        self.keep(key, entry.version, entry.headers, entry.body, entry.etag, entry.route)

    def keep(
        self,
        key: CacheKey,
        version: int,
        headers: Iterable[tuple[bytes, bytes]],
        body: bytes,
        etag: bytes,
        route: Any,
    ) -> None:
        cost = len(body)
        if cost > self.max_entry_bytes:
            return
        entries = self._entries
        if key in entries:
            self._drop(key)
        fields = [version, body, etag, self._slot(route)]
        for name, value in headers:
            fields += (name, value)
        entries[key] = tuple(fields)
        self.size += cost
        while self.size > self.max_bytes and entries:
            self._drop(next(iter(entries)))

    def _slot(self, route: Any) -> int:
        slot = self._route_slots.get(id(route))
        if slot is None:
            slot = self._route_slots[id(route)] = len(self._routes)
            self._routes.append(route)
        return slot

    def _drop(self, key: CacheKey) -> None:
        self.size -= len(self._entries.pop(key)[_BODY])

    def __len__(self) -> int:
        return len(self._entries)


class ResponseCache:
    """The kept answers of a store and the computations in flight; shared by the middleware
    and the read lane (aeroflow.api.middleware.lane), which answers ahead of it."""

    def __init__(
        self, store: object, *, max_bytes: int, max_entry_bytes: int = 2 * 1024**2
    ) -> None:
        self.store = store if isinstance(store, VersionedStore) else None
        self.lru = (
            _LruBytes(max_bytes, max_entry_bytes)
            if self.store is not None and max_bytes > 0
            else None
        )
        # A computation's future is made only when a second request asks for it: most never
        # get one, and a future (made, resolved) cost a never-repeating read ~1 us.
        self.in_flight: dict[tuple[CacheKey, int], asyncio.Future[Hit | None] | None] = {}

    async def follow(self, key: CacheKey, version: int) -> Hit | None:
        """The answer of the identical request in flight at ``version``; None if there is
        none, or if its answer is not one to share."""
        flight = (key, version)
        if flight not in self.in_flight:
            return None
        future = self.in_flight[flight]
        if future is None:
            future = self.in_flight[flight] = asyncio.get_running_loop().create_future()
        return await asyncio.shield(future)


def make_etag(body: bytes) -> bytes:
    # 96 bits of XXH3-128: an ETag only has to change when the body does, which needs no
    # cryptographic hash; SHA-256 cost 7-14 us on a 9 KB page, XXH3 0.3 us.
    return b'"' + xxh3_128_hexdigest(body)[:24].encode() + b'"'


def etag_matches(if_none_match: bytes, etag: bytes) -> bool:
    """Weak comparison, as If-None-Match requires (RFC 9110, section 13.1.2)."""
    value = if_none_match.strip()
    if value == b"*":
        return True
    for candidate in value.split(b","):
        tag = candidate.strip()
        if tag.startswith(b"W/"):
            tag = tag[2:]
        if tag == etag:
            return True
    return False


def _header_values(headers: Iterable[tuple[bytes, bytes]]) -> tuple[bytes, bytes | None]:
    accept, if_none_match = b"", None
    for name, value in headers:
        lowered = name.lower()
        if lowered == _ACCEPT:
            accept = value
        elif lowered == _IF_NONE_MATCH:
            if_none_match = value
    return accept, if_none_match


class ResponseCacheMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        store: object,
        max_bytes: int = 64 * 1024**2,
        max_entry_bytes: int = 2 * 1024**2,
        prefixes: Sequence[str] = CACHEABLE_PREFIXES,
        cache: ResponseCache | None = None,
    ) -> None:
        """``cache``: the entries to use (shared with the read lane); by default its own, of
        ``store`` under ``max_bytes``."""
        self.app = app
        self._prefixes = tuple(prefixes)
        self._shared = cache or ResponseCache(
            store, max_bytes=max_bytes, max_entry_bytes=max_entry_bytes
        )

    @property
    def enabled(self) -> bool:
        return self._shared.lru is not None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "GET"
            or not scope["path"].startswith(self._prefixes)
        ):
            await self.app(scope, receive, send)
            return
        accept, if_none_match = _header_values(scope["headers"])
        shared = self._shared
        lru, store = shared.lru, shared.store
        if lru is None or store is None:
            await self._compute(scope, receive, send, if_none_match)
            return
        # Read before the request runs: an entry may only be older than its tag says.
        version = store.write_version
        key: CacheKey = (scope["path"], scope["query_string"], accept)
        hit = lru.lookup(key, version)
        if hit is None:
            hit = await shared.follow(key, version)
        if hit is not None:
            scope["route"] = hit.route
            await send_hit(hit, if_none_match, send)
            return
        await self._lead(scope, receive, send, key, version, if_none_match)

    async def _lead(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        key: CacheKey,
        version: int,
        if_none_match: bytes | None,
    ) -> None:
        shared = self._shared
        assert shared.lru is not None  # noqa: S101 - only called with the cache on
        flight = (key, version)
        # A follower whose leader had nothing to share runs the request itself, beside others.
        leading = flight not in shared.in_flight
        if leading:
            shared.in_flight[flight] = None
        hit: Hit | None = None
        try:
            hit = await self._compute(scope, receive, send, if_none_match)
            if hit is not None:
                shared.lru.keep(key, version, hit.headers, hit.body, hit.etag, hit.route)
        finally:
            if leading:
                future = shared.in_flight.pop(flight)
                if future is not None:
                    future.set_result(hit)

    async def _compute(
        self, scope: Scope, receive: Receive, send: Send, if_none_match: bytes | None
    ) -> Hit | None:
        """Run the app and answer the client; returns the response when it may be kept."""
        capture = _Capture(send, if_none_match, scope)
        await self.app(scope, receive, capture)
        return capture.result


class _Capture:
    """An ASGI ``send`` that holds back a 200's start until its body is complete, to add the
    ETag (and answer 304 instead); everything else passes straight through."""

    def __init__(self, send: Send, if_none_match: bytes | None, scope: Scope) -> None:
        self._send = send
        self._if_none_match = if_none_match
        self._scope = scope
        self._start: Message | None = None
        self._passthrough = False
        self._chunks: list[bytes] = []
        self.result: Hit | None = None

    async def __call__(self, message: Message) -> None:
        if self._passthrough:
            await self._send(message)
            return
        if self._start is None:
            if message["type"] == "http.response.start" and message["status"] == 200:
                self._start = message
                return
            self._passthrough = True
            await self._send(message)
            return
        if message["type"] != "http.response.body":
            await self._send(message)
            return
        self._chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        self.result = hit = completed(
            self._start.get("headers", ()), b"".join(self._chunks), self._scope.get("route")
        )
        self._passthrough = True
        await send_hit(hit, self._if_none_match, self._send)


def completed(raw_headers: Iterable[tuple[bytes, bytes]], body: bytes, route: Any) -> Hit:
    """A complete 200 as it is kept and sent: its headers with the ETag of its body added."""
    etag = make_etag(body)
    headers = [(name, value) for name, value in raw_headers]
    headers.append((_ETAG, etag))
    return Hit(headers, body, etag, route)


def not_modified(hit: Hit, if_none_match: bytes | None) -> bool:
    return if_none_match is not None and etag_matches(if_none_match, hit.etag)


def not_modified_headers(hit: Hit) -> list[tuple[bytes, bytes]]:
    return [h for h in hit.headers if h[0].lower() in _NOT_MODIFIED_HEADERS]


async def send_hit(hit: Hit, if_none_match: bytes | None, send: Send) -> None:
    if not_modified(hit, if_none_match):
        await send(
            {"type": "http.response.start", "status": 304, "headers": not_modified_headers(hit)}
        )
        await send({"type": "http.response.body", "body": b""})
        return
    await send({"type": "http.response.start", "status": 200, "headers": list(hit.headers)})
    await send({"type": "http.response.body", "body": hit.body})
