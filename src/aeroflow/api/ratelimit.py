"""Rate limits of the read API, on the ``limits`` library (the engine behind slowapi).

Strategy: *sliding window counter*. It approximates a moving window (no burst of twice the
limit at a window boundary, unlike a fixed window) with two counters per client and limit,
where the exact moving window keeps one timestamp per request: with anonymous clients
counted per address, memory per client must stay constant whatever a client sends. Measured
here: about 15 µs of CPU per request with a key and two limits, key check included (mostly the
library's storage layers; its synchronous in-memory storage is no cheaper).

Storage: ``async+memory://`` by default, i.e. per process. On Cloud Run every instance
counts on its own, so a client can reach ``limit x instances`` at most (docs/security.md);
``async+redis://...`` makes the limits global when that matters. A storage that fails lets
requests through (logged): rate limiting protects capacity, it must not take the API down.

Client addresses come from ``X-Forwarded-For`` counted from the right, past the proxies we
run behind (``client_ip_proxy_hops``), because entries further left are whatever the client
wrote there. IPv6 clients are counted per /64, the block one subscriber usually holds.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from limits import RateLimitItem, parse_many
from limits.aio.storage import Storage as AsyncStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.errors import ConfigurationError, StorageError
from limits.storage import storage_from_string

logger = logging.getLogger(__name__)

DEFAULT_STORAGE_URI: Final = "async+memory://"
_IPV6_CLIENT_PREFIX: Final = 64
UNKNOWN_CLIENT: Final = "unknown"


class RateLimitConfigError(ValueError):
    pass


def parse_rate_limits(text: str | None) -> tuple[RateLimitItem, ...]:
    """``"10/second;300/minute"`` -> its limits; empty or None -> no limit."""
    if text is None or not text.strip():
        return ()
    try:
        return tuple(parse_many(text.strip()))
    except ValueError:
        raise RateLimitConfigError(
            f"invalid rate limit {text!r}: expected e.g. '10/second;300/minute'"
        ) from None


def describe(limits: Iterable[RateLimitItem]) -> str:
    """``10 per 1 second; 300 per 1 minute`` (for error details and the OpenAPI text)."""
    return "; ".join(str(item) for item in limits)


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    retry_after_seconds: int = 0
    limit: RateLimitItem | None = None  # the limit that refused the request


ALLOWED: Final = Decision(allowed=True)


class RateLimiter:
    def __init__(self, storage_uri: str = DEFAULT_STORAGE_URI) -> None:
        try:
            storage = storage_from_string(storage_uri, wrap_exceptions=True)
        except ConfigurationError as exc:
            raise RateLimitConfigError(f"rate limit storage: {exc}") from None
        if not isinstance(storage, AsyncStorage):
            raise RateLimitConfigError(
                "rate limit storage must be an async one (async+memory://, async+redis://...)"
            )
        self._limiter = SlidingWindowCounterRateLimiter(storage)

    async def hit(self, limits: Sequence[RateLimitItem], *identity: str) -> Decision:
        """Count one request against every limit; refused by the first one exhausted.

        Limits before the refusing one have counted the request: a refused client spends a
        little of its longer windows, which only slows a client that keeps pushing.
        """
        for item in limits:
            try:
                if await self._limiter.hit(item, *identity):
                    continue
                stats = await self._limiter.get_window_stats(item, *identity)
            except StorageError:
                logger.warning("rate limit storage failed; request let through", exc_info=True)
                return ALLOWED
            wait = math.ceil(stats.reset_time - time.time())
            return Decision(allowed=False, retry_after_seconds=max(1, wait), limit=item)
        return ALLOWED


def client_address(
    client: tuple[str, int] | None,
    forwarded_for: Sequence[bytes],
    proxy_hops: int,
) -> str:
    """The address to count an anonymous request against.

    ``forwarded_for``: the X-Forwarded-For header values in order. With ``proxy_hops`` = N
    the client is the N-th entry from the right: each of our N proxies appended the address
    it saw (Cloud Run's front end writes exactly one entry, so N = 1 there). Without the
    header, or with N = 0, the TCP peer counts.
    """
    if proxy_hops > 0 and forwarded_for:
        entries = [
            entry.strip()
            for value in forwarded_for
            for entry in value.decode("latin-1").split(",")
            if entry.strip()
        ]
        if entries:
            # Fewer entries than proxies: the chain was shorter; the first entry is then
            # still written by one of ours.
            return _bucket(entries[-proxy_hops] if len(entries) >= proxy_hops else entries[0])
    if client is None:
        return UNKNOWN_CLIENT
    return _bucket(client[0])


@lru_cache(maxsize=8192)
def _bucket(host: str) -> str:
    """A canonical address (IPv6 by /64); every unparsable value shares one bucket."""
    candidate = host
    if candidate.startswith("["):  # [v6]:port
        candidate = candidate[1:].partition("]")[0]
    elif candidate.count(":") == 1:  # v4:port
        candidate = candidate.partition(":")[0]
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        return UNKNOWN_CLIENT
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        network = ipaddress.IPv6Network((address, _IPV6_CLIENT_PREFIX), strict=False)
        return str(network)
    return str(address)
