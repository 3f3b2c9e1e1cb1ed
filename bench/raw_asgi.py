"""The ceiling: a bare ASGI app that answers each scenario with aeroflow's own bytes.

No routing, validation, middleware or storage: whatever this reaches under the same server is
the most any Python ASGI app can do on this machine. ``RAW_ASGI_BODIES`` names a JSON file
``{"<path prefix>": "<body, latin-1>"}``; the longest matching prefix answers.

    RAW_ASGI_BODIES=bodies.json .venv/bin/uvicorn --app-dir bench raw_asgi:app
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_BODIES: list[tuple[str, bytes]] = sorted(
    (
        (prefix, body.encode("latin-1"))
        for prefix, body in json.loads(Path(os.environ["RAW_ASGI_BODIES"]).read_text()).items()
    ),
    key=lambda item: -len(item[0]),
)
_NOT_FOUND = b'{"error":{"code":"not_found","message":"not found","details":[]}}'


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    target = scope["path"]
    if scope.get("query_string"):
        target += "?" + scope["query_string"].decode("latin-1")
    status, body = 404, _NOT_FOUND
    for prefix, candidate in _BODIES:
        if target.startswith(prefix):
            status, body = 200, candidate
            break
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
