"""What the push endpoint answers besides 204: one definition for the ASGI endpoint
(``push.py``) and the push lane (``push_lane.py``), which write it two different ways."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Final

import orjson

Headers = Sequence[tuple[bytes, bytes]]

_JSON: Final = (b"content-type", b"application/json")


@dataclass(frozen=True, slots=True)
class Refusal:
    """An answer other than 204, in the service-wide error shape (see ``error_body``)."""

    status: int
    code: str
    message: str
    headers: Headers = ()


def error_body(code: str, message: str, details: Collection[object] = ()) -> bytes:
    """The service-wide error shape: ``{"error": {"code", "message", "details"}}``."""
    return orjson.dumps({"error": {"code": code, "message": message, "details": list(details)}})


def error_headers(body: bytes, extra: Headers = ()) -> list[tuple[bytes, bytes]]:
    """The headers of an error answer with ``body``, before the app's own are added."""
    return [_JSON, (b"content-length", str(len(body)).encode()), *extra]
