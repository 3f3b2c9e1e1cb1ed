"""uvicorn's httptools protocol, with plain push requests answered by the push lane.

Push ingest costs the event loop most where it is not aeroflow's code at all: per message,
uvicorn builds a request cycle, an asyncio task and its event, the app receives the body and
sends two ASGI messages through three wrappers, and uvicorn checks each of the 204's fixed
headers against two regular expressions. ``PushHttpProtocol`` is uvicorn's
``HttpToolsProtocol`` (``uvicorn.Config(http=PushHttpProtocol)``) that hands a *plain* push
request to the app's ``push_lane`` (``push_lane.py``) instead, once its body has been read.

Plain means nothing about the request needs uvicorn's general handling: ``POST`` to exactly
``/pubsub/push``, HTTP/1.1 keep-alive, a Content-Length within the body limit (no chunked
body, nothing to refuse as too large before reading it), no ``Expect: 100-continue``, no
upgrade, no concurrency limit configured, and no earlier request of the connection still being
answered. Everything else, and every request when no ``PushFastPath`` of the app published a
lane in the lifespan state (a read-only role, tracing on, lifespan off), takes uvicorn's path
to the ASGI app exactly as before, where ``PushFastPath`` answers the same way.
"""

from __future__ import annotations

from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from aeroflow.ingest.push import PUSH_LANE_STATE, PUSH_PATH
from aeroflow.ingest.push_lane import Exchange, PushLane
from aeroflow.server_protocol import answerable_in_protocol

_PUSH_URL = PUSH_PATH.encode()


class PushHttpProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Published by PushFastPath in the lifespan state, which uvicorn passes as app_state.
        lane = self.app_state.get(PUSH_LANE_STATE)
        self._lane = lane if isinstance(lane, PushLane) else None
        self._reading: Exchange | None = None  # the lane's request whose body is arriving

    def on_headers_complete(self) -> None:
        exchange = self._lane_exchange() if self._lane is not None else None
        if exchange is None:
            super().on_headers_complete()
            return
        # uvicorn's own logic now sees a request in progress: a pipelined one waits for it.
        self.cycle = cast(Any, exchange)
        self._reading = exchange

    def on_body(self, body: bytes) -> None:
        reading = self._reading
        if reading is None:
            super().on_body(body)
        else:
            reading.chunks.append(body)

    def on_message_complete(self) -> None:
        reading = self._reading
        if reading is None:
            super().on_message_complete()
            return
        self._reading = None
        reading.lane.handle(reading)

    def _lane_exchange(self) -> Exchange | None:
        """The lane's exchange for the request whose headers were just read, if it is plain."""
        lane = self._lane
        if (
            lane is None
            or self.url != _PUSH_URL
            or self.parser.get_method() != b"POST"
            or not answerable_in_protocol(self)
        ):
            return None
        length: bytes | None = None
        authorization: bytes | None = None
        for name, value in self.headers:
            if name == b"content-length":
                if length is not None:
                    return None
                length = value
            elif name == b"authorization":
                authorization = value
            elif name == b"transfer-encoding":
                return None
        if length is None or not length.isdigit() or int(length) > lane.max_body_bytes:
            return None
        scope = self.scope
        scope["method"] = "POST"
        scope["path"] = PUSH_PATH
        scope["raw_path"] = _PUSH_URL
        scope["query_string"] = b""
        return Exchange(
            lane,
            transport=self.transport,
            scope=cast(Any, scope),
            server_state=self.server_state,
            on_response=self.on_response_complete,
            authorization=authorization,
        )
