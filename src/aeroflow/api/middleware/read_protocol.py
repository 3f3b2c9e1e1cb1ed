"""Plain flight reads answered in uvicorn's protocol, without an ASGI cycle.

Even answered by the read lane ahead of the app (``lane.py``), a read costs uvicorn a request
cycle, an asyncio task and its event, two ASGI messages and a check of every response header
against two regular expressions. ``ReadLaneResponses`` (an uvicorn ``HttpToolsProtocol`` to
mix in first) asks the app's ``ReadLane``, published in the lifespan state, for the answer as
soon as a plain request has been parsed, and writes it to the transport in one piece: the
same ``ReadLane.prepare`` and ``ReadLane.record`` as the ASGI path, so the same bytes,
metrics and access line (tests/api/middleware/test_read_lane.py runs both against the stack).

Plain, here, is what needs none of uvicorn's general handling: ``GET`` under ``/v1/flights``,
HTTP/1.1 keep-alive, no body (no Content-Length nor Transfer-Encoding), no
``Expect: 100-continue``, no upgrade, no concurrency limit, no earlier request of the
connection still being answered and no write backlog on it. The decision is taken when the
request is complete; a request the lane does not answer is then handed to uvicorn exactly as
if it had just been parsed.
"""

from __future__ import annotations

import urllib.parse
from typing import Any, Final, cast

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from aeroflow.api.fast_reads import LIST_PATH
from aeroflow.api.middleware.lane import READ_LANE_STATE, ReadLane
from aeroflow.server_protocol import answerable_in_protocol

_PREFIX: Final = LIST_PATH.encode()
_BODY_HEADERS: Final = frozenset({b"content-length", b"transfer-encoding"})


class _NoEvent:
    """uvicorn sets its cycle's message event when the connection is lost; nobody waits."""

    __slots__ = ()

    def set(self) -> None:
        return None


class _Answered:
    """The protocol's ``cycle`` once the lane has answered: a complete response, as far as
    uvicorn's own code looks at it (pipelining, shutdown, connection loss, keep-alive)."""

    __slots__ = ()
    response_complete = True
    keep_alive = True
    disconnected = False
    more_body = False
    message_event = _NoEvent()


_ANSWERED: Final = _Answered()


class ReadLaneResponses(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        lane = self.app_state.get(READ_LANE_STATE)
        self._read_lane = lane if isinstance(lane, ReadLane) else None
        self._deferred = False

    def on_headers_complete(self) -> None:
        if self._read_lane is not None and self._may_answer():
            self._deferred = True  # decided once the request is complete
            return
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        if not self._deferred:
            super().on_message_complete()
            return
        self._deferred = False
        if not self._answered():
            super().on_headers_complete()
            super().on_message_complete()

    def _may_answer(self) -> bool:
        return (
            self.url.startswith(_PREFIX)
            and self.parser.get_method() == b"GET"
            and answerable_in_protocol(self)
            and not self.flow.write_paused
            and not any(name in _BODY_HEADERS for name, _ in self.headers)
        )

    def _answered(self) -> bool:
        lane = self._read_lane
        assert lane is not None  # noqa: S101 - only deferred with a lane
        scope: dict[str, Any] = cast(Any, self.scope)
        # As uvicorn's on_headers_complete fills the scope.
        scope["method"] = "GET"
        parsed_url = httptools.parse_url(self.url)
        raw_path = parsed_url.path
        path = raw_path.decode("ascii")
        if "%" in path:
            path = urllib.parse.unquote(path)
        scope["path"] = self.root_path + path
        scope["raw_path"] = self.root_path.encode("ascii") + raw_path
        scope["query_string"] = parsed_url.query or b""
        try:
            prepared = lane.prepare(scope)
        except Exception:  # the app answers it from the start, with its catch-all
            scope.pop("route", None)
            return False
        if prepared is None:
            return False
        # What uvicorn writes for the two messages: its default headers, the answer's, the body.
        parts = [STATUS_LINE[prepared.status]]
        for name, value in (*self.server_state.default_headers, *prepared.headers):
            parts += (name, b": ", value, b"\r\n")
        parts += (b"\r\n", prepared.body)
        self.cycle = cast(Any, _ANSWERED)
        self.transport.write(b"".join(parts))
        self.on_response_complete()  # keep-alive timer, the next request
        lane.record(scope, prepared, len(prepared.body))
        return True
