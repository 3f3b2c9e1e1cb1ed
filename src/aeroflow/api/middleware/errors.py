"""The catch-all: any unhandled exception becomes a logged 500 with the standard error body.

Starlette's own last-resort handler re-raises after answering, so the server logs the
traceback a second time and outer middleware sees an exception instead of a response; this
middleware ends the failure here, once.
"""

from __future__ import annotations

import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aeroflow.api.errors import internal_error_response

logger = logging.getLogger("aeroflow.api")


class InternalErrorMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        response_started = False

        async def send_and_track(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, receive, send_and_track)
        except Exception:
            logger.exception(
                "unhandled error", extra={"method": scope.get("method"), "path": scope.get("path")}
            )
            if response_started:
                # Too late for an error body; let the server abort the connection.
                raise
            await internal_error_response()(scope, receive, send)
