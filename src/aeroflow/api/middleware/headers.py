"""Security and caching headers on every HTTP response.

A response that sets one of these headers itself keeps its own value: the docs pages carry a
Content-Security-Policy that lets Swagger UI run, static assets a long Cache-Control.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# JSON and CSV need no scripts, styles or frames at all.
API_CONTENT_SECURITY_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"

_DEFAULT_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"content-security-policy", API_CONTENT_SECURITY_POLICY.encode()),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"strict-transport-security", b"max-age=31536000; includeSubDomains"),
    # Flight states change by the second and responses may depend on who asks: let no cache
    # (shared or private) keep them.
    (b"cache-control", b"no-store"),
)

_DEFAULT_NAMES = frozenset(name for name, _ in _DEFAULT_HEADERS)


def with_security_headers(raw: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``raw`` followed by each default header it does not set itself."""
    headers = list(raw)
    present = {name.lower() for name, _ in headers} & _DEFAULT_NAMES
    if present:
        headers.extend(h for h in _DEFAULT_HEADERS if h[0] not in present)
    else:  # the usual case: a response that sets none of them
        headers.extend(_DEFAULT_HEADERS)
    return headers


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = with_security_headers(message.get("headers", ()))
            await send(message)

        await self.app(scope, receive, send_with_headers)
