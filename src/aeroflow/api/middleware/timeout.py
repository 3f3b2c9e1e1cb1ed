"""A deadline for each /v1 request: past it the client gets 503 ``unavailable``, not a hang.

Cloud Run cuts requests at the service's timeout with a bare 504; answering earlier, in our
error shape with Retry-After, lets clients back off. Storage calls have their own limits (the
BigQuery job timeout); this one bounds the whole request. A storage call running in a worker
thread cannot be interrupted from here: the thread finishes on its own and its result is
dropped, the client is answered at once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aeroflow.api.errors import ErrorCode, error_response

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS: Final = 5


class RequestTimeoutMiddleware:
    def __init__(self, app: ASGIApp, *, seconds: float, path_prefix: str = "/v1/") -> None:
        self.app = app
        self.seconds = seconds
        self.path_prefix = path_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.path_prefix):
            await self.app(scope, receive, send)
            return
        response_started = False

        async def send_and_track(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        deadline = asyncio.timeout(self.seconds)
        try:
            async with deadline:
                await self.app(scope, receive, send_and_track)
        except TimeoutError:
            # Only our own deadline is answered here; a TimeoutError from below is a bug
            # that the error middleware reports as one.
            if not deadline.expired() or response_started:
                raise
            # The access log line of this request names its route; no raw path here.
            logger.warning("request exceeded its %g s deadline", self.seconds)
            response = error_response(
                503,
                ErrorCode.UNAVAILABLE,
                f"the request took longer than {self.seconds:g} s; retry later",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
            await response(scope, receive, send)
