"""Parse Pub/Sub push envelopes and decode the message data into FlightEvents.

Two kinds of failure, kept apart on purpose:

* ``EnvelopeError``: the request is not a push envelope at all (not a JSON object, no
  ``message``, no message id or publish time, wrong types). Nothing can be stored because there
  is no message id to store it under; the push handler answers 400.
* ``RejectedMessage``: a well-formed envelope whose *data* is poison (bad base64, not UTF-8,
  not JSON, not a valid FlightEvent). It is acked and kept in ``rejected_messages`` so it never
  blocks the stream.

The shape follows what Pub/Sub POSTs: ``{"message": {"data", "attributes", "messageId",
"message_id", "publishTime", "publish_time", "orderingKey"}, "subscription", "deliveryAttempt"}``
(both spellings of id and time are sent; ``data`` is absent for attribute-only messages).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from pydantic import ValidationError

from aeroflow.domain.events import FlightEvent
from aeroflow.ingest.wire import unwrap_unions
from aeroflow.storage.port import AcceptedMessage, MessageMeta, RejectedMessage, RejectReason

_MAX_DETAIL: Final = 400
_MAX_ERRORS: Final = 3
_MAX_LOC_PART: Final = 40


class EnvelopeError(ValueError):
    """The request body is not a Pub/Sub push envelope (HTTP 400)."""


@dataclass(frozen=True, slots=True)
class PushEnvelope:
    meta: MessageMeta
    data: str  # base64 exactly as sent; "" when the message carried no data


def parse_push_envelope(body: bytes) -> PushEnvelope:
    """Validate the envelope around a message; the message data is left undecoded."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise EnvelopeError("request body is not JSON") from None
    if type(document) is not dict:
        raise EnvelopeError("request body must be a JSON object")
    message = document.get("message")
    if type(message) is not dict:
        raise EnvelopeError("'message' must be a JSON object")

    message_id = _first(message, "messageId", "message_id")
    if type(message_id) is not str or not message_id:
        raise EnvelopeError("'message.messageId' must be a non-empty string")
    data = message.get("data")
    if data is None:
        data = ""
    elif type(data) is not str:
        raise EnvelopeError("'message.data' must be a base64 string")
    return PushEnvelope(
        meta=MessageMeta(
            message_id=message_id,
            publish_time=_publish_time(_first(message, "publishTime", "publish_time")),
            attributes=_attributes(message.get("attributes")),
            ordering_key=_optional_str(
                _first(message, "orderingKey", "ordering_key"), "message.orderingKey"
            )
            or None,
            subscription=_optional_str(document.get("subscription"), "subscription"),
            delivery_attempt=_delivery_attempt(document.get("deliveryAttempt")),
        ),
        data=data,
    )


def decode_message(
    meta: MessageMeta, data: bytes | str, now: datetime
) -> AcceptedMessage | RejectedMessage:
    """Decode message data: ``str`` is base64 (push), ``bytes`` are the raw data (pull).

    Never raises: whatever is wrong with the data becomes a RejectedMessage.
    """
    if isinstance(data, str):
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError) as exc:
            raw_text = data.encode("utf-8", "surrogatepass")
            return _reject(meta, raw_text, RejectReason.INVALID_BASE64, f"data: {exc}", now)
    else:
        raw = data

    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return _reject_undecodable(meta, raw, exc, now)
    if type(document) is not dict:
        detail = f"expected a JSON object, got {_json_type(document)}"
        return _reject(meta, raw, RejectReason.SCHEMA_VIOLATION, detail, now)

    # Re-encode only when Avro union wrappers had to be removed; plain JSON goes straight on.
    try:
        payload = orjson.dumps(document) if unwrap_unions(document) else raw
        event = FlightEvent.model_validate_json(payload)
    except ValidationError as exc:
        return _reject(meta, raw, RejectReason.SCHEMA_VIOLATION, _summarize(exc), now)
    except orjson.JSONEncodeError:
        detail = "JSON nested too deeply"
        return _reject(meta, raw, RejectReason.SCHEMA_VIOLATION, detail, now)
    return AcceptedMessage(meta=meta, event=event, ingest_time=now)


def decode_push(body: bytes, now: datetime) -> AcceptedMessage | RejectedMessage:
    """Envelope and data in one step; raises only EnvelopeError."""
    envelope = parse_push_envelope(body)
    return decode_message(envelope.meta, envelope.data, now)


# --- envelope fields ---------------------------------------------------------------------


def _first(obj: Mapping[str, Any], camel: str, snake: str) -> Any:
    value = obj.get(camel)
    return obj.get(snake) if value is None else value


def _publish_time(value: Any) -> datetime:
    if type(value) is not str:
        raise EnvelopeError("'message.publishTime' must be an RFC 3339 string")
    try:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise ValueError("no offset")
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise EnvelopeError("'message.publishTime' is not an RFC 3339 timestamp") from None


def _attributes(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if type(value) is not dict or any(type(v) is not str for v in value.values()):
        raise EnvelopeError("'message.attributes' must map strings to strings")
    return value


def _optional_str(value: Any, name: str) -> str | None:
    if value is None or type(value) is str:
        return value
    raise EnvelopeError(f"'{name}' must be a string")


def _delivery_attempt(value: Any) -> int | None:
    if value is None:
        return None
    if type(value) is not int or value < 0:
        raise EnvelopeError("'deliveryAttempt' must be a non-negative integer")
    return value


# --- rejections --------------------------------------------------------------------------


def _reject(
    meta: MessageMeta, raw: bytes, reason: RejectReason, detail: str, now: datetime
) -> RejectedMessage:
    return RejectedMessage(
        meta=meta, raw_data=raw, reason=reason, detail=_clip(detail), received_at=now
    )


def _reject_undecodable(
    meta: MessageMeta, raw: bytes, exc: orjson.JSONDecodeError, now: datetime
) -> RejectedMessage:
    if not raw:
        return _reject(meta, raw, RejectReason.INVALID_JSON, "message has no data", now)
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as bad:
        detail = f"data is not UTF-8: {bad.reason} at byte {bad.start}"
        return _reject(meta, raw, RejectReason.INVALID_UTF8, detail, now)
    return _reject(meta, raw, RejectReason.INVALID_JSON, f"data is not JSON: {exc.msg}", now)


def _summarize(exc: ValidationError) -> str:
    """``field: problem`` for the first few errors; never echoes the input values."""
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    parts = [
        f"{'.'.join(_clip(str(p), _MAX_LOC_PART) for p in e['loc']) or 'event'}: {e['msg']}"
        for e in errors[:_MAX_ERRORS]
    ]
    if len(errors) > _MAX_ERRORS:
        parts.append(f"and {len(errors) - _MAX_ERRORS} more")
    return "; ".join(parts)


def _json_type(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"


def _clip(text: str, limit: int = _MAX_DETAIL) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
