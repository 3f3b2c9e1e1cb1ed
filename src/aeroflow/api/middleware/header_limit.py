"""Refuse requests whose headers are larger than any client of this API needs (431).

uvicorn's httptools parser puts no bound on header size (a 10 MB header is read whole), and
in production Cloud Run's front end does. This check keeps oversized headers away from every
handler and log line whatever sits in front; the bytes have been read by then, so it bounds
the work done on them, not the memory (``docs/security.md``).
"""

from __future__ import annotations

from typing import Final

from starlette.types import ASGIApp, Receive, Scope, Send

from aeroflow.api.errors import error_response

# aeroflow's clients send well under 1 KiB of headers (a key, Accept, tracing); browsers add
# cookies of other apps on the same site. 32 KiB leaves room for all of that.
MAX_HEADER_BYTES: Final = 32 * 1024
_CODE: Final = "request_header_fields_too_large"


class HeaderSizeLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_bytes: int = MAX_HEADER_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            size = sum(len(name) + len(value) + 4 for name, value in scope["headers"])
            if size > self.max_bytes:
                response = error_response(
                    431, _CODE, f"request headers larger than {self.max_bytes} bytes"
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
