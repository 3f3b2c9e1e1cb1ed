"""Refuse over-long query strings (414) before any routing or parsing work is spent on them."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from aeroflow.api.errors import ErrorCode, error_response


class QueryStringLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and len(scope.get("query_string", b"")) > self.max_bytes:
            response = error_response(
                414,
                ErrorCode.URI_TOO_LONG,
                f"query string longer than {self.max_bytes} bytes",
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
