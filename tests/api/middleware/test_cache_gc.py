"""The response cache's entries stay out of the garbage collector's way.

A full collection walks every tracked object outside the frozen startup heap; cache entries
(tens of thousands with small bodies) made those walks, and the pauses that set the p99 of an
uncacheable workload, grow with the cache. Entries are held in a shape the collector stops
tracking at its first young collection.
"""

from __future__ import annotations

import gc

from aeroflow.api.middleware.cache import CachedResponse, _LruBytes, make_etag


class _Route:
    """Stands for a Starlette route: an object the collector tracks."""


def _entry(number: int, route: _Route) -> CachedResponse:
    body = b'{"n": %d}' % number
    etag = make_etag(body)
    headers = ((b"content-type", b"application/json"), (b"etag", etag))
    return CachedResponse(7, headers, body, etag, route)


def test_entries_are_untracked_after_one_young_collection_and_read_back_whole() -> None:
    route = _Route()
    lru = _LruBytes(max_bytes=1 << 20, max_entry_bytes=1 << 10)
    entries = {(f"/v1/flights/{n}", b"", b""): _entry(n, route) for n in range(500)}
    for key, entry in entries.items():
        lru.put(key, entry)

    gc.collect(0)

    held = [*lru._entries.keys(), *lru._entries.values()]
    assert not any(gc.is_tracked(item) for item in held)
    for key, entry in entries.items():
        assert lru.get(key, 7) == entry
        assert lru.get(key, 7).route is route  # type: ignore[union-attr]


def test_routes_are_kept_once_however_many_entries_name_them() -> None:
    routes = [_Route(), _Route()]
    lru = _LruBytes(max_bytes=1 << 20, max_entry_bytes=1 << 10)
    for n in range(100):
        lru.put((f"/p{n}", b"", b""), _entry(n, routes[n % 2]))
    assert [lru.get((f"/p{n}", b"", b""), 7).route for n in range(4)] == routes * 2  # type: ignore[union-attr]
    assert lru._routes == routes
