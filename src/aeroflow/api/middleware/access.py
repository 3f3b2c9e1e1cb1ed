"""API keys and rate limits, enforced before routing (pure ASGI, cheap per request).

Protection is by path, not by route: everything under ``/v1`` is covered, including routes
added later and paths that match no route (an unauthenticated client learns nothing, not
even which URLs exist). The policy itself is in ``aeroflow.api.security``.

Each request's client goes into ``scope["state"]`` for the access log: a key's fingerprint,
``anonymous`` or ``unknown_key``, never the key.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from typing import Final

from prometheus_client import Counter
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from aeroflow.api.auth import credentials_from_headers
from aeroflow.api.errors import error_response
from aeroflow.api.ratelimit import Decision, client_address, describe
from aeroflow.api.security import API_PREFIX, METRICS_PATH, AccessPolicy
from aeroflow.observability.access_log import API_CLIENT_STATE
from aeroflow.observability.metrics import API_ACCESS

ANONYMOUS: Final = "anonymous"
UNKNOWN_KEY: Final = "unknown_key"
ALLOWED: Final = "allowed"
UNAUTHENTICATED: Final = "unauthenticated"
RATE_LIMITED: Final = "rate_limited"

_CHALLENGE: Final = 'Bearer realm="aeroflow"'
_INVALID_CHALLENGE: Final = 'Bearer realm="aeroflow", error="invalid_token"'
_MISSING_KEY: Final = "an API key is required: send it in the X-API-Key header"
_INVALID_KEY: Final = "invalid API key"
_BAD_SCHEME: Final = "unsupported Authorization scheme: send the key as X-API-Key or Bearer"
_PROXY_HEADERS: Final = frozenset({b"x-forwarded-for", b"forwarded"})

Refusal = Response  # answered instead of the app


class ApiAccessMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        policy: AccessPolicy,
        routes: list[BaseRoute] | None = None,
    ) -> None:
        self.app = app
        self._policy = policy
        self._routes = routes  # only to label refused requests like routed ones
        self._leaves: list[BaseRoute] | None = None
        self._open = open_access(policy)
        self._counters: dict[tuple[str, str], Counter] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._open:
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        refusal: Refusal | None = None
        if path.startswith(API_PREFIX) and (len(path) == 3 or path[3] == "/"):
            refusal = await self._check_api(scope)
        elif path == METRICS_PATH and self._policy.auth_required:
            refusal = self._check_metrics(scope)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        self._label_route(scope)
        await refusal(scope, receive, send)

    async def _check_api(self, scope: Scope) -> Refusal | None:
        policy = self._policy
        credentials = credentials_from_headers(scope["headers"])
        problem: tuple[str, str] | None = None  # (message, WWW-Authenticate)
        client = ANONYMOUS
        if credentials.key is not None:
            entry = policy.verifier.verify(credentials.key)
            if entry is not None:
                client = entry.fingerprint
                _set_client(scope, client)
                decision = await policy.limiter.hit(policy.limits_for_key(client), "key", client)
                return self._decide(client, decision)
            client, problem = UNKNOWN_KEY, (_INVALID_KEY, _INVALID_CHALLENGE)
        elif credentials.malformed:
            problem = (_BAD_SCHEME, _CHALLENGE)
        elif policy.auth_required:
            problem = (_MISSING_KEY, _CHALLENGE)
        _set_client(scope, client)

        # Without a valid key a request counts against its address, failed attempts too.
        if policy.per_ip:
            address = client_address(
                scope.get("client"), _header_values(scope, b"x-forwarded-for"), policy.proxy_hops
            )
            decision = await policy.limiter.hit(policy.per_ip, "ip", address)
            if not decision.allowed:
                return self._decide(client, decision)
        if problem is not None:
            self._count(client, UNAUTHENTICATED)
            return _unauthenticated(*problem)
        self._count(client, ALLOWED)
        return None

    def _check_metrics(self, scope: Scope) -> Refusal | None:
        if _is_local(scope):
            return None
        credentials = credentials_from_headers(scope["headers"])
        if credentials.key is not None:
            entry = self._policy.verifier.verify(credentials.key)
            if entry is not None:
                _set_client(scope, entry.fingerprint)
                return None
            return _unauthenticated(_INVALID_KEY, _INVALID_CHALLENGE)
        return _unauthenticated(_MISSING_KEY, _CHALLENGE)

    def _decide(self, client: str, decision: Decision) -> Refusal | None:
        if decision.allowed:
            self._count(client, ALLOWED)
            return None
        self._count(client, RATE_LIMITED)
        limit = "" if decision.limit is None else describe((decision.limit,))
        return error_response(
            429,
            RATE_LIMITED,
            f"rate limit exceeded; retry in {decision.retry_after_seconds} s",
            details=[{"limit": limit}],
            headers={"Retry-After": str(decision.retry_after_seconds)},
        )

    def _count(self, client: str, outcome: str) -> None:
        counter = self._counters.get((client, outcome))
        if counter is None:  # label sets are bounded: configured keys x 3 outcomes
            counter = self._counters[(client, outcome)] = API_ACCESS.labels(client, outcome)
        counter.inc()

    def _label_route(self, scope: Scope) -> None:
        """Refused before routing: find the route anyway, so metrics and logs name it."""
        if self._leaves is None:  # first refusal: every route is in place by now
            self._leaves = list(leaf_routes(self._routes or ()))
        for route in self._leaves:
            match, _ = route.matches(scope)
            if match is not Match.NONE:
                scope["route"] = route
                return


def open_access(policy: AccessPolicy) -> bool:
    """No keys, none required, no anonymous limit: nothing to check on /v1 at all."""
    return not (policy.verifier or policy.auth_required or policy.per_ip)


def leaf_routes(routes: Iterable[BaseRoute]) -> Iterator[BaseRoute]:
    """Every route, with those of included routers in place of their wrappers."""
    # FastAPI keeps included routers as wrappers around the original router's routes.
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from leaf_routes(inner.routes)
        else:
            yield route


def _unauthenticated(message: str, challenge: str) -> Refusal:
    return error_response(401, UNAUTHENTICATED, message, headers={"WWW-Authenticate": challenge})


def _set_client(scope: Scope, client: str) -> None:
    state = scope.setdefault("state", {})
    if isinstance(state, dict):
        state[API_CLIENT_STATE] = client


def _header_values(scope: Scope, name: bytes) -> list[bytes]:
    return [value for key, value in scope["headers"] if key == name]


def _is_local(scope: Scope) -> bool:
    """A request from this host that came through no proxy (the metrics sidecar).

    Every request from outside reaches Cloud Run instances through Google's front end, which
    always sets X-Forwarded-For; without that header, the TCP peer is the real one.
    """
    if any(key in _PROXY_HEADERS for key, _ in scope["headers"]):
        return False
    client = scope.get("client")
    if not client:
        return False
    try:
        return ipaddress.ip_address(client[0]).is_loopback
    except ValueError:
        return False
