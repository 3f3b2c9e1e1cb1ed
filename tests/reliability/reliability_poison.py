"""Invalid messages of every kind a push subscription can deliver, with the reason each must be
kept under in ``rejected_messages`` (the values of ``storage.port.RejectReason``, as documented).

Shared by tests/reliability/test_poison.py and bench/bench_soak.py.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Callable

import orjson
from reliability_harness import PushMessage

SHARE = 0.10  # of all messages


def poison_count(valid: int, share: float = SHARE) -> int:
    """How many poison messages make ``share`` of a load with ``valid`` valid ones."""
    return round(valid * share / (1 - share))


def _schema_breakers() -> list[Callable[[dict[str, object]], None]]:
    def wrong_type(event: dict[str, object]) -> None:
        event["flight_number"] = str(event["flight_number"])  # strict: "1545" is not 1545

    def bad_carrier(event: dict[str, object]) -> None:
        event["carrier"] = "united"

    def missing_field(event: dict[str, object]) -> None:
        del event["status"]

    def arrival_before_departure(event: dict[str, object]) -> None:
        event["scheduled_arrival"] = event["scheduled_departure"]

    def unknown_field(event: dict[str, object]) -> None:
        event["gate"] = "B12"

    return [wrong_type, bad_carrier, missing_field, arrival_before_departure, unknown_field]


def poison_messages(
    count: int, valid: list[PushMessage], rng: random.Random, prefix: str = "poison"
) -> dict[str, tuple[PushMessage, str]]:
    """``count`` invalid messages: message id -> (message, the reason it must be kept under)."""
    out: dict[str, tuple[PushMessage, str]] = {}
    for index in range(count):
        message_id = f"{prefix}-{index:06d}"
        kind = index % 6
        if kind == 0:
            out[message_id] = (PushMessage(message_id, "%%% not base64 %%%"), "invalid_base64")
        elif kind == 1:
            raw = b'{"carrier": "\xff\xfe\xfd"}'
            out[message_id] = (PushMessage.of_bytes(message_id, raw), "invalid_utf8")
        elif kind == 2:
            raw = b'{"carrier": "UA", "flight_number": 15'  # cut off mid-document
            out[message_id] = (PushMessage.of_bytes(message_id, raw), "invalid_json")
        elif kind == 3:
            out[message_id] = (PushMessage(message_id, ""), "invalid_json")  # no data at all
        elif kind == 4:
            raw = b"[1, 2, 3]"
            out[message_id] = (PushMessage.of_bytes(message_id, raw), "schema_violation")
        else:
            source = rng.choice(valid)
            event = orjson.loads(base64.b64decode(source.data))
            rng.choice(_schema_breakers())(event)
            raw = orjson.dumps(event)
            out[message_id] = (PushMessage.of_bytes(message_id, raw), "schema_violation")
    return out
